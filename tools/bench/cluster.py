"""Throughput of hub replicas behind HAProxy (issue 21), and what the shared engines cost per call.

    .venv/bin/python tools/bench/cluster.py [--seconds 3] [--concurrency 8]

Setups, each started, warmed up, measured, and stopped before the next (tests/haproxy_cluster.py
starts real PostgreSQL, redis-server and HAProxy on loopback):

- `single, defaults`: one replica called directly, SQLite keys/audit, in-memory rate buckets;
- `single, PG+Redis`: one replica called directly, keys/audit in PostgreSQL, buckets in Redis;
- `HAProxy xN, PG+Redis`: N = 1, 2, 3 replicas behind round-robin HAProxy.

Each setup gets a sequential run (one caller: the per-call latency) and a concurrent run
(`--concurrency` callers, each its own 2026-07-28 SDK client: throughput). Every call is
`e__add` on the echo fixture as a stdio child, with auth on (an API key), an overall per-principal
bucket large enough never to refuse (so every call consults the limiter), and the audit on. The
load generator runs on the same machine, so it competes with what it measures: keep runs short
on a shared machine and read the figures as relative.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.cluster_support import PgServer  # noqa: E402
from tests.haproxy_cluster import Cluster, Redis  # noqa: E402

BUCKET = {"burst": 10_000_000, "per_second": 1_000_000}


async def caller(client: Client, until: float, latencies: list[float]) -> None:
    while time.perf_counter() < until:
        started = time.perf_counter()
        result = await client.call_tool("e__add", {"a": 1, "b": 2})
        if result.is_error:
            raise RuntimeError(f"call failed: {result.structured_content}")
        latencies.append(time.perf_counter() - started)


async def run(url: str, key: str, callers: int, seconds: float) -> dict[str, float]:
    """calls/s, p50 and p99 (ms) of `callers` concurrent callers for `seconds`; the clients are
    connected (and have made one call) before the clock starts."""
    latencies: list[float] = []
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(callers):
            http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
            client = await stack.enter_async_context(
                Client(streamable_http_client(url, http_client=http), mode="2026-07-28"))
            await client.call_tool("e__add", {"a": 0, "b": 0})
            clients.append(client)
        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for client in clients:
                group.start_soon(caller, client, started + seconds, latencies)
        elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"calls_per_s": round(len(latencies) / elapsed, 1), "p50_ms": round(cuts[49] * 1000, 2),
            "p99_ms": round(cuts[98] * 1000, 2), "calls": len(latencies)}


def measure(name: str, cluster: Cluster, seconds: float, concurrency: int) -> dict[str, Any]:
    key = cluster.create_key("bench", "e:write")
    anyio.run(run, cluster.url, key, 2, min(seconds, 1.5))  # warm-up: imports, pools, caches
    sequential = anyio.run(run, cluster.url, key, 1, seconds)
    concurrent = anyio.run(run, cluster.url, key, concurrency, seconds)
    row = {"setup": name, "sequential": sequential, f"concurrent_{concurrency}": concurrent}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measured run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--replicas", default="1,2,3", help="HAProxy setups to run")
    args = parser.parse_args()
    hub = {"rate_limit": {"per_principal": BUCKET}}
    print(json.dumps({"machine": platform.processor() or platform.machine(), "python": platform.python_version()}))
    pg = PgServer()
    redis = Redis()
    rows = []
    try:
        setups: list[tuple[str, int, bool, bool]] = [("single, defaults", 1, False, False),
                                                     ("single, PG+Redis", 1, True, False)]
        setups += [(f"HAProxy x{n}, PG+Redis", n, True, True) for n in map(int, args.replicas.split(","))]
        for name, replicas, shared, balanced in setups:
            folder = Path(tempfile.mkdtemp(prefix="mcphub-bench-cluster-"))
            cluster = Cluster(folder, pg.new_database() if shared else None, redis.url if shared else None,
                              replicas, hub=hub, balancer=balanced)
            try:
                rows.append(measure(name, cluster, args.seconds, args.concurrency))
            finally:
                cluster.stop()
    finally:
        redis.stop()
        pg.close()
    width = max(len(r["setup"]) for r in rows)
    concurrent = f"concurrent_{args.concurrency}"
    print(f"\n| {'setup':<{width}} | 1 caller calls/s | p50 ms | p99 ms | {args.concurrency} callers calls/s | p50 ms | p99 ms |")
    print(f"|{'-' * (width + 2)}|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        s, c = r["sequential"], r[concurrent]
        print(f"| {r['setup']:<{width}} | {s['calls_per_s']} | {s['p50_ms']} | {s['p99_ms']} "
              f"| {c['calls_per_s']} | {c['p50_ms']} | {c['p99_ms']} |")


if __name__ == "__main__":
    main()
