"""Issue #19, per-client sessions everywhere: for a `per_client` server, resource subscriptions,
`logging/setLevel`, `tasks/*` and `notifications/tasks/status` use the CALLER's own downstream
session, and what one client's session sends reaches only that client; an upstream client that
disconnects closes its downstream sessions at once.

The downstream is a real Streamable HTTP server keeping subscriptions, log level and tasks per
session (`tests/fixtures/session_relay_server.py`); the hub runs as `mcp-hub serve`; the clients are
the SDK's, two at a time, each with its own session to the hub.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.extension import ClientExtension, NotificationBinding
from mcp.client.sse import sse_client
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ConfigDict

from tests.conftest import PY, Proc, free_port, start_hub_http, wait_for_port, write_config
from tests.test_per_client_sessions import live_sessions, wait_until
from tests.test_relay_tasks import raw

pytestmark = pytest.mark.anyio

FIXTURE = str(Path(__file__).parent / "fixtures" / "session_relay_server.py")
URI = "mcphub://st/note://a"


def hub_with(tmp_path: Path, procs: list[Proc], transport: str = "http") -> tuple[str, str]:
    """(hub URL, downstream URL): the per-session server aggregated as namespace `st` (per_client: HTTP)."""
    port = free_port()
    procs.append(Proc([PY, FIXTURE, str(port)]))
    wait_for_port(port)
    downstream = f"http://127.0.0.1:{port}/mcp"
    config = write_config(tmp_path, {"st": {"url": downstream, "protocol": "legacy"}}, {"data_dir": str(tmp_path / "data")})
    return start_hub_http(procs, config, transport), downstream


class _Status(BaseModel):
    model_config = ConfigDict(extra="allow")
    taskId: str  # noqa: N815 — the wire name
    status: str


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

    async def on_status(self, params: _Status) -> None:
        self.status.append((params.taskId, params.status))
        self._note()

    async def until(self, check: Callable[[], bool]) -> None:
        with anyio.fail_after(30):
            while not check():
                await self.changed.wait()


class _StatusWatcher(ClientExtension):
    """Observes `notifications/tasks/status` (not a core method: the SDK surfaces it only to a binding)."""

    identifier = "dev.mcp-hub-tests/task-status"

    def __init__(self, heard: Heard) -> None:
        self._heard = heard

    def notifications(self) -> list[NotificationBinding[Any]]:
        return [NotificationBinding(method="notifications/tasks/status", params_type=_Status, handler=self._heard.on_status)]


def client(url: str, heard: Heard) -> Client:
    return Client(url, mode="legacy", message_handler=heard.on_message, logging_callback=heard.on_log,
                  extensions=[_StatusWatcher(heard)])


def answer(result: types.CallToolResult) -> Any:
    assert not result.is_error, result
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


async def test_subscriptions_log_levels_and_tasks_use_the_callers_own_session(tmp_path: Path, procs: list) -> None:
    url, _ = hub_with(tmp_path, procs)
    heard_a, heard_b = Heard(), Heard()
    with anyio.fail_after(120):
        async with client(url, heard_a) as a, client(url, heard_b) as b:
            # Subscriptions: each client's own session is subscribed; its updates reach it alone.
            await a.subscribe_resource(URI)
            await b.subscribe_resource(URI)
            assert answer(await a.call_tool("st__touch", {"x": "a"})) is True  # A's session holds A's subscription
            await heard_a.until(lambda: heard_a.updated == [URI])
            assert answer(await b.call_tool("st__touch", {"x": "a"})) is True
            await heard_b.until(lambda: heard_b.updated == [URI])
            assert heard_a.updated == [URI]  # B's update never reached A
            await a.unsubscribe_resource(URI)
            assert answer(await a.call_tool("st__touch", {"x": "a"})) is False  # unsubscribed on A's own session

            # logging/setLevel reaches the caller's own session; its messages go to that client only.
            await a.set_logging_level("info")
            await b.set_logging_level("info")
            assert answer(await a.call_tool("st__say", {"text": "from A"})) is True
            await heard_a.until(lambda: heard_a.logs == [("st/fixture", "from A")])
            assert answer(await b.call_tool("st__say", {"text": "from B"})) is True
            await heard_b.until(lambda: heard_b.logs == [("st/fixture", "from B")])
            assert heard_a.logs == [("st/fixture", "from A")]

            # Tasks are created on, and asked of, the creator's own session.
            created = (await raw(a, "tools/call", {"name": "st__job", "arguments": {}, "task": {"ttl": 60_000}}))["task"]
            exposed = created["taskId"]
            server_id = exposed.removeprefix("st:")
            assert exposed.startswith("st:") and answer(await a.call_tool("st__my_tasks", {})) == [server_id]
            assert answer(await b.call_tool("st__my_tasks", {})) == []
            assert (await raw(a, "tasks/get", {"taskId": exposed}))["status"] == "working"
            assert [t["taskId"] for t in (await raw(a, "tasks/list", {}))["tasks"]] == [exposed]
            with pytest.raises(MCPError):
                await raw(b, "tasks/get", {"taskId": exposed})  # not B's task

            # notifications/tasks/status: to the owner, with the id it knows; never to another client.
            assert answer(await a.call_tool("st__finish", {"task": server_id})) == "finished"
            await heard_a.until(lambda: heard_a.status == [(exposed, "completed")])
            done = await raw(a, "tasks/result", {"taskId": exposed})
            assert done["content"][0]["text"] == f"{server_id} done"
            assert heard_b.status == [] and heard_b.updated == [URI] and heard_b.logs == [("st/fixture", "from B")]


async def test_a_legacy_sse_client_that_disconnects_closes_its_downstream_session_at_once(tmp_path: Path, procs: list) -> None:
    url, downstream = hub_with(tmp_path, procs)
    sse_url = url.removesuffix("/mcp") + "/sse"
    with anyio.fail_after(120):
        async with Client(sse_client(sse_url), mode="legacy") as a:
            await a.call_tool("st__my_tasks", {})
            assert await live_sessions(downstream) == 2  # the hub's shared (catalog) session + A's own

        async def closed() -> bool:
            return await live_sessions(downstream) == 1

        await wait_until(closed)
