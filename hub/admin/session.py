"""Console sessions: an HttpOnly, SameSite=Strict cookie, with a session-bound CSRF token every form
must send back.

Rules decided here (see docs/console.md): a session lives 8 h at most and ends after 30 min idle
(`hub.auth.console_idle_s`);
it is re-checked on every request, and on every tick of a live stream, against its credential (a
revoked or expired API key, or an expired JWT, ends it at once); only an operator's own requests
restart the idle clock (a stream's polling does not); the login form itself is protected by a double-submit cookie, so a
foreign page cannot log a browser into an attacker's session.

Where a session lives:
- one replica (no `hub.cluster.session_secrets`): in memory, the cookie a 256-bit random id; a
  restart logs everyone out, which is the safe failure (`SessionStore`);
- replicas (`session_secrets` set): sealed into the cookie itself (AES-256-GCM, a key derived from the
  first secret, every secret opens), so any replica serves it behind a round-robin balancer (outside
  review, cluster round 18 #3: a session made on A was unknown on B). Each answer re-seals it with
  the new idle clock. Sign-out is recorded as the end of the session's random id — in this replica's
  memory and, with `hub.cluster.redis_url`, in Redis for every replica (`hub.cluster.ended_sessions`,
  checked on every console request; Redis unreachable: accepted, as for MCP sessions, and the end is
  written once it answers), and in the data dir (`hub.admin.signed_out`: a restart, or a Redis
  restart without persistence, does not revive it — outside review console26 #6). A revoked key
  needs no record: every request re-checks it in the shared key store (`SealedSessionStore`).
The login form's token is signed with a key derived from the shared secret too, so a form served by
one replica is accepted by another; without it, by a key random per process.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from hub.admin.signed_out import SignedOut
from hub.cluster.ended_sessions import EndedSessions
from hub.cluster.signing import Sealed, derive_key

COOKIE = "mcphub_admin"
LOGIN_CSRF_COOKIE = "mcphub_admin_login"
IDLE_S = 30 * 60
MAX_AGE_S = 8 * 3600
MAX_SESSIONS = 1000
FLUSH_EVERY_S = 2.0
"""How often a sign-out Redis did not take is written again."""
SEALED_PREFIX = "c1."
BY_REFERENCE_PREFIX = "c2."
"""A sealed session whose API key's scopes are read from the key store (too many to seal)."""
MAX_COOKIE_CHARS = 3800
"""Browsers keep cookies up to 4096 bytes with their name and attributes; a longer sealed value sheds its
notice, then (an API key's session) its scopes (`BY_REFERENCE_PREFIX`)."""
_SEAL_AAD = b"mcp-hub admin console session v1"
_LOGIN_AAD = b"mcp-hub admin console login v1"
_ENDED_PREFIX = "admin-console:"
"""Namespaces a console session's end among `EndedSessions`' records (MCP session ids never start so)."""


@dataclass
class AdminSession:
    principal: str
    kind: str
    """`api_key` or `jwt`."""
    credential: str
    """The API key's id, or the JWT's issuer."""
    expires_at: float | None
    """When the credential itself expires (the session ends then too)."""
    scopes: tuple[str, ...] = ()
    """The credential's scopes: a key created in this session may hold no more (`hub.auth.minting`)."""
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.time)
    seen: float = field(default_factory=time.time)
    notice: str | None = None
    """The answer to this session's last server action, shown once by the next Servers page."""
    sid: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    """The session's random id: the cookie in memory, the record of its end when sealed."""
    scopes_in_store: bool = False
    """The API key's scopes were too many to seal into the cookie: `scopes` is empty, and what the session
    may mint is read from the key store (`Console.minter_scopes`)."""


class SessionTooLarge(ValueError):
    """A session that cannot be kept in a browser's cookie; the message says why and what to do."""


