"""Two hub replicas behind a real HAProxy (round-robin, no stickiness) sharing a real PostgreSQL
(keys, audit) and a real Redis (rate limits), driven with the SDK client in both protocol eras
over the balancer (issue 21). Which replica served a call is read from the request id every
result carries (`mcp-hub/request_id`: its first 16 hex digits are the serving process's tag)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import error_body
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.cluster_support import PgServer
from tests.haproxy_cluster import Cluster, Infra
from tests.hub.auth.test_security import post_initialize

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
REQUEST_ID = "mcp-hub/request_id"
LIMITED = {"tools": "e__echo", "burst": 4, "per_second": 0.001}  # 4 echo calls per principal, cluster-wide


@pytest.fixture(scope="module")
def infra(pg: PgServer) -> Iterator[Infra]:
    shared = Infra(pg)
    yield shared
    shared.close()


def two_replicas(infra: Infra, folder: Path) -> Iterator[Cluster]:
    started = infra.cluster(2, folder=folder, hub={"rate_limit": {"rules": [LIMITED]}})
    yield started
    started.stop()


@pytest.fixture(scope="module")
def cluster(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the whole file; each test uses its own principals (keys, audit rows, rate-limit
    buckets), and the one that kills a replica runs last."""
    yield from two_replicas(infra, tmp_path_factory.mktemp("cluster"))


def sdk_client(url: str, key: str, mode: str, session_ids: list[str] | None = None) -> Client:
    """The SDK client; `session_ids` collects the Mcp-Session-Id header of every request it sends."""
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    if session_ids is not None:
        async def record(request: Any) -> None:
            if "mcp-session-id" in request.headers:
                session_ids.append(request.headers["mcp-session-id"])
        http.event_hooks["request"].append(record)
    return Client(streamable_http_client(url, http_client=http), mode=mode)


async def call(c: Client, tool: str, arguments: dict[str, Any]) -> tuple[str, str]:
    """(outcome, request id): `ok` or the isError code, and the id naming the serving replica."""
    result = await c.call_tool(tool, arguments)
    outcome = error_body(result)["code"] if result.is_error else "ok"
    return outcome, (result.meta or {})[REQUEST_ID]


async def replica_tag(url: str, key: str) -> str:
    """The process tag of the replica at `url` (one direct call, not through the balancer)."""
    async with sdk_client(url, key, "2026-07-28") as c:
        outcome, request_id = await call(c, "e__add", {"a": 0, "b": 0})
    assert outcome == "ok"
    return request_id[:16]


def audit_rows(cluster: Cluster, expected: int, *filters: str) -> list[dict[str, Any]]:
    """One `mcp-hub audit query --config F --json`, repeated until `expected` rows are there (the
    replicas write in batches) or 30 s passed; a later query would show any duplicate too."""
    deadline = time.monotonic() + 30
    while True:
        done = cluster.cli("audit", "query", "--limit", "10000", "--json", *filters)
        assert done.returncode == 0, done.stderr
        rows = [json.loads(line) for line in done.stdout.splitlines()]
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


async def test_a_key_created_once_works_everywhere_in_both_eras_and_its_revocation_reaches_both(
    cluster: Cluster
) -> None:
    key = cluster.create_key("carol", "e:write")
    served: list[str] = []
    for mode in ("legacy", "2026-07-28"):
        async with sdk_client(cluster.url, key, mode) as c:
            results = [await call(c, "e__add", {"a": i, "b": i}) for i in range(4)]
        assert [outcome for outcome, _ in results] == ["ok"] * 4, mode
        assert len({rid[:16] for _, rid in results}) == 2, f"{mode}: calls did not alternate between replicas"
        served += [rid for _, rid in results]
    for url in cluster.urls:  # and on each replica directly
        async with sdk_client(url, key, "2026-07-28") as c:
            outcome, request_id = await call(c, "e__add", {"a": 1, "b": 2})
        assert outcome == "ok"
        served.append(request_id)

    # The audit: every call exactly once, from both replicas, in one query of the shared table.
    rows = audit_rows(cluster, len(served), "--principal", "carol")
    assert sorted(r["request_id"] for r in rows) == sorted(served)
    assert len({r["request_id"][:16] for r in rows}) == 2

    revoked = cluster.cli("keys", "revoke", key.split("_")[1])
    assert revoked.returncode == 0, revoked.stderr
    since = time.monotonic()
    pending = {*cluster.urls, cluster.url}
    while pending and time.monotonic() - since < 10:
        pending = {url for url in pending if post_initialize(url, {"Authorization": f"Bearer {key}"}).status_code != 401}
    elapsed = time.monotonic() - since
    assert not pending, f"revocation not effective on {pending} after 10 s"
    # key_cache_s is 1 s; the bound is generous because each probe is a real HTTP round trip through
    # HAProxy on a loaded 2-core machine. A cache that ignored its lifetime would hit the 10 s limit.
    assert elapsed < 6.0, f"revocation took {elapsed:.1f} s to reach every replica (key_cache_s is 1 s)"


