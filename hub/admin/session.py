"""Console sessions: a random id in an HttpOnly, SameSite=Strict cookie, held server-side, with a
session-bound CSRF token every form must send back.

Rules decided here (see docs/console.md): a session lives 8 h at most and ends after 30 min idle
(`hub.auth.console_idle_s`);
it is re-checked on every request, and on every tick of a live stream, against its credential (a
revoked or expired API key, or an expired JWT, ends it at once); only an operator's own requests
restart the idle clock (a stream's polling does not); the login form itself is protected by a double-submit cookie, so a
foreign page cannot log a browser into an attacker's session. Sessions live in memory: a restart
logs everyone out, which is the safe failure.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "mcphub_admin"
LOGIN_CSRF_COOKIE = "mcphub_admin_login"
IDLE_S = 30 * 60
MAX_AGE_S = 8 * 3600
MAX_SESSIONS = 1000


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


class SessionStore:
    """Server-side sessions keyed by a 256-bit random id."""

    def __init__(self, idle_s: float = IDLE_S) -> None:
        self._sessions: dict[str, AdminSession] = {}
        self.idle_s = idle_s

    def create(self, session: AdminSession) -> str:
        self._expire()
        if len(self._sessions) >= MAX_SESSIONS:  # drop the oldest rather than grow without bound
            oldest = min(self._sessions, key=lambda k: self._sessions[k].seen)
            del self._sessions[oldest]
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = session
        return sid

    def get(self, request: Request, touch: bool = True) -> AdminSession | None:
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

    def end(self, request: Request) -> None:
        sid = request.cookies.get(COOKIE)
        if sid:
            self._sessions.pop(sid, None)

    def end_credential(self, credential: str) -> None:
        """End every session opened with this credential (its key was revoked)."""
        for sid in [s for s, v in self._sessions.items() if v.credential == credential]:
            del self._sessions[sid]

    def _expire(self) -> None:
        now = time.time()
        for sid in [s for s, v in self._sessions.items() if not _alive(v, now, self.idle_s)]:
            del self._sessions[sid]


def _alive(session: AdminSession, now: float, idle_s: float) -> bool:
    return (now - session.seen < idle_s and now - session.created < MAX_AGE_S
            and (session.expires_at is None or session.expires_at > now))


_LOGIN_KEY = secrets.token_bytes(32)
"""Signs login-form tokens: the double-submit pair must be one this process issued, not any pair."""


def login_token() -> str:
    """A fresh login-form CSRF token: random part + HMAC of it under this process's key."""
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{hmac.new(_LOGIN_KEY, nonce.encode(), 'sha256').hexdigest()[:32]}"


def login_token_issued(token: str | None) -> bool:
    """Whether `token` is one `login_token` made (constant-time)."""
    if not token or token.count(".") != 1:
        return False
    nonce, mac = token.split(".")
    return hmac.compare_digest(mac, hmac.new(_LOGIN_KEY, nonce.encode(), "sha256").hexdigest()[:32])


def csrf_ok(expected: str | None, sent: object) -> bool:
    """Constant-time comparison of the form's token with the expected one."""
    return bool(expected) and isinstance(sent, str) and hmac.compare_digest(expected.encode(), sent.encode())


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """HttpOnly, SameSite=Strict, path /admin; Secure when the console is served over https."""
    response.set_cookie(name, value, max_age=max_age, path="/admin", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