class SessionStore:
    """Server-side sessions keyed by a 256-bit random id (one replica)."""

    def __init__(self, idle_s: float = IDLE_S) -> None:
        self._sessions: dict[str, AdminSession] = {}
        self.idle_s = idle_s

    def create(self, session: AdminSession) -> str:
        """The cookie value for a new session."""
        self._expire()
        if len(self._sessions) >= MAX_SESSIONS:  # drop the oldest rather than grow without bound
            oldest = min(self._sessions, key=lambda k: self._sessions[k].seen)
            del self._sessions[oldest]
        self._sessions[session.sid] = session
        return session.sid

    async def get(self, request: Request, touch: bool = True) -> AdminSession | None:
        """The live session of this request's cookie, else None. `touch`: the operator acted, so its
        idle clock restarts (False for a live stream's open and polls, which are not activity)."""
        sid = request.cookies.get(COOKIE)
        session = self._sessions.get(sid) if sid else None
        if session is None or sid is None:
            return None
        now = time.time()
        if not _alive(session, now, self.idle_s):
            del self._sessions[sid]
            return None
        if touch:
            session.seen = now
        return session

    def cookie(self, session: AdminSession) -> str | None:
        """A new cookie value to send with the answer: none, the session is held here."""
        return None

    async def end(self, session: AdminSession) -> None:
        self._sessions.pop(session.sid, None)

    def end_credential(self, credential: str) -> None:
        """End every session opened with this credential (its key was revoked)."""
        for sid in [s for s, v in self._sessions.items() if v.credential == credential]:
            del self._sessions[sid]

    def _expire(self) -> None:
        now = time.time()
        for sid in [s for s, v in self._sessions.items() if not _alive(v, now, self.idle_s)]:
            del self._sessions[sid]

    async def aclose(self) -> None:
        return None


