"""A server's progress reaches the client on every kind of request the hub forwards (outside review relay18):
a task-augmented `tools/call` keeps the client's `progressToken` for the task's lifetime (D3: the hub
dropped it, and the task's progress never arrived), and `prompts/get`, `resources/read` and
`completion/complete` pass their progress on (D4: none of it arrived). Downstream:
tests/hub/relay/progress_server.py in-process; clients are SDK clients connected in memory to the hub."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from hub.config import parse_config
from hub.frontends.server import build_server
from hub.hub import Hub
from tests.relay_support import raw

pytestmark = pytest.mark.anyio

PROGRESS = {"module": "tests.hub.relay.progress_server:server", "protocol": "legacy"}


class Progress:
    """The `notifications/progress` one client received outside a request's own callback."""

    def __init__(self) -> None:
        self.heard: list[dict[str, Any]] = []
        self.changed = anyio.Event()

    async def on_message(self, message: Any) -> None:
        if isinstance(message, types.ProgressNotification):
            self.heard.append(message.params.model_dump(by_alias=True, exclude_none=True))
            self.changed.set()
            self.changed = anyio.Event()

    async def until(self, count: int) -> None:
        with anyio.fail_after(30):
            while len(self.heard) < count:
                await self.changed.wait()


@asynccontextmanager
async def hub_client(tmp_path: Path, **callbacks: Any) -> AsyncIterator[Client]:
    config = parse_config({"hub": {"data_dir": str(tmp_path / "data")}, "mcpServers": {"p": PROGRESS}})
    with anyio.fail_after(60):
        async with Hub(config) as hub, Client(build_server(hub), mode="legacy", **callbacks) as client:
            yield client


async def test_a_tasks_progress_reaches_its_client_with_the_clients_token(tmp_path: Path) -> None:
    progress = Progress()
    async with hub_client(tmp_path, message_handler=progress.on_message) as client:
        created = await raw(client, "tools/call", {"name": "p__job", "arguments": {}, "task": {"ttl": 60_000},
                                                   "_meta": {"progressToken": "tokA"}})
        assert created["task"]["taskId"] == "p:j1"
        answer = await raw(client, "tasks/result", {"taskId": "p:j1"})
        assert json.loads(answer["content"][0]["text"])["token_seen"] is not None, "the server was given no token"
        await progress.until(3)
        assert [(p["progressToken"], p["progress"], p["message"]) for p in progress.heard] == [
            ("tokA", 1, "task step 1"), ("tokA", 2, "task step 2"), ("tokA", 3, "task step 3")]


async def test_a_task_created_without_a_token_reports_no_progress(tmp_path: Path) -> None:
    progress = Progress()
    async with hub_client(tmp_path, message_handler=progress.on_message) as client:
        await raw(client, "tools/call", {"name": "p__job", "arguments": {}, "task": {"ttl": 60_000}})
        answer = await raw(client, "tasks/result", {"taskId": "p:j1"})
        assert json.loads(answer["content"][0]["text"])["token_seen"] is None  # the hub asks for none itself
        assert progress.heard == []


async def test_progress_on_tasks_result_reaches_the_client(tmp_path: Path) -> None:
    """A sibling of D4: `tasks/result`'s own progress token was dropped too."""
    steps: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        steps.append((value, total, message))

    async with hub_client(tmp_path) as client:
        await raw(client, "tools/call", {"name": "p__job", "arguments": {}, "task": {"ttl": 60_000}})
        session = client.session
        data: dict[str, Any] = {"method": "tasks/result", "params": {"taskId": "p:j1"}}
        opts: dict[str, Any] = {}
        session._stamp(data, opts)  # noqa: SLF001 — as `raw`, with a progress callback
        await session._dispatcher.send_raw_request("tasks/result", data["params"], {**opts, "on_progress": on_progress})  # noqa: SLF001
    assert steps == [(1, 1, "result ready")]


@pytest.mark.parametrize("kind", ["prompts/get", "resources/read", "completion/complete"])
async def test_progress_on_a_prompt_read_or_completion_reaches_the_client(tmp_path: Path, kind: str) -> None:
    steps: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        steps.append((value, total, message))

    request: Any = {
        "prompts/get": types.GetPromptRequest(params=types.GetPromptRequestParams(name="p__steps")),
        "resources/read": types.ReadResourceRequest(params=types.ReadResourceRequestParams(uri="mcphub://p/steps://r")),
        "completion/complete": types.CompleteRequest(params=types.CompleteRequestParams(
            ref=types.PromptReference(type="ref/prompt", name="p__steps"),
            argument=types.CompletionArgument(name="a", value="d"))),
    }[kind]
    result_type: Any = {"prompts/get": types.GetPromptResult, "resources/read": types.ReadResourceResult,
                        "completion/complete": types.CompleteResult}[kind]
    async with hub_client(tmp_path) as client:
        if kind == "resources/read":
            listed = await client.list_resources()
            assert [str(r.uri) for r in listed.resources] == ["mcphub://p/steps://r"], listed
        await client.session.send_request(request, result_type, progress_callback=on_progress)
    assert steps == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
