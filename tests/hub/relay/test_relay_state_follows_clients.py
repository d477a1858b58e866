"""Outside review relay26 D2, D4, D5: state the hub holds on its clients' behalf on a shared downstream
follows the clients — the log level is set again on a new session after a restart (D2) and lowered when
the most verbose client leaves (D4); a client's resource subscriptions are released when its connection
ends, and one connection may hold at most `MAX_SUBSCRIPTIONS_PER_CONNECTION` (D5).

The downstream is `tests/hub/relay/relay26_server.py`, a raw stdio server recording what the hub sends
it; the clients are the SDK's, in memory to `build_server(hub)` (each its own connection).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from hub.config import parse_config
from hub.frontends.server import build_server
from hub.hub import Hub
from hub.relay.subscriptions import MAX_LISTEN_URIS
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio
CAP = MAX_LISTEN_URIS
"""Decision under test: a session holds as many subscriptions as a 2026-07-28 listen stream."""
SERVER = str(Path(__file__).with_name("relay26_server.py"))


def _config(tmp_path: Path, events: Path) -> Any:
    server = {"command": sys.executable, "args": [SERVER], "env": {"EVENTS": str(events), "PYTHONPATH": str(ROOT)},
              "session": "shared", "protocol": "legacy", "restart": {"initial_backoff_s": 0.05}}
    return parse_config({"hub": {"data_dir": str(tmp_path / "data")}, "mcpServers": {"dn": server}})


def _events(path: Path, kind: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [event for line in path.read_text().splitlines() if (event := json.loads(line))["kind"] == kind]


async def _until(check: Callable[[], Any], what: str, seconds: float = 10) -> Any:
    """Wait for `check()` to be truthy (polling the server's record), failing with `what`."""
    with anyio.move_on_after(seconds):
        while not (found := check()):
            await anyio.sleep(0.02)
        return found
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_restarted_downstream_is_given_the_clients_log_level_again(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    with anyio.fail_after(30):
        async with Hub(_config(tmp_path, events)) as hub, Client(build_server(hub), mode="legacy") as client:
            await client.set_logging_level("info")
            first = (await _until(lambda: _events(events, "setLevel"), "the first setLevel"))[0]["pid"]
            result = await client.call_tool("dn__die", {})
            assert result.is_error  # the child exited under the call; the hub restarts it
            renewed = await _until(lambda: [e["level"] for e in _events(events, "setLevel") if e["pid"] != first],
                                   "the restarted child's setLevel")
            assert renewed == ["info"]


async def test_the_downstream_level_is_lowered_when_the_most_verbose_client_leaves(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    with anyio.fail_after(30):
        async with Hub(_config(tmp_path, events)) as hub:
            await _until(lambda: hub.downstreams["dn"].state == "ready", "the server")
            async with Client(build_server(hub), mode="legacy") as quiet:
                async with Client(build_server(hub), mode="legacy") as verbose:
                    await quiet.set_logging_level("error")
                    await verbose.set_logging_level("debug")
                    await _until(lambda: [e for e in _events(events, "setLevel") if e["level"] == "debug"], "debug")
                # the debug client's connection ended: the server is brought to what the one left wants
                await _until(lambda: [e["level"] for e in _events(events, "setLevel")][-1:] == ["error"], "error again")
            # nobody left who asked: the least verbose level (`hub.relay.log_levels.QUIET`)
            await _until(lambda: [e["level"] for e in _events(events, "setLevel")][-1:] == ["emergency"], "emergency")


async def test_a_clients_subscriptions_are_released_when_its_connection_ends(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    uris = [f"mcphub://dn/file:///f{n}" for n in range(5)]
    with anyio.fail_after(30):
        async with Hub(_config(tmp_path, events)) as hub:
            await _until(lambda: hub.downstreams["dn"].state == "ready", "the server")
            async with Client(build_server(hub), mode="legacy") as stays:
                async with Client(build_server(hub), mode="legacy") as leaves:
                    for uri in uris:
                        await leaves.subscribe_resource(uri)
                    await stays.subscribe_resource(uris[0])  # held by another client too: kept
                    assert len(_events(events, "subscribe")) == len(uris)
                gone = await _until(lambda: sorted(e["uri"] for e in _events(events, "unsubscribe")) == [
                    f"file:///f{n}" for n in range(1, 5)], "the unsubscribes of the client that left")
                assert gone
                assert "file:///f0" not in [e["uri"] for e in _events(events, "unsubscribe")]


async def test_one_connection_holds_a_bounded_number_of_subscriptions(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    with anyio.fail_after(30):
        async with Hub(_config(tmp_path, events)) as hub:
            await _until(lambda: hub.downstreams["dn"].state == "ready", "the server")
            async with Client(build_server(hub), mode="legacy") as client:
                for n in range(CAP):
                    await client.subscribe_resource(f"mcphub://dn/file:///f{n}")
                await client.subscribe_resource("mcphub://dn/file:///f0")  # one already held: not another
                with pytest.raises(MCPError) as refused:
                    await client.subscribe_resource("mcphub://dn/file:///one-too-many")
                assert "resources/unsubscribe" in refused.value.error.message
                await client.unsubscribe_resource("mcphub://dn/file:///f0")  # room for one again
                await client.subscribe_resource("mcphub://dn/file:///one-more")
    assert len(_events(events, "subscribe")) == CAP + 1
