"""Events round 28: the change feed's retention in every process that serves it (a domain served over
stdio only never trimmed), for every scope in the store (a namespace removed from the config was never
trimmed), and the same class in the webhook delivery log (a removed namespace's payloads and rows)."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from servers.kit.store import Store
from servers.kit.webhooks import ChangeFeed, EventLog, Policy, Processor
from servers.kit.webhooks.feed import emit_change
from servers.kit.webhooks.log import events_path
from servers.kit.webhooks.upkeep import FeedUpkeep
from tests.conftest import PY, ROOT

pytestmark = pytest.mark.anyio
DAY = 86400.0


def _seed(db: sqlite3.Connection, count: int, *, scope: str = "", prefix: str = "o", days_ago: float | None = None) -> None:
    """`count` changes of `scope`, stamped `days_ago` (else now)."""
    first = int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM kit_changes").fetchone()[0]) if _has_feed(db) else 0
    for i in range(count):
        emit_change(db, "ticket", f"{prefix}{i}", "updated", origin=f"{scope}/{prefix}{i}", scope=scope)
    if days_ago is not None:
        at = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(timespec="microseconds")
        db.execute("UPDATE kit_changes SET changed_at = ? WHERE seq > ?", (at, first))


def _has_feed(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE name = 'kit_changes'").fetchone() is not None


def _rows(path: Path, scope: str | None = None) -> list[str]:
    """The record ids in the feed file (read on a connection of its own, as another process would)."""
    db = sqlite3.connect(path)
    try:
        where, args = ("WHERE scope = ?", (scope,)) if scope is not None else ("", ())
        return [r[0] for r in db.execute(f"SELECT record_id FROM kit_changes {where} ORDER BY seq", args)]
    finally:
        db.close()


# -- 1. every process that serves the feed trims it ------------------------------------------------


async def test_a_domain_served_over_stdio_only_trims_its_feed(tmp_path: Path) -> None:
    """Claude Desktop spawning `mcp-hub server ticketing`: no webhook processor runs, yet the feed is trimmed."""
    from servers.ticketing.store import EmbeddedTicketing

    backend = EmbeddedTicketing(tmp_path)
    await backend.store.run(lambda db: _seed(db, 20, prefix="old", days_ago=40))
    await backend.store.run(lambda db: _seed(db, 8, prefix="new"))
    backend.store.close()
    path = tmp_path / "ticketing.sqlite"
    assert len(_rows(path)) == 28
    params = StdioServerParameters(
        command=PY, args=["-m", "hub.cli", "server", "ticketing", "--data-dir", str(tmp_path), "--log-level", "warning"],
        env={"PYTHONPATH": str(ROOT), "TICKETING_CHANGES_KEEP_ROWS": "5"}, cwd=str(ROOT))
    async with Client(params) as client:
        assert (await client.call_tool("list_changes", {"limit": 50})).structured_content is not None
        with anyio.fail_after(60):  # off the call path: wait for the trim to land
            while len(_rows(path)) > 5:
                await anyio.sleep(0.05)
        page = (await client.call_tool("list_changes", {"limit": 50})).structured_content
    assert [c["record_id"] for c in page["changes"]] == [f"new{i}" for i in range(3, 8)]
    assert _rows(path) == [f"new{i}" for i in range(3, 8)]


async def test_a_domain_mounted_in_process_trims_its_feed_for_as_long_as_a_client_is_connected(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub's in-process builtin (stdio hub included: no processor there either) enters the server's lifespan."""
    from servers.ticketing.server import create_server
    from servers.ticketing.store import EmbeddedTicketing

    monkeypatch.setenv("TICKETING_CHANGES_KEEP_DAYS", "1")
    backend = EmbeddedTicketing(tmp_path)
    await backend.store.run(lambda db: _seed(db, 12, prefix="old", days_ago=3))
    await backend.store.run(lambda db: _seed(db, 4, prefix="new"))
    server = create_server(backend)
    async with Client(server) as client:
        with anyio.fail_after(60):
            while len(_rows(tmp_path / "ticketing.sqlite")) > 4:
                await anyio.sleep(0.05)
        result = await client.call_tool("list_changes", {"since": "2000-01-01T00:00:00Z", "limit": 50})
    body = result.structured_content
    assert [c["record_id"] for c in body["changes"]] == [f"new{i}" for i in range(4)]
    assert "retention" in body["gap"]
    backend.store.close()


