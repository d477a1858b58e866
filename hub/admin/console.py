"""The console's shared state and helpers: templates, sessions, the admin check, audited actions."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from hub.admin.actions import ServerActions
from hub.admin.cluster_actions import ClusterActions
from hub.admin.session import AdminSession, LoginTokens, SealedSessionStore, SessionStore
from hub.admin.signed_out import FILE_NAME as SIGNED_OUT_FILE, SignedOut
from hub.audit.log import AuditEvent
from hub.cluster.ended_sessions import EndedSessions
from hub.auth.keys import KeyStore
from hub.hub import Hub
from hub.policies.audit import new_request_id
from hub.store.base import StoreUnavailable

if TYPE_CHECKING:
    from hub.auth.http import HttpAuth

ADMIN_SCOPE = "hub:admin"
HERE = Path(__file__).resolve().parent


def _when(ts: float | None) -> str:
    """A stored instant for a page; one no clock can show (a far-future expiry, a corrupt row) reads as
    such instead of failing the whole page (outside review console26 #1: one key made the Keys page 500)."""
    if ts is None:
        return "—"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    except (OverflowError, OSError, ValueError):
        return "after 9999" if ts > 0 else "unknown"


class Console:
    """What every console page needs: the hub, its auth, the key store, sessions, server actions and templates."""

    def __init__(self, hub: Hub, auth: HttpAuth | None) -> None:
        self.hub = hub
        self.auth = auth
        self.keys: KeyStore | None = auth.verifier.keys if auth is not None else None
        # With the cluster set up, any replica serves a console session, its login form and its actions
        # (docs/deploy.md, "Admin console on a shared store"); without it, one replica's, as always.
        cluster = hub.config.hub.cluster
        shared = [s.get_secret_value() for s in cluster.session_secrets]
        idle_s = hub.config.hub.auth.console_idle_s
        self.sessions: SessionStore | SealedSessionStore = (
            SealedSessionStore(shared, EndedSessions(cluster.redis_url), idle_s,
                               SignedOut(hub.data_dir / SIGNED_OUT_FILE)) if shared else SessionStore(idle_s))
        self.public_url: str | None = hub.config.hub.auth.resource_url
        """The hub's public URL: its https makes the cookies `Secure` behind a TLS proxy (`session.served_securely`)."""
        self.login_tokens = LoginTokens(shared)
        self.actions = ClusterActions(ServerActions(hub), getattr(hub, "cluster_notify", None), shared)
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                                     autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
        self.templates.filters["when"] = _when

    async def live_session(self, request: Request, touch: bool = True) -> AdminSession | None:
        """The request's session, ended if its API key has since been revoked or has expired — looked
        up as `/mcp` looks keys up (`KeyStore.active`), so a revocation by the CLI or on another replica
        counts too. `touch=False` for a live stream (its polls are not operator activity). A key store
        that does not answer raises `StoreUnavailable` (the key may well be valid: nothing is ended)."""
        session = await self.sessions.get(request, touch=touch)
        if session is None or session.kind != "api_key" or self.keys is None:
            return session
        if not await self.keys.active(session.credential):
            self.sessions.end_credential(session.credential)
            return None
        return session

    def minter_scopes(self, session: AdminSession) -> tuple[str, ...]:
        """The scopes bounding what `session` may mint: its own, or — when its API key's were too many to
        seal into the cookie — the key's, read from the key store (none if the key is gone: nothing is minted)."""
        if not session.scopes_in_store:
            return session.scopes
        if self.keys is None:
            return ()
        return next((r.scopes for r in self.keys.list() if r.key_id == session.credential), ())

    def render(self, request: Request, name: str, session: AdminSession | None, status: int = 200,
               **context: Any) -> HTMLResponse:
        html = self.templates.get_template(name).render(
            request=request, session=session, csrf=session.csrf if session else "", **context)
        return HTMLResponse(html, status_code=status, headers=_SECURITY_HEADERS)

    def audit(self, session: AdminSession, action: str, target: str | None, arguments: dict[str, Any],
              outcome: str = "ok", error_code: str | None = None) -> None:
        """Record a console action in the audit log as tool `admin:<action>` (kept fields: the targets,
        never a secret)."""
        if self.hub.audit_log is None:
            return
        self.hub.audit_log.record(AuditEvent(
            time.time(), new_request_id(), session.principal, f"admin:{action}", target, outcome, error_code, None,
            arguments, frozenset(arguments), session.kind, session.credential))


__all__ = ["ADMIN_SCOPE", "HERE", "Console", "StoreUnavailable"]

_SECURITY_HEADERS = {
    # Pages load only their own CSS and JS: no inline script, no framing, no referrer (with its filters) sent to another site.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # no-referrer would make a browser send `Origin: null` on POSTs
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
