"""PostgreSQL backend for keys and audit rows, shared by every replica (`hub.store.url`).

psycopg 3 with a small `psycopg_pool.ConnectionPool`; every call here is synchronous and runs off
the event loop (the audit writer thread, `anyio.to_thread` for key lookups, or the CLI). The
schema is created by versioned migrations on first use, under an advisory lock, so replicas
starting together apply each one once. The pool is opened without waiting: a hub starts while
PostgreSQL is down, reports it in `/healthz`, and recovers by itself when it returns (each
connection is checked when taken from the pool, so a restarted server costs no failed call).
While it is down, a call looks about once a second whether it answers again and then starts a
fresh pool (`hub.store.pool_revival`: the pool's own reconnection backs off).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any, Callable, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from hub.redact import mask
from hub.store.pool_revival import PoolRevival, retire
from hub.store.base import (ACTIVITY_COLUMNS, AUDIT_COLUMNS, AuditFilter, KeyRow, StoreUnavailable, activity_sql,
                             minutes_sql, NOT_ADMIN, where_clause)

logger = logging.getLogger("hub.store")
T = TypeVar("T")
_LOCK_ID = 0x6D63_7068_7562  # "mcphub": serialises migrations across replicas
MIGRATIONS = [
    """CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        principal TEXT NOT NULL,
        scopes TEXT NOT NULL,
        salt BYTEA NOT NULL,
        digest TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION,
        revoked_at DOUBLE PRECISION
    );
    CREATE TABLE audit (
        id BIGSERIAL PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL,
        request_id TEXT NOT NULL,
        principal TEXT NOT NULL,
        tool TEXT NOT NULL,
        server TEXT,
        outcome TEXT NOT NULL,
        error_code TEXT,
        latency_ms DOUBLE PRECISION,
        args_digest TEXT,
        args TEXT,
        auth_kind TEXT,
        credential TEXT
    );
    CREATE INDEX audit_ts ON audit(ts);
    CREATE INDEX audit_principal ON audit(principal, ts);
    CREATE INDEX audit_tool ON audit(tool, ts);
    CREATE TABLE hub_secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL)""",
]
_KEY_COLUMNS = "key_id, principal, scopes, salt, digest, created_at, expires_at, revoked_at"
_INSERT_AUDIT = f"INSERT INTO audit ({', '.join(AUDIT_COLUMNS)}) VALUES ({', '.join(['%s'] * len(AUDIT_COLUMNS))})"


def describe(url: str) -> str:
    """`postgresql host:port/db` for messages: never the user's password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return "PostgreSQL (unparsable hub.store.url)"
    host = parts.get("host") or "localhost"
    return f"PostgreSQL {host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


def apply_migrations(conn: psycopg.Connection[Any], migrations: list[str], table: str, lock_id: int) -> None:
    """Apply the `migrations` not yet recorded in `table`, in one transaction under an advisory lock
    (replicas starting together apply each once). `table` and the scripts are our own constants."""
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id,))
        cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")  # type: ignore[arg-type]
        row = cur.execute(f"SELECT coalesce(max(version), 0) FROM {table}").fetchone()  # type: ignore[arg-type]
        done = int(row[0]) if row else 0
        for number, script in enumerate(migrations[done:], start=done + 1):
            for statement in script.split(";"):
                if statement.strip():
                    cur.execute(statement)  # type: ignore[arg-type]
            cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (number, time.time()))  # type: ignore[arg-type]