async def test_processes_sharing_a_store_trim_a_scope_once_per_interval(tmp_path: Path) -> None:
    """Two processes on one file (a stdio copy beside an HTTP one): the first to look trims, the other
    skips until the interval has passed; a failed trim lets the next look come soon."""
    path = tmp_path / "ticketing.sqlite"
    first = ChangeFeed(Store(path, []), scope="ticketing", keep=(30 * DAY, 5))
    second = ChangeFeed(Store(path, []), scope="ticketing", keep=(30 * DAY, 5))
    await first.store.run(lambda db: _seed(db, 20))
    now = time.time()
    assert await first.trim_if_due(now, 3600) == 15
    await first.store.run(lambda db: _seed(db, 10, prefix="more"))
    assert await second.trim_if_due(now + 10, 3600) is None, "trimmed by the other process a moment ago"
    assert len(_rows(path)) == 15
    assert await second.trim_if_due(now + 3601, 3600) == 10
    assert await first.trim_if_due(now - 7 * DAY, 3600) == 0, "a clock stepped back a week does not stall it"

    async def busy(now: float | None = None) -> int:
        raise sqlite3.OperationalError("database is locked")

    second.trim = busy  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError):
        await second.trim_if_due(now + 8000, 3600)
    assert await first.trim_if_due(now + 8000 + 61, 3600) == 0, "due again a minute after the failure, not an hour"


async def test_one_processs_upkeep_and_its_processor_look_once_per_interval(tmp_path: Path) -> None:
    feed = ChangeFeed(Store(tmp_path / "ticketing.sqlite", []), scope="ticketing", keep=(30 * DAY, 3))
    await feed.store.run(lambda db: _seed(db, 9))
    upkeep = FeedUpkeep(feed, every_s=3600)
    now = time.time()
    assert await upkeep.tick(now) == pytest.approx(3600)
    assert len(_rows(feed.store.path)) == 3
    await feed.store.run(lambda db: _seed(db, 4, prefix="more"))
    assert await upkeep.tick(now + 5) == pytest.approx(3595), "a second loop of this process waits"
    await Processor(EventLog(events_path(tmp_path, "ticketing")), feed, Policy()).purge_if_due(now + 6)
    assert len(_rows(feed.store.path)) == 7, "the processor found it trimmed this interval"
    await upkeep.tick(now + 3601)
    assert len(_rows(feed.store.path)) == 3


async def test_a_closed_store_never_fails_the_upkeep(tmp_path: Path) -> None:
    feed = ChangeFeed(Store(tmp_path / "ticketing.sqlite", []), scope="ticketing")
    feed.store.close()  # a server replaced by a restart
    assert await FeedUpkeep(feed, every_s=3600).tick(time.time()) == pytest.approx(60)


# -- 2. a scope no longer configured is trimmed by age ----------------------------------------------


async def test_the_changes_of_a_namespace_removed_from_the_config_age_out(tmp_path: Path) -> None:
    store = Store(tmp_path / "ticketing.sqlite", [])
    await store.run(lambda db: _seed(db, 10, scope="gone", prefix="old", days_ago=40))
    await store.run(lambda db: _seed(db, 6, scope="gone", prefix="young"))
    await store.run(lambda db: _seed(db, 2, scope="acme", prefix="a"))
    acme = ChangeFeed(store, scope="acme", keep=(30 * DAY, 3))
    assert await acme.trim() == 10
    assert _rows(store.path, "gone") == [f"young{i}" for i in range(6)], "its row limit is left to its own feed"
    gone = ChangeFeed(store, scope="gone")  # were it configured again: what it lost is said, never skipped silently
    page = await gone.page(datetime(2000, 1, 1, tzinfo=UTC), None, 50, None)
    assert page.gap and "retention" in page.gap and len(page.changes) == 6


# -- 3. the delivery log: a removed namespace's rows ------------------------------------------------


async def test_a_removed_namespaces_settled_deliveries_are_purged_and_trimmed_by_age(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETING_EVENTS_KEEP_ROWS", "2")
    path = events_path(tmp_path, "ticketing")
    acme, gone = EventLog(path, namespace="acme"), EventLog(path, namespace="gone")
    now = time.time()
    for i in range(3):  # gone's: settled 100 days ago (past 30 days' payloads and 90 days' rows)
        seq, _ = await gone.record("github", f"old-{i}", {"x": "y"}, b"{}", now=now - 100 * DAY)
        await gone.settle(seq, error=None, next_at=None, dead=False, now=now - 100 * DAY)
    dead, _ = await gone.record("github", "dead", {"x": "y"}, b"{}", now=now - 40 * DAY)
    await gone.settle(dead, error="boom", next_at=None, dead=True, now=now - 40 * DAY)
    pending, _ = await gone.record("github", "pending", {"x": "y"}, b"{}", now=now - 40 * DAY)
    for i in range(4):  # young processed rows beyond the row limit: only its own log applies that
        seq, _ = await gone.record("github", f"young-{i}", {}, b"{}", now=now - DAY)
        await gone.settle(seq, error=None, next_at=None, dead=False, now=now - DAY)

    assert await acme.purge(now - 30 * DAY, now=now) == 4, "the old rows' and the dead letter's payloads"
    rows = {r.delivery_id: r for r in await gone.list(limit=100)}
    assert sorted(rows) == sorted(["dead", "pending", *(f"young-{i}" for i in range(4))])
    assert rows["dead"].purged and rows["dead"].state == "dead", "a dead letter stays, without its payload"
    assert not rows["pending"].purged and rows["pending"].seq == pending, "a pending delivery is never touched"
