"""What replicas sign for each other with keys derived from the shared `hub.cluster.session_secrets`:
one key per secret and purpose, the first signing and every one verifying (so a secret can be rotated).
Used by task marks and asks (`hub.cluster.tasks`) and console actions (`hub.admin.cluster_actions`);
`Sealed` encrypts what only replicas may read: session ids (`hub.cluster.sealing`), console sessions
(`hub.admin.session`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from typing import Any


def derive_key(purpose: bytes, secret: str) -> bytes:
    """A 256-bit key for one purpose from a shared secret (never the secret itself)."""
    return hashlib.sha256(purpose + secret.encode()).digest()


def id_digest(session_id: str) -> str:
    """How a session id is named among replicas (Redis keys, signed payloads): its SHA-256, in hex."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def canonical(payload: Any) -> bytes:
    """`payload` as the bytes a signature covers: compact JSON, keys sorted."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


class SharedKeys:
    """One purpose's keys, from every shared secret."""

    def __init__(self, purpose: bytes, secrets: Sequence[str]) -> None:
        self.keys = [derive_key(purpose, s) for s in secrets]

    def __bool__(self) -> bool:
        return bool(self.keys)

    def sign(self, body: bytes, length: int = 64, key: bytes | None = None) -> str:
        """The HMAC-SHA256 of `body` under the first key (or `key`), hex, cut to `length` characters."""
        return hmac.new(key or self.keys[0], body, "sha256").hexdigest()[:length]

    def verify(self, body: bytes, signature: object, length: int = 64) -> bool:
        """Whether `signature` is `body`'s under any of the keys (constant-time)."""
        return isinstance(signature, str) and any(
            hmac.compare_digest(signature, self.sign(body, length, key)) for key in self.keys)


class Sealed:
    """Values sealed for every replica: `prefix` + base64url(nonce ‖ AES-256-GCM(plain)), keyed per secret
    and purpose (the purpose is the associated data too); the first secret seals, every one opens."""

    def __init__(self, purpose: bytes, secrets: Sequence[str], prefix: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._purpose, self.prefix = purpose, prefix
        self._keys = [AESGCM(derive_key(purpose, s)) for s in secrets]

    def seal(self, plain: bytes) -> str:
        nonce = os.urandom(12)
        sealed = nonce + self._keys[0].encrypt(nonce, plain, self._purpose)
        return self.prefix + base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open(self, value: str, max_chars: int) -> bytes | None:
        """What `value` seals; None if it is not one of ours (another prefix, longer than `max_chars`, not
        base64) or does not open under any key (altered, or sealed with another secret)."""
        from cryptography.exceptions import InvalidTag

        if not value.startswith(self.prefix) or len(value) > max_chars:
            return None
        try:
            raw = base64.urlsafe_b64decode(value[len(self.prefix):] + "=" * (-len(value) % 4))
        except ValueError:
            return None
        for key in self._keys:
            try:
                return key.decrypt(raw[:12], raw[12:], self._purpose)
            except (InvalidTag, ValueError):
                continue
        return None


SECRETS_ENV = "MCP_HUB_SESSION_SECRETS"


def session_secrets(configured: Any) -> list[str]:
    """The deployment's shared secrets: `hub.cluster.session_secrets` (`configured`, SecretStr values), else
    `$MCP_HUB_SESSION_SECRETS` (comma-separated); the first signs and seals, every one checks."""
    found = [s.get_secret_value() for s in configured]
    return found or [s for s in os.environ.get(SECRETS_ENV, "").split(",") if s.strip()]


def configured_secrets(config: Any) -> list[str]:
    """`session_secrets` of a hub config."""
    return session_secrets(config.hub.cluster.session_secrets)
