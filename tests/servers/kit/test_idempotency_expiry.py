"""Expired idempotency keys are cleared by index, and on PostgreSQL cleared at all (events round 28): each
keyed write on SQLite scanned every key of the last 24 h to delete the expired ones, and on PostgreSQL only
the claimed key's own expired row was ever deleted, so the shared table grew for ever."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from servers.kit.idempotency import IdempotencyLedger
from servers.kit.idempotency_pg import PgIdempotencyLedger
from servers.kit.store import Store

pytestmark = pytest.mark.anyio


async def test_the_sqlite_ledger_deletes_expired_keys_and_old_deletions_by_index(tmp_path: Path) -> None:
    ledger = IdempotencyLedger(Store(tmp_path / "keys.sqlite", []))
    assert await ledger.claim("alice", "create_ticket", "k-1", "print") is None
    db = sqlite3.connect(tmp_path / "keys.sqlite")
    try:
        for statement in ("DELETE FROM idempotency_keys WHERE expires_at <= 1", "DELETE FROM deleted_records WHERE deleted_at < 1"):
            plan = " ".join(str(row[-1]) for row in db.execute(f"EXPLAIN QUERY PLAN {statement}"))
            assert "USING" in plan and "INDEX" in plan, f"{statement}: {plan}"
    finally:
        db.close()


async def test_the_postgres_ledger_clears_every_callers_expired_keys(pg: Any) -> None:
    url = pg.new_database()
    ledger = PgIdempotencyLedger(url, "ticketing")
    assert await ledger.claim("alice", "create_ticket", "k-0", "print") is None  # creates the tables
    past, future = time.time() - 10, time.time() + 3600

    def seed() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for n in range(30):
                conn.execute("INSERT INTO idempotency_keys (scope, principal, tool, key, fingerprint, started_at, expires_at)"
                             " VALUES (%s, %s, 'create_ticket', %s, 'p', %s, %s)",
                             ("ticketing" if n % 2 else "gone-tenant", f"caller-{n}", f"old-{n}", past - 86400, past))
            conn.execute("INSERT INTO idempotency_keys (scope, principal, tool, key, fingerprint, started_at, expires_at)"
                         " VALUES ('ticketing', 'bob', 'create_ticket', 'live', 'p', %s, %s)", (past, future))

    def keys() -> list[str]:
        with psycopg.connect(url, autocommit=True) as conn:
            return sorted(row[0] for row in conn.execute("SELECT key FROM idempotency_keys"))

    await anyio.to_thread.run_sync(seed)
    assert await ledger.claim("carol", "create_ticket", "k-1", "print") is None
    assert await anyio.to_thread.run_sync(keys) == ["k-0", "k-1", "live"]
