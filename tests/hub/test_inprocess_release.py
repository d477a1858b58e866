"""A restarted in-process domain closes what its replaced server object held: each console Restart
left one more set of open SQLite files (the domain's store, its webhook event log) in the hub process
(re-check 19 #3, after outside review events18 #9)."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from hub.admin.actions import ServerActions
from hub.config import parse_config
from hub.hub import Hub

pytestmark = pytest.mark.anyio


def open_under(folder: Path) -> int:
    """SQLite databases under `folder` this process has open (descriptors)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            count += target.startswith(str(folder)) and target.endswith(".sqlite")
        except OSError:
            pass
    return count


async def ready(hub: Hub) -> None:
    with anyio.fail_after(60):
        while hub.downstreams["tk"].state != "ready" or hub.downstreams["tk"].server_object is None:
            await anyio.sleep(0.05)


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts open files through /proc")
async def test_a_restarted_in_process_domain_closes_what_it_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hub.downstream.inprocess as inprocess

    monkeypatch.setattr(inprocess, "RELEASE_AFTER_S", 0.2, raising=False)
    data = tmp_path / "tk"
    config = parse_config({"hub": {"connect_timeout_s": 60},
                           "mcpServers": {"tk": {"builtin": "ticketing", "data_dir": str(data)}}})
    async with Hub(config) as hub:
        await ready(hub)
        assert not (await hub.route_call("tk__search_tickets", {})).is_error  # its store is open
        first = open_under(data)
        assert first >= 1
        actions = ServerActions(hub)
        for _ in range(3):
            old = hub.downstreams["tk"].server_object
            assert (await actions.perform("tk", "restart", "ops")).applied
            with anyio.fail_after(60):
                while hub.downstreams["tk"].server_object is old:
                    await anyio.sleep(0.05)
            await ready(hub)
            assert not (await hub.route_call("tk__search_tickets", {})).is_error
            with anyio.fail_after(10):  # the replaced object's stores close a moment after it is replaced
                while not getattr(old.backend.store, "closed", False):
                    await anyio.sleep(0.05)
        # A replaced object's databases close a moment after it is replaced. SQLite keeps a closed
        # connection's descriptor while another connection of the process has the file open (POSIX locks
        # are per process) and reuses it for the next one: so at most one more per file, never one per restart.
        with anyio.fail_after(30):
            while open_under(data) > 2 * first:
                await anyio.sleep(0.1)


async def test_work_on_a_closed_store_is_refused_as_unavailable_not_a_crash(tmp_path: Path) -> None:
    """A request still on a replaced object when its store closes is told to send it again."""
    from servers.kit.errors import DomainError
    from servers.kit.store import Store, close_stores

    store = Store(tmp_path / "x.sqlite", ["CREATE TABLE t (v INTEGER)"])
    holder = type("Backend", (), {"__module__": "servers.test"})()
    holder.store = store
    assert close_stores(holder) == 1 and store.closed and close_stores(holder) == 0
    with pytest.raises(DomainError) as refused:
        await store.run(lambda db: db.execute("SELECT 1").fetchone())
    assert refused.value.body.code == "unavailable" and "send it again" in refused.value.body.message


async def test_a_database_locked_by_another_writer_is_a_retryable_unavailable_not_internal(tmp_path: Path) -> None:
    """The SQLite idempotency ledger (and every store) answered `internal … failed unexpectedly` when
    another writer held the database past the busy timeout; nothing was written, so it may be retried."""
    import sqlite3

    from servers.kit.errors import DomainError
    from servers.kit.store import Store

    store = Store(tmp_path / "x.sqlite", ["CREATE TABLE t (v INTEGER)"])
    store._db.execute("PRAGMA busy_timeout = 50")  # noqa: SLF001 — not the 5 s a server waits
    other = sqlite3.connect(tmp_path / "x.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DomainError) as busy:
            await store.run(lambda db: db.execute("INSERT INTO t VALUES (1)"))
        assert busy.value.body.code == "unavailable" and busy.value.body.retryable, busy.value.body
    finally:
        other.execute("ROLLBACK")
        other.close()
    await store.run(lambda db: db.execute("INSERT INTO t VALUES (2)"))
    assert [tuple(r) for r in await store.run(lambda db: db.execute("SELECT v FROM t").fetchall())] == [(2,)]
