"""N hub replicas behind a real HAProxy, sharing real Redis and PostgreSQL (issue 21).

Used by tests/hub/cluster/test_cluster_haproxy.py and tools/bench/cluster.py. Everything runs on 127.0.0.1 on
ephemeral ports in temp dirs: `redis-server`, PostgreSQL (`tests.cluster_support.PgServer`), the
replicas (`python -m hub.cli serve -t http --port 0`, one data dir each so nothing is shared through
SQLite) and `haproxy` in round-robin with no stickiness. `option http-server-close` makes HAProxy
close the server side after each response, so every request of a client connection is balanced
again: consecutive requests alternate between replicas. `retries` with `option redispatch 1` sends
a request whose connection to a dead replica is refused to another one, and health checks on
`/healthz` take a dead replica out of rotation; `states()` reads them from the stats page.

Missing binaries skip with the Debian package to install, and fail under MCP_HUB_REQUIRE_INTEROP=1
(`tests.cluster_support.need_binary`). Processes are stopped in reverse start order.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.cluster_support import PgServer, need_binary
from tests.conftest import PY, ROOT, Proc, echo_stdio, free_port, hub_command, wait_for_port, write_config

HAPROXY_CONFIG = """\
global
  maxconn 2000
defaults
  mode http
  timeout connect 2s
  timeout client 5m
  timeout server 5m
  retries 3
  option redispatch 1
  option http-server-close
  default-server inter 250ms fall 2 rise 1
  # A check of a live replica may take longer than `inter` on a loaded 2-core machine; without this
  # both replicas could be marked down at once and a request answered 503 (a dead one is refused at once).
  timeout check 3s
frontend mcp
  bind 127.0.0.1:{port}
  default_backend hubs
backend hubs
  balance roundrobin
  option httpchk
  http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host 127.0.0.1:{port}
  http-check expect status 200
{servers}
listen stats
  bind 127.0.0.1:{stats_port}
  stats enable
  stats uri /stats
"""


class Redis:
    """A throwaway `redis-server` (no persistence)."""

    def __init__(self) -> None:
        binary = need_binary("redis-server", "redis-server")
        self.port = free_port()
        self.proc = Proc([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        wait_for_port(self.port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.stop()


class HAProxy:
    """Round-robin HAProxy in front of `backends` (host:port), config in a temp dir."""

    def __init__(self, backends: list[str], folder: Path) -> None:
        binary = need_binary("haproxy", "haproxy")
        self.port, self.stats_port = free_port(), free_port()
        servers = "\n".join(f"  server r{i} {address} check" for i, address in enumerate(backends))
        self.config = folder / "haproxy.cfg"
        self.config.write_text(HAPROXY_CONFIG.format(port=self.port, stats_port=self.stats_port, servers=servers))
        checked = subprocess.run([binary, "-c", "-q", "-f", str(self.config)], capture_output=True, text=True)
        if checked.returncode != 0:
            raise RuntimeError(f"haproxy refused its config: {checked.stderr[-1000:]}")
        self.proc = Proc([binary, "-db", "-f", str(self.config)])
        threading.Thread(target=self.proc._drain, daemon=True).start()  # its alerts must not fill the pipe
        wait_for_port(self.port)
        wait_for_port(self.stats_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def states(self) -> dict[str, str]:
        """Each backend server's check state as HAProxy sees it (`UP`, `DOWN`, ...), by name r0, r1, ..."""
        text = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5).text.lstrip("# ")
        return {row["svname"]: f'{row["status"]} {row["check_status"]} {row["last_chk"]}'.strip()
                for row in csv.DictReader(io.StringIO(text))
                if row["pxname"] == "hubs" and row["svname"] not in ("FRONTEND", "BACKEND")}

    def wait_for(self, wanted: dict[str, str], timeout: float = 30.0) -> None:
        """Wait until the named servers are in the wanted states (e.g. {"r0": "DOWN"})."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states()
            if all(states.get(name, "").startswith(state) for name, state in wanted.items()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"HAProxy servers are {states}, not {wanted}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.stop()


@contextmanager
def _replicas(tmp_path: Path, servers: dict[str, Any], hub_of: Callable[[Redis], dict[str, Any]],
              env: dict[str, str] | None = None, count: int = 2) -> Iterator[tuple[list[str], list[Proc], Redis]]:
    """`count` hub replicas of one config (its `hub` block made by `hub_of` from a fresh Redis), each with a
    data dir of its own; yields their /mcp URLs once healthy, their processes and the Redis; stops them, then Redis."""
    redis = Redis()
    procs: list[Proc] = []
    try:
        config = write_config(tmp_path, servers, hub=hub_of(redis))
        for index in range(count):
            procs.append(Proc(hub_command(config, "--transport", "http", "--port", "0"),
                              env={"MCP_HUB_DATA_DIR": str(tmp_path / f"replica{index}"), **(env or {})}))
        urls = [proc.wait_for_line(r"mcp-hub listening on (\S+)", timeout=60).group(1) for proc in procs]
        for url in urls:
            wait_healthy(url)
        yield urls, procs, redis
    finally:
        for proc in reversed(procs):
            proc.stop()
        redis.stop()


@contextmanager
def redis_replicas(tmp_path: Path, servers: dict[str, Any], env: dict[str, str] | None = None,
                   count: int = 2) -> Iterator[list[str]]:
    """`count` replicas sharing a fresh Redis (`hub.cluster.redis_url`), no session secret; their /mcp URLs."""
    with _replicas(tmp_path, servers, lambda redis: {"cluster": {"redis_url": redis.url}}, env, count) as (urls, _, _):
        yield urls


@contextmanager
def sealed_replicas(tmp_path: Path, servers: dict[str, Any], **hub: Any) -> Iterator[tuple[list[str], list[Proc], Redis]]:
    """Replicas A and B whose sessions move between them (Redis and a fresh session secret, plus `hub`
    settings — a Redis rate limit on the same Redis; auth off unless `hub` turns it on)."""
    def hub_of(redis: Redis) -> dict[str, Any]:
        cluster = {"redis_url": redis.url, "session_secrets": [secrets.token_urlsafe(32)], **hub.get("cluster", {})}
        rest = {k: v for k, v in hub.items() if k != "cluster"}
        if rest.get("rate_limit", {}).get("backend") == "redis":
            rest["rate_limit"] = {"redis_url": redis.url, **rest["rate_limit"]}
        return {"cluster": cluster, **rest}

    with _replicas(tmp_path, servers, hub_of) as found:
        yield found


def wait_healthy(url: str, timeout: float = 60.0) -> None:
    """Wait until the replica at `url` answers `/healthz` with status `ok` (its servers connected)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url.replace("/mcp", "/healthz"), timeout=5).json().get("status") == "ok":
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"replica {url} never reported ok")
        time.sleep(0.05)


