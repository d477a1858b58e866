"""`Store.run` tells the real error when SQLite rolled the transaction back itself (review round 2 #7)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from servers.kit.store import Store

pytestmark = pytest.mark.anyio


async def test_a_full_disk_is_reported_as_such_not_as_a_failed_rollback(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite", [])
    store._db.execute("CREATE TABLE t (x BLOB)")
    store._db.execute(f"PRAGMA max_page_count = {store._db.execute('PRAGMA page_count').fetchone()[0] + 1}")

    def fill(db: sqlite3.Connection) -> None:
        for _ in range(10_000):
            db.execute("INSERT INTO t VALUES (zeroblob(1000))")

    with pytest.raises(sqlite3.OperationalError, match="full"):
        await store.run(fill)
    assert await store.run(lambda db: db.execute("SELECT COUNT(*) FROM t").fetchone()[0]) == 0  # usable again
