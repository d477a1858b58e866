"""API keys: created once and shown once; only a salted hash is stored (SQLite or PostgreSQL, `hub.store`).

A key looks like `mcphub_<id>_<secret>`: the id finds the row, the 256-bit random secret is
checked against `HMAC-SHA256(salt, secret)`. With that much entropy a slow KDF buys nothing, and a
fast hash keeps verification off the latency budget.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from hub.auth.minting import check_mint
from hub.auth.scope_syntax import LEVEL_WORDS, SCOPE_RE, parse_scopes, split_scopes  # the last three re-exported
from hub.store.base import KeyRow, KeyTable

PREFIX = "mcphub_"
_KEY_RE = re.compile(r"^mcphub_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_DURATION_RE = re.compile(r"^(\d{1,15})([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION_S = 3650 * 86400
"""The longest duration the hub takes (`keys create --expires`, the console's "Expires in", `audit query
--since`): 3650d, about 10 years. Decided: refused above it, not stored as "never" — a typo of a few digits
made a key whose expiry no clock could show, which broke the Keys page and `keys list` (outside review
console26 #1); a key meant to live for ever is made with no expiry."""
MAX_EXPIRES_AT = 253402300799.0
"""9999-12-31T23:59:59Z: an expiry stored later (before `MAX_DURATION_S` existed) is read as this, so it
still shows and formats everywhere (it is as far off either way)."""


def parse_duration(text: str, too_long_hint: str = "") -> float:
    """`30d`, `12h`, `90m`, `2w`, `45s` → seconds, at most `MAX_DURATION_S` (`too_long_hint` ends the
    refusal of a longer one)."""
    match = _DURATION_RE.match(text.strip())
    if not match:
        raise ValueError(f"{text[:40]!r} is not a duration: use a number and a unit (s, m, h, d, w), e.g. 30d")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_DURATION_S:
        raise ValueError(f"{text.strip()[:40]!r} is too long: the most is {MAX_DURATION_S // 86400}d (about 10 "
                         f"years){too_long_hint}")
    return seconds


def parse_lifetime(text: str) -> float:
    """A key's lifetime (`keys create --expires`, the console's form): `parse_duration`, but more than zero.

    `0s` made a key that never expired, the opposite of what was asked (outside review newuser19); no
    lifetime at all (the option left out) is how to ask for that."""
    seconds = parse_duration(text, "; for a key that never expires, give no expiry")
    if seconds <= 0:
        raise ValueError(f"{text.strip()!r} is no lifetime: a key must live more than 0 seconds; give e.g. 30d, 12h "
                         "or 90m, or leave the expiry out for a key that never expires")
    return seconds


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


def _record(row: KeyRow) -> KeyRecord:
    return KeyRecord(row.key_id, row.principal, tuple(row.scopes.split()), row.created_at,
                     _bounded_expiry(row.expires_at), row.revoked_at)


def _bounded_expiry(expires_at: float | None) -> float | None:
    """A stored expiry as one every clock can show: one past `MAX_EXPIRES_AT` (or not a number) reads as it."""
    if expires_at is None:
        return None
    return expires_at if math.isfinite(expires_at) and expires_at <= MAX_EXPIRES_AT else MAX_EXPIRES_AT


__all__ = ["LEVEL_WORDS", "MAX_DURATION_S", "SCOPE_RE", "KeyRecord", "KeyStore", "parse_duration", "parse_lifetime",
           "split_scopes"]


class KeyStore:
    """The `api_keys` table: SQLite in `data_dir` unless a shared `table` (PostgreSQL) is given.

    With a remote table, lookups run off the event loop (`averify`) and are reused for `cache_s`
    seconds, so a revocation on any replica is effective on every other within that long. A
    remote table that does not answer raises `StoreUnavailable` (never "invalid key").
    """

    def __init__(self, data_dir: Path | None = None, table: KeyTable | None = None, cache_s: float = 0.0) -> None:
        if table is None:
            from hub.store.sqlite import SqliteKeys

            assert data_dir is not None, "KeyStore needs a data dir or a table"
            table = SqliteKeys(data_dir)
        self.table = table
        self.path = getattr(table, "path", None)
        self._cache_s = cache_s if table.remote else 0.0
        self._cache: dict[str, tuple[float, KeyRow | None]] = {}

    def create(self, principal: str, scopes: list[str], expires_in_s: float | None = None, *,
               minter: Sequence[str] | None = None, minter_expires_at: float | None = None) -> tuple[str, KeyRecord]:
        """Create a key; the returned string is the only time the secret exists outside the caller.

        `minter`: the scopes of the credential asking (over HTTP: the console session's), checked by
        `hub.auth.minting` (`ScopeEscalation` if the key would be broader); None only for the local
        operator (the CLI, which holds the data dir or database anyway). `minter_expires_at`: when that
        credential expires — the new key expires no later (re-check 16: a 2-minute key minted a key
        that never expired, so a short grant outlived itself)."""
        try:
            scopes = parse_scopes(scopes)
        except ValueError as exc:
            raise ValueError(f"scopes: {exc}") from None
        if expires_in_s is not None and expires_in_s <= 0:
            raise ValueError(f"expires: a key must live more than 0 seconds (got {expires_in_s:g}); "
                             "give a lifetime such as 30d, or none for a key that never expires")
        if expires_in_s is not None and not expires_in_s <= MAX_DURATION_S:
            raise ValueError(f"expires: a key may live at most {MAX_DURATION_S // 86400}d (about 10 years), not "
                             f"{expires_in_s:g} s; give no expiry for a key that never expires")
        check_mint(minter, scopes)
        key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_bytes(16)
        now = time.time()
        expires_at = now + expires_in_s if expires_in_s is not None else None
        if minter_expires_at is not None:
            expires_at = min(expires_at, minter_expires_at) if expires_at is not None else minter_expires_at
        expires_at = _bounded_expiry(expires_at)  # a JWT minter's `exp` may be any number
        row = KeyRow(key_id, principal, " ".join(scopes), salt, _digest(salt, secret), now, expires_at, None)
        self.table.key_insert(row)
        return f"{PREFIX}{key_id}_{secret}", _record(row)

    def verify(self, key: str) -> KeyRecord | None:
        """The record for a valid, unrevoked, unexpired key; None otherwise (constant-time compare)."""
        match = _KEY_RE.match(key)
        if not match:
            return None
        return self._check(self._cached(match.group(1)) or self.table.key_get(match.group(1)), match.group(2))

    async def averify(self, key: str) -> KeyRecord | None:
        """`verify` for the event loop: a remote lookup runs in a worker thread, then is cached."""
        match = _KEY_RE.match(key)
        if not match:
            return None
        return self._check(await self._lookup(match.group(1)), match.group(2))

    async def active(self, key_id: str) -> bool:
        """Whether key `key_id` is still unrevoked and unexpired, looked up exactly as `/mcp` does
        (`averify`: a shared table off the event loop, cached `cache_s`, so a revocation on any
        replica counts here within that long). Raises `StoreUnavailable` if the table does not answer."""
        row = await self._lookup(key_id)
        return row is not None and _record(row).active(time.time())

    async def _lookup(self, key_id: str) -> KeyRow | None:
        hit = self._cache.get(key_id)
        if hit is not None and hit[0] > time.monotonic():
            row = hit[1]
        elif self.table.remote:
            row = await anyio.to_thread.run_sync(self.table.key_get, key_id)
            if self._cache_s > 0:
                if len(self._cache) >= 10_000:
                    self._cache.clear()  # bounded: unknown ids are cached too
                self._cache[key_id] = (time.monotonic() + self._cache_s, row)
        else:
            row = self.table.key_get(key_id)
        return row

    def _cached(self, key_id: str) -> KeyRow | None:
        hit = self._cache.get(key_id)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    @staticmethod
    def _check(row: KeyRow | None, secret: str) -> KeyRecord | None:
        if row is None or not hmac.compare_digest(row.digest, _digest(row.salt, secret)):
            return None
        record = _record(row)
        return record if record.active(time.time()) else None

    def list(self) -> list[KeyRecord]:
        return [_record(row) for row in self.table.key_list()]

    def revoke(self, key_id: str) -> bool:
        """Revoke by id (the part after `mcphub_`); False if there is no such active key."""
        key_id = key_id.removeprefix(PREFIX).split("_")[0]
        self._cache.pop(key_id, None)
        return self.table.key_revoke(key_id, time.time())
