"""Outside review, events round 18, #10: a metrics scrape (`EventLog.stats_now`, on the event loop)
reads kept counts and one index lookup per provider, never the history; processed rows are trimmed
past `<DOMAIN>_EVENTS_KEEP_DAYS` / `<DOMAIN>_EVENTS_KEEP_ROWS`, while pending, failed and dead rows
stay; a log written before the counts were kept is counted once at its migration."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from servers.kit.store import Store
from servers.kit.webhooks import log as log_module
from servers.kit.webhooks.log import ALL, EventLog, _migrations, events_path

pytestmark = pytest.mark.anyio
DAY = 86400.0
HISTORY = 60_000


def bulk(path: Path, rows: int, *, namespace: str = "ticketing", provider: str = "github", state: str = "processed",
         start: float | None = None, prefix: str = "h") -> None:
    """`rows` settled deliveries written straight into the file, one a second from `start`."""
    start = time.time() - 40 * DAY if start is None else start
    db = sqlite3.connect(path)
    db.executemany("INSERT INTO webhook_events (namespace, provider, delivery_id, received_at, next_attempt_at, state,"
                   " attempts, headers, payload) VALUES (?, ?, ?, ?, ?, ?, 1, '{}', NULL)",
                   ((namespace, provider, f"{prefix}-{i}", start + i, start + i, state) for i in range(rows)))
    db.commit()
    db.close()


def steps_of(monkeypatch: pytest.MonkeyPatch, call: Any) -> tuple[Any, int]:
    """(result, SQLite virtual-machine steps, in thousands) of `call()`'s read-only connections."""
    counted = [0]
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = real(*args, **kwargs)

        def tick() -> int:
            counted[0] += 1
            return 0

        db.set_progress_handler(tick, 1000)
        return db

    monkeypatch.setattr(log_module.sqlite3, "connect", connect)
    try:
        result = call()
    finally:
        monkeypatch.setattr(log_module.sqlite3, "connect", real)
    return result, counted[0]


async def test_a_scrape_costs_the_same_whatever_the_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = events_path(tmp_path, "ticketing")
    log = EventLog(path)
    pending, _ = await log.record("github", "pending-1", {}, b"{}", now=time.time() - 30)
    dead, _ = await log.record("jira", "dead-1", {}, b"{}")
    await log.settle(dead, error="boom", next_at=None, dead=True, now=time.time())
    small, small_steps = steps_of(monkeypatch, lambda: log.stats_now(time.time()))

    bulk(path, HISTORY)
    big, big_steps = steps_of(monkeypatch, lambda: log.stats_now(time.time()))
    assert big["github"]["pending"] == small["github"]["pending"] == 1 and big["jira"]["dead_lettered"] == 1
    assert 29 <= big["github"]["lag_s"] < 120
    assert big_steps <= small_steps + 2, f"{big_steps}k SQLite steps over {HISTORY} rows, {small_steps}k over 2: a scan"
    counts = await log.counts()
    assert (counts["processed"], counts["received"], counts["dead"]) == (HISTORY, 1, 1)


