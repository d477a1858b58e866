"""Helpers of the relay tests that run the hub with real clients (tests/hub/relay/test_relay_per_client.py,
tests/hub/relay/test_relay_scope.py, tests/hub/relay/test_relay_downstream_input.py): what a client heard and was asked,
raw requests the SDK client has no API for, and the per-session fixture server."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.extension import ClientExtension, NotificationBinding
from pydantic import BaseModel, ConfigDict

from tests.conftest import PY, ROOT, Proc, free_port, wait_for_port

RELAY_FIXTURE = str(Path(__file__).parent / "fixtures" / "session_relay_server.py")


def start_relay_server(procs: list[Proc]) -> str:
    """Start `tests/fixtures/session_relay_server.py` on a free port; its MCP URL."""
    port = free_port()
    procs.append(Proc([PY, RELAY_FIXTURE, str(port)]))
    wait_for_port(port)
    return f"http://127.0.0.1:{port}/mcp"


def create_key(data_dir: Path, name: str, scopes: str) -> str:
    """`mcp-hub keys create`: an API key with `scopes` (space-separated) in the hub's data dir."""
    done = subprocess.run([PY, "-m", "hub.cli", "keys", "create", "--data-dir", str(data_dir), "--name", name,
                           "--scopes", scopes], capture_output=True, text=True, cwd=ROOT, check=True)
    return done.stdout.strip()


async def raw(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A request the SDK client has no API for (task-augmented calls, `tasks/*`), stamped as it stamps any."""
    session = client.session
    data: dict[str, Any] = {"method": method, "params": params}
    opts: dict[str, Any] = {}
    session._stamp(data, opts)  # noqa: SLF001 — the SDK's own envelope for this session
    return await session._dispatcher.send_raw_request(method, data["params"], opts)  # type: ignore[no-any-return]  # noqa: SLF001


async def open_sessions(downstream: str) -> int:
    """Sessions the fixture server has open, not counting the one this question opens."""
    async with Client(downstream, mode="legacy") as direct:
        return answer(await direct.call_tool("live_sessions", {})) - 1  # type: ignore[no-any-return]


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 30) -> None:
    """Wait (bounded, generously) for a state the hub reaches on its own, asking again every 50 ms."""
    with anyio.fail_after(within_s):
        while not await check():
            await anyio.sleep(0.05)


def answer(result: types.CallToolResult) -> Any:
    assert not result.is_error, result
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


class TaskStatus(BaseModel):
    model_config = ConfigDict(extra="allow")
    taskId: str  # noqa: N815 — the wire name
    status: str


class Completions:
    """A client's message handler keeping the ids of the `notifications/elicitation/complete` it heard."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.done = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ElicitCompleteNotification):
            self.ids.append(message.params.elicitation_id)
            self.done.set()


class Heard:
    """What one client received: resource updates, log messages, task status notifications."""

    def __init__(self) -> None:
        self.updated: list[str] = []
        self.logs: list[tuple[str | None, Any]] = []
        self.status: list[tuple[str, str]] = []
        self.changed = anyio.Event()

    def _note(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    async def on_message(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.updated.append(str(message.params.uri))
            self._note()

    async def on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append((params.logger, params.data))
        self._note()

    async def on_status(self, params: TaskStatus) -> None:
        self.status.append((params.taskId, params.status))
        self._note()

    async def until(self, check: Callable[[], bool]) -> None:
        with anyio.fail_after(30):
            while not check():
                await self.changed.wait()


class StatusWatcher(ClientExtension):
    """Observes `notifications/tasks/status` (not a core method: the SDK surfaces it only to a binding)."""

    identifier = "dev.mcp-hub-tests/task-status"

    def __init__(self, heard: Heard) -> None:
        self._heard = heard

    def notifications(self) -> list[NotificationBinding[Any]]:
        return [NotificationBinding(method="notifications/tasks/status", params_type=TaskStatus, handler=self._heard.on_status)]


class Asked:
    """A client's sampling / elicitation / roots callbacks, counting what reached it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.kinds: list[str] = []

    async def sampling(self, ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        self.kinds.append("sampling")
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text=f"I am {self.name}"),
                                         model="test")

    async def elicitation(self, ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.kinds.append("elicitation")
        return types.ElicitResult(action="accept", content={"pick": self.name})

    async def roots(self, ctx: Any) -> types.ListRootsResult:
        self.kinds.append("roots")
        return types.ListRootsResult(roots=[types.Root(uri=f"file:///{self.name}")])
