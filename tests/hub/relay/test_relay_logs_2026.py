"""Issue #19 review, F2: a 2026-07-28 client opts in to log messages per request (`_meta`
`io.modelcontextprotocol/logLevel`); through the hub it gets its server's messages during that call,
at or above that level, tagged with the server, and nothing when it did not opt in
(`hub.relay.logs`). The hub runs over Streamable HTTP; the downstream is
`tests/fixtures/relay_fx_server.py` over stdio, handshake era and 2026-07-28 (which sends nothing
unless the hub passes the client's level on)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import FIXTURES, PY, ROOT, hub_command, start_hub_http, write_config

pytestmark = pytest.mark.anyio

FX = str(FIXTURES / "relay_fx_server.py")


def hub_url(tmp_path: Path, procs: list, protocol: str) -> str:
    servers = {"fxs": {"command": PY, "args": [FX, "stdio"], "namespace": "fx", "protocol": protocol}}
    return start_hub_http(procs, write_config(tmp_path, servers, {"data_dir": str(tmp_path / "data")}))


async def logs_of_call(url: Any, level: Any) -> tuple[list[tuple[str, str | None, Any]], str]:
    received: list[tuple[str, str | None, Any]] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        received.append((params.level, params.logger, params.data))

    with anyio.fail_after(60):
        async with Client(url, mode="2026-07-28", log_level=level, logging_callback=on_log) as client:
            assert client.protocol_version == "2026-07-28"
            result = await client.call_tool("fx__logs", {})
    return received, result.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("protocol", ["legacy", "auto"])
async def test_a_2026_client_gets_its_calls_log_messages_at_its_level(tmp_path: Path, procs: list, protocol: str) -> None:
    url = hub_url(tmp_path, procs, protocol)
    received, text = await logs_of_call(url, "warning")
    assert text == "LOGGED"
    assert received == [("warning", "fx/fxlog", "log-warning"), ("error", "fx/fxlog", "log-error")]
    received, _ = await logs_of_call(url, "debug")
    assert [level for level, _, _ in received] == ["debug", "info", "warning", "error"]
    received, text = await logs_of_call(url, None)  # a call that did not opt in gets none
    assert text == "LOGGED" and received == []


async def test_the_same_on_the_hubs_stdio(tmp_path: Path) -> None:
    """On the hub's stdio a 2026-07-28 call that opted in leaves the `tools/call` fast path for the SDK
    server's, where its log messages are relayed as notifications tied to the request."""
    servers = {"fxs": {"command": PY, "args": [FX, "stdio"], "namespace": "fx", "protocol": "legacy"}}
    config = write_config(tmp_path, servers, {"data_dir": str(tmp_path / "data")})
    argv = hub_command(config, "--log-level", "warning")
    params = StdioServerParameters(command=argv[0], args=argv[1:], env={"PYTHONPATH": str(ROOT)}, cwd=str(ROOT))
    received, text = await logs_of_call(params, "error")
    assert text == "LOGGED" and received == [("error", "fx/fxlog", "log-error")]


@pytest.mark.parametrize("protocol", ["legacy", "auto"])
async def test_a_2026_clients_read_and_prompt_get_their_log_messages_too(tmp_path: Path, procs: list, protocol: str) -> None:
    """The per-request opt-in was honoured on `tools/call` only: a read's or a prompt's messages were dropped
    (and a 2026-07-28 server was never told the level, so it sent none)."""
    url = hub_url(tmp_path, procs, protocol)
    received: list[tuple[str, str | None, Any]] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        received.append((params.level, params.logger, params.data))

    expected = [("warning", "fx/fxlog", "log-warning"), ("error", "fx/fxlog", "log-error")]
    with anyio.fail_after(60):
        async with Client(url, mode="2026-07-28", log_level="warning", logging_callback=on_log) as client:
            [template] = [t for t in (await client.list_resource_templates()).resource_templates
                          if t.uri_template.endswith("logged://{what}")]
            read = await client.read_resource(template.uri_template.replace("{what}", "a"))
            assert read.contents[0].text == "READ:a"  # type: ignore[union-attr]
            assert received == expected
            received.clear()
            prompt = await client.get_prompt("fx__logged_prompt", {"what": "b"})
            assert prompt.messages[0].content.text == "PROMPT:b"  # type: ignore[union-attr]
            assert received == expected
        async with Client(url, mode="2026-07-28", logging_callback=on_log) as client:  # no opt-in: none
            received.clear()
            await client.get_prompt("fx__logged_prompt", {"what": "c"})
            assert received == []
