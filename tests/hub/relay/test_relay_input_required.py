"""Issue #19 item 2, 2026-07-28 era: a server's requests during a call reach a 2026-07-28 client
through the input-required flow (`hub.relay.input_required`): the hub answers the client's leg with
an `InputRequiredResult`, and its next leg's `inputResponses` go back to the server.

The downstream is `tests/fixtures/task_server.py` in-process (handshake era: it sends real
server→client requests); the client is the SDK's, connected in memory to `build_server(hub)` in the
2026-07-28 era — it drives the flow itself (`Client.call_tool`), or by hand (`allow_input_required`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from hub.audit.log import query
from hub.config import parse_config
from hub.hub import Hub
from hub.frontends.server import build_server
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio

TASKS = {"module": "tests.fixtures.task_server:server", "protocol": "legacy"}


class Answers:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def elicitation(self, ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append("elicitation")
        return types.ElicitResult(action="accept", content={"pick": "owls"})

    async def sampling(self, ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        self.asked.append("sampling")
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="hoot"), model="m")

    def client(self, hub: Hub) -> Client:
        return Client(build_server(hub), mode="auto", elicitation_callback=self.elicitation, sampling_callback=self.sampling)


def hub_of(tmp_path: Path) -> Hub:
    return Hub(parse_config({"hub": {"data_dir": str(tmp_path / "data")}, "mcpServers": {"t": TASKS}}))


async def test_a_2026_client_answers_the_servers_requests_in_later_legs(tmp_path: Path) -> None:
    answers = Answers()
    with anyio.fail_after(30):
        async with hub_of(tmp_path) as hub, answers.client(hub) as client:
            assert client.protocol_version == "2026-07-28"
            result = await client.call_tool("t__interview", {})  # the SDK drives the legs
    assert not result.is_error
    assert result.content[0].text == 'accept {"pick": "owls"}; model said hoot'  # type: ignore[union-attr]
    assert answers.asked == ["elicitation", "sampling"]
    relayed = {(r["tool"], r["outcome"]) for r in query(tmp_path / "data", principal="local")}
    assert {("relay:elicitation", "ok"), ("relay:sampling", "ok"), ("t__interview", "ok")} <= relayed


async def test_each_leg_by_hand_and_a_request_state_that_is_not_the_callers(tmp_path: Path) -> None:
    answers = Answers()
    with anyio.fail_after(30):
        async with hub_of(tmp_path) as hub, answers.client(hub) as client:
            session = client.session
            first = await session.call_tool("t__interview", {}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult) and first.request_state
            [(key, request)] = (first.input_requests or {}).items()
            assert isinstance(request, types.ElicitRequest)

            for name, state in (("t__interview", "made-up"), ("t__plain", first.request_state)):
                with pytest.raises(MCPError) as refused:  # unknown state, or another tool's
                    await session.call_tool(name, {}, request_state=state, input_responses={},
                                            allow_input_required=True)
                assert refused.value.code == types.INVALID_PARAMS and "requestState" in refused.value.error.message

            second = await session.call_tool("t__interview", {}, request_state=first.request_state,
                                             input_responses={key: types.ElicitResult(action="decline")},
                                             allow_input_required=True)
            assert isinstance(second, types.InputRequiredResult)
            [(key2, request2)] = (second.input_requests or {}).items()
            assert isinstance(request2, types.CreateMessageRequest) and key2 != key
            done = await session.call_tool("t__interview", {}, request_state=second.request_state,
                                           input_responses={key2: types.CreateMessageResult(
                                               role="assistant", content=types.TextContent(type="text", text="ok"), model="m")},
                                           allow_input_required=True)
    assert isinstance(done, types.CallToolResult) and done.content[0].text == "decline null; model said ok"  # type: ignore[union-attr]


async def test_a_leg_that_leaves_a_request_unanswered_is_asked_again_and_other_arguments_are_refused(tmp_path: Path) -> None:
    """Outside review (relay round 7): a leg whose `inputResponses` lacked the key it was asked (a
    client bug, or one resending its last leg) got no answer until the call's hard deadline; a leg
    with other arguments got the first arguments' result."""
    answers = Answers()
    with anyio.fail_after(30):
        async with hub_of(tmp_path) as hub, answers.client(hub) as client:
            session = client.session
            first = await session.call_tool("t__interview", {}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult)
            [(key, request)] = (first.input_requests or {}).items()

            for responses in ({}, {"not-the-key": types.ElicitResult(action="decline")}):
                again = await session.call_tool("t__interview", {}, request_state=first.request_state,
                                                input_responses=responses, allow_input_required=True)
                assert isinstance(again, types.InputRequiredResult), again
                assert again.input_requests == {key: request} and again.request_state == first.request_state

            with pytest.raises(MCPError) as refused:
                await session.call_tool("t__interview", {"topic": "other"}, request_state=first.request_state,
                                        input_responses={key: types.ElicitResult(action="decline")}, allow_input_required=True)
            assert refused.value.code == types.INVALID_PARAMS and "other arguments" in refused.value.error.message

            second = await session.call_tool("t__interview", {}, request_state=first.request_state,  # the call went on
                                             input_responses={key: types.ElicitResult(action="decline")},
                                             allow_input_required=True)
            assert isinstance(second, types.InputRequiredResult)
            [(key2, _)] = (second.input_requests or {}).items()
            done = await session.call_tool("t__interview", {}, request_state=second.request_state,
                                           input_responses={key2: types.CreateMessageResult(
                                               role="assistant", content=types.TextContent(type="text", text="ok"), model="m")},
                                           allow_input_required=True)
    assert isinstance(done, types.CallToolResult) and done.content[0].text == "decline null; model said ok"  # type: ignore[union-attr]


