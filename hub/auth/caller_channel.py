"""Telling a downstream server who is calling: the hub → server caller channel.

The hub authenticates the caller; a domain server must know who that was (e.g. whose memories a
call may reach) without trusting anything the caller wrote. Per transport:

- **in-process**: the hub hands the caller over in a context variable around the call
  (`handing_over`); nothing crosses a wire, nothing to sign.
- **stdio children and HTTP servers**: each `tools/call` carries, in `params._meta` under
  `io.mcp-hub/caller`, a token signed with HMAC-SHA256 under a secret only the hub and that server
  hold: a random one per stdio child, given to it in `$MCP_HUB_CALLER_SECRET`; for HTTP, the
  server's `caller_secret` from config, set on the server's side in the same variable.

A token says: the principal qualified by how it authenticated (`api_key:alice`, `jwt:alice`; the
hub's local operator keeps its bare name), that kind and bare name, the caller's scopes for this
server (`*` and `<namespace>:…` only), the namespace those scopes are written in, the audience
(the server's name in the hub config) and an expiry 60 s ahead. Tokens are reused per caller for
half their life, so signing costs nothing on the hot path. The hub never forwards a client's own
`_meta` to a downstream, so no client can put an `io.mcp-hub/*` key there.

Format: `base64url(JSON claims) "." base64url(HMAC-SHA256(secret, "mcp-hub-caller.v1." + first part))`.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.auth.principal import Principal

if TYPE_CHECKING:
    from hub.config import ServerConfig

META_KEY = "io.mcp-hub/caller"
SECRET_ENV = "MCP_HUB_CALLER_SECRET"
AUDIENCE_ENV = "MCP_HUB_CALLER_AUDIENCE"
TOKEN_TTL_S = 60.0
MIN_SECRET_LENGTH = 32
MAX_TOKEN_LENGTH = 8192
_MAC_CONTEXT = b"mcp-hub-caller.v1."
_CACHE_LIMIT = 4096


class InvalidCallerToken(Exception):
    """A caller token that must not be trusted; the message says why (never echoes the token)."""


@dataclass(frozen=True)
class CallerClaims:
    """Who is calling one server, as the hub authenticated them."""

    principal: str
    """Qualified: `<kind>:<name>` (`api_key:alice`, `jwt:alice`), or the bare name of the local operator."""
    kind: str
    name: str
    scopes: tuple[str, ...]
    namespace: str
    """The prefix this server's scopes have at the hub (`memory` in `memory:admin`)."""
    audience: str
    expires_at: float = math.inf


def qualified_principal(principal: Principal) -> str:
    """`<kind>:<name>`, so a JWT subject can never equal an API key's name; `local` stays bare."""
    return principal.name if principal.kind == "local" else f"{principal.kind}:{principal.name}"


def claims_for(principal: Principal, namespace: str, audience: str, expires_at: float = math.inf) -> CallerClaims:
    """The claims about `principal` one server gets: only the scopes that concern it."""
    mine = f"{namespace}:"
    scopes = tuple(s for s in principal.scopes if s == "*" or s.startswith(mine))
    return CallerClaims(qualified_principal(principal), principal.kind, principal.name, scopes, namespace, audience, expires_at)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, body: str) -> bytes:
    return hmac.new(secret, _MAC_CONTEXT + body.encode("ascii"), hashlib.sha256).digest()


def sign(claims: CallerClaims, secret: bytes) -> str:
    """The token for `claims` under `secret`."""
    payload = {"v": 1, "sub": claims.principal, "kind": claims.kind, "name": claims.name, "scopes": list(claims.scopes),
               "ns": claims.namespace, "aud": claims.audience, "exp": claims.expires_at}
    body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{body}.{_b64(_mac(secret, body))}"


