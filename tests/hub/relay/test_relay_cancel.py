"""Issue #19 review, F5: a relayed sampling request lives no longer than the call that caused it
(`hub.relay.requests`). When the client cancels its call, or the call's deadline fires, or the server
withdraws its own request, the client's sampling handler is cancelled (`notifications/cancelled`), and
the relayed request is audited `relay:sampling` with outcome `cancelled` / `timeout`.

The hub runs over Streamable HTTP (`mcp-hub serve`); the downstream is
`tests/fixtures/relay_fx_server.py` over stdio (handshake era); the client is the SDK's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from hub.audit.log import query
from tests.conftest import FIXTURES, PY, start_hub_http, write_config

pytestmark = pytest.mark.anyio

FX = str(FIXTURES / "relay_fx_server.py")


class PendingSampler:
    """A sampling handler that never answers: notes when it starts and when it is cancelled."""

    def __init__(self) -> None:
        self.started, self.cancelled = anyio.Event(), anyio.Event()

    async def __call__(self, ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        self.started.set()
        try:
            await anyio.sleep_forever()
        finally:
            self.cancelled.set()
        raise AssertionError("unreachable")


def hub_url(tmp_path: Path, procs: list, **hub: Any) -> str:
    servers = {"fxs": {"command": PY, "args": [FX, "stdio"], "namespace": "fx", "protocol": "legacy"}}
    return start_hub_http(procs, write_config(tmp_path, servers, {"data_dir": str(tmp_path / "data"), **hub}))


async def audited(tmp_path: Path, outcome: str) -> None:
    """Wait until the hub wrote the `relay:sampling` row with `outcome` (it writes it as the request ends)."""
    while not query(tmp_path / "data", tool="relay:sampling", outcome=outcome):
        await anyio.sleep(0.05)


async def test_cancelling_the_call_cancels_the_relayed_request(tmp_path: Path, procs: list) -> None:
    url, sampler = hub_url(tmp_path, procs), PendingSampler()
    with anyio.fail_after(60):
        async with Client(url, mode="legacy", sampling_callback=sampler) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.call_tool, "fx__sample", {"prompt": "to-cancel"})
                await sampler.started.wait()
                tg.cancel_scope.cancel()  # the SDK client sends notifications/cancelled for its call
            with anyio.fail_after(10):
                await sampler.cancelled.wait()
        await audited(tmp_path, "cancelled")


async def test_the_calls_deadline_withdraws_the_relayed_request(tmp_path: Path, procs: list) -> None:
    url, sampler = hub_url(tmp_path, procs, timeout_s=1, max_timeout_s=1.5), PendingSampler()
    with anyio.fail_after(60):
        async with Client(url, mode="legacy", sampling_callback=sampler) as client:
            result = await client.call_tool("fx__sample", {"prompt": "too-slow"})
            assert result.is_error  # the hub's timeout
            with anyio.fail_after(10):
                await sampler.cancelled.wait()
        await audited(tmp_path, "timeout")


async def test_the_server_withdrawing_its_request_cancels_it_at_the_client(tmp_path: Path, procs: list) -> None:
    url, sampler = hub_url(tmp_path, procs), PendingSampler()
    with anyio.fail_after(60):
        async with Client(url, mode="legacy", sampling_callback=sampler) as client:
            result = await client.call_tool("fx__sample_brief", {"seconds": 1.0})
            assert result.content[0].text == "GAVE-UP"  # type: ignore[union-attr]
            with anyio.fail_after(10):
                await sampler.cancelled.wait()
        await audited(tmp_path, "cancelled")


async def test_a_2026_clients_input_round_ends_when_the_deadline_fires(tmp_path: Path) -> None:
    """2026-07-28: the server's request waits in a parked call (`hub.relay.input_required`); the hard
    deadline ends the call, the request is withdrawn (audited `timeout`) and the client's waiting leg
    gets the call's timeout result."""
    from hub.config import parse_config
    from hub.frontends.server import build_server
    from hub.hub import Hub

    config = {"hub": {"data_dir": str(tmp_path / "data"), "timeout_s": 1, "max_timeout_s": 1.5},
              "mcpServers": {"t": {"module": "tests.fixtures.task_server:server", "protocol": "legacy"}}}

    async def never(ctx: Any, params: Any) -> Any:
        raise AssertionError("answered by hand")

    with anyio.fail_after(30):
        async with Hub(parse_config(config)) as hub, Client(build_server(hub), mode="auto",
                                                              elicitation_callback=never) as client:
            first = await client.session.call_tool("t__interview", {}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult)
            # The client does not come back: the call's deadline ends it, the request withdrawn; the next leg gets that.
            parked = hub.request_relay.input_required._parked.get(first.request_state)  # noqa: SLF001
            while parked.ended_at is None:
                await anyio.sleep(0.05)
            done = await client.session.call_tool("t__interview", {}, request_state=first.request_state,
                                                  input_responses={}, allow_input_required=True)
    assert isinstance(done, types.CallToolResult) and done.is_error
    rows = query(tmp_path / "data", tool="relay:elicitation")
    assert [(row["outcome"], row["principal"]) for row in rows] == [("timeout", "local")]


@pytest.mark.parametrize("session", ["shared", "per_client"])
async def test_a_quicker_sibling_call_ending_does_not_withdraw_another_calls_request(tmp_path: Path, procs: list,
                                                                                   session: str) -> None:
    """Outside review relay15: call A's sampling request, asked while call B (started after A) was in
    flight on the same connection, was tied to B; when B finished, A's request was withdrawn while the
    user was answering it, and A failed. It now lives as long as any call it may belong to."""
    servers = {"fxs": {"command": PY, "args": [FX, "stdio"], "namespace": "fx", "protocol": "legacy", "session": session}}
    url = start_hub_http(procs, write_config(tmp_path, servers, {"data_dir": str(tmp_path / "data")}))
    a_started, b_started, a_gate, b_gate = (str(tmp_path / name) for name in ("a-started", "b-started", "a-gate", "b-gate"))
    b_done = anyio.Event()
    results: dict[str, Any] = {}

    async def sampler(ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        Path(b_gate).touch()  # B answers now, while A's request waits on this user
        await b_done.wait()
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="yes"), model="m")

    async def call(client: Client, key: str, tool: str, args: dict[str, Any]) -> None:
        results[key] = await client.call_tool(tool, args)
        if key == "b":
            b_done.set()

    with anyio.fail_after(60):
        async with Client(url, mode="legacy", sampling_callback=sampler) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, client, "a", "fx__sample_after", {"started": a_started, "gate": a_gate})
                while not Path(a_started).exists():
                    await anyio.sleep(0.02)  # waiting for the state "A runs"
                tg.start_soon(call, client, "b", "fx__wait_gate", {"started": b_started, "gate": b_gate})
                while not Path(b_started).exists():
                    await anyio.sleep(0.02)  # waiting for the state "B runs"
                Path(a_gate).touch()  # A asks its question now, B still in flight
    assert results["b"].structured_content == {"result": "OPENED"}
    assert not results["a"].is_error and results["a"].structured_content == {"result": "SAMPLED:yes"}, results["a"]
    with anyio.fail_after(10):
        await audited(tmp_path, "ok")
    assert not query(tmp_path / "data", tool="relay:sampling", outcome="cancelled")
