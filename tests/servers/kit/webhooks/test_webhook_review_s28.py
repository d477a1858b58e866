"""Outside review s28 on the change feed and delivery log: the GitHub reader spells an allowed repository as
configured (#3), the PostgreSQL purge finds namespaces by index seeks, not by reading the history (#4), and no
upkeep loop waits for a whole wall-clock step back (#7: `FeedUpkeep`, and its siblings `Processor.purge_if_due`
and `ChannelKeeper.run`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import psycopg
import pytest
from psycopg.rows import dict_row
from starlette.datastructures import Headers

from servers.kit.store import Store
from servers.kit.webhooks import channels, pg_retention
from servers.kit.webhooks.feed import ChangeFeed
from servers.kit.webhooks.log_pg import PgEventLog
from servers.kit.webhooks.processor import Processor
from servers.kit.webhooks.readers import Account, github
from servers.kit.webhooks.upkeep import FeedUpkeep
from tests.cluster_support import PgServer
from tests.servers.kit.webhooks.pg_support import pg  # noqa: F401 — the module's own server (a fixture)

pytestmark = pytest.mark.anyio
MONTH = 30 * 86400.0


# -- 3: one issue, one id ------------------------------------------------------------------------------------


def test_github_deliveries_spell_an_allowed_repository_as_configured() -> None:
    account = Account(github_repo="acme/app", github_repos=("acme/lib",))
    headers = Headers({"x-github-event": "issues"})
    for full_name in ("Acme/Lib", "ACME/LIB", "acme/lib"):
        change = github(headers, {"action": "edited", "issue": {"number": 3, "title": "t"},
                                  "repository": {"full_name": full_name}}, account)
        assert [c.record_id for c in change] == ["acme/lib#3"], full_name
    default = github(headers, {"action": "edited", "issue": {"number": 4}, "repository": {"full_name": "ACME/App"}}, account)
    assert [c.record_id for c in default] == ["4"]
    assert github(headers, {"action": "edited", "issue": {"number": 5}, "repository": {"full_name": "acme/x"}}, account) == []


# -- 4: the PostgreSQL purge never reads the history to find namespaces -----------------------------------------


class Spy:
    """A connection that records what `pg_retention.namespaces` runs, and runs it."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn, self.sent = conn, []  # type: ignore[var-annotated]

    def execute(self, sql: str, params: Any = None) -> Any:
        self.sent.append((sql, params))
        return self.conn.execute(sql, params)


def _scanned(node: dict[str, Any]) -> int:
    own = node.get("Actual Rows", 0) * node.get("Actual Loops", 1) if "Scan" in node.get("Node Type", "") else 0
    return own + sum(_scanned(k) for k in node.get("Plans") or [])


async def test_namespaces_are_found_by_index_seeks_not_by_reading_the_rows(pg: PgServer) -> None:
    url = pg.new_database()
    await PgEventLog(url, "ticketing", None, namespace="tickets-eu").trim(0)  # migrations
    rows = 20_000
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("INSERT INTO webhook_events (domain, namespace, provider, delivery_id, received_at, state, next_attempt_at)"
                     " SELECT 'ticketing', CASE WHEN g %% 1000 = 0 THEN 'tickets-us' ELSE 'tickets-eu' END, 'github', 'd' || g,"
                     " %s - g, CASE WHEN g = 7 THEN 'dead' ELSE 'processed' END, 0 FROM generate_series(1, %s) g",
                     (time.time(), rows))
        conn.execute("INSERT INTO webhook_events (domain, namespace, provider, delivery_id, received_at, state, next_attempt_at)"
                     " VALUES ('ticketing', 'gone', 'github', 'p1', 1, 'pending', 0), ('hr', 'hr', 'github', 'h', 1, 'processed', 0)")
        conn.execute("VACUUM ANALYZE webhook_events")
        spy = Spy(conn)
        assert pg_retention.namespaces(spy, "ticketing", ("processed",)) == ["tickets-eu", "tickets-us"]  # type: ignore[arg-type]
        assert pg_retention.namespaces(conn, "ticketing", ("dead",)) == ["tickets-eu"]
        assert pg_retention.namespaces(conn, "ticketing", ("pending",)) == ["gone"]
        assert pg_retention.namespaces(conn, "nobody", ("processed",)) == []
        (sql, params), = spy.sent
        plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params).fetchone()["QUERY PLAN"]
    plan = plan if isinstance(plan, list) else json.loads(plan)
    assert _scanned(plan[0]["Plan"]) < 100, f"the namespace lookup read {_scanned(plan[0]['Plan'])} of {rows} rows"


# -- 7: no wait longer than the interval after the clock steps back ------------------------------------------------


async def test_feed_upkeep_looks_again_within_the_interval_after_a_clock_step_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "feed.sqlite", [])
    try:
        upkeep = FeedUpkeep(ChangeFeed(store, scope="ticketing", keep=(MONTH, 100)), every_s=3600.0)
        real = time.time()
        assert await upkeep.tick(real + MONTH) == 3600.0  # first look with the clock a month ahead
        wait = await upkeep.tick(real)  # NTP corrects it: due now (the store claim says so too), never a month
        assert wait <= 3600.0, wait
        assert upkeep._next <= real + 3600.0  # noqa: SLF001 — it looked again at the corrected time
        assert 0 < await upkeep.tick(real + 10) <= 3600.0 - 10  # and then keeps its interval
    finally:
        store.close()


async def test_processor_purge_is_due_after_a_clock_step_back() -> None:
    purged: list[float] = []

    async def purge(older_than: float) -> int:
        purged.append(older_than)
        return 0

    fake = SimpleNamespace(_last_purge=0.0, policy=SimpleNamespace(purge_every_s=3600.0, retention_days=7),
                           log=SimpleNamespace(purge=purge), feed=None)
    real = time.time()
    await Processor.purge_if_due(fake, real + MONTH)  # type: ignore[arg-type]
    await Processor.purge_if_due(fake, real)  # type: ignore[arg-type]
    assert len(purged) == 2, "a purge is due at once after the wall clock stepped back"
    await Processor.purge_if_due(fake, real + 60)  # type: ignore[arg-type]
    assert len(purged) == 2, "and then once per interval"


async def test_channel_upkeep_never_waits_for_a_whole_clock_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """`ChannelKeeper.run` sleeps until the next wall-clock instant `tick` names; after a step back that instant is
    far away: the wait is capped (`MAX_WAIT_S`, made short here) so the loop keeps looking."""
    monkeypatch.setattr(channels, "MAX_WAIT_S", 0.01, raising=False)
    looks: list[float] = []
    enough = anyio.Event()

    async def tick() -> float:
        looks.append(time.time())
        if len(looks) >= 3:
            enough.set()
        return time.time() + MONTH

    keeper = SimpleNamespace(tick=tick, api=SimpleNamespace(provider="test"))
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(channels.ChannelKeeper.run, keeper)
            await enough.wait()
            group.cancel_scope.cancel()
    assert len(looks) >= 3