def verify(token: object, secret: bytes, audience: str | None, now: float) -> CallerClaims:
    """The claims of a token signed under `secret`, unexpired and (when `audience` is given) meant
    for it; else `InvalidCallerToken`."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise InvalidCallerToken("it is not a caller token")
    body, _, mac = token.partition(".")
    try:
        # Compared as text against the canonical encoding: base64 decoders forgive variants.
        good = hmac.compare_digest(mac.encode(), _b64(_mac(secret, body)).encode())
    except UnicodeEncodeError:
        raise InvalidCallerToken("it is not a caller token") from None
    if not good:
        raise InvalidCallerToken("its signature does not match this server's caller secret")
    try:
        payload = json.loads(_unb64(body))
        claims = CallerClaims(payload["sub"], payload["kind"], payload["name"], tuple(payload["scopes"]), payload["ns"],
                              payload["aud"], float(payload["exp"]))
    except (ValueError, KeyError, TypeError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise InvalidCallerToken("its claims are malformed") from None
    texts = (claims.principal, claims.kind, claims.name, claims.namespace, claims.audience, *claims.scopes)
    if not all(isinstance(v, str) for v in texts) or not math.isfinite(claims.expires_at):
        raise InvalidCallerToken("its claims are malformed")
    if claims.expires_at <= now:
        raise InvalidCallerToken("it has expired (tokens live 60 s; check that the hub's and this host's clocks agree)")
    if audience is not None and claims.audience != audience:
        raise InvalidCallerToken(f"it was issued for server {claims.audience[:100]!r}, not {audience[:100]!r}")
    return claims


# -- in-process hand-over --------------------------------------------------------------------

_HANDED_OVER: contextvars.ContextVar[CallerClaims | None] = contextvars.ContextVar("mcp_hub_caller_handover", default=None)


def handed_over() -> CallerClaims | None:
    """The caller the hub handed to an in-process server for the call running now, if any."""
    return _HANDED_OVER.get()


@contextmanager
def handing_over(claims: CallerClaims | None) -> Iterator[None]:
    """Make `claims` the caller of the in-process call inside the block (None: hand nothing over)."""
    if claims is None:
        yield
        return
    token = _HANDED_OVER.set(claims)
    try:
        yield
    finally:
        _HANDED_OVER.reset(token)


# -- one downstream's end of the channel --------------------------------------------------------


class CallerChannel:
    """How one downstream learns each call's caller: hand-over, a signed token, or nothing (an
    HTTP server without a `caller_secret`)."""

    def __init__(self, *, namespace: str, audience: str, secret: str | None = None, in_process: bool = False,
                 ttl_s: float = TOKEN_TTL_S, clock: Callable[[], float] = time.time) -> None:
        self.namespace = namespace
        self.audience = audience
        self.in_process = in_process
        self._secret = secret
        self._key = secret.encode() if secret is not None else None
        self._ttl_s = ttl_s
        self._clock = clock
        self._tokens: dict[Principal, tuple[str, float]] = {}
        self._claims: dict[Principal, CallerClaims] = {}

    @classmethod
    def for_server(cls, config: ServerConfig) -> CallerChannel:
        """stdio: a fresh random secret (the child gets it in its env); HTTP/SSE: the configured
        `caller_secret`, if any; in-process: hand-over."""
        from hub.auth.scopes import scope_prefix

        namespace = scope_prefix(config)
        configured = config.caller_secret.get_secret_value() if config.caller_secret is not None else None
        if config.transport == "inprocess":
            return cls(namespace=namespace, audience=config.name, in_process=True)
        if config.transport == "stdio":
            from hub.prestart import secret_for  # a child pre-started for this server holds its secret

            secret = configured or secret_for(config.name) or secrets.token_urlsafe(32)
            return cls(namespace=namespace, audience=config.name, secret=secret)
        return cls(namespace=namespace, audience=config.name, secret=configured)

    def child_env(self) -> dict[str, str]:
        """What a stdio child needs in its environment to check the tokens."""
        if self._secret is None:
            return {}
        return {SECRET_ENV: self._secret, AUDIENCE_ENV: self.audience}

    def meta(self, principal: Principal) -> dict[str, Any] | None:
        """The `_meta` entries for a call by `principal` (a new dict each time: senders add to it),
        or None when this server gets no token."""
        if self._key is None:
            return None
        now = self._clock()
        cached = self._tokens.get(principal)
        if cached is None or cached[1] - now < self._ttl_s / 2:
            if len(self._tokens) >= _CACHE_LIMIT:
                self._tokens.clear()
            expires = now + self._ttl_s
            token = sign(claims_for(principal, self.namespace, self.audience, expires), self._key)
            cached = self._tokens[principal] = (token, expires)
        return {META_KEY: cached[0]}

    def bind(self, principal: Principal) -> Any:
        """A context manager handing `principal` over for an in-process call (no-op otherwise)."""
        if not self.in_process:
            return handing_over(None)
        claims = self._claims.get(principal)
        if claims is None:
            if len(self._claims) >= _CACHE_LIMIT:
                self._claims.clear()
            claims = self._claims[principal] = claims_for(principal, self.namespace, self.audience)
        return handing_over(claims)
