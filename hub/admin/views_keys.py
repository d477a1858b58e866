"""Keys page: create (the key is shown once, on the answer to the form), list, revoke; expiry.

Revoking a key also ends every console session opened with it. A session may create only keys no
broader than its own credential (`hub.auth.minting`): a wider one is refused (403) and audited as
denied. Creating and revoking are audited (`admin:create_key`, `admin:revoke_key`) with the key's id
and principal, never its secret.
"""

from __future__ import annotations

import re
import time

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub.admin.console import Console
from hub.admin.session import AdminSession
from hub.auth.keys import LEVEL_WORDS, MAX_DURATION_S, SCOPE_RE, parse_lifetime, split_scopes
from hub.auth.minting import ScopeEscalation

_NAME = re.compile(r"^[A-Za-z0-9_.@:-]{1,64}$")


async def keys(console: Console, request: Request, session: AdminSession, created: str | None = None,
               error: str | None = None, status: int = 200) -> Response:
    records = console.keys.list() if console.keys is not None else []
    now = time.time()
    rows = [{"id": r.key_id, "principal": r.principal, "scopes": " ".join(r.scopes), "created": r.created_at,
             "expires": r.expires_at, "revoked": r.revoked_at,
             "state": "revoked" if r.revoked_at else ("expired" if not r.active(now) else "active")}
            for r in reversed(records)]
    return console.render(request, "keys.html", session, status=status, page="keys", rows=rows, created=created,
                          error=error, enabled=console.keys is not None,
                          notice=request.query_params.get("notice"))


async def create(console: Console, request: Request, session: AdminSession) -> Response:
    if console.keys is None:
        return await keys(console, request, session, error="API keys are turned off (hub.auth.api_keys).", status=409)
    form = await request.form()
    name = str(form.get("principal") or "").strip()
    scopes = split_scopes([str(form.get("scopes") or "")])
    expires = str(form.get("expires") or "").strip()
    problem = None
    if not _NAME.match(name):
        problem = "Principal: 1–64 letters, digits or . _ @ : - (for example ci-bot)."
    elif not scopes or len(scopes) > 50 or not all(SCOPE_RE.match(s) and s.lower() not in LEVEL_WORDS for s in scopes):
        problem = "Scopes: one or more namespace:level, no space around the colon, separated by spaces or commas (for example ticketing:read hub:admin)."
    expires_in = None
    if problem is None and expires:
        try:
            expires_in = parse_lifetime(expires)  # more than zero: `0d` made a key that never expired
        except ValueError:
            problem = (f"Expires in: a number above 0 and a unit s, m, h, d or w (for example 30d), at most "
                       f"{MAX_DURATION_S // 86400}d, or empty for never.")
    if problem is not None:
        return await keys(console, request, session, error=problem, status=400)
    try:
        secret, record = console.keys.create(name, scopes, expires_in, minter=console.minter_scopes(session),
                                             minter_expires_at=session.expires_at)
    except ValueError as exc:  # a wider key (`ScopeEscalation`, audited as denied), or a lifetime the store refuses
        if isinstance(exc, ScopeEscalation):
            console.audit(session, "create_key", None, {"principal": name, "scopes": " ".join(scopes)},
                          outcome="denied", error_code="forbidden")
            return await keys(console, request, session, error=f"Not created: {exc}.", status=403)
        return await keys(console, request, session, error=f"Not created: {exc}.", status=400)
    console.audit(session, "create_key", None, {"key_id": record.key_id, "principal": name, "scopes": " ".join(scopes)})
    return await keys(console, request, session, created=secret)


async def revoke(console: Console, request: Request, session: AdminSession) -> Response:
    key_id = request.path_params["key_id"]
    if console.keys is None or not console.keys.revoke(key_id):
        return await keys(console, request, session, status=404,
                          error=f"No active key with id {key_id[:40]!r}: it may be revoked already.")
    console.sessions.end_credential(key_id)  # sealed sessions: their next request re-checks the key
    console.audit(session, "revoke_key", None, {"key_id": key_id})
    return RedirectResponse(f"/admin/keys?notice=revoked:{key_id}", status_code=303)
