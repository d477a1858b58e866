"""The admin console's Activity and Charts pages read the audit through the store protocol, so a hub
on PostgreSQL (`hub.store.url`, issue 21) shows its calls there too (real PostgreSQL, real hub)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.cluster_support import PgServer
from tests.conftest import PY, ROOT, echo_stdio, start_hub_http, write_config

pytestmark = pytest.mark.slow


def create_key(config: Path, name: str, scopes: str) -> str:
    done = subprocess.run([PY, "-m", "hub.cli", "keys", "create", "--config", str(config), "--name", name,
                           "--scopes", scopes], capture_output=True, text=True, cwd=ROOT, check=True)
    return done.stdout.strip()


def login(http: httpx.Client, key: str) -> None:
    csrf = re.search(r'name="csrf" value="([^"]+)"', http.get("/admin/login").text).group(1)  # type: ignore[union-attr]
    assert http.post("/admin/login", data={"key": key, "csrf": csrf}).status_code == 303


def test_a_call_on_a_postgresql_hub_shows_in_activity_and_charts(tmp_path: Path, procs: list, pg: PgServer) -> None:
    config = write_config(tmp_path, {"e": echo_stdio()},
                          hub={"data_dir": str(tmp_path / "data"), "store": {"url": pg.new_database()},
                               "auth": {"enabled": True, "admin_for_destructive": False}})
    admin = create_key(config, "ops-admin", "hub:admin")
    agent = create_key(config, "agent-9", "e:write")
    url = start_hub_http(procs, config)

    async def one_call() -> None:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {agent}"})
        async with Client(streamable_http_client(url, http_client=http)) as client:
            assert (await client.call_tool("e__echo", {"text": "via-pg"})).is_error is False

    anyio.run(one_call)
    # Nothing of the call may be in the replica's own SQLite file: the console must read PostgreSQL.
    assert not (tmp_path / "data" / "audit.sqlite").exists()
    with httpx.Client(base_url=url.removesuffix("/mcp")) as http:
        login(http, admin)
        deadline = time.monotonic() + 15  # the audit is written in batches: wait for the row, bounded
        while "e__echo" not in (page := http.get("/admin/activity", params={"principal": "agent-9"})).text:
            assert time.monotonic() < deadline, "the call never appeared in /admin/activity"
            time.sleep(0.1)
        assert page.status_code == 200 and "agent-9" in page.text and "Cannot read" not in page.text
        row_id = re.search(r'[?&]id=(\d+)', page.text)
        assert row_id is not None, "activity rows carry their id"
        detail = http.get("/admin/activity", params={"id": row_id.group(1)})
        assert "via-pg" in detail.text or "e__echo" in detail.text
        charts = http.get("/admin/charts")
        assert charts.status_code == 200 and "e: calls per second" in charts.text
