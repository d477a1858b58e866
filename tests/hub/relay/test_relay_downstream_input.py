"""Issue #19 item 3: a 2026-07-28 downstream's own `InputRequiredResult` (it answers a call with
input-required instead of sending a server→client request) on the hub's JSON call paths — an
in-process server and a stdio child (`hub.relay.downstream_input`). A 2025-11-25 client gets real
elicitation and sampling requests, a 2026-07-28 client the hub's own input-required round trip; the
server is called again with the answers and its `requestState`; the relayed requests are audited.

The downstream is `tests/fixtures/asking_server.py`; the clients are the SDK's, in memory to
`build_server(hub)`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

from hub.audit.log import query
from hub.config import parse_config
from hub.frontends.server import build_server
from hub.hub import Hub
from tests.conftest import ROOT, error_body
from tests.relay_support import Asked

pytestmark = pytest.mark.anyio

SERVERS = {
    "inproc": {"module": "tests.fixtures.asking_server:server"},
    "child": {"command": sys.executable, "args": [str(Path(ROOT) / "tests" / "fixtures" / "asking_server.py")],
              "env": {"PYTHONPATH": str(ROOT)}, "protocol": "2026-07-28"},  # `auto` would take the handshake
}


@pytest.mark.parametrize("server", ["inproc", "child"])
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_2026_servers_input_required_answer_is_relayed_to_the_client(tmp_path: Path, server: str, mode: str) -> None:
    config = parse_config({"hub": {"data_dir": str(tmp_path / "data")}, "mcpServers": {"a": SERVERS[server]}})
    answers = Asked("owls")
    with anyio.fail_after(60):
        async with Hub(config) as hub:
            assert hub.downstreams["a"].protocol_version == "2026-07-28"
            async with Client(build_server(hub), mode=mode, elicitation_callback=answers.elicitation,
                              sampling_callback=answers.sampling) as client:
                result = await client.call_tool("a__pick", {})
    assert not result.is_error, result
    said = json.loads(result.content[0].text)  # type: ignore[union-attr]
    assert said == {"state": "round-1", "pick": {"pick": "owls"}, "model": "I am owls"}
    assert sorted(answers.kinds) == ["elicitation", "sampling"]
    kinds = {(row["tool"], row["server"], row["outcome"]) for row in query(tmp_path / "data")}
    assert {("relay:elicitation", "a", "ok"), ("relay:sampling", "a", "ok")} <= kinds


async def test_a_client_that_cannot_answer_gets_an_error_result_naming_the_request(tmp_path: Path) -> None:
    config = parse_config({"hub": {"data_dir": str(tmp_path / "data")}, "mcpServers": {"a": SERVERS["inproc"]}})
    with anyio.fail_after(60):
        async with Hub(config) as hub:
            async with Client(build_server(hub), mode="legacy") as client:  # no sampling, no elicitation
                result = await client.call_tool("a__pick", {})
    assert result.is_error and result.structured_content is not None
    assert "elicitation/create" in error_body(result)["message"]
