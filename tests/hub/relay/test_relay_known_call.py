"""Outside review relay26 D1: a 2026-07-28 server's own `InputRequiredResult` is the answer to one known
call, so its input requests go to that call's client even while another caller's call to the same shared
session is in flight (they were refused as "several callers ... nothing says which"), and a refusal that
does happen is worded as the hub's, not as an invalid result of the server's (`hub.relay.upstream.answering_for`).

The downstream is `tests/hub/relay/who_server.py`, in-process (shared by default); the clients are the
SDK's, in memory to `build_server(hub)`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest

from tests.conftest import error_body
from mcp import Client

from hub.config import parse_config
from hub.frontends.server import build_server
from hub.hub import Hub
from tests.hub.relay import who_server

pytestmark = pytest.mark.anyio


def _client(hub: Hub, tag: str, mode: str, asked: dict[str, list[str]]) -> Client:
    async def elicit(ctx: Any, params: Any) -> types.ElicitResult:
        asked.setdefault(tag, []).append(params.message)
        return types.ElicitResult(action="accept", content={"v": f"answer-of-{tag}"})

    return Client(build_server(hub), mode=mode, elicitation_callback=elicit)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_2026_servers_input_request_goes_to_its_own_caller_while_another_call_is_in_flight(
        tmp_path: Path, mode: str) -> None:
    who_server.reset()
    config = parse_config({"hub": {"data_dir": str(tmp_path / "data")},
                           "mcpServers": {"dn": {"module": "tests.hub.relay.who_server:server"}}})
    asked: dict[str, list[str]] = {}
    results: dict[str, Any] = {}
    with anyio.fail_after(30):
        async with Hub(config) as hub:
            assert hub.downstreams["dn"].protocol_version == "2026-07-28"
            async with _client(hub, "A", mode, asked) as a, _client(hub, "B", "auto", asked) as b:
                async def call(client: Client, tag: str, hold: bool) -> None:
                    results[tag] = await client.call_tool("dn__who", {"tag": tag, "hold": hold})

                async with anyio.create_task_group() as tg:
                    tg.start_soon(call, b, "B", True)  # B's call stays in the server until released
                    while "B" not in who_server.STATE["held"]:
                        await anyio.sleep(0.01)
                    await call(a, "A", False)  # A's InputRequiredResult comes while B's call is in flight
                    who_server.release()
    assert not results["A"].is_error, results["A"]
    said = json.loads(results["A"].content[0].text)
    assert said == {"tag": "A", "state": "st-A", "answer": {"v": "answer-of-A"}}
    assert asked == {"A": ["question for A"], "B": ["question for B"]}
    assert not results["B"].is_error, results["B"]


async def test_a_caller_that_cannot_answer_is_told_so_not_that_the_server_is_invalid(tmp_path: Path) -> None:
    who_server.reset()
    config = parse_config({"hub": {"data_dir": str(tmp_path / "data")},
                           "mcpServers": {"dn": {"module": "tests.hub.relay.who_server:server"}}})
    with anyio.fail_after(30):
        async with Hub(config) as hub:
            async with Client(build_server(hub), mode="legacy") as client:  # offers no elicitation
                result = await client.call_tool("dn__who", {"tag": "A"})
    assert result.is_error and result.structured_content is not None
    message = error_body(result)["message"]
    assert "elicitation/create" in message and "invalid result" not in message, message
    assert "declared none of sampling, elicitation or roots" in message, message