async def test_a_2026_client_without_the_capability_is_refused_as_before(tmp_path: Path) -> None:
    with anyio.fail_after(30):
        async with hub_of(tmp_path) as hub, Client(build_server(hub), mode="auto") as client:
            result = await client.call_tool("t__interview", {})
    assert result.is_error  # the server's request was refused by the hub: its tool reports the failure
    rows = query(tmp_path / "data", tool="relay:elicitation")
    assert rows and rows[-1]["outcome"] == "denied"


async def test_the_flow_also_works_on_the_hubs_stdio(tmp_path: Path) -> None:
    """A 2026-07-28 call on the hub's stdio that declared elicitation/sampling is left to the SDK server
    (not the fast path), so the flow reaches it there too."""
    config = tmp_path / "hub.json"
    config.write_text(json.dumps({"hub": {"data_dir": str(tmp_path / "data")}, "mcpServers": {"t": TASKS}}))
    params = StdioServerParameters(command=sys.executable, args=["-m", "hub.cli", "serve", "--config", str(config),
                                                                 "--log-level", "warning"],
                                   env={"PYTHONPATH": str(ROOT)}, cwd=str(ROOT))
    answers = Answers()
    with anyio.fail_after(60):
        async with Client(params, mode="auto", elicitation_callback=answers.elicitation,
                          sampling_callback=answers.sampling) as client:
            assert client.protocol_version == "2026-07-28"
            result = await client.call_tool("t__interview", {})
    assert result.content[0].text == 'accept {"pick": "owls"}; model said hoot'  # type: ignore[union-attr]


async def test_a_request_state_is_its_principals_kind_and_name_not_the_name_alone() -> None:
    """Review round 5: a requestState made by API key `alice` was taken from a JWT whose sub is `alice`
    (parked calls were kept by the bare name)."""
    from hub.auth.principal import Principal
    from hub.relay.input_required import InputRequiredCalls

    calls = InputRequiredCalls()
    parked = calls._park("t__interview", Principal("alice", ("*",), "api_key"), "")  # noqa: SLF001
    with pytest.raises(MCPError) as refused:
        calls._resume(parked.token, "t__interview", Principal("alice", ("*",), "jwt"), "", {})  # noqa: SLF001
    assert refused.value.code == types.INVALID_PARAMS
    assert calls._resume(parked.token, "t__interview", Principal("alice", ("*",), "api_key"), "", {}) is parked  # noqa: SLF001


async def test_one_callers_flood_of_parked_calls_never_evicts_another_callers_call() -> None:
    """Outside review, isolation round 10: 1,000 parked calls of caller B (hub-wide bound, oldest first)
    evicted and cancelled caller A's call waiting on A's user; A's next leg got "requestState unknown".
    Re-check of round 12: B's own oldest *running* call was cancelled for B's newcomer — now a finished,
    uncollected call of B's makes room, else B's newcomer is refused."""
    from hub.auth.principal import Principal, identity
    from hub.relay.input_required import MAX_PARKED_PER_CALLER, InputRequiredCalls

    calls = InputRequiredCalls()
    alice, bob = Principal("alice", ("*",), "api_key"), Principal("bob", ("*",), "api_key")

    def start(principal: Principal) -> Any:
        return calls._park("t__interview", principal, "") if calls._room_for(identity(principal)) else None  # noqa: SLF001

    waiting = start(alice)
    floods = [start(bob) for _ in range(MAX_PARKED_PER_CALLER)]
    assert None not in floods and start(bob) is None  # at his share, all running: refused, none cancelled
    assert all(calls._resume(p.token, "t__interview", bob, "", {}) is p for p in floods)  # noqa: SLF001
    floods[5].ended_at = 0.0  # finished; bob never came back for it
    assert start(bob) is not None  # it made room
    with pytest.raises(MCPError):
        calls._resume(floods[5].token, "t__interview", bob, "", {})  # noqa: SLF001
    assert calls._resume(waiting.token, "t__interview", alice, "", {}) is waiting  # noqa: SLF001


async def test_a_request_state_from_another_hub_process_says_so() -> None:
    """Outside review, cluster round 12: behind a balancer a leg reached another replica and was told its
    requestState was "unknown or expired (or not this caller's and tool's)", blaming its parameters."""
    from hub.auth.principal import Principal
    from hub.relay import input_required
    from hub.relay.input_required import InputRequiredCalls

    calls, alice = InputRequiredCalls(), Principal("alice", ("*",), "api_key")
    parked = calls._park("t__interview", alice, "")  # noqa: SLF001
    elsewhere = ("0" * 8 if input_required.PROCESS_TAG != "0" * 8 else "1" * 8) + parked.token[8:]
    with pytest.raises(MCPError) as refused:
        calls._resume(elsewhere, "t__interview", alice, "", {})  # noqa: SLF001
    assert "another hub process" in refused.value.error.message and "replica" in refused.value.error.message
    with pytest.raises(MCPError) as unknown:
        calls._resume("made-up", "t__interview", alice, "", {})  # noqa: SLF001
    assert "unknown or expired" in unknown.value.error.message