class SealedSessionStore:
    """Sessions sealed into their cookie, so every replica sharing `session_secrets` serves them."""

    def __init__(self, secrets_: Sequence[str], ended: EndedSessions, idle_s: float = IDLE_S,
                 signed_out: SignedOut | None = None) -> None:
        """`signed_out`: sign-outs kept in the data dir, so a restart does not revive them."""
        self._flusher: asyncio.Task[None] | None = None
        if not secrets_:
            raise ValueError("hub.cluster.session_secrets is empty: nothing to seal console sessions with")
        self._sealed = Sealed(_SEAL_AAD, secrets_, SEALED_PREFIX)
        self._by_reference = Sealed(_SEAL_AAD, secrets_, BY_REFERENCE_PREFIX)
        self.ended = ended
        self.idle_s = idle_s
        self.signed_out = signed_out

    def create(self, session: AdminSession) -> str:
        """The sealed cookie for a new session, within what a browser keeps (outside review console26 #5:
        a credential with ~100 scopes "signed in", its cookie was dropped, and the operator was sent back
        to the login form with no word). Decided: an API key's scopes, when too many to seal, are kept by
        reference (the key's id, already in the cookie: the key store holds its scopes, which never
        change); a JWT's cannot be looked up again, so such a sign-in is refused (`SessionTooLarge`,
        saying why and what to do)."""
        value = self._seal(session)
        if len(value) > MAX_COOKIE_CHARS:
            raise SessionTooLarge(
                f"This credential is valid, but it holds {len(session.scopes)} scopes: a console session "
                f"sealed with them is {len(value)} bytes, more than the {MAX_COOKIE_CHARS} a browser keeps in "
                "a cookie (hub.cluster.session_secrets seals the session into it). Sign in with an API key "
                "holding hub:admin (its scopes are then looked up, not sealed), e.g. `mcp-hub keys create "
                "--name ops --scopes hub:admin,ticketing:write`, or with a token holding fewer scopes.")
        return value

    async def get(self, request: Request, touch: bool = True) -> AdminSession | None:
        raw = request.cookies.get(COOKIE)
        session = self._open(raw) if raw else None
        now = time.time()
        if session is None or not _alive(session, now, self.idle_s):
            return None
        if self.signed_out is not None and self.signed_out.holds(session.sid):
            return None
        await self.ended.flush()  # an end Redis missed during an outage is written once it answers
        if await self.ended.ended(_ENDED_PREFIX + session.sid):
            return None
        if touch:
            session.seen = now
        return session

    def cookie(self, session: AdminSession) -> str | None:
        """The session re-sealed (its idle clock and notice as they are now), to send with the answer."""
        return self._seal(session)

    async def end(self, session: AdminSession) -> None:
        """Sign-out: here at once, and on every replica through Redis when it is set; a sign-out Redis did
        not take (an outage) is written again every `FLUSH_EVERY_S` until it is, not only on this replica's
        next console request (re-check 20 #3: another replica accepted the signed-out cookie meanwhile)."""
        if self.signed_out is not None:
            self.signed_out.add(session.sid, session.created + MAX_AGE_S)
        await self.ended.end(_ENDED_PREFIX + session.sid, session.created + MAX_AGE_S)
        if self.ended.unshared and self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_until_shared())

    async def _flush_until_shared(self) -> None:
        try:
            deadline = time.monotonic() + MAX_AGE_S
            while self.ended.unshared and time.monotonic() < deadline:
                await asyncio.sleep(FLUSH_EVERY_S)
                await self.ended.flush()
        finally:
            self._flusher = None

    def end_credential(self, credential: str) -> None:
        """Nothing to drop: every request re-checks the credential in the shared key store."""

    async def aclose(self) -> None:
        """At the hub's stop: a sign-out Redis has not taken yet gets one last write, the retry loop
        ends, and the Redis client is closed."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        if self.ended.unshared:
            await self.ended.flush()
        await self.ended.aclose()

    def _seal(self, session: AdminSession) -> str:
        """The session sealed; past `MAX_COOKIE_CHARS` without its notice, then (an API key's) without its
        scopes, under `BY_REFERENCE_PREFIX` (a replica from before it sends such a cookie to the login form)."""
        by_reference = session.scopes_in_store
        state = [session.sid, session.principal, session.kind, session.credential, session.expires_at,
                 None if by_reference else list(session.scopes), session.csrf, session.created, session.seen,
                 session.notice]
        value = self._sealed_as(state, by_reference)
        if len(value) > MAX_COOKIE_CHARS and session.notice is not None:
            state[-1] = None  # the notice is only a courtesy; the session must fit
            value = self._sealed_as(state, by_reference)
        if len(value) > MAX_COOKIE_CHARS and session.kind == "api_key" and not by_reference:
            state[5] = None
            value = self._sealed_as(state, True)
        return value

    def _sealed_as(self, state: list[object], by_reference: bool) -> str:
        plain = json.dumps(state, separators=(",", ":")).encode()
        return (self._by_reference if by_reference else self._sealed).seal(plain)

    def _open(self, value: str) -> AdminSession | None:
        plain = self._sealed.open(value, MAX_COOKIE_CHARS * 2) or self._by_reference.open(value, MAX_COOKIE_CHARS * 2)
        if plain is None:
            return None
        sid, principal, kind, credential, expires_at, scopes, csrf, created, seen, notice = json.loads(plain)
        return AdminSession(principal, kind, credential, expires_at, tuple(scopes or ()), csrf, created, seen, notice,
                            sid, scopes_in_store=scopes is None)


def _alive(session: AdminSession, now: float, idle_s: float) -> bool:
    return (now - session.seen < idle_s and now - session.created < MAX_AGE_S
            and (session.expires_at is None or session.expires_at > now))


class LoginTokens:
    """Login-form CSRF tokens: random part + HMAC of it. The double-submit pair must be one a replica
    of this hub issued, not any pair: signed by a key derived from the first shared secret (verified
    with each, for rotation), or a key random per process when there are none."""

    def __init__(self, secrets_: Sequence[str] = ()) -> None:
        self._keys = [derive_key(_LOGIN_AAD, s) for s in secrets_] or [secrets.token_bytes(32)]

    def issue(self) -> str:
        nonce = secrets.token_urlsafe(24)
        return f"{nonce}.{_mac(self._keys[0], nonce)}"

    def issued(self, token: str | None) -> bool:
        """Whether `token` is one `issue` made here or on a replica sharing the secrets (constant-time)."""
        if not token or token.count(".") != 1:
            return False
        nonce, mac = token.split(".")
        return any(hmac.compare_digest(mac, _mac(key, nonce)) for key in self._keys)


def _mac(key: bytes, nonce: str) -> str:
    return hmac.new(key, nonce.encode(), "sha256").hexdigest()[:32]


def csrf_ok(expected: str | None, sent: object) -> bool:
    """Constant-time comparison of the form's token with the expected one."""
    return bool(expected) and isinstance(sent, str) and hmac.compare_digest(expected.encode(), sent.encode())


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int,
               public_url: str | None = None) -> None:
    """HttpOnly, SameSite=Strict, path /admin; Secure when the console is served over https (`served_securely`)."""
    response.set_cookie(name, value, max_age=max_age, path="/admin", httponly=True, samesite="strict",
                        secure=served_securely(request, public_url))


def served_securely(request: Request, public_url: str | None) -> bool:
    """Whether the browser reached the console over https: the request says so, or it came for the host
    of the hub's public URL (`hub.auth.resource_url`) and that URL is https. Behind a TLS ingress the hub
    itself sees plain http (uvicorn trusts `X-Forwarded-Proto` from loopback only), and the cookie went
    out without `Secure` (outside review console26 #3); the public URL is what the operator declared."""
    if request.url.scheme == "https":
        return True
    if not public_url:
        return False
    public = urlsplit(public_url)
    return public.scheme == "https" and bool(public.hostname) and request.url.hostname == public.hostname
