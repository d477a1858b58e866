"""Issue #19: what a server sends toward its client passes through the hub — sampling, elicitation,
roots (`hub.relay.requests`) and log messages (`hub.relay.logs`).

The downstream is `@modelcontextprotocol/server-everything` (npm, pinned in tools/setup.sh); the
client is the SDK's, with sampling, elicitation, roots and logging callbacks, talking to the hub
over stdio (2025-11-25). Skips without the npm peers unless MCP_HUB_REQUIRE_INTEROP=1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from hub.audit.log import query
from tests.conftest import ROOT
from tests.interop.test_interop import NODE_MODULES, need, node_env
from tests.hub.relay.test_relay_tasks import raw

pytestmark = [pytest.mark.interop, pytest.mark.slow, pytest.mark.anyio]

ROOTS = [types.Root(uri="file:///tmp/relay-root", name="relay-root")]


class Callbacks:
    """What the client answers, and what it was asked and told."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.logs: list[types.LoggingMessageNotificationParams] = []
        self.logged = anyio.Event()

    async def sampling(self, ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        self.asked.append("sampling")
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="sampled-by-client"),
                                         model="test-model")

    async def elicitation(self, ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append("elicitation")
        return types.ElicitResult(action="decline")

    async def roots(self, ctx: Any) -> types.ListRootsResult:
        self.asked.append("roots")
        return types.ListRootsResult(roots=ROOTS)

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params)
        self.logged.set()

    def client(self, server: StdioServerParameters, capable: bool = True) -> Client:
        extra: dict[str, Any] = (
            {"sampling_callback": self.sampling, "elicitation_callback": self.elicitation, "list_roots_callback": self.roots}
            if capable else {}
        )
        return Client(server, mode="legacy", logging_callback=self.log, **extra)


def everything() -> str:
    return str(need(NODE_MODULES / ".bin" / "mcp-server-everything"))


def direct_params() -> StdioServerParameters:
    return StdioServerParameters(command=everything(), args=["stdio"], env=node_env())


def hub_params(tmp_path: Path) -> StdioServerParameters:
    env = node_env()
    config = tmp_path / "hub.json"
    config.write_text(json.dumps({
        "hub": {"list_wait_s": 60, "data_dir": str(tmp_path / "data")},
        "mcpServers": {"ev": {"command": everything(), "args": ["stdio"], "env": {"PATH": env["PATH"]}}},
    }))
    return StdioServerParameters(command=sys.executable, args=["-m", "hub.cli", "serve", "--config", str(config)],
                                 env=env, cwd=str(ROOT))


@asynccontextmanager
async def connected(client: Client) -> AsyncIterator[Client]:
    with anyio.fail_after(120):
        async with client:
            yield client


def text_of(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_every_tool_listed_direct_is_listed_and_callable_through_the_hub(tmp_path: Path) -> None:
    direct_cb, hub_cb = Callbacks(), Callbacks()
    async with connected(direct_cb.client(direct_params())) as direct:
        # Task-only tools (taskSupport "required") too: tasks are relayed (hub.relay.tasks, tests/hub/relay/test_relay_tasks.py).
        direct_names = sorted(t.name for t in (await direct.list_tools()).tools)
    async with connected(hub_cb.client(hub_params(tmp_path))) as through:
        hub_names = sorted(t.name for t in (await through.list_tools()).tools)
        assert hub_names == [f"ev__{name}" for name in direct_names]  # nothing vanished behind the hub
        assert {"trigger-sampling-request", "trigger-elicitation-request", "get-roots-list",
                "simulate-research-query"} <= set(direct_names)

        sampled = await through.call_tool("ev__trigger-sampling-request", {"prompt": "hello"})
        assert not sampled.is_error and "sampled-by-client" in text_of(sampled)
        rooted = await through.call_tool("ev__get-roots-list", {})
        assert not rooted.is_error and "file:///tmp/relay-root" in text_of(rooted)
        elicited = await through.call_tool("ev__trigger-elicitation-request", {})
        assert not elicited.is_error and "decline" in text_of(elicited).lower()
    assert {"sampling", "roots", "elicitation"} <= set(hub_cb.asked)

    rows = query(tmp_path / "data", principal="local")
    relayed = {(r["tool"], r["server"], r["outcome"]) for r in rows if r["tool"].startswith("relay:")}
    assert {("relay:sampling", "ev", "ok"), ("relay:roots", "ev", "ok"), ("relay:elicitation", "ev", "ok")} <= relayed


async def test_sampling_is_refused_for_a_client_that_did_not_offer_it(tmp_path: Path) -> None:
    callbacks = Callbacks()
    async with connected(callbacks.client(hub_params(tmp_path), capable=False)) as through:
        result = await through.call_tool("ev__trigger-sampling-request", {"prompt": "hello"})
        assert result.is_error or "sampled-by-client" not in text_of(result)
    assert callbacks.asked == []
    rows = query(tmp_path / "data", tool="relay:sampling")
    assert rows and rows[-1]["outcome"] == "denied" and rows[-1]["server"] == "ev"


async def test_set_level_fans_out_and_log_messages_come_back_tagged_with_the_server(tmp_path: Path) -> None:
    callbacks = Callbacks()
    async with connected(callbacks.client(hub_params(tmp_path))) as through:
        assert through.server_capabilities.logging is not None  # the hub advertises logging now
        await through.set_logging_level("debug")  # was -32601
        toggled = await through.call_tool("ev__toggle-simulated-logging", {})
        assert not toggled.is_error
        with anyio.fail_after(60):
            while not any(m.logger and m.logger.split("/")[0] == "ev" for m in callbacks.logs):
                callbacks.logged = anyio.Event()
                await callbacks.logged.wait()
    tagged = [m for m in callbacks.logs if m.logger and m.logger.split("/")[0] == "ev"]
    assert all(m.level in {"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"} for m in tagged)


async def test_server_everythings_task_tool_runs_as_a_task_through_the_hub(tmp_path: Path) -> None:
    """`simulate-research-query` is task-only: created through the hub, polled, its result fetched
    (the server takes four one-second stages; `tasks/result` blocks until they are done)."""
    async with connected(Callbacks().client(hub_params(tmp_path), capable=False)) as through:
        assert through.server_capabilities.tasks is not None
        # Listed even when the server is still starting (its listing remembered from an earlier start).
        assert "ev__simulate-research-query" in [tool.name for tool in (await through.list_tools()).tools]
        created = await raw(through, "tools/call", {"name": "ev__simulate-research-query",
                                                    "arguments": {"topic": "owls"}, "task": {"ttl": 60_000}})
        task_id = created["task"]["taskId"]
        assert task_id.startswith("ev:") and created["task"]["status"] == "working"
        assert (await raw(through, "tasks/get", {"taskId": task_id}))["taskId"] == task_id
        listed = await raw(through, "tasks/list", {})
        assert [t["taskId"] for t in listed["tasks"]] == [task_id]
        done = await raw(through, "tasks/result", {"taskId": task_id})
        assert "Research Report: owls" in done["content"][0]["text"]
        assert done["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": task_id}
        assert (await raw(through, "tasks/get", {"taskId": task_id}))["status"] == "completed"
    rows = query(tmp_path / "data", principal="local")
    assert ("ev__simulate-research-query", "ok") in {(r["tool"], r["outcome"]) for r in rows}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
