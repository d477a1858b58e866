"""Direct dispatch to in-process tools (`hub.downstream.direct_tools`): which tools qualify, and
that a qualifying call really skips the server's runner while keeping the hub's policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import error_body
from mcp.server import MCPServer
from mcp.server.runner import ServerRunner

from hub.audit.log import query
from hub.config import parse_config
from hub.downstream.direct_tools import DirectTools
from hub.hub import Hub
from tests.fixtures import inproc_server

pytestmark = pytest.mark.anyio


def test_only_tools_the_runner_cannot_reach_qualify() -> None:
    direct = DirectTools(inproc_server.server)
    assert direct.qualifies("multiply") and direct.qualifies("root")
    assert not direct.qualifies("count")  # takes a Context: its progress needs the request
    assert not direct.qualifies("no_such_tool")

    async def passthrough(ctx: Any, call_next: Any) -> Any:
        return await call_next(ctx)

    watched = MCPServer("watched", middleware=[passthrough])
    watched.add_tool(lambda: "x", name="plain")
    assert not DirectTools(watched).qualifies("plain")  # the server's own middleware must see every call


@pytest.mark.parametrize("fast", [True, False])
async def test_a_qualifying_call_skips_the_runner_and_keeps_the_policies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    served: list[str] = []  # each request the in-process server's runner handled
    on_request = ServerRunner._on_request

    async def counting(self: ServerRunner, dctx: Any, method: str, params: Any) -> Any:
        served.append(method)
        return await on_request(self, dctx, method, params)

    monkeypatch.setattr(ServerRunner, "_on_request", counting)
    config = parse_config({
        "hub": {"fast_calls": fast, "data_dir": str(tmp_path)},
        "mcpServers": {"m": {"module": "tests.fixtures.inproc_server:server", "max_concurrency": 1}},
    })
    async with Hub(config) as hub:
        served.clear()  # discovery
        assert (await hub.route_call("m__multiply", {"a": 6, "b": 7})).structured_content == {"result": 42.0}
        assert served == ([] if fast else ["tools/call"])
        assert (await hub.route_call("m__count", {"n": 2})).structured_content == {"result": 2}
        assert served[-1:] == ["tools/call"]  # a tool taking a Context always goes through the runner
        refused = await hub.route_call("m__multiply", {"a": "six", "b": 7})  # the hub's argument check
        assert refused.is_error and error_body(refused)["code"] == "invalid_argument"
        crashed = await hub.route_call("m__root", {"x": -1})
        assert crashed.is_error and crashed.content[0].text == "Error executing tool root"
        stats = hub.downstreams["m"].stats
        assert stats.calls == 3 and stats.in_flight == 0
        assert hub.bulkheads.bulkhead("m").busy == 0  # the slot came back
        assert hub.audit_log is not None
        hub.audit_log.flush()
    outcomes = [(r["tool"], r["outcome"], r["error_code"]) for r in query(tmp_path)]
    assert outcomes == [("m__multiply", "ok", None), ("m__count", "ok", None), ("m__multiply", "error", "invalid_argument"),
                        ("m__root", "tool_error", None)]


@pytest.mark.parametrize(("fast", "tool"), [(True, "block"), (False, "block"), (True, "block_with_context")])
async def test_the_deadline_holds_for_a_tool_blocking_a_worker_thread(tmp_path: Path, fast: bool, tool: str) -> None:
    """A plain `def` tool runs in a worker thread no cancel interrupts: the call waited for the thread
    (outside review faults15: 6 s under a 1 s deadline, answered as a success). Now it answers
    `timeout` at its deadline, and the server serves other calls meanwhile."""
    inproc_server.RELEASE.clear()
    config = parse_config({
        "hub": {"fast_calls": fast, "data_dir": str(tmp_path), "timeout_s": 0.5, "max_timeout_s": 1},
        "mcpServers": {"m": {"module": "tests.fixtures.inproc_server:server"}},
    })
    try:
        async with Hub(config) as hub:
            with anyio.fail_after(20):  # the tool itself would block for 60 s
                result = await hub.route_call(f"m__{tool}", {})
            assert result.is_error and error_body(result)["code"] == "timeout", result.structured_content
            assert inproc_server.RELEASE.is_set() is False  # answered while the thread still waits
            assert (await hub.route_call("m__multiply", {"a": 2, "b": 3})).structured_content == {"result": 6.0}
    finally:
        inproc_server.RELEASE.set()  # frees the worker thread
