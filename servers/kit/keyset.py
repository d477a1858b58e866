"""Signed keyset cursors for embedded stores: the cursor carries the sort position of the last row
returned, a fingerprint of the query it belongs to, and an HMAC made with a per-store secret.

Keyset paging ("rows after this (sort key, id)") stays correct while others write, unlike offsets;
the fingerprint refuses a cursor replayed on another query, and the HMAC refuses a crafted one
(which could otherwise point anywhere or smuggle values into a query). Both refusals are
`invalid_argument` errors that say what to do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from servers.kit.errors import DomainError

_SECRETS_TABLE = "CREATE TABLE IF NOT EXISTS kit_secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL)"
_VERSION = 1
_MAX_CURSOR_CHARS = 2_000

Position = list[str | int | float | None]


def store_secret(db: sqlite3.Connection, name: str = "cursor") -> bytes:
    """The store's secret called `name` (32 random bytes made on first use and kept in the database,
    so cursors survive restarts and a copy of the code cannot forge them)."""
    db.execute(_SECRETS_TABLE)
    db.execute("INSERT OR IGNORE INTO kit_secrets (name, value) VALUES (?, randomblob(32))", (name,))
    return bytes(db.execute("SELECT value FROM kit_secrets WHERE name = ?", (name,)).fetchone()[0])


def query_fingerprint(scope: str, filters: Mapping[str, Any]) -> str:
    """A short hash of `scope` (the list, e.g. "tickets" or "comments:OPS-1") and its normalized
    filters; the caller normalizes (sorted lists, canonical keys) so equal queries hash equal."""
    canonical = json.dumps([scope, filters], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode())


def _mac(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest()[:20])


def sign_cursor(secret: bytes, fingerprint: str, position: Sequence[Any]) -> str:
    """A cursor for "the rows after `position`" in the query with `fingerprint`."""
    body = _b64(json.dumps({"v": _VERSION, "q": fingerprint, "after": list(position)}, separators=(",", ":")).encode())
    return f"{body}.{_mac(secret, body)}"


def open_cursor(secret: bytes, cursor: str | None, fingerprint: str, width: int) -> Position | None:
    """The position a cursor resumes after (None without a cursor), once its HMAC and its query
    fingerprint check out and it holds `width` sort values; else `invalid_argument`."""
    if not cursor:
        return None
    forged = _forged()
    body, dot, mac = cursor.partition(".")
    if len(cursor) > _MAX_CURSOR_CHARS or not dot or not hmac.compare_digest(mac.encode(), _mac(secret, body).encode()):
        raise forged
    try:
        state = json.loads(_unb64(body))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise forged from None
    return _position(state, fingerprint, width, forged)


def _forged() -> DomainError:
    return DomainError("invalid_argument", "cursor was not issued by this server or was altered: pass next_cursor from the "
                       "previous page unchanged, or leave cursor out to start from the first page", details={"field": "cursor"})


def _position(state: Any, fingerprint: str, width: int, forged: DomainError) -> Position:
    """The position in an opened cursor's `state`, once it is this version's, `width` wide and of this query."""
    if not isinstance(state, dict) or state.get("v") != _VERSION:
        raise forged
    position = state.get("after")
    if not isinstance(position, list) or len(position) != width:
        raise forged
    if state.get("q") != fingerprint:
        raise DomainError(
            "invalid_argument",
            "cursor belongs to a different query: page on with exactly the same filters that returned it, "
            "or leave cursor out to start this query from the first page",
            details={"field": "cursor"},
        )
    return position


_SEALED = "s1."


def _seal_key(secret: bytes) -> bytes:
    return hmac.new(secret, b"mcp-hub cursor seal", hashlib.sha256).digest()


def seal_cursor(secret: bytes, fingerprint: str, position: Sequence[Any]) -> str:
    """`sign_cursor`, but opaque: the state is encrypted and authenticated (AES-GCM under a key derived
    from the store secret), so a caller can neither read nor alter the position it carries."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    plain = json.dumps({"v": _VERSION, "q": fingerprint, "after": list(position)}, separators=(",", ":")).encode()
    nonce = os.urandom(12)
    return _SEALED + _b64(nonce + AESGCM(_seal_key(secret)).encrypt(nonce, plain, _SEALED.encode()))


def open_sealed_cursor(secret: bytes, cursor: str | None, fingerprint: str, width: int) -> Position | None:
    """The position a `seal_cursor` cursor resumes after (None without a cursor); `invalid_argument`
    (as `open_cursor`) for one altered, made elsewhere, of another query or of another width."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not cursor:
        return None
    forged = _forged()
    if len(cursor) > _MAX_CURSOR_CHARS or not cursor.startswith(_SEALED):
        raise forged
    try:
        raw = _unb64(cursor[len(_SEALED):])
        state = json.loads(AESGCM(_seal_key(secret)).decrypt(raw[:12], raw[12:], _SEALED.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError, InvalidTag):
        raise forged from None
    return _position(state, fingerprint, width, forged)
