"""Outside review relay26 D3: progress a client reports for a server's own request (an elicitation
carrying `_meta.progressToken`) reaches that server under its own token, as it does directly
(`hub.relay.call_bound.progress_back`); the hub dropped it.

The downstream is `tests/hub/relay/relay26_server.py` (raw stdio, shared); the client is the SDK's, in
memory to `build_server(hub)`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from hub.config import parse_config
from hub.frontends.server import build_server
from hub.hub import Hub
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio
SERVER = str(Path(__file__).with_name("relay26_server.py"))


@pytest.mark.parametrize("session", ["shared", "per_client"])
async def test_a_clients_progress_for_a_servers_request_reaches_the_server(tmp_path: Path, session: str) -> None:
    events = tmp_path / "events.jsonl"
    server = {"command": sys.executable, "args": [SERVER], "env": {"EVENTS": str(events), "PYTHONPATH": str(ROOT)},
              "session": session, "protocol": "legacy"}
    config = parse_config({"hub": {"data_dir": str(tmp_path / "data")}, "mcpServers": {"dn": server}})
    tokens: list[Any] = []

    async def elicit(ctx: Any, params: Any) -> types.ElicitResult:
        meta = ctx.meta or {}
        token = meta.get("progress_token", meta.get("progressToken"))
        tokens.append(token)
        await ctx.session.send_progress_notification(token, 1, 2, "halfway")
        return types.ElicitResult(action="accept", content={})

    with anyio.fail_after(30):
        async with Hub(config) as hub, Client(build_server(hub), mode="legacy", elicitation_callback=elicit) as client:
            result = await client.call_tool("dn__ask", {})
            assert not result.is_error, result
            with anyio.move_on_after(10):
                while not [line for line in events.read_text().splitlines() if '"progress"' in line]:
                    await anyio.sleep(0.02)
    assert tokens and tokens[0] is not None  # the client was invited to report progress
    got = [event["params"] for line in events.read_text().splitlines() if (event := json.loads(line))["kind"] == "progress"]
    assert got == [{"progressToken": "srv-tok-1", "progress": 1, "total": 2, "message": "halfway"}]