async def test_a_shared_rate_limit_allows_its_burst_in_total_not_per_replica(cluster: Cluster) -> None:
    key = cluster.create_key("dave", "e:write")
    async with sdk_client(cluster.url, key, "2026-07-28") as c:
        results = [await call(c, "e__echo", {"text": str(i)}) for i in range(10)]
        outcomes = [outcome for outcome, _ in results]
        assert outcomes.count("ok") == 4 and outcomes.count("rate_limited") == 6, outcomes
        refused_by = {rid[:16] for outcome, rid in results if outcome == "rate_limited"}
        assert len(refused_by) == 2  # both replicas refused: each saw the other's calls in Redis
        assert (await call(c, "e__add", {"a": 1, "b": 1}))[0] == "ok"  # the rule limits e__echo only
    async with sdk_client(cluster.url, cluster.create_key("erin", "e:write"), "legacy") as c:
        assert (await call(c, "e__echo", {"text": "x"}))[0] == "ok"  # buckets are per principal
    health = httpx.get(cluster.urls[0].replace("/mcp", "/healthz"), timeout=5).json()
    assert health["status"] == "ok"


async def test_a_2025_session_alternates_between_replicas_and_survives_losing_one(cluster: Cluster) -> None:
    # Last in this file on purpose: it kills replica 0 of the module's cluster, which the tests above
    # need whole (a cluster of its own would cost one more PostgreSQL database, two replicas and HAProxy).
    probe = cluster.create_key("probe", "e:write")
    tags = [await replica_tag(url, probe) for url in cluster.urls]
    assert len(set(tags)) == 2
    key = cluster.create_key("sessions", "e:write")
    session_ids: list[str] = []
    async with sdk_client(cluster.url, key, "legacy", session_ids) as c:
        before = [await call(c, "e__add", {"a": i, "b": 1}) for i in range(6)]
        assert [outcome for outcome, _ in before] == ["ok"] * 6
        assert {rid[:16] for _, rid in before} == set(tags)  # one session, served by both replicas
        # Every row of those calls is in PostgreSQL before the crash (a killed replica loses only
        # what it still had queued, which this test does not want to measure).
        assert len(audit_rows(cluster, 6, "--principal", "sessions")) == 6
        cluster.kill(0)
        after = [await call(c, "e__add", {"a": i, "b": 2}) for i in range(6)]
        assert [outcome for outcome, _ in after] == ["ok"] * 6
        assert {rid[:16] for _, rid in after} == {tags[1]}  # the survivor continued the session
        assert cluster.haproxy is not None
        cluster.haproxy.wait_for({"r0": "DOWN", "r1": "UP"})
        last = await call(c, "e__add", {"a": 1, "b": 1})  # with HAProxy's check having noticed too
        assert last[0] == "ok" and last[1][:16] == tags[1]
    assert session_ids and set(session_ids) == {session_ids[0]} and session_ids[0].startswith("s1.")
    # Every call of the session exactly once, in one query of the shared audit table.
    ids = [rid for _, rid in [*before, *after, last]]
    rows = audit_rows(cluster, len(ids), "--principal", "sessions")
    assert sorted(r["request_id"] for r in rows) == sorted(ids)
