"""Outside review round 2 of events27: retention values too large for the calendar (#1), store failures
other than busy/locked dead-lettering acknowledged deliveries (#6), the feed's row limit counted across
tenants (#5), and a clock stepped back hiding changes from `since` pollers (#2)."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import servers.kit.webhooks.feed as feed_module
from servers.kit.store import Store
from servers.kit.webhooks import ChangeFeed, EventLog, Policy, Processor
from servers.kit.webhooks.feed import emit_change, feed_limits
from servers.kit.webhooks.log import events_path, keep_limits
from tests.webhook_support import payload

pytestmark = pytest.mark.anyio


async def _emit(feed: ChangeFeed, start: int, count: int) -> None:
    def work(db: sqlite3.Connection) -> None:
        for i in range(start, start + count):
            emit_change(db, "ticket", str(i), "updated", origin=f"o{i}")

    await feed.store.run(work)


@pytest.mark.parametrize("days", ["1000000", "36501", "1e300"])
def test_a_retention_too_long_for_the_calendar_is_refused_at_start(days: str) -> None:
    with pytest.raises(ValueError, match="too large.*36500 days"):
        feed_limits("ticketing", {"TICKETING_CHANGES_KEEP_DAYS": days})
    with pytest.raises(ValueError, match="too large"):  # the event log's retention, read the same way
        keep_limits("ticketing", {"TICKETING_EVENTS_KEEP_DAYS": days})
    with pytest.raises(ValueError, match="too large"):
        feed_limits("ticketing", {"TICKETING_CHANGES_KEEP_ROWS": str(10**19)})
    assert feed_limits("ticketing", {"TICKETING_CHANGES_KEEP_DAYS": "36500"})[0] == 36500 * 86400.0


async def test_trim_never_fails_on_the_date_arithmetic_and_still_applies_the_row_limit(tmp_path: Path) -> None:
    feed = ChangeFeed(Store(tmp_path / "feed.sqlite", []), scope="ticketing", keep=(1e6 * 86400.0, 10))
    await _emit(feed, 0, 30)
    assert await feed.trim() == 20
    assert len((await feed.page(None, None, 100, None)).changes) == 10


def _fill(feed: ChangeFeed) -> None:
    """The feed's disk is full from now on (`max_page_count`): every later write fails with SQLITE_FULL."""
    db = feed.store._db
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0] + 2}")
    db.execute("CREATE TABLE IF NOT EXISTS pad (x BLOB)")
    try:  # the feed's own pages first (room left in them would take one more change), then the rest
        for i in range(1_000_000):
            db.execute("INSERT INTO kit_changes (kind, record_id, action, changed_at, source, origin, scope)"
                       " VALUES ('ticket', ?, 'updated', '2026-01-01', 'x', ?, 'other')", (str(i), f"pad{i}"))
    except sqlite3.OperationalError:
        pass
    try:
        while True:
            db.execute("INSERT INTO pad VALUES (zeroblob(500))")
    except sqlite3.OperationalError:
        pass
    db.commit()


async def test_a_full_feed_store_keeps_an_acknowledged_delivery_pending_and_says_why(tmp_path: Path) -> None:
    feed = ChangeFeed(Store(tmp_path / "feed.sqlite", []), scope="ticketing")
    await feed.page(None, None, 1, None)  # the feed's tables exist
    _fill(feed)
    log = EventLog(events_path(tmp_path, "ticketing"))
    await log.record("github", "d1", {"x-github-event": "issues"}, payload("github"))
    processor = Processor(log, feed, Policy(max_attempts=2, base_delay_s=0.001, max_delay_s=0.001))
    for _ in range(4):
        await processor.drain(time.time() + 3600)
    (row,) = await log.list()
    assert (row.state, row.attempts) == ("failed", 0)
    assert "full" in (row.last_error or "")
    assert "full" in processor.store_state()["store_error"]
    feed.store._db.execute("PRAGMA max_page_count = 1000000")  # the operator frees space: the delivery goes through
    await processor.drain(time.time() + 3600)
    (row,) = await log.list()
    assert row.state == "processed" and processor.store_state() == {}


