"""API keys: created once and shown once; only a salted hash is stored (SQLite in the data dir).

A key looks like `mcphub_<id>_<secret>`: the id finds the row, the 256-bit random secret is
checked against `HMAC-SHA256(salt, secret)`. With that much entropy a slow KDF buys nothing, and a
fast hash keeps verification off the latency budget.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from hub.datadir import open_db

PREFIX = "mcphub_"
_KEY_RE = re.compile(r"^mcphub_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_MIGRATIONS = [
    """CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        principal TEXT NOT NULL,
        scopes TEXT NOT NULL,
        salt BLOB NOT NULL,
        digest TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL,
        revoked_at REAL
    )""",
]
_DURATION_RE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """`30d`, `12h`, `90m`, `2w`, `45s` → seconds."""
    match = _DURATION_RE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration: use a number and a unit (s, m, h, d, w), e.g. 30d")
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    principal: str
    scopes: tuple[str, ...]
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    def active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


def _digest(salt: bytes, secret: str) -> str:
    return hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest()


class KeyStore:
    """The `api_keys` table."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "keys.sqlite"
        self._db = open_db(self.path, _MIGRATIONS)

    def create(self, principal: str, scopes: list[str], expires_in_s: float | None = None) -> tuple[str, KeyRecord]:
        """Create a key; the returned string is the only time the secret exists outside the caller."""
        key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_bytes(16)
        now = time.time()
        expires_at = now + expires_in_s if expires_in_s else None
        self._db.execute(
            "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
            (key_id, principal, " ".join(scopes), salt, _digest(salt, secret), now, expires_at),
        )
        return f"{PREFIX}{key_id}_{secret}", KeyRecord(key_id, principal, tuple(scopes), now, expires_at, None)

    def verify(self, key: str) -> KeyRecord | None:
        """The record for a valid, unrevoked, unexpired key; None otherwise (constant-time compare)."""
        match = _KEY_RE.match(key)
        if not match:
            return None
        row = self._db.execute(
            "SELECT key_id, principal, scopes, created_at, expires_at, revoked_at, salt, digest "
            "FROM api_keys WHERE key_id = ?",
            (match.group(1),),
        ).fetchone()
        if row is None or not hmac.compare_digest(row[7], _digest(row[6], match.group(2))):
            return None
        record = KeyRecord(row[0], row[1], tuple(row[2].split()), row[3], row[4], row[5])
        return record if record.active(time.time()) else None

    def list(self) -> list[KeyRecord]:
        rows = self._db.execute(
            "SELECT key_id, principal, scopes, created_at, expires_at, revoked_at FROM api_keys ORDER BY created_at"
        ).fetchall()
        return [KeyRecord(r[0], r[1], tuple(r[2].split()), r[3], r[4], r[5]) for r in rows]

    def revoke(self, key_id: str) -> bool:
        """Revoke by id (the part after `mcphub_`); False if there is no such active key."""
        key_id = key_id.removeprefix(PREFIX).split("_")[0]
        cursor = self._db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (time.time(), key_id)
        )
        return cursor.rowcount == 1
