"""Keys and audit in PostgreSQL (`hub.store.url`, issue 21): one table across replicas, keys created
once valid everywhere, revocation spread within the cache time, idempotent migrations, and the
failure mode while PostgreSQL is down. A real PostgreSQL server (`tests.cluster_support`)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.config import parse_config
from hub.hub import Hub
from hub.store.base import AuditFilter
from hub.frontends.http.transports import health_response
from tests.cluster_support import PgServer
from tests.conftest import PY, ROOT, echo_stdio, free_port, start_hub_http, write_config, error_body
from tests.hub.test_hygiene import outcome, wait_ready
from tests.hub.auth.test_security import client, post_initialize

pytestmark = pytest.mark.anyio


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "hub.cli", *args, "--config", str(config)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


def replica_config(tmp_path: Path, name: str, store_url: str) -> Path:
    """A replica with its own data dir (so nothing is shared through SQLite) and the shared store."""
    folder = tmp_path / name
    folder.mkdir()
    hub = {"auth": {"enabled": True}, "data_dir": str(folder / "data"), "store": {"url": store_url}}
    return write_config(folder, {"e": echo_stdio()}, hub=hub)


def audit_rows(config: Path, principal: str, expected: int) -> list[dict[str, Any]]:
    """`mcp-hub audit query --json` once `expected` rows are there (the writers batch)."""
    deadline = time.monotonic() + 30
    while True:
        done = cli(config, "audit", "query", "--principal", principal, "--json")
        assert done.returncode == 0, done.stderr
        rows = [json.loads(line) for line in done.stdout.splitlines()]
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows


async def test_key_created_once_works_on_both_replicas_revocation_reaches_both_audit_is_one_table(
    tmp_path: Path, procs: list, pg: PgServer
) -> None:
    store = pg.new_database()
    config_a, config_b = replica_config(tmp_path, "a", store), replica_config(tmp_path, "b", store)
    url_a, url_b = start_hub_http(procs, config_a), start_hub_http(procs, config_b)
    wait_ready(url_a)
    wait_ready(url_b)
    created = cli(config_a, "keys", "create", "--name", "carol", "--scopes", "e:write")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    for url in (url_a, url_b):
        async with client(url, key, mode="legacy") as c:
            assert [await outcome(c, "e__add", {"a": 1, "b": 2}) for _ in range(2)] == ["ok", "ok"]
        async with client(url, key, mode="2026-07-28") as c:
            assert await outcome(c, "e__echo", {"text": "x"}) == "ok"
    # One table: every call of both replicas once, in one query on either machine.
    rows = audit_rows(config_b, "carol", 6)
    assert len(rows) == 6 and {r["outcome"] for r in rows} == {"ok"}
    assert len({r["request_id"] for r in rows}) == 6
    assert len({r["request_id"][:16] for r in rows}) == 2  # the process tag: rows from both replicas
    assert len({r["args_digest"] for r in rows if r["tool"] == "e__add"}) == 1  # one digest key for all

    revoked = cli(config_b, "keys", "revoke", key.split("_")[1])
    assert revoked.returncode == 0, revoked.stderr
    deadline = time.monotonic() + 10  # the cache is 1 s; generous for a loaded machine
    pending = {url_a, url_b}
    while pending and time.monotonic() < deadline:
        pending = {url for url in pending if post_initialize(url, {"Authorization": f"Bearer {key}"}).status_code != 401}
    assert not pending, f"revocation not effective on {pending}"
    listed = cli(config_a, "keys", "list")
    assert "carol" in listed.stdout and "revoked" in listed.stdout


async def test_postgres_outage_refuses_writes_keeps_reads_shows_in_healthz_and_recovers(
    tmp_path: Path, pg: PgServer
) -> None:
    config = parse_config({"hub": {"data_dir": str(tmp_path), "store": {"url": pg.new_database()}},
                           "mcpServers": {"e": echo_stdio()}})
    async with Hub(config) as hub:
        assert hub.audit_log is not None
        assert (await hub.route_call("e__echo", {"text": "before"})).is_error is not True
        hub.audit_log.flush()
        pg.stop()
        try:
            await hub.route_call("e__add", {"a": 1, "b": 1})  # its row cannot be written
            hub.audit_log.flush()
            assert hub.audit_log.healthy is False
            write = await hub.route_call("e__echo", {"text": "during"})
            assert error_body(write)["code"] == "unavailable"
            assert "PostgreSQL 127.0.0.1" in error_body(write)["message"]
            assert "hub:" not in error_body(write)["message"]  # the URL's user@ part is not shown
            assert (await hub.route_call("e__add", {"a": 1, "b": 1})).is_error is not True
            body = json.loads(health_response(hub).body)
            assert body["status"] == "degraded"
            assert body["store"]["backend"] == "postgresql" and body["store"]["state"] == "unreachable"
        finally:
            pg.start()
        deadline = time.monotonic() + 30  # the writer probes every second; no call is needed
        while json.loads(health_response(hub).body)["status"] != "ok":
            assert time.monotonic() < deadline, health_response(hub).body
            time.sleep(0.05)
        assert (await hub.route_call("e__echo", {"text": "after"})).is_error is not True
        hub.audit_log.flush()
        tools = [r["tool"] for r in hub.shared_store.audit_query(AuditFilter())]
        assert tools[0] == "e__echo" and tools[-1] == "e__echo"  # the first and the post-recovery write


async def test_key_store_down_answers_503_not_401_and_healthz_says_why(tmp_path: Path, procs: list) -> None:
    unreachable = f"postgresql://hub@127.0.0.1:{free_port()}/none"
    url = start_hub_http(procs, replica_config(tmp_path, "a", unreachable))
    well_formed = "mcphub_0123456789ab_" + "A" * 43
    answer = post_initialize(url, {"Authorization": f"Bearer {well_formed}"})
    assert answer.status_code == 503 and answer.headers["retry-after"] == "2"
    assert "key store is unreachable" in answer.json()["error_description"]
    assert post_initialize(url, {"Authorization": "Bearer not-a-key"}).status_code == 401
    health = httpx.get(url.replace("/mcp", "/healthz")).json()
    assert health["status"] == "degraded"


def test_a_store_it_cannot_reach_shows_in_healthz_before_any_traffic(tmp_path: Path, procs: list) -> None:
    """Outside review, cluster round 12: with a wrong password in the store URL `/healthz` said `ok` (and
    a readiness probe admitted the replica) until the first calls failed."""
    unreachable = f"postgresql://hub:wrong@127.0.0.1:{free_port()}/none"
    url = start_hub_http(procs, replica_config(tmp_path, "a", unreachable))
    deadline = time.monotonic() + 30
    while (health := httpx.get(url.replace("/mcp", "/healthz")).json())["status"] != "degraded":
        assert time.monotonic() < deadline, health  # waiting for the state "the writer's first probe failed"
        time.sleep(0.1)
    assert "wrong" not in json.dumps(health)

def test_migrations_run_once_with_replicas_starting_together(pg: PgServer) -> None:
    from hub.store.postgres import MIGRATIONS, PostgresStore

    url = pg.new_database()
    stores = [PostgresStore(url) for _ in range(4)]
    try:
        threads = [threading.Thread(target=s.ping) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        keys = {s.digest_key() for s in stores}
        assert len(keys) == 1  # one digest key per database, whoever created it
        import psycopg

        with psycopg.connect(url) as conn:
            versions = [r[0] for r in conn.execute("SELECT version FROM mcp_hub_migrations ORDER BY version")]
        assert versions == list(range(1, len(MIGRATIONS) + 1))
    finally:
        for s in stores:
            s.close()
    again = PostgresStore(url)  # a later start finds the schema in place
    try:
        again.ping()
    finally:
        again.close()


def test_once_postgres_answers_again_a_pool_stuck_in_its_backoff_is_replaced(pg: PgServer) -> None:
    """Outside review (cluster round 7): after a 10 s outage one replica served API keys again 13 s
    after PostgreSQL was back (its pool's reconnection backs off 1, 2, 4, 8, 16 s); the docs promise a
    look every second. Here the pool is made one that never connects (as one deep in its backoff):
    a call within about a second of the database answering must be served all the same."""
    from psycopg_pool import ConnectionPool

    from hub.store.base import StoreUnavailable
    from hub.store.postgres import PostgresStore

    store = PostgresStore(pg.new_database(), timeout_s=0.5)
    stuck = ConnectionPool(f"postgresql://hub@127.0.0.1:{free_port()}/none", min_size=1, open=False, timeout=0.5)
    try:
        assert store.key_list() == []
        healthy, store._pool = store._pool, stuck  # noqa: SLF001
        healthy.close()
        stuck.open(wait=False)
        with pytest.raises(StoreUnavailable):
            store.key_list()
        assert store.down_since is not None
        deadline = time.monotonic() + 5
        while True:
            try:
                assert store.key_list() == []
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline, "still failing while PostgreSQL answers"
        assert store.down_since is None
    finally:
        store.close()
        stuck.close()


def test_a_refused_login_is_told_apart_from_a_database_that_does_not_answer() -> None:
    """Outside review, cluster round 12: a wrong password read "did not answer … check PostgreSQL is running"."""
    from hub.store.postgres import _failed_how

    refused = 'OperationalError: connection failed: FATAL:  password authentication failed for user "hub"'
    assert "refused the login" in _failed_how(refused) and "password" in _failed_how(refused)
    assert _failed_how("OperationalError: connection failed: Connection refused") == "did not answer"
    assert _failed_how("PoolTimeout: couldn't get a connection after 2.00 sec") == "did not answer"