class PostgresStore:
    """Keys and audit rows in one PostgreSQL database (implements `KeyTable` and `AuditTable`)."""

    remote = True

    def __init__(self, url: str, pool_size: int = 8, timeout_s: float = 2.0) -> None:
        self.name = describe(url)
        self._url, self._pool_size, self._timeout_s = url, pool_size, timeout_s
        self._pool = self._new_pool()
        self._revival = PoolRevival(url, self._connect_kwargs())
        self._migrated = False
        self._migrate_lock = threading.Lock()
        self._digest_key: bytes | None = None
        self.down_since: float | None = None
        self.last_error: str | None = None

    def _new_pool(self) -> ConnectionPool:
        pool = ConnectionPool(
            self._url, min_size=1, max_size=self._pool_size, open=False, timeout=self._timeout_s, name="mcp-hub",
            check=ConnectionPool.check_connection,
            kwargs=self._connect_kwargs() | {"options": f"-c statement_timeout={int(self._timeout_s * 5000)}"},
        )
        pool.open(wait=False)
        return pool

    def _connect_kwargs(self) -> dict[str, Any]:
        return {"autocommit": True, "connect_timeout": max(1, int(self._timeout_s))}

    def close(self) -> None:
        self._pool.close(timeout=2)

    def _revive(self) -> None:
        """The database was down: if it answers again, serve from a fresh pool at once (`hub.store.pool_revival`)."""
        if self._revival.answers_again():
            old, self._pool = self._pool, self._new_pool()
            retire(old)

    # -- plumbing -----------------------------------------------------------------------------

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run `work` on a pooled connection (migrating first if needed); failures → StoreUnavailable."""
        if self.down_since is not None:
            self._revive()
        try:
            with self._pool.connection() as conn:
                if not self._migrated:
                    self._migrate(conn)
                result = work(conn)
        except (psycopg.Error, PoolTimeout) as exc:
            reason = mask(f"{type(exc).__name__}: {str(exc).strip()}"[:300])
            if self.down_since is None:
                self.down_since = time.time()
                logger.error("%s is unreachable (%s)", self.name, reason)
            self.last_error = reason
            raise StoreUnavailable(f"{self.name} {_failed_how(reason)} ({reason})") from exc
        if self.down_since is not None:
            logger.warning("%s answers again after %.1fs", self.name, time.time() - self.down_since)
            self.down_since, self.last_error = None, None
        return result

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        """Apply the migrations not yet applied; idempotent, safe with replicas starting together."""
        with self._migrate_lock:
            if self._migrated:
                return
            apply_migrations(conn, MIGRATIONS, "mcp_hub_migrations", _LOCK_ID)
            self._migrated = True

    # -- keys ---------------------------------------------------------------------------------

    def key_insert(self, row: KeyRow) -> None:
        self._run(lambda c: c.execute(f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                                      tuple(row)))

    def key_get(self, key_id: str) -> KeyRow | None:
        row = self._run(lambda c: c.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = %s",
                                            (key_id,)).fetchone())
        return KeyRow(row[0], row[1], row[2], bytes(row[3]), *row[4:]) if row else None

    def key_list(self) -> list[KeyRow]:
        rows = self._run(lambda c: c.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at").fetchall())
        return [KeyRow(r[0], r[1], r[2], bytes(r[3]), *r[4:]) for r in rows]

    def key_revoke(self, key_id: str, at: float) -> bool:
        cursor = self._run(lambda c: c.execute(
            "UPDATE api_keys SET revoked_at = %s WHERE key_id = %s AND revoked_at IS NULL", (at, key_id)))
        return cursor.rowcount == 1

    # -- audit --------------------------------------------------------------------------------

    def audit_insert(self, rows: list[tuple[Any, ...]]) -> None:
        def insert(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(_INSERT_AUDIT, rows)

        self._run(insert)

    def audit_query(self, flt: AuditFilter) -> list[dict[str, Any]]:
        where, params = where_clause(flt, "%s")
        sql = f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit {where} ORDER BY id DESC LIMIT %s"
        rows = self._run(lambda c: c.execute(sql, [*params, flt.limit]).fetchall())  # type: ignore[arg-type]
        return [dict(zip(AUDIT_COLUMNS, row, strict=True)) for row in reversed(rows)]

    def audit_after(self, flt: AuditFilter, after_id: int) -> list[dict[str, Any]]:
        sql, params = activity_sql(flt, after_id, "%s")
        rows = self._run(lambda c: c.execute(sql, params).fetchall())  # type: ignore[arg-type]
        return [dict(zip(ACTIVITY_COLUMNS, row, strict=True)) for row in rows]

    def audit_row(self, row_id: int) -> dict[str, Any] | None:
        row = self._run(lambda c: c.execute(f"SELECT {', '.join(ACTIVITY_COLUMNS)} FROM audit WHERE id = %s",
                                            (row_id,)).fetchone())  # type: ignore[arg-type]
        return dict(zip(ACTIVITY_COLUMNS, row, strict=True)) if row else None

    def audit_minutes(self, start: float) -> list[tuple[str, int, int, int, float | None]]:
        sql = minutes_sql("%s", "FLOOR((ts - %s) / 60)::INTEGER")
        rows = self._run(lambda c: c.execute(sql, (start, start, NOT_ADMIN)).fetchall())  # type: ignore[arg-type]
        return [(server, int(minute), int(calls), int(errors or 0), float(latency) if latency is not None else None)
                for server, minute, calls, errors, latency in rows]

    def digest_key(self) -> bytes:
        """Created once per database by whichever replica comes first; the same for all."""
        if self._digest_key is None:
            def fetch(conn: psycopg.Connection[Any]) -> bytes:
                conn.execute("INSERT INTO hub_secrets VALUES ('audit_digest_key', %s) ON CONFLICT DO NOTHING",
                             (secrets.token_bytes(32),))
                row = conn.execute("SELECT value FROM hub_secrets WHERE name = 'audit_digest_key'").fetchone()
                assert row is not None
                return bytes(row[0])

            self._digest_key = self._run(fetch)
        return self._digest_key

    def ping(self) -> None:
        self._run(lambda c: c.execute("SELECT 1").fetchone())

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": "postgresql", "state": "ok" if self.down_since is None else "unreachable"}
        if self.down_since is not None:
            out.update(since=datetime.fromtimestamp(self.down_since, UTC).isoformat(timespec="seconds"),
                       last_error=self.last_error)
        return out


def _failed_how(reason: str) -> str:
    """What went wrong, in words: a refused login is not a database that does not answer (outside
    review, cluster round 12: a wrong password read "did not answer … check PostgreSQL is running")."""
    lowered = reason.lower()
    if "authentication failed" in lowered or "password" in lowered or "no pg_hba.conf entry" in lowered:
        return "refused the login (check the user and password in hub.store.url)"
    return "did not answer"
