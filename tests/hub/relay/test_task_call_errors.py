"""Outside review faults19 #2: a task-augmented `tools/call` maps transport faults through the one error
table (`hub.calls.errors.forward_error`), as a plain call does: a lost connection is `unavailable` (here a
write: its outcome unknown), an HTTP 503 `unavailable` and a 429 `rate_limited`, each with
`retry_after_s`, and the breaker counts the server's failures. `tasks/*` requests map theirs the same
way (as the JSON-RPC error whose `data` is the hub's error), a server's own answer passing as it is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from hub.config import parse_config
from hub.downstream.http_status import HttpStatus
from hub.frontends.server import build_server
from hub.hub import Hub

pytestmark = pytest.mark.anyio

TASKS = {"module": "tests.fixtures.task_server:server", "protocol": "legacy",
         "breaker": {"failure_threshold": 3, "cooldown_s": 60}}


@asynccontextmanager
async def hub_and_client(tmp_path: Path) -> AsyncIterator[tuple[Hub, Client]]:
    hub = Hub(parse_config({"hub": {"data_dir": str(tmp_path / "data")}, "mcpServers": {"t": TASKS}}))
    async with hub:
        with anyio.fail_after(30):
            async with Client(build_server(hub), mode="legacy") as client:
                yield hub, client


async def raw(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    session = client.session
    data: dict[str, Any] = {"method": method, "params": params}
    opts: dict[str, Any] = {}
    session._stamp(data, opts)  # noqa: SLF001
    return await session._dispatcher.send_raw_request(method, data["params"], opts)  # noqa: SLF001


async def inject(hub: Hub, monkeypatch: pytest.MonkeyPatch, faults: dict[str, MCPError]) -> None:
    """The hub's requests to the task server fail with `faults[method]` (a task-augmented call: key
    "task"), as its transport would fail them; the client's own requests to the hub pass."""
    async with hub.downstreams["t"].session() as downstream:
        kind = type(downstream.session._dispatcher)  # noqa: SLF001
    original = kind.send_raw_request

    async def faulty(self: Any, method: str, params: Any, opts: Any = None) -> Any:
        params = params or {}
        key = "task" if method == "tools/call" and params.get("name") == "research" else method
        if key in faults and (method != "tools/call" or "task" in params) and params.get("taskId", "").find(":") < 0:
            raise faults[key]
        return await original(self, method, params, opts)

    monkeypatch.setattr(kind, "send_raw_request", faulty)


def http(status: int, after: float | None) -> MCPError:
    return MCPError(code=types.INTERNAL_ERROR, message=f"HTTP {status}",
                    data=HttpStatus(status=status, retry_after_s=after).model_dump(exclude_none=True))


async def start(client: Client) -> dict[str, Any]:
    answer = await raw(client, "tools/call", {"name": "t__research", "arguments": {"topic": "owls"}, "task": {"ttl": 60_000}})
    assert answer.get("isError") is True, answer
    return answer["structuredContent"]


async def test_task_creation_faults_read_as_for_a_plain_call_and_open_the_breaker(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    async with hub_and_client(tmp_path) as (hub, client):
        faults: dict[str, MCPError] = {}
        await inject(hub, monkeypatch, faults)

        faults["task"] = http(503, 7)
        busy = await start(client)
        assert busy["code"] == "unavailable" and busy["retryable"] is True and busy["retry_after_s"] == 7, busy
        assert busy["details"] == {"server": "t", "http_status": 503}, busy

        faults["task"] = http(429, 3)
        limited = await start(client)
        assert limited["code"] == "rate_limited" and limited["retryable"] is True and limited["retry_after_s"] == 3, limited

        faults["task"] = MCPError(code=types.CONNECTION_CLOSED, message="Connection closed")
        lost = await start(client)
        assert lost["code"] == "unavailable" and "lost the connection to server 't'" in lost["message"], lost
        assert lost["retryable"] is False and lost["details"]["outcome"] == "unknown", lost  # a write sent: unknown

        faults["task"] = http(503, 1)  # 429 is no verdict against the server: the lost call and two 503s open it
        for _ in range(2):
            assert (await start(client))["details"]["http_status"] == 503
        refused = await start(client)
        assert refused["code"] == "unavailable" and "circuit breaker open" in refused["message"], refused


async def test_tasks_requests_map_transport_faults_and_pass_the_servers_answers(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    async with hub_and_client(tmp_path) as (hub, client):
        created = await raw(client, "tools/call", {"name": "t__research", "arguments": {"topic": "owls"},
                                                   "task": {"ttl": 60_000}})
        task_id = created["task"]["taskId"]
        faults: dict[str, MCPError] = {}
        await inject(hub, monkeypatch, faults)

        faults["tasks/get"] = http(503, 4)
        with pytest.raises(MCPError) as busy:
            await raw(client, "tasks/get", {"taskId": task_id})
        data = busy.value.error.data
        assert data["code"] == "unavailable" and data["retry_after_s"] == 4 and data["details"]["http_status"] == 503, data

        faults["tasks/get"] = MCPError(code=types.INVALID_PARAMS, message="task not found: t1")
        with pytest.raises(MCPError) as answered:  # the server's own answer, as it sent it
            await raw(client, "tasks/get", {"taskId": task_id})
        assert answered.value.code == types.INVALID_PARAMS and "task not found" in answered.value.error.message
