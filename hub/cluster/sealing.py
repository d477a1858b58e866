"""Sealed session ids: a 2025-11-25 session's state inside its own `Mcp-Session-Id`.

The id is `s1.` + base64url(nonce ‖ AES-256-GCM(state)), keyed by the first of
`hub.cluster.session_secrets`; every listed secret is tried when opening, so a secret is rotated
by putting the new one first, and dropped once the old sessions have ended. The state is what a
replica needs to continue the session: the negotiated version, the client's initialize params
(capabilities, client name and version; not its icons), the principal it is bound to, and when it was issued. Tampering, a
forged id, or an unknown secret all fail authentication (`open_session` returns None).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from hub.cluster.signing import Sealed

PREFIX = "s1."
_AAD = b"mcp-hub session id v1"
MAX_ID_CHARS = 4096
"""Longer ids are not even tried (a bound on work per request)."""


class SessionState(NamedTuple):
    protocol_version: str
    client_params: dict[str, Any]
    """What adoption needs of the client's `initialize` params (`hub.cluster.sessions.sealable_params`):
    version, capabilities, clientInfo's name/version/title — not its icons, which overran the id."""
    owner: tuple[str | None, str | None, str | None] | None
    """(client_id, issuer, subject) of the credential that opened it; None with auth off."""
    issued_at: float


class SessionSealer:
    def __init__(self, secrets: Sequence[str], max_age_s: float) -> None:
        if not secrets:
            raise ValueError("hub.cluster.session_secrets is empty: nothing to seal session ids with")
        self._sealed = Sealed(_AAD, secrets, PREFIX)
        self.max_age_s = max_age_s

    def seal(self, state: SessionState) -> str:
        return self._sealed.seal(json.dumps(list(state), separators=(",", ":")).encode())

    def open(self, session_id: str, now: float | None = None) -> SessionState | None:
        """The state sealed in `session_id`; None if it is not one of ours, altered, or too old."""
        plain = self._sealed.open(session_id, MAX_ID_CHARS)
        if plain is None:
            return None
        version, params, owner, issued = json.loads(plain)
        if (now if now is not None else time.time()) - issued > self.max_age_s:
            return None
        return SessionState(version, params, tuple(owner) if owner is not None else None, issued)
