"""Outside review events round 27: the change feed is bounded (retention, trimmed in batches off the
hot path, reads bounded by index, a cursor or `since` from before the trimmed part told so); a
processor that failed to start says so; a GitHub body must have the shape of the event its unsigned
header claims; a store that is busy never dead-letters an acknowledged delivery."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from servers.kit.errors import DomainError
from servers.kit.store import Store
from servers.kit.webhooks import ChangeFeed, EventLog, Policy, Processor
from servers.kit.webhooks.feed import emit_change
from servers.kit.webhooks.log import events_path

pytestmark = pytest.mark.anyio


def _feed(tmp_path: Path, days: float = 30, rows: int = 100_000) -> ChangeFeed:
    return ChangeFeed(Store(tmp_path / "feed.sqlite", []), scope="ticketing", keep=(days * 86400, rows))


async def _emit(feed: ChangeFeed, count: int, at: datetime | None = None, start: int = 0) -> None:
    def work(db: sqlite3.Connection) -> None:
        for i in range(start, start + count):
            emit_change(db, "ticket", str(i), "updated", origin=f"o{i}")
        if at is not None:
            db.execute("UPDATE kit_changes SET changed_at = ? WHERE seq > ?", (at.isoformat(timespec="microseconds"), start))

    await feed.store.run(work)


async def _count(feed: ChangeFeed) -> int:
    return int(await feed.store.run(lambda db: db.execute("SELECT COUNT(*) FROM kit_changes").fetchone()[0]))


# -- 1. the change feed's retention ------------------------------------------------------------


async def test_the_feed_keeps_its_newest_rows_and_refuses_a_cursor_from_before_them(tmp_path: Path) -> None:
    feed = _feed(tmp_path, rows=10)
    await _emit(feed, 30)
    first = await feed.page(None, None, 5, None)
    assert first.next_cursor is not None
    assert await feed.trim() == 20
    assert await _count(feed) == 10
    with pytest.raises(DomainError) as refused:
        await feed.page(None, None, 5, first.next_cursor)
    body = refused.value.body
    assert body.code == "invalid_argument" and body.details and body.details["trimmed_through_seq"] == 20
    assert "retention" in body.message and "without a cursor" in body.message
    fresh = await feed.page(None, None, 50, None)
    assert [c.seq for c in fresh.changes] == list(range(21, 31))
    assert fresh.next_cursor is None
    old = await feed.page(datetime(2000, 1, 1, tzinfo=UTC), None, 50, None)  # asked for what is gone: told so
    assert old.gap and "retention" in old.gap and len(old.changes) == 10
    assert (await feed.page(None, None, 5, None)).gap is None


async def test_the_feed_drops_changes_older_than_its_days_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import servers.kit.webhooks.feed as feed_module

    monkeypatch.setattr(feed_module, "TRIM_BATCH", 7)
    feed = _feed(tmp_path, days=1)
    await _emit(feed, 25, at=datetime.now(UTC) - timedelta(days=3))
    await _emit(feed, 5, start=25)
    assert await feed.trim() == 25
    assert await feed.trim() == 0
    page = await feed.page(None, None, 50, None)
    assert [c.record_id for c in page.changes] == [str(i) for i in range(25, 30)]


async def test_the_processors_hourly_purge_trims_the_feed(tmp_path: Path) -> None:
    feed = _feed(tmp_path, rows=3)
    await _emit(feed, 9)
    log = EventLog(events_path(tmp_path, "ticketing"))
    await Processor(log, feed, Policy()).purge_if_due(time.time())
    assert await _count(feed) == 3


def test_feed_limits_read_the_domains_variables() -> None:
    from servers.kit.webhooks.feed import feed_limits

    assert feed_limits("hris", {"HRIS_CHANGES_KEEP_DAYS": "7", "HRIS_CHANGES_KEEP_ROWS": "500"}) == (7 * 86400.0, 500)
    with pytest.raises(ValueError, match="HRIS_CHANGES_KEEP_DAYS"):
        feed_limits("hris", {"HRIS_CHANGES_KEEP_DAYS": "soon"})


async def _steps(feed: ChangeFeed, read: Any) -> int:
    """SQLite VM steps a read costs (a measure of rows touched, independent of machine speed)."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    feed.store._db.set_progress_handler(count, 100)  # noqa: SLF001 — the test measures the store's own connection
    try:
        await read()
    finally:
        feed.store._db.set_progress_handler(None, 100)  # noqa: SLF001
    return steps


