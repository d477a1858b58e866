"""`hub.datadir.open_db` when several connections open one new file at once (outside review: two
built-in memory servers sharing a data dir raced, and one died on "table memories already exists";
two hub replicas on one data dir can do the same)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from hub.datadir import open_db

MIGRATIONS = ["CREATE TABLE a (x); INSERT INTO a VALUES (1)", "CREATE TABLE b (y)", "ALTER TABLE a ADD COLUMN z"]


def test_connections_opening_one_new_file_at_once_all_get_it_migrated_once(tmp_path: Path) -> None:
    for attempt in range(10):
        path = tmp_path / f"race-{attempt}.sqlite"
        failures: list[BaseException] = []
        start = threading.Barrier(6)

        def open_it() -> None:
            start.wait()
            try:
                open_db(path, MIGRATIONS).close()
            except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
                failures.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert failures == []
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA user_version").fetchone() == (3,)
        assert db.execute("SELECT x, z FROM a").fetchall() == [(1, None)], "each migration ran once"
        db.close()


def test_a_broken_migration_still_fails_and_leaves_the_version_where_it_was(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        open_db(tmp_path / "bad.sqlite", ["CREATE TABLE a (x)", "CREATE TABLE a (x)"])
    db = sqlite3.connect(tmp_path / "bad.sqlite")
    assert db.execute("PRAGMA user_version").fetchone() == (1,)