async def test_one_tenants_flood_does_not_trim_anothers_changes(tmp_path: Path) -> None:
    store = Store(tmp_path / "feed.sqlite", [])
    acme = ChangeFeed(store, scope="acme", keep=(30 * 86400.0, 10))
    globex = ChangeFeed(store, scope="globex", keep=(30 * 86400.0, 10))
    await acme.append([("ticket", str(i), "updated", "zendesk", f"a{i}") for i in range(5)])
    first = await acme.page(None, None, 2, None)
    await globex.append([("ticket", str(i), "updated", "zendesk", f"g{i}") for i in range(50)])
    assert await globex.trim() == 40
    assert len((await acme.page(None, None, 100, None)).changes) == 5
    assert len((await acme.page(None, None, 100, first.next_cursor)).changes) == 3  # its cursor still walks
    assert len((await globex.page(None, None, 100, None)).changes) == 10
    await acme.append([("ticket", str(i), "updated", "zendesk", f"a{i}") for i in range(5, 20)])
    assert await acme.trim() == 10  # its own limit, on its own changes
    with pytest.raises(Exception, match="retention"):
        await acme.page(None, None, 2, first.next_cursor)


async def test_a_clock_stepped_back_hides_nothing_from_a_since_poller(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    feed = ChangeFeed(Store(tmp_path / "feed.sqlite", []), scope="ticketing")
    t0 = datetime.now(UTC)
    monkeypatch.setattr(feed_module, "_now", lambda: t0.isoformat(timespec="microseconds"))
    await _emit(feed, 0, 5)
    last = (await feed.page(None, None, 100, None)).changes[-1].changed_at
    stepped = t0 - timedelta(seconds=30)  # NTP steps the writer's clock back
    monkeypatch.setattr(feed_module, "_now", lambda: stepped.isoformat(timespec="microseconds"))
    await _emit(feed, 5, 5)
    assert {6, 7, 8, 9, 10} <= {c.seq for c in (await feed.page(last, None, 100, None)).changes}


@pytest.mark.parametrize("days", ["-5", "0", "nan", "inf", "1000000"])
def test_a_payload_retention_out_of_range_is_refused_at_start(days: str) -> None:
    """Sibling of #1: `<DOMAIN>_EVENTS_RETENTION_DAYS=-5` purged every settled payload at once, nan never."""
    with pytest.raises(ValueError, match="TICKETING_EVENTS_RETENTION_DAYS"):
        Policy.from_env("ticketing", {"TICKETING_EVENTS_RETENTION_DAYS": days})
    assert Policy.from_env("ticketing", {"TICKETING_EVENTS_RETENTION_DAYS": "7"}).retention_days == 7.0


async def test_changes_stamped_earlier_by_an_older_writer_are_still_found_by_position(tmp_path: Path) -> None:
    """A feed written before `_stamp` (or by hand) can hold a time step back: `since` and a cursor walk
    begun with it go by position from the first change at `since`, never drop later positions by time."""
    feed = ChangeFeed(Store(tmp_path / "feed.sqlite", []), scope="ticketing")
    t0 = datetime.now(UTC)
    await _emit(feed, 0, 5)
    await _emit(feed, 5, 5)
    await feed.store.run(lambda db: db.execute("UPDATE kit_changes SET changed_at = ? WHERE seq > 5",
                                               ((t0 - timedelta(seconds=30)).isoformat(timespec="microseconds"),)))
    last = (await feed.page(None, None, 5, None)).changes[-1].changed_at
    assert {6, 7, 8, 9, 10} <= {c.seq for c in (await feed.page(last, None, 100, None)).changes}
    first = await feed.page(last, None, 1, None)
    walked = [c.seq for c in first.changes]
    cursor = first.next_cursor
    while cursor:
        page = await feed.page(last, None, 2, cursor)
        walked += [c.seq for c in page.changes]
        cursor = page.next_cursor
    assert walked[-5:] == [6, 7, 8, 9, 10]