async def test_a_poll_since_a_recent_instant_costs_its_page_not_the_history(tmp_path: Path) -> None:
    old, since = datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) - timedelta(hours=1)
    steps = []
    for history in (2_000, 40_000):
        feed = _feed(tmp_path / str(history))
        await _emit(feed, history, at=old)
        await _emit(feed, 3, start=history)
        page = await feed.page(since, None, 100, None)
        assert [c.record_id for c in page.changes] == [str(history + i) for i in range(3)]
        steps.append(await _steps(feed, lambda: feed.page(since, None, 100, None)))
    assert steps[1] <= steps[0] + 20, steps  # twenty times the history, the same cost


async def test_a_records_changes_are_read_by_index(tmp_path: Path) -> None:
    feed = _feed(tmp_path)
    await _emit(feed, 10)
    plan = await feed.store.run(lambda db: [r[3] for r in db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM kit_changes WHERE scope IN ('', ?) AND kind = ? AND record_id = ?"
        " ORDER BY seq DESC LIMIT 50", ("ticketing", "ticket", "4"))])
    assert not any(step.startswith("SCAN kit_changes") for step in plan), plan


# -- 4. a busy store never dead-letters an acknowledged delivery ---------------------------------


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    other = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    other.execute("BEGIN IMMEDIATE")
    return other


async def test_a_locked_feed_leaves_the_delivery_pending_not_dead(tmp_path: Path) -> None:
    from tests.webhook_support import payload

    feed = _feed(tmp_path)
    feed.store._db.execute("PRAGMA busy_timeout = 50")  # noqa: SLF001 — the lock is held past the timeout at once
    log = EventLog(events_path(tmp_path, "ticketing"))
    seq, _ = await log.record("github", "d1", {"x-github-event": "issues"}, payload("github"))
    processor = Processor(log, feed, Policy(max_attempts=1, base_delay_s=0.01, max_delay_s=0.02))
    holder = _hold_write_lock(tmp_path / "feed.sqlite")
    try:
        for _ in range(3):  # three tries while the store is locked; max_attempts is 1
            assert await processor.drain(time.time() + 60) == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    (row,) = await log.list()
    assert row.state == "failed" and row.attempts == 0 and "busy" in (row.last_error or "")
    assert await processor.drain(time.time() + 60) == 1
    (row,) = await log.list()
    assert row.state == "processed"
    assert [c.record_id for c in (await feed.page(None, None, 10, None)).changes] == ["acme/app#7"]


async def test_a_delivery_that_cannot_be_read_is_still_dead_lettered(tmp_path: Path) -> None:
    feed = _feed(tmp_path)
    log = EventLog(events_path(tmp_path, "ticketing"))
    await log.record("github", "d1", {"x-github-event": "issues"}, b'{"action": "opened", "issue": {}}')
    await Processor(log, feed, Policy(max_attempts=1)).drain(time.time())
    (row,) = await log.list()
    assert row.state == "dead"