async def test_processed_rows_are_trimmed_by_age_and_count_dead_ones_stay(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETING_EVENTS_KEEP_DAYS", "10")
    monkeypatch.setenv("TICKETING_EVENTS_KEEP_ROWS", "6000")
    path = events_path(tmp_path, "ticketing")
    log = EventLog(path)
    now = time.time()
    bulk(path, 7000, start=now - 20 * DAY, prefix="old")  # past 10 days
    bulk(path, 3000, state="dead", start=now - 20 * DAY, prefix="dead")
    bulk(path, 8000, start=now - DAY, prefix="new")  # within 10 days, 2000 over the cap
    first_new = 10_001  # the seq of "new-0"
    old_pending, _ = await log.record("github", "old-pending", {}, b"{}", now=now - 30 * DAY)
    assert (await log.record("github", "fresh-pending", {}, b"{}"))[1] is False

    assert await log.purge(now - 30 * DAY, now=now) == 0
    counts = await log.counts()
    assert (counts["processed"], counts["dead"], counts["received"]) == (6000, 3000, 2), counts
    kept = {r.delivery_id for r in await EventLog(path, ALL).list("processed", limit=10_000)}
    assert kept == {f"new-{i}" for i in range(2000, 8000)}, "the newest 6000"
    assert old_pending in {r.seq for r in await log.list("received")}, "never a pending row"
    assert log.stats_now(now)["github"] == {"dead_lettered": 3000, "pending": 2, "lag_s": pytest.approx(30 * DAY, abs=60)}

    assert (await log.record("github", "new-1999", {}, b"{}"))[1] is False, "trimmed: a delivery again"
    assert await log.record("github", "new-7999", {}, b"{}") == (first_new + 7999, True), "kept: still a duplicate"


async def test_trimming_drops_the_retry_keys_of_deleted_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETING_EVENTS_KEEP_DAYS", "1")
    log = EventLog(events_path(tmp_path, "ticketing"))
    seq, _ = await log.record("zendesk", "sig-1", {}, b"{}", alias="alias-1", now=time.time() - 3 * DAY)
    assert await log.record("zendesk", "sig-2", {}, b"{}", alias="alias-1") == (seq, True)
    await log.settle(seq, error=None, next_at=None, dead=False, now=time.time())
    await log.purge(time.time() - 30 * DAY)
    left = await log.store.run(lambda db: db.execute("SELECT COUNT(*) FROM webhook_retry_keys").fetchone()[0])
    assert left == 0 and (await log.counts()).get("processed", 0) == 0


async def test_a_log_from_before_the_counts_is_counted_at_its_migration(tmp_path: Path) -> None:
    path = events_path(tmp_path, "ticketing")
    Store(path, _migrations("ticketing")[:3])._db.close()  # noqa: SLF001 — the schema of the previous release
    bulk(path, 500)
    bulk(path, 2, state="dead", prefix="d")
    bulk(path, 1, namespace="acme", state="received", start=time.time() - 50, prefix="p")
    log = EventLog(path)
    assert log.stats_now(time.time())["github"]["dead_lettered"] == 2
    assert (await log.counts())["processed"] == 500
    acme = EventLog(path, "acme").stats_now(time.time())["github"]
    assert acme["pending"] == 1 and acme["lag_s"] >= 50


def test_keep_limits_are_configurable_and_bad_values_say_what_to_write() -> None:
    from servers.kit.webhooks.log import keep_limits

    assert keep_limits("hris", {}) == (90 * DAY, 1_000_000)
    assert keep_limits("hris", {"HRIS_EVENTS_KEEP_DAYS": "7", "HRIS_EVENTS_KEEP_ROWS": "5000"}) == (7 * DAY, 5000)
    for bad in ({"HRIS_EVENTS_KEEP_DAYS": "0"}, {"HRIS_EVENTS_KEEP_DAYS": "nan"}, {"HRIS_EVENTS_KEEP_ROWS": "lots"}):
        with pytest.raises(ValueError, match="HRIS_EVENTS_KEEP_DAYS.*a number of days above 0"):
            keep_limits("hris", bad)


async def test_a_purged_payload_is_left_nowhere_in_the_files(tmp_path: Path) -> None:
    """Outside review attack53: purged payloads were zeroed only where this machine's SQLite happens to default to
    secure_delete, and the write-ahead log kept 160 copies of a purged address until a checkpoint."""
    path = events_path(tmp_path, "ticketing")
    log = EventLog(path)
    marker = b"ada.lovelace.private@example.com"
    old = time.time() - 40 * DAY
    for n in range(40):
        seq, _ = await log.record("github", f"d-{n}", {}, b'{"email": "%s", "n": %d}' % (marker, n), now=old)
        await log.settle(seq, error=None, next_at=None, dead=False, now=old)
    assert any(marker in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()), "the payloads were written"
    assert await log.purge(time.time() - 30 * DAY) == 40
    left = [p.name for p in tmp_path.rglob("*") if p.is_file() and marker in p.read_bytes()]
    assert left == [], f"a purged payload is still in {left}"
