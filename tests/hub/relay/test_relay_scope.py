"""Issue #19: every relayed kind respects scopes and is audited. A server a caller cannot see never
reaches it — not with sampling, elicitation, roots, log messages, resource updates or task status —
while a caller that can see it gets each of them, audited as `relay:<kind>` with its principal and
the server.

A real HTTP hub (`mcp-hub serve`) with API keys: `seer` may use `st` and `n`, `blind` only `n`.
`st` is the per-session fixture server (`tests/fixtures/session_relay_server.py`) on one SHARED
downstream session — the case where one session's messages could reach every client — and `n`
an in-process server with resources (`tests/fixtures/subscribing_server.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from hub.audit.log import query
from tests.conftest import start_hub_http, write_config, error_body
from tests.relay_support import Asked, Heard, StatusWatcher, answer, create_key, raw, start_relay_server

pytestmark = pytest.mark.anyio


def client(url: str, token: str, heard: Heard, asked: Asked) -> Client:
    transport = streamable_http_client(url, http_client=create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}))
    return Client(transport, mode="legacy", message_handler=heard.on_message, logging_callback=heard.on_log,
                  extensions=[StatusWatcher(heard)], sampling_callback=asked.sampling,
                  elicitation_callback=asked.elicitation, list_roots_callback=asked.roots)


async def test_a_server_the_caller_cannot_see_never_reaches_it(tmp_path: Path, procs: list) -> None:
    downstream = start_relay_server(procs)
    data_dir = tmp_path / "hub"
    servers = {"st": {"url": downstream, "protocol": "legacy", "session": "shared"},
               "n": {"module": "tests.fixtures.subscribing_server:server", "protocol": "legacy"}}
    config = write_config(tmp_path, servers, {"data_dir": str(data_dir), "auth": {"enabled": True}})
    seer_key, blind_key = create_key(data_dir, "seer", "st:write n:write"), create_key(data_dir, "blind", "n:write")
    url = start_hub_http(procs, config)
    seen, blind_heard = Heard(), Heard()
    seer_asked, blind_asked = Asked("seer"), Asked("blind")
    with anyio.fail_after(120):
        async with client(url, seer_key, seen, seer_asked) as seer, client(url, blind_key, blind_heard, blind_asked) as blind:
            await seer.set_logging_level("debug")
            await blind.set_logging_level("debug")
            assert not any(t.name.startswith("st__") for t in (await blind.list_tools()).tools)

            # The caller that sees `st` gets its requests (each audited), logs, updates and task status.
            assert answer(await seer.call_tool("st__ask", {})) == ["I am seer", "accept", ["file:///seer"]]
            assert answer(await seer.call_tool("st__say", {"text": "for seer"})) is True
            await seen.until(lambda: ("st/fixture", "for seer") in seen.logs)
            await seer.subscribe_resource("mcphub://st/note://a")
            assert answer(await seer.call_tool("st__touch", {"x": "a"})) is True
            await seen.until(lambda: seen.updated == ["mcphub://st/note://a"])
            task = (await raw(seer, "tools/call", {"name": "st__job", "arguments": {}, "task": {"ttl": 60_000}}))["task"]
            assert answer(await seer.call_tool("st__finish", {"task": task["taskId"].removeprefix("st:")})) == "finished"
            await seen.until(lambda: seen.status == [(task["taskId"], "completed")])

            # The caller that cannot see `st` cannot reach it, nor subscribe to it, nor ask after its tasks.
            hidden = await blind.call_tool("st__ask", {})
            assert hidden.is_error and hidden.structured_content is not None
            assert error_body(hidden)["code"] == "not_found"
            with pytest.raises(MCPError):
                await blind.subscribe_resource("mcphub://st/note://a")
            with pytest.raises(MCPError):
                await raw(blind, "tasks/get", {"taskId": task["taskId"]})

            # A last update from a server it sees: had anything from `st` been sent to it, it came first.
            await blind.subscribe_resource("mcphub://n/note://a")
            await seer.call_tool("n__touch", {"uri": "note://a"})
            await blind_heard.until(lambda: blind_heard.updated == ["mcphub://n/note://a"])
            assert blind_asked.kinds == [] and blind_heard.status == []
            assert not [log for log in blind_heard.logs if str(log[0]).startswith("st")]
            assert seer_asked.kinds == ["sampling", "elicitation", "roots"]

    relayed = [row for row in query(data_dir, limit=1000) if str(row["tool"]).startswith("relay:")]
    assert {(row["tool"], row["server"], row["outcome"]) for row in relayed} >= {
        ("relay:sampling", "st", "ok"), ("relay:elicitation", "st", "ok"), ("relay:roots", "st", "ok")}
    assert {row["principal"] for row in relayed} == {next(r["principal"] for r in relayed if "seer" in r["principal"])}
    assert json.dumps(relayed).count(blind_key) == 0
