"""Issue #19 item 6: task-augmented `tools/call` and `tasks/get|list|result|cancel` through the hub
(`hub.relay.tasks`): exposed ids `<server>:<taskId>`, tasks owned per client connection, the
hub's access/validation/audit on the task-augmented call, `related-task` rewritten.

The downstream is `tests/fixtures/task_server.py` in-process (handshake era); clients are SDK clients
connected in memory to `build_server(hub)`. The SDK has no client API for task-augmented calls, so
those requests go out raw on the client session's dispatcher, stamped as the SDK stamps any request.
"""

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

from hub.audit.log import query
from hub.config import parse_config
from hub.hub import Hub
from hub.frontends.server import build_server

pytestmark = pytest.mark.anyio

TASKS = {"module": "tests.fixtures.task_server:server", "protocol": "legacy"}
NO_TASKS = {"module": "tests.fixtures.subscribing_server:server", "protocol": "legacy"}
RELATED = "io.modelcontextprotocol/related-task"


def hub_of(tmp_path: Path, **hub: Any) -> Hub:
    return Hub(parse_config({"hub": {"data_dir": str(tmp_path / "data"), **hub}, "mcpServers": {"t": TASKS, "n": NO_TASKS}}))


@asynccontextmanager
async def client_of(hub: Hub, **callbacks: Any) -> AsyncIterator[Client]:
    with anyio.fail_after(30):
        async with Client(build_server(hub), mode=callbacks.pop("mode", "legacy"), **callbacks) as client:
            yield client


async def raw(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A request the SDK client has no API for (task-augmented calls, `tasks/*`), stamped as it stamps any."""
    session = client.session
    data: dict[str, Any] = {"method": method, "params": params}
    opts: dict[str, Any] = {}
    session._stamp(data, opts)  # noqa: SLF001 — the SDK's own envelope for this session
    return await session._dispatcher.send_raw_request(method, data["params"], opts)  # noqa: SLF001


async def start_task(client: Client, name: str = "t__research", **arguments: Any) -> dict[str, Any]:
    return await raw(client, "tools/call", {"name": name, "arguments": {"topic": "owls", **arguments}, "task": {"ttl": 60_000}})


async def test_a_task_only_tool_is_listed_and_runs_as_a_task_through_the_hub(tmp_path: Path) -> None:
    async with hub_of(tmp_path) as hub:
        async with client_of(hub) as client:
            assert client.server_capabilities.tasks is not None and client.server_capabilities.tasks.requests is not None
            names = {t.name for t in (await client.list_tools()).tools}
            assert "t__research" in names  # its server takes tasks
            assert "n__only_as_task" not in names  # its server does not: nobody could call it

            created = await start_task(client)
            task = created["task"]
            assert task["taskId"] == "t:t1" and task["status"] == "working"
            got = await raw(client, "tasks/get", {"taskId": "t:t1"})
            assert (got["taskId"], got["status"]) == ("t:t1", "working")
            assert [t["taskId"] for t in (await raw(client, "tasks/list", {}))["tasks"]] == ["t:t1"]

            results: list[dict[str, Any]] = []

            async def wait_result() -> None:
                results.append(await raw(client, "tasks/result", {"taskId": "t:t1"}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_result)  # blocks until the task ends
                assert (await client.call_tool("t__release", {"task": "t1"})).is_error is not True
            assert results[0]["content"][0]["text"] == "researched owls"
            assert results[0]["_meta"][RELATED] == {"taskId": "t:t1"}
            assert (await raw(client, "tasks/get", {"taskId": "t:t1"}))["status"] == "completed"
    rows = query(tmp_path / "data", principal="local")
    assert ("t__research", "t", "ok") in {(r["tool"], r["server"], r["outcome"]) for r in rows}


async def test_a_task_belongs_to_the_connection_that_created_it(tmp_path: Path) -> None:
    async with hub_of(tmp_path) as hub:
        async with client_of(hub) as owner, client_of(hub) as other:
            await start_task(owner)
            answers = []
            for method, task_id in (("tasks/get", "t:t1"), ("tasks/cancel", "t:t1"), ("tasks/result", "t:t1"),
                                    ("tasks/get", "t:t999"), ("tasks/get", "t1")):
                with pytest.raises(MCPError) as refused:
                    await raw(other, method, {"taskId": task_id})
                assert refused.value.code == types.INVALID_PARAMS
                answers.append(refused.value.error.message.replace(repr(task_id), "<id>"))
            assert len(set(answers)) == 1  # another client's task reads exactly like one that never existed
            assert (await raw(other, "tasks/list", {}))["tasks"] == []

            cancelled = await raw(owner, "tasks/cancel", {"taskId": "t:t1"})
            assert (cancelled["taskId"], cancelled["status"]) == ("t:t1", "cancelled")
            with pytest.raises(MCPError) as again:  # the server's own error passes as it is
                await raw(owner, "tasks/cancel", {"taskId": "t:t1"})
            assert "terminal" in again.value.error.message
    relayed = {(r["tool"], r["outcome"]) for r in query(tmp_path / "data", principal="local")}
    assert ("relay:task_cancel", "ok") in relayed


async def test_the_task_augmented_call_passes_the_hubs_checks(tmp_path: Path) -> None:
    async with hub_of(tmp_path, auth={"stdio_scopes": ["n:write"]}) as hub:
        async with client_of(hub) as client:
            hidden = await start_task(client)  # a tool outside the caller's scopes: the unknown-tool answer
            assert hidden["isError"] is True and hidden["structuredContent"]["code"] == "not_found"
    async with hub_of(tmp_path) as hub:
        async with client_of(hub) as client:
            bad = await raw(client, "tools/call", {"name": "t__research", "arguments": {}, "task": {}})
            assert bad["isError"] is True and bad["structuredContent"]["code"] == "invalid_argument"
            plain = await raw(client, "tools/call", {"name": "t__plain", "arguments": {}, "task": {}})
            assert plain["content"][0]["text"] == "plain ran without a task"  # no task support: run normally
            optional = await start_task(client, "t__quick")
            assert optional["task"]["taskId"].startswith("t:")
    denied = {(r["tool"], r["outcome"]) for r in query(tmp_path / "data", principal="local")}
    assert ("t__research", "denied") in denied


async def test_a_request_during_tasks_result_reaches_the_caller_with_the_exposed_task_id(tmp_path: Path) -> None:
    asked: list[types.ElicitRequestParams] = []

    async def elicitation(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params)
        return types.ElicitResult(action="accept", content={"pick": "barn owls"})

    async with hub_of(tmp_path) as hub:
        async with client_of(hub, elicitation_callback=elicitation) as client:
            await start_task(client, ask=True)
            results: list[dict[str, Any]] = []

            async def wait_result() -> None:
                results.append(await raw(client, "tasks/result", {"taskId": "t:t1"}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_result)
                await client.call_tool("t__release", {"task": "t1"})
    assert results[0]["content"][0]["text"] == 'researched owls after accept: {"pick": "barn owls"}'
    assert asked[0].meta is not None and asked[0].meta[RELATED] == {"taskId": "t:t1"}  # type: ignore[literal-required]


async def test_a_2026_client_is_not_offered_task_only_tools(tmp_path: Path) -> None:
    async with hub_of(tmp_path) as hub:
        async with client_of(hub, mode="auto") as client:
            names = {t.name for t in (await client.list_tools()).tools}
    assert "t__quick" in names and "t__research" not in names
