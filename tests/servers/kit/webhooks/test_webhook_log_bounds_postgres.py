"""Outside review, events round 18, #10, on the PostgreSQL event log (`log_pg`): processed rows are
trimmed past `<DOMAIN>_EVENTS_KEEP_DAYS` / `<DOMAIN>_EVENTS_KEEP_ROWS` (with their retry keys),
pending, failed and dead rows stay, and the stats snapshot counts pending and dead rows by index. A
real PostgreSQL server (`tests.cluster_support`; skipped without its binaries unless
MCP_HUB_REQUIRE_INTEROP=1)."""

from __future__ import annotations

import time

import anyio
import pytest

from servers.kit.webhooks.log_pg import PgEventLog
from tests.cluster_support import PgServer
from tests.servers.kit.webhooks.pg_support import pg  # noqa: F401 — the module's own server (a fixture)

pytestmark = pytest.mark.anyio
DAY = 86400.0


def bulk(log: PgEventLog, rows: int, *, state: str, start: float, prefix: str) -> None:
    log._sync(lambda c: c.execute(  # noqa: SLF001 — rows written straight into the table
        "INSERT INTO webhook_events (domain, namespace, provider, delivery_id, received_at, next_attempt_at, state, attempts,"
        " headers) SELECT %s, %s, 'github', %s || i, %s + i, %s + i, %s, 1, '{}' FROM generate_series(0, %s) AS i",
        (log.domain, log.namespace, prefix, start, start, state, rows - 1)))


async def test_processed_rows_are_trimmed_by_age_and_count_dead_and_pending_stay(pg: PgServer,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETING_EVENTS_KEEP_DAYS", "10")
    monkeypatch.setenv("TICKETING_EVENTS_KEEP_ROWS", "600")
    url = pg.new_database()
    log, other = PgEventLog(url, "ticketing"), PgEventLog(url, "ticketing", namespace="acme")
    now = time.time()
    bulk(log, 700, state="processed", start=now - 20 * DAY, prefix="old-")
    bulk(log, 300, state="dead", start=now - 20 * DAY, prefix="dead-")
    bulk(log, 800, state="processed", start=now - DAY, prefix="new-")
    bulk(other, 50, state="processed", start=now - DAY, prefix="new-")
    pending, _ = await log.record("github", "old-pending", {}, b"{}", now=now - 30 * DAY)
    seq, _ = await log.record("zendesk", "sig-1", {}, b"{}", alias="alias-1", now=now - 15 * DAY)
    assert await log.record("zendesk", "sig-2", {}, b"{}", alias="alias-1") == (seq, True)
    await log.settle(seq, error=None, next_at=None, dead=False, now=now)

    assert await log.purge(now - 30 * DAY, now=now) == 0
    counts = await log.counts()
    assert (counts["processed"], counts["dead"], counts["received"]) == (600, 300, 1), counts
    kept = {r.delivery_id for r in await log.list("processed", limit=10_000)}
    assert kept == {f"new-{i}" for i in range(200, 800)}, "the newest 600"
    assert (await other.counts())["processed"] == 50, "another namespace's rows are its own"
    assert pending in {r.seq for r in await log.list("received")}
    keys = log._sync(lambda c: c.execute("SELECT COUNT(*) AS n FROM webhook_retry_keys").fetchone())  # noqa: SLF001
    assert keys["n"] == 0, "a trimmed row's retry keys go with it"
    assert (await log.record("zendesk", "sig-2", {}, b"{}", alias="alias-9"))[1] is False, "trimmed: new again"

    log.stats_now(time.time())
    with anyio.fail_after(10):
        while not log.stats_now(time.time()):
            await anyio.sleep(0.05)  # waiting for the snapshot
    stats = log.stats_now(time.time())["github"]
    assert (stats["dead_lettered"], stats["pending"]) == (300, 1) and stats["lag_s"] >= 30 * DAY - 60


async def test_a_removed_namespaces_settled_rows_are_purged_and_trimmed_by_age(pg: PgServer,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Events round 28: rows of a namespace no longer configured were never purged nor trimmed (nobody's own)."""
    monkeypatch.setenv("TICKETING_EVENTS_KEEP_ROWS", "2")
    url = pg.new_database()
    acme, gone = PgEventLog(url, "ticketing", namespace="acme"), PgEventLog(url, "ticketing", namespace="gone")
    elsewhere = PgEventLog(url, "calendar", namespace="gone")  # another domain's: its own retention
    now = time.time()
    bulk(gone, 3, state="processed", start=now - 100 * DAY, prefix="old-")
    bulk(gone, 4, state="processed", start=now - DAY, prefix="young-")
    bulk(elsewhere, 3, state="processed", start=now - 100 * DAY, prefix="old-")
    dead, _ = await gone.record("github", "dead", {"x": "y"}, b"{}", now=now - 40 * DAY)
    await gone.settle(dead, error="boom", next_at=None, dead=True, now=now - 40 * DAY)
    pending, _ = await gone.record("github", "pending", {"x": "y"}, b"{}", now=now - 40 * DAY)

    assert await acme.purge(now - 30 * DAY, now=now) == 1, "the dead letter's payload (bulk rows have none)"
    rows = {r.delivery_id: r for r in await gone.list(limit=100)}
    assert sorted(rows) == sorted(["dead", "pending", *(f"young-{i}" for i in range(4))]), "row limit: its own log's"
    assert rows["dead"].purged and not rows["pending"].purged
    assert len(await elsewhere.list(limit=100)) == 3
