"""Rate limits shared through a real Redis, the audit store's failure policy, metrics access."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from mcp import Client

from hub.config import parse_config
from hub.hub import Hub
from tests.conftest import Proc, echo_stdio, free_port, start_hub_http, wait_for_port, write_config, error_body
from tests.hub.auth.test_security import client, create_key

pytestmark = pytest.mark.anyio


@pytest.fixture
def redis_url(procs: list) -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: `.ci/run` installs it (apt-get install redis-server)")
    port = free_port()
    procs.append(Proc([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]))
    wait_for_port(port)
    return f"redis://127.0.0.1:{port}/0"


async def test_redis_backend_shares_one_limit_between_two_hubs(tmp_path: Path, procs: list, redis_url: str) -> None:
    hub_settings = {
        "auth": {"enabled": True},
        "data_dir": str(tmp_path / "d"),
        "rate_limit": {"backend": "redis", "redis_url": redis_url, "per_principal": {"burst": 4, "per_second": 0.01}},
    }
    first = start_hub_http(procs, write_config(tmp_path, {"e": echo_stdio()}, hub=hub_settings))
    (tmp_path / "second").mkdir()
    second = start_hub_http(procs, write_config(tmp_path / "second", {"e": echo_stdio()}, hub=hub_settings))
    carol = create_key(tmp_path / "d", "carol", "*")
    dave = create_key(tmp_path / "d", "dave", "*")
    async with client(first, carol) as one, client(second, carol) as two, client(second, dave) as other:
        outcomes = []
        for index in range(8):
            result = await (one if index % 2 == 0 else two).call_tool("e__add", {"a": 1, "b": 1})
            outcomes.append("ok" if not result.is_error else error_body(result)["code"])
        assert outcomes.count("ok") == 4 and outcomes.count("rate_limited") == 4, outcomes
        assert outcomes[:4] == ["ok"] * 4
        assert not (await other.call_tool("e__add", {"a": 1, "b": 1})).is_error  # dave has his own bucket


async def test_memory_backend_per_tool_rule() -> None:
    config = parse_config(
        {"hub": {"rate_limit": {"rules": [{"tools": "e__echo", "burst": 2, "per_second": 0.01}]}},
         "mcpServers": {"e": echo_stdio()}}
    )
    async with Hub(config) as hub:
        codes = [error_body(r).get("code") if r.is_error else None
                 for r in [await hub.route_call("e__echo", {"text": "x"}) for _ in range(3)]]
        assert codes == [None, None, "rate_limited"]
        assert (await hub.route_call("e__add", {"a": 1, "b": 2})).structured_content == {"total": 3}


@pytest.mark.parametrize("policy", ["fail_closed_writes", "fail_closed", "fail_open"])
async def test_audit_store_failure_policy(tmp_path: Path, policy: str) -> None:
    config = parse_config(
        {"hub": {"data_dir": str(tmp_path), "audit": {"on_failure": policy}}, "mcpServers": {"e": echo_stdio()}}
    )
    async with Hub(config) as hub:
        assert hub.audit_log is not None
        assert (await hub.route_call("e__echo", {"text": "before"})).is_error is not True
        hub.audit_log.flush()
        hub.audit_log._db.execute("PRAGMA query_only = ON")  # the store turns read-only under the hub
        await hub.route_call("e__add", {"a": 1, "b": 1})
        hub.audit_log.flush()
        assert hub.audit_log.healthy is False
        write = await hub.route_call("e__echo", {"text": "after"})
        read = await hub.route_call("e__add", {"a": 1, "b": 1})
        if policy == "fail_open":
            assert not write.is_error and not read.is_error
        elif policy == "fail_closed_writes":
            assert error_body(write)["code"] == "unavailable" and "audit log" in error_body(write)["message"]
            assert not read.is_error
        else:
            assert error_body(write)["code"] == error_body(read)["code"] == "unavailable"
        hub.audit_log._db.execute("PRAGMA query_only = OFF")
        await hub.route_call("e__add", {"a": 2, "b": 2})
        hub.audit_log.flush()
        assert hub.audit_log.healthy is True  # it recovers by itself once the store is writable again


async def test_metrics_access_modes(tmp_path: Path, procs: list) -> None:
    open_url = start_hub_http(procs, write_config(tmp_path, {"e": echo_stdio()}))
    async with Client(open_url) as c:
        await c.call_tool("e__add", {"a": 1, "b": 1})
    text = httpx.get(open_url.replace("/mcp", "/metrics")).text
    assert 'mcp_hub_calls_total{outcome="ok",server="e",tool="e__add"} 1.0' in text
    assert 'mcp_hub_server_up{server="e"} 1.0' in text

    (tmp_path / "s").mkdir()
    scoped = write_config(
        tmp_path / "s", {"e": echo_stdio()},
        hub={"auth": {"enabled": True}, "data_dir": str(tmp_path / "d"), "metrics": {"access": "scope"}},
    )
    url = start_hub_http(procs, scoped)
    metrics_url = url.replace("/mcp", "/metrics")
    assert httpx.get(metrics_url).status_code == 403
    reader = create_key(tmp_path / "d", "r", "e:read")
    watcher = create_key(tmp_path / "d", "w", "hub:metrics")
    assert httpx.get(metrics_url, headers={"Authorization": f"Bearer {reader}"}).status_code == 403
    assert httpx.get(metrics_url, headers={"Authorization": f"Bearer {watcher}"}).status_code == 200
