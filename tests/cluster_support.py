"""Real PostgreSQL (and HAProxy) for the cluster tests: Debian's binaries, run in a temp dir on an
ephemeral port. PostgreSQL refuses to run as root, so as root the server runs as `postgres`.

Missing binaries skip with the reason, unless MCP_HUB_REQUIRE_INTEROP=1 (tools/test.sh, which
installs them) turns the skip into a failure, as for the interop peers."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from hub.cluster.notify import ClusterNotifier
from tests.conftest import free_port


def need_binary(name: str, package: str) -> str:
    """The path of `name`, or skip (fail under MCP_HUB_REQUIRE_INTEROP=1) naming the Debian package."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        message = f"{name} is not installed: `bash tools/setup.sh --test` installs Debian's {package}"
        if os.environ.get("MCP_HUB_REQUIRE_INTEROP") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


class PgServer:
    """One throwaway PostgreSQL cluster (trust auth, loopback only, fsync off)."""

    def __init__(self) -> None:
        bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
        self.bin = Path(bindir[0]) if bindir else Path(need_binary("pg_ctl", "postgresql")).parent
        if not (self.bin / "initdb").exists():
            need_binary("initdb", "postgresql")
        self.root = Path(tempfile.mkdtemp(prefix="mcphub-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "hub", "--no-sync", "-E", "UTF8")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self._as_user, str(self.bin / tool), *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stderr[-2000:]}{done.stdout[-1000:]}")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://hub@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]  # generated name
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop()
        except RuntimeError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


class CapturedNotifier(ClusterNotifier):
    """A `ClusterNotifier` that never connects: what it would publish lands in `events`, as it crosses Redis."""

    def __init__(self, hub: Any) -> None:
        super().__init__(hub, "redis://127.0.0.1:9/0")  # never connected: nothing here reaches Redis
        self.events: list[dict[str, Any]] = []

    async def publish(self, event: dict[str, Any]) -> None:
        self.events.append(json.loads(json.dumps(event)))


class HeardConnection:
    """Stands for a client connection: what the hub notifies it lands in `heard` (method, params)."""

    def __init__(self, session_id: str | None = None) -> None:
        self.session_id = session_id
        self.heard: list[tuple[str, Any]] = []

    async def notify(self, method: str, params: Any) -> None:
        self.heard.append((method, params))