async def test_a_delivery_the_log_cannot_take_is_answered_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.applications import Starlette

    import httpx
    from tests.webhook_support import make_intake, payload, serve, set_secrets, signed

    set_secrets(monkeypatch)
    intake, _ = make_intake(tmp_path)
    intake.log.store._db.execute("PRAGMA busy_timeout = 50")  # noqa: SLF001
    holder = _hold_write_lock(events_path(tmp_path, "ticketing"))
    try:
        async for url in serve(Starlette(routes=intake.routes())):
            async with httpx.AsyncClient(base_url=url) as http:
                body = payload("github")
                answer = await http.post("/webhooks/github", content=body, headers=signed("github", body))
            assert answer.status_code == 503 and answer.headers["retry-after"]
            assert "retry" in answer.json()["error"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# -- 3. what an unsigned header claims must match the signed body --------------------------------

GITHUB_BODIES = {
    "issues": {"action": "opened", "issue": {"number": 7}, "repository": {"full_name": "acme/app"}},
    "issue_comment": {"action": "created", "issue": {"number": 7}, "comment": {"id": 1, "body": "hi"},
                      "repository": {"full_name": "acme/app"}},
    "push": {"ref": "refs/heads/main", "commits": [], "repository": {"full_name": "acme/app"}},
}


@pytest.mark.parametrize(("claimed", "sent"), [("issues", "issue_comment"), ("issues", "push"),
                                                ("issue_comment", "issues"), ("issue_comment", "push")])
async def test_a_github_body_replayed_under_another_event_name_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                          claimed: str, sent: str) -> None:
    import json

    import httpx
    from starlette.applications import Starlette

    from tests.webhook_support import make_intake, serve, set_secrets, signed

    set_secrets(monkeypatch)
    intake, feed = make_intake(tmp_path)
    body = json.dumps(GITHUB_BODIES[sent]).encode()
    async for url in serve(Starlette(routes=intake.routes())):
        async with httpx.AsyncClient(base_url=url) as http:
            answer = await http.post("/webhooks/github", content=body,
                                     headers=signed("github", body) | {"X-GitHub-Event": claimed})
    assert answer.status_code == 400, answer.text
    assert claimed in answer.json()["error"] and "X-GitHub-Event" in answer.json()["error"]
    assert intake.counters["rejected"] == 1 and intake.counters["received"] == 0
    assert await intake.log.list() == []


@pytest.mark.parametrize("event", ["issues", "issue_comment", "push", "ping"])
async def test_a_github_body_under_its_own_event_name_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               event: str) -> None:
    import json

    import httpx
    from starlette.applications import Starlette

    from tests.webhook_support import make_intake, serve, set_secrets, signed

    set_secrets(monkeypatch)
    intake, _ = make_intake(tmp_path)
    body = json.dumps(GITHUB_BODIES.get(event, {"zen": "Keep it logically awesome.", "hook_id": 1})).encode()
    async for url in serve(Starlette(routes=intake.routes())):
        async with httpx.AsyncClient(base_url=url) as http:
            answer = await http.post("/webhooks/github", content=body, headers=signed("github", body) | {"X-GitHub-Event": event})
    assert answer.status_code == 200, answer.text
    assert answer.json().get("ignored", False) is (event in ("push", "ping"))


async def test_a_retention_upkeep_that_fails_does_not_hold_up_processing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.webhook_support import payload

    feed = _feed(tmp_path)
    log = EventLog(events_path(tmp_path, "ticketing"))
    await log.record("github", "d1", {"x-github-event": "issues"}, payload("github"))

    async def busy(*args: Any, **kwargs: Any) -> int:
        raise DomainError("unavailable", "the server's database is busy with another writer (locked)")

    monkeypatch.setattr(log, "purge", busy)
    processor = Processor(log, feed, Policy())
    await processor.purge_if_due(time.time())  # logged and retried a minute later, not raised
    assert await processor.drain() == 1
    assert [r.state for r in await log.list()] == ["processed"]


# -- 2. a processor that failed says so (a domain server on its own) -----------------------------


async def test_a_domain_servers_healthz_shows_a_failed_processor(tmp_path: Path) -> None:
    from types import SimpleNamespace

    import anyio
    import httpx
    from starlette.applications import Starlette

    from servers.kit.webhooks.serve import with_webhooks
    from tests.webhook_support import make_intake, serve

    intake, _ = make_intake(tmp_path)

    async def broken() -> None:
        raise OSError("cannot open /data/token=abcdef0123456789abcdef0123456789 for the event log")

    intake.processor.run = broken  # type: ignore[method-assign]
    app = with_webhooks(Starlette(), SimpleNamespace(webhooks=intake))
    async for url in serve(app):
        async with httpx.AsyncClient(base_url=url) as http:
            with anyio.fail_after(10):
                while (body := (await http.get("/healthz")).json())["webhooks"].get("processor") != "failed":
                    await anyio.sleep(0.02)
    shown = body["webhooks"]
    assert body["status"] == "degraded" and shown["running"] is False
    assert shown["error"].startswith("OSError: cannot open") and "restart" in shown["action"]
    assert "abcdef0123456789abcdef0123456789" not in shown["error"]
