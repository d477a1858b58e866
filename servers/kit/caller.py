"""Who is calling a domain tool: the principal and scopes the hub authenticated, never a tool argument.

A domain server run on its own (stdio, or HTTP without a hub) acts for its one local operator:
`LOCAL_CALLER`, who may do everything. Behind the hub, each call's caller arrives over the caller
channel (`hub.auth.caller_channel`) and `caller_for_request` turns it into a `Caller`, which the
tool wrapper binds (`bind_caller`) and domain code reads with `current_caller()`:

0. a caller already bound by in-process code (`bind_caller` around `MCPServer.call_tool`) is kept;
1. an in-process server gets the caller handed over by the hub in the same task;
2. a stdio or HTTP server gets a signed token in the request's `_meta` (`io.mcp-hub/caller`), kept
   for the call by the middleware `install_caller_boundary` puts on standalone servers, and checks
   it against `$MCP_HUB_CALLER_SECRET` (and `$MCP_HUB_CALLER_AUDIENCE`, when set);
3. with no caller at all: `LOCAL_CALLER` if this server has no secret, else `unauthorized`.
A token that does not verify — or one sent to a server without a secret, which cannot check it — is
always `unauthorized`: a server never falls back to the operator for a call that claims a caller.
"""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

from hub.auth.caller_channel import (
    AUDIENCE_ENV,
    META_KEY,
    MIN_SECRET_LENGTH,
    SECRET_ENV,
    CallerClaims,
    InvalidCallerToken,
    handed_over,
    verify,
)
from hub.auth.scopes import grants
from servers.kit.errors import DomainError


@dataclass(frozen=True)
class Caller:
    """The authenticated principal of one call. `scopes is None` means unrestricted (local operator)."""

    principal: str
    """Qualified by how it authenticated (`api_key:alice`, `jwt:alice`); the local operator's bare name."""
    scopes: frozenset[str] | None = None
    kind: str = "local"
    """`api_key`, `jwt`, or `local` (no hub, or the hub's stdio / auth-off operator)."""
    name: str | None = None
    """The name without its kind (`alice`); None for `LOCAL_CALLER`."""
    namespace: str | None = None
    """The prefix this server's scopes carry at the hub (`memory` in `memory:admin`)."""

    def may(self, scope: str) -> bool:
        """True if the caller's scopes cover `scope`, by the hub's rules (`ns:admin` ⊇ `ns:write` ⊇
        `ns:read`, `ns:*`, `*`)."""
        return self.scopes is None or grants(self.scopes, scope)

    def may_level(self, level: str) -> bool:
        """True if the caller holds `<this server's namespace>:<level>` (e.g. `admin`)."""
        if self.scopes is None:
            return True
        return self.namespace is not None and grants(self.scopes, f"{self.namespace}:{level}")

    @property
    def operator(self) -> bool:
        """The local operator (no hub, stdio, or auth off): one identity, owning unowned data."""
        return self.kind == "local"

    def is_self(self, user: str) -> bool:
        """Whether `user` names this caller (its qualified principal, or its bare name)."""
        return user == self.principal or (self.name is not None and user == self.name)


LOCAL_CALLER = Caller(principal="local", scopes=None)
_CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("mcp_hub_caller")  # unset: nobody bound one
_NO_REQUEST = object()
_REQUEST_TOKEN: contextvars.ContextVar[object] = contextvars.ContextVar("mcp_hub_caller_token", default=_NO_REQUEST)
"""The caller token of the `tools/call` being served (None: the request had none), set by the boundary."""


def current_caller() -> Caller:
    """The caller of the tool call running now (`LOCAL_CALLER` when nobody bound one)."""
    return _CALLER.get(LOCAL_CALLER)


@contextmanager
def bind_caller(caller: Caller) -> Iterator[Caller]:
    """Make `caller` the current caller for the code inside the block."""
    token = _CALLER.set(caller)
    try:
        yield caller
    finally:
        _CALLER.reset(token)


def caller_from_claims(claims: CallerClaims) -> Caller:
    return Caller(principal=claims.principal, scopes=frozenset(claims.scopes), kind=claims.kind, name=claims.name,
                  namespace=claims.namespace)


def configured_secret() -> str | None:
    """This server's caller secret (`$MCP_HUB_CALLER_SECRET`), or None."""
    return os.environ.get(SECRET_ENV) or None


def caller_from_meta(meta: Mapping[str, Any] | None, secret: str | None, audience: str | None, now: float) -> Caller:
    """The caller a request's `_meta` names, checked against `secret`; `unauthorized` if it cannot be trusted."""
    token = meta.get(META_KEY) if meta else None
    if token is None:
        if secret is not None:
            raise _unauthorized(f"the call carries no caller token, and this server only serves calls the hub signed "
                                f"({SECRET_ENV} is set here). Call it through the hub; if this call came through a "
                                f"hub, set that hub's `caller_secret` for this server to the same value as {SECRET_ENV}")
        return LOCAL_CALLER
    if secret is None:
        raise _unauthorized(f"the call carries a caller token but this server has no caller secret to check it: set "
                            f"{SECRET_ENV} on this server to the hub's `caller_secret` for it")
    try:
        return caller_from_claims(verify(token, secret.encode(), audience, now))
    except InvalidCallerToken as exc:
        raise _unauthorized(f"the caller token cannot be trusted: {exc}") from None


def caller_for_request() -> Caller:
    """The caller of the tool call being served, by the rules in the module docstring."""
    bound = _CALLER.get(None)
    if bound is not None:
        return bound
    claims = handed_over()
    if claims is not None:
        return caller_from_claims(claims)
    token = _REQUEST_TOKEN.get()
    meta = None if token is _NO_REQUEST or token is None else {META_KEY: token}
    return caller_from_meta(meta, configured_secret(), os.environ.get(AUDIENCE_ENV) or None, time.time())


def _unauthorized(message: str) -> DomainError:
    return DomainError("unauthorized", message)


class CallerBoundary:
    """Server middleware that keeps each `tools/call`'s caller token for `caller_for_request`."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        raw = ctx.params.get("_meta") if isinstance(ctx.params, Mapping) else None  # as sent: no model drops a key
        meta = raw if isinstance(raw, Mapping) else None
        token = _REQUEST_TOKEN.set(meta.get(META_KEY) if meta else None)
        try:
            return await call_next(ctx)
        finally:
            _REQUEST_TOKEN.reset(token)


def install_caller_boundary(server: MCPServer) -> None:
    """Make a standalone (stdio/HTTP) server read caller tokens; refuse to start with a short secret."""
    secret = configured_secret()
    if secret is not None and len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"{SECRET_ENV} must be at least {MIN_SECRET_LENGTH} characters")
    if not any(isinstance(m, CallerBoundary) for m in server.middleware):
        server.middleware.append(CallerBoundary())
