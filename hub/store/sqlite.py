"""The embedded default: `keys.sqlite` and `audit.sqlite` in the data dir (one machine)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from hub.datadir import audit_digest_key, open_db
from hub.store.base import (ACTIVITY_COLUMNS, AUDIT_COLUMNS, AuditFilter, KeyRow, StoreUnavailable, activity_sql,
                             minutes_sql, NOT_ADMIN, where_clause)

KEY_MIGRATIONS = [
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
AUDIT_MIGRATIONS = [
    """CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        request_id TEXT NOT NULL,
        principal TEXT NOT NULL,
        tool TEXT NOT NULL,
        server TEXT,
        outcome TEXT NOT NULL,
        error_code TEXT,
        latency_ms REAL,
        args_digest TEXT,
        args TEXT
    );
    CREATE INDEX audit_ts ON audit(ts);
    CREATE INDEX audit_principal ON audit(principal, ts);
    CREATE INDEX audit_tool ON audit(tool, ts)""",
    # Who, exactly: `api_key` + the key's id, `jwt` + the issuer (the subject is `principal`), or
    # `local`; so a JWT `sub` equal to an API key's principal name is told apart.
    """ALTER TABLE audit ADD COLUMN auth_kind TEXT;
    ALTER TABLE audit ADD COLUMN credential TEXT""",
]
_INSERT = f"INSERT INTO audit ({', '.join(AUDIT_COLUMNS)}) VALUES ({', '.join('?' * len(AUDIT_COLUMNS))})"


class SqliteKeys:
    remote = False

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "keys.sqlite"
        self._db = open_db(self.path, KEY_MIGRATIONS)

    def key_insert(self, row: KeyRow) -> None:
        self._db.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?)", tuple(row))

    def key_get(self, key_id: str) -> KeyRow | None:
        row = self._db.execute(
            "SELECT key_id, principal, scopes, salt, digest, created_at, expires_at, revoked_at "
            "FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        return KeyRow(*row) if row else None

    def key_list(self) -> list[KeyRow]:
        rows = self._db.execute(
            "SELECT key_id, principal, scopes, salt, digest, created_at, expires_at, revoked_at "
            "FROM api_keys ORDER BY created_at").fetchall()
        return [KeyRow(*r) for r in rows]

    def key_revoke(self, key_id: str, at: float) -> bool:
        cursor = self._db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (at, key_id))
        return cursor.rowcount == 1


class SqliteAudit:
    remote = False

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / "audit.sqlite"
        self._db = open_db(self.path, AUDIT_MIGRATIONS)
        self.last_error: str | None = None

    def audit_insert(self, rows: list[tuple[Any, ...]]) -> None:
        try:
            # One transaction per batch: in autocommit mode each row would be a commit of its own
            # (a WAL append and lock round per row, about four times the cost).
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(_INSERT, rows)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot write {self.path}: {exc}") from exc

    def audit_query(self, flt: AuditFilter) -> list[dict[str, Any]]:
        return query_file(self.path, flt)

    def digest_key(self) -> bytes:
        return audit_digest_key(self.data_dir)

    def ping(self) -> None:
        try:
            self._db.execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read {self.path}: {exc}") from exc

    def health(self) -> dict[str, Any]:
        return {"backend": "sqlite"}


def query_file(path: Path, flt: AuditFilter) -> list[dict[str, Any]]:
    """Newest-last rows of an audit file, read-only; none when the file does not exist yet."""
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        where, params = where_clause(flt, "?")
        rows = conn.execute(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit {where} ORDER BY id DESC LIMIT ?",
                            [*params, flt.limit]).fetchall()
    finally:
        conn.close()
    return [dict(zip(AUDIT_COLUMNS, row, strict=True)) for row in reversed(rows)]


class SqliteAuditReads:
    """`AuditReads` over an audit file, read-only (the writer thread owns the writable connection);
    a file not created yet reads as empty."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _query(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        if not self.path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def audit_after(self, flt: AuditFilter, after_id: int) -> list[dict[str, Any]]:
        sql, params = activity_sql(flt, after_id, "?")
        return [dict(zip(ACTIVITY_COLUMNS, row, strict=True)) for row in self._query(sql, params)]

    def audit_row(self, row_id: int) -> dict[str, Any] | None:
        rows = self._query(f"SELECT {', '.join(ACTIVITY_COLUMNS)} FROM audit WHERE id = ?", [row_id])
        return dict(zip(ACTIVITY_COLUMNS, rows[0], strict=True)) if rows else None

    def audit_minutes(self, start: float) -> list[tuple[str, int, int, int, float | None]]:
        # ts >= start, so the integer cast truncates a non-negative number: the floor.
        return self._query(minutes_sql("?", "CAST((ts - ?) / 60 AS INTEGER)"), [start, start, NOT_ADMIN])  # type: ignore[return-value]