class Cluster:
    """Shared config file + N replicas + HAProxy, on a given PostgreSQL database and Redis.

    `config` is the one file every replica and `mcp-hub keys|audit --config` read; each replica
    gets its own data dir through `$MCP_HUB_DATA_DIR`."""

    def __init__(self, folder: Path, store_url: str | None, redis_url: str | None, replicas: int = 2,
                 hub: dict[str, Any] | None = None, servers: dict[str, Any] | None = None,
                 balancer: bool = True) -> None:
        """`store_url`/`redis_url` None: the one-machine defaults (SQLite in one data dir, memory
        buckets), for comparison only; `balancer` False: no HAProxy (`url` is the first replica)."""
        self.folder = folder
        self.config = folder / "hub.json"
        hub_settings: dict[str, Any] = {"list_wait_s": 30, "auth": {"enabled": True}, **(hub or {})}
        if store_url is not None:
            hub_settings["store"] = {"url": store_url}
        else:
            hub_settings["data_dir"] = str(folder / "data")
        if redis_url is not None:
            hub_settings["cluster"] = {"redis_url": redis_url, "session_secrets": [secrets.token_urlsafe(32)]}
            hub_settings.setdefault("rate_limit", {})["backend"] = "redis"
        self.config.write_text(json.dumps({"hub": hub_settings, "mcpServers": servers or {"e": echo_stdio()}}))
        self.replicas: list[Proc] = []
        self.urls: list[str] = []
        self.haproxy: HAProxy | None = None
        try:
            for index in range(replicas):  # started together, as a deployment would
                self.replicas.append(Proc(hub_command(self.config, "--transport", "http", "--port", "0"),
                                          env={"MCP_HUB_DATA_DIR": str(folder / f"replica{index}")}))
            for proc in self.replicas:
                self.urls.append(proc.wait_for_line(r"mcp-hub listening on (\S+)", timeout=60).group(1))
            for url in self.urls:
                wait_healthy(url)
            if balancer:
                self.haproxy = HAProxy([url.split("/")[2] for url in self.urls], folder)
                self.haproxy.wait_for({f"r{i}": "UP" for i in range(replicas)})
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return self.haproxy.url if self.haproxy is not None else self.urls[0]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`mcp-hub <args> --config F`, as an operator on any machine would run it."""
        return subprocess.run([PY, "-m", "hub.cli", *args, "--config", str(self.config)], capture_output=True,
                              text=True, cwd=ROOT, timeout=60)

    def create_key(self, name: str, scopes: str) -> str:
        done = self.cli("keys", "create", "--name", name, "--scopes", scopes)
        if done.returncode != 0:
            raise RuntimeError(f"keys create failed: {done.stderr[-1000:]}")
        return done.stdout.strip()

    def kill(self, index: int) -> None:
        """SIGKILL replica `index` (no drain: as a crashed machine)."""
        proc = self.replicas[index].popen
        proc.kill()
        proc.wait(10)

    def stop(self) -> None:
        """Stop HAProxy, then the replicas, newest first."""
        if self.haproxy is not None:
            self.haproxy.stop()
        for proc in reversed(self.replicas):
            proc.stop()


class Infra:
    """PostgreSQL and Redis for one or more clusters; `close()` stops them in reverse start order.
    Given a running `pg` (the tests' session-wide server), it uses that one and leaves it running."""

    def __init__(self, pg: PgServer | None = None) -> None:
        need_binary("redis-server", "redis-server")
        need_binary("haproxy", "haproxy")
        self._own_pg = pg is None
        self.pg = pg if pg is not None else PgServer()
        try:
            self.redis = Redis()
        except BaseException:
            if self._own_pg:
                self.pg.close()
            raise

    def cluster(self, replicas: int = 2, folder: Path | None = None, **options: Any) -> Cluster:
        """A cluster on a fresh database (so its audit table holds only its own calls)."""
        folder = folder or Path(tempfile.mkdtemp(prefix="mcphub-cluster-"))
        return Cluster(folder, self.pg.new_database(), self.redis.url, replicas, **options)

    def close(self) -> None:
        self.redis.stop()
        if self._own_pg:
            self.pg.close()

