"""Every request the hub forwards for a client has a deadline, not only `tools/call`
(`hub.downstream.request_deadline`; outside review recheck15 #5, #6): a read, a prompt, a completion or
a `tasks/*` request a server never answers is answered -32001 `timeout` at its deadline, naming the
server and the setting to raise, and cancelled downstream; an in-process server's `def` resource or
prompt, blocking a worker thread no cancel interrupts, is answered at its deadline too. Before, each
waited for as long as the client did (the read of a hung stdio server, for ever)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from hub.config import parse_config
from hub.hub import Hub
from tests.conftest import FIXTURES, PY
from tests.fixtures import inproc_server

pytestmark = pytest.mark.anyio

HUNG = str(FIXTURES / "hung_requests_server.py")


class Connection:
    """A client connection, as the task relay keys its tasks (any object that can be weakly referenced)."""


def hung_hub(tmp_path: Path, hub: dict[str, Any], server: dict[str, Any] | None = None) -> Hub:
    config = parse_config({"hub": {"data_dir": str(tmp_path / "data"), **hub},
                           "mcpServers": {"h": {"command": PY, "args": [HUNG, str(tmp_path / "cancels")], **(server or {})}}})
    return Hub(config)


async def timed_out(request: Callable[[], Awaitable[Any]]) -> tuple[MCPError, float]:
    """The JSON-RPC error `request` ended with, and when (it must end well before the test's own limit)."""
    started = anyio.current_time()
    with anyio.fail_after(10), pytest.raises(MCPError) as caught:
        await request()
    return caught.value, anyio.current_time() - started


def assert_timeout(error: MCPError, method: str, setting: str) -> None:
    data = error.error.data
    assert error.code == types.REQUEST_TIMEOUT, error.error
    assert isinstance(data, dict) and data["code"] == "timeout" and data["retryable"] is True, data
    assert data["details"]["server"] in error.error.message and data["details"]["method"] == method, data
    assert f"raise {setting}" in error.error.message, error.error.message


async def cancelled_downstream(tmp_path: Path, method: str) -> None:
    """Wait until the server got `notifications/cancelled` for its `method` request."""
    cancels = tmp_path / "cancels"
    with anyio.fail_after(10):
        while not (cancels.exists() and method in cancels.read_text().split()):
            await anyio.sleep(0.02)


@pytest.mark.parametrize("method", ["resources/read", "prompts/get", "completion/complete"])
async def test_a_read_prompt_or_completion_of_a_hung_server_times_out_and_is_cancelled(tmp_path: Path, method: str) -> None:
    requests: dict[str, Callable[[Hub], Awaitable[Any]]] = {
        "resources/read": lambda hub: hub.read_resource("mcphub://h/h://x"),
        "prompts/get": lambda hub: hub.get_prompt("h__p", {}),
        "completion/complete": lambda hub: hub.complete(types.PromptReference(type="ref/prompt", name="h__p"),
                                                       {"name": "a", "value": ""}, None),
    }
    async with hung_hub(tmp_path, {"timeout_s": 0.5, "max_timeout_s": 1}) as hub:
        error, elapsed = await timed_out(lambda: requests[method](hub))
        assert_timeout(error, method, "hub.timeout_s")
        assert 0.4 < elapsed < 5, elapsed
        await cancelled_downstream(tmp_path, method)


async def test_the_servers_own_timeout_is_the_deadline_and_named(tmp_path: Path) -> None:
    async with hung_hub(tmp_path, {"timeout_s": 30}, {"timeout_s": 0.4}) as hub:
        error, elapsed = await timed_out(lambda: hub.read_resource("mcphub://h/h://x"))
        assert_timeout(error, "resources/read", "mcpServers.h.timeout_s")
        assert elapsed < 5, elapsed


async def test_tasks_get_has_the_idle_deadline_and_tasks_result_the_hard_one(tmp_path: Path) -> None:
    """`tasks/result` waits for the task to end: it is held to `max_timeout_s`, and says the task runs on."""
    async with hung_hub(tmp_path, {"timeout_s": 30}, {"timeout_s": 0.3, "max_timeout_s": 0.9}) as hub:
        tasks, connection, local = hub.request_relay.tasks, Connection(), hub.access.local
        created = await tasks.call(connection, local, "h__job", {}, {"ttl": 60_000})
        exposed = created["task"]["taskId"]
        error, elapsed = await timed_out(lambda: tasks.forward(connection, local, "tasks/get", exposed))
        assert_timeout(error, "tasks/get", "mcpServers.h.timeout_s")
        await cancelled_downstream(tmp_path, "tasks/get")
        error, elapsed = await timed_out(lambda: tasks.forward(connection, local, "tasks/result", exposed))
        assert_timeout(error, "tasks/result", "mcpServers.h.max_timeout_s")
        assert elapsed > 0.8 and "the task keeps running" in error.error.message, (elapsed, error.error.message)


@pytest.mark.parametrize("method", ["resources/read", "prompts/get"])
async def test_an_in_process_def_resource_or_prompt_blocking_its_thread_times_out(tmp_path: Path, method: str) -> None:
    """A plain `def` resource or prompt runs in a worker thread no cancel interrupts: the read waited for
    the thread (6 s under a 1 s deadline, answered as a success). Now it answers `timeout` at its deadline,
    and the server serves other requests meanwhile."""
    inproc_server.RELEASE.clear()
    config = parse_config({"hub": {"data_dir": str(tmp_path), "timeout_s": 0.5, "max_timeout_s": 1},
                           "mcpServers": {"m": {"module": "tests.fixtures.inproc_server:server"}}})
    try:
        async with Hub(config) as hub:
            request = (lambda: hub.read_resource("mcphub://m/blocked://data")) if method == "resources/read" \
                else (lambda: hub.get_prompt("m__blocked_prompt", {}))
            error, _ = await timed_out(request)  # the handler itself would block for 60 s
            assert_timeout(error, method, "hub.timeout_s")
            assert inproc_server.RELEASE.is_set() is False  # answered while the thread still waits
            assert (await hub.route_call("m__multiply", {"a": 2, "b": 3})).structured_content == {"result": 6.0}
    finally:
        inproc_server.RELEASE.set()  # frees the worker thread


async def test_a_timed_out_read_gets_a_stdio_server_pinged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """As a timed-out call does (`hub.downstream.liveness`): a server that answers the ping is left running."""
    caplog.set_level(logging.INFO)
    async with hung_hub(tmp_path, {"timeout_s": 0.5, "max_timeout_s": 1}) as hub:
        await timed_out(lambda: hub.read_resource("mcphub://h/h://x"))
        with anyio.fail_after(30):
            while not any("answered a ping after a call timed out" in r.getMessage() for r in caplog.records):
                await anyio.sleep(0.02)  # waiting for the state "pinged, and it answered"


@pytest.mark.parametrize("session", ["shared", "per_client"])
async def test_a_subscribe_to_a_hung_server_times_out_at_the_servers_deadline(tmp_path: Path, session: str) -> None:
    """`resources/subscribe` had a fixed 10 s bound, whatever the server's `timeout_s`, and its expiry
    reached the client as a bare `TimeoutError`. Now it is the server's deadline and the `timeout` error."""
    async with hung_hub(tmp_path, {"timeout_s": 30}, {"timeout_s": 0.4, "session": session}) as hub:
        connection = Connection()
        error, elapsed = await timed_out(
            lambda: hub.subscriptions.subscribe(connection, "mcphub://h/h://x", hub.access.local))  # type: ignore[arg-type]
        assert_timeout(error, "resources/subscribe", "mcpServers.h.timeout_s")
        assert elapsed < 5, elapsed
        await cancelled_downstream(tmp_path, "resources/subscribe")


async def test_tasks_list_asks_about_its_tasks_at_once(tmp_path: Path) -> None:
    """`tasks/list` asked each task's server in turn: six tasks on a hung server took six deadlines. Now
    they are asked at once: one deadline, and a task not answered in time is left out, not forgotten."""
    async with hung_hub(tmp_path, {"timeout_s": 30}, {"timeout_s": 0.6}) as hub:
        tasks, connection, local = hub.request_relay.tasks, Connection(), hub.access.local
        created = [(await tasks.call(connection, local, "h__job", {}, {"ttl": 60_000}))["task"]["taskId"]
                   for _ in range(6)]
        assert len(set(created)) == 6, created
        started = anyio.current_time()
        with anyio.fail_after(10):
            listed = await tasks.list(connection, local)
        elapsed = anyio.current_time() - started
        assert listed == {"tasks": []} and 0.5 < elapsed < 2.5, (listed, elapsed)
        error, _ = await timed_out(lambda: tasks.forward(connection, local, "tasks/get", created[-1]))
        assert_timeout(error, "tasks/get", "mcpServers.h.timeout_s")  # still known to the hub


async def test_progress_moves_a_reads_deadline_on_up_to_the_hard_limit(tmp_path: Path) -> None:
    """The server's progress on a read was passed on but did not extend its deadline: a read reporting
    progress every 0.2 s was cut at `timeout_s` as if the server were hung. Now progress moves it on, as
    for a call, never past `max_timeout_s` (named then)."""
    config = parse_config({"hub": {"data_dir": str(tmp_path), "timeout_s": 0.6, "max_timeout_s": 1.6},
                           "mcpServers": {"m": {"module": "tests.fixtures.inproc_server:server"}}})
    reports: list[float] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        reports.append(value)

    async with Hub(config) as hub:
        with anyio.fail_after(10):
            read = await hub.read_resource("mcphub://m/progressing://5", progress=progress)  # ~1 s, progress each 0.2 s
        assert read.contents[0].text == "DONE" and reports == [1, 2, 3, 4, 5]  # type: ignore[union-attr]
        error, elapsed = await timed_out(lambda: hub.read_resource("mcphub://m/progressing://5"))  # no progress asked
        assert_timeout(error, "resources/read", "hub.timeout_s")
        assert elapsed < 1.0, elapsed
        error, elapsed = await timed_out(lambda: hub.read_resource("mcphub://m/progressing://20", progress=progress))
        assert_timeout(error, "resources/read", "hub.max_timeout_s")
        assert 1.5 < elapsed < 4, elapsed
