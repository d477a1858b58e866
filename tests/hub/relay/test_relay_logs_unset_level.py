"""A handshake-era client that never sends `logging/setLevel` gets its servers' log messages through the
hub (it got none: the hub relayed only to clients that had set a level). `logging/setLevel` is optional
(the client MAY send it) and a server may log without one; the SDKs' servers then send every level. So
such a client has not filtered: it gets every message a server sends, under the same rules of who may
receive one as a client that set a level (scope, caller, a call's own stream, a `per_client` session's
owner only) — `hub.relay.logs`, "A client that never set a level". Two clients: A sets a level, B never does.

The front end's `initialized` handler tells the log relay of each client (`LogRelay.arrived`).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from hub.config import parse_config
from hub.frontends.server import build_server
from hub.hub import Hub
from tests.relay_support import Heard

pytestmark = pytest.mark.anyio
SERVER = str(Path(__file__).with_name("levels_server.py"))


@asynccontextmanager
async def hub_with(tmp_path: Path, session: str) -> AsyncIterator[Hub]:
    server = {"command": sys.executable, "args": [SERVER], "session": session, "protocol": "legacy"}
    async with Hub(parse_config({"hub": {"data_dir": str(tmp_path / "data")}, "mcpServers": {"lv": server}})) as hub:
        with anyio.fail_after(30):
            while hub.downstreams["lv"].state != "ready":
                await anyio.sleep(0.02)
        yield hub


def client(hub: Hub, heard: Heard) -> Client:
    return Client(build_server(hub), mode="legacy", logging_callback=heard.on_log)


def said(heard: Heard) -> list[Any]:
    return [data for _, data in heard.logs]


async def got(heard: Heard, *lines: str) -> None:
    """Wait until `heard` got every one of `lines` (each message is relayed in a task of its own: any order)."""
    await heard.until(lambda: set(lines) <= set(said(heard)))


async def test_a_client_that_never_set_a_level_gets_what_the_shared_session_sends(tmp_path: Path) -> None:
    a_heard, b_heard = Heard(), Heard()
    async with hub_with(tmp_path, "shared") as hub, client(hub, a_heard) as a, client(hub, b_heard) as b:
        # Nobody set a level: the server sends its own default (every level), and both clients get it.
        await b.call_tool("lv__note", {"text": "one"})
        await got(b_heard, "debug one", "info one", "warning one")
        assert {logger for logger, _ in b_heard.logs} == {"lv/levels"}  # tagged as for any client
        await got(a_heard, "debug one", "info one", "warning one")

        # A asks for info: the shared session is set to info (the most verbose level asked), B still filters nothing.
        await a.set_logging_level("info")
        await b.call_tool("lv__note", {"text": "two"})
        await got(b_heard, "info two", "warning two")
        await got(a_heard, "info two", "warning two")

        # A's own call's messages go on A's call's stream. (Whether B gets them too follows the rules for any
        # client: none when the message is judged A's call's; a stdio line handled after the call ended goes to
        # the caller's clients — with auth off every client — so that is not asserted here; the per-client
        # test below asserts the isolation that is certain.)
        await a.call_tool("lv__note", {"text": "three"})
        await got(a_heard, "info three", "warning three")
        await b.call_tool("lv__note", {"text": "four"})
        await got(b_heard, "info four", "warning four")
        await got(a_heard, "info four", "warning four")
    b_said = [line for line in said(b_heard) if not line.endswith(" three")]
    assert sorted(b_said) == sorted(["debug one", "info one", "warning one", "info two", "warning two",
                                     "info four", "warning four"])  # below info: nothing once the session is set
    assert sorted(said(a_heard)) == sorted(["debug one", "info one", "warning one", "info two", "warning two",
                                            "info three", "warning three", "info four", "warning four"])


async def test_a_per_client_session_of_a_client_that_never_set_a_level_logs_to_it_only(tmp_path: Path) -> None:
    a_heard, b_heard = Heard(), Heard()
    async with hub_with(tmp_path, "per_client") as hub, client(hub, a_heard) as a, client(hub, b_heard) as b:
        await a.set_logging_level("warning")  # A's own session is set; B's keeps the server's default
        await b.call_tool("lv__note", {"text": "b"})
        await got(b_heard, "debug b", "info b", "warning b")
        await a.call_tool("lv__note", {"text": "a"})
        await got(a_heard, "warning a")
        await b.call_tool("lv__note", {"text": "b again"})
        await got(b_heard, "debug b again", "info b again", "warning b again")
    assert sorted(said(b_heard)) == sorted(["debug b", "info b", "warning b", "debug b again", "info b again", "warning b again"])
    assert said(a_heard) == ["warning a"]  # none of B's own session's messages


async def test_a_task_tagged_line_reaches_its_creator_that_never_set_a_level_and_no_other_principal() -> None:
    """The sibling path (`LogRelay._to_task_owner`): a line the server tags with the task reaches the connection
    that created it though it never set a level, at any level; never another principal's client."""
    from hub.auth.principal import identity  # noqa: PLC0415
    from hub.downstream.serials import session_serial  # noqa: PLC0415
    from hub.relay.task_model import RelayedTask  # noqa: PLC0415
    from tests.hub.relay.test_relay_task_log_owner import ALICE, BOB, Connection, line, texts, wiring  # noqa: PLC0415

    hub, downstream, logs, tasks = wiring()
    alice, bob = Connection(), Connection()
    logs.arrived(alice, ALICE)  # never sends logging/setLevel
    logs._clients[bob] = ("debug", BOB)  # noqa: SLF001 — bob sent logging/setLevel debug
    task = RelayedTask("raw:t1", "raw", "t1", ALICE, session_serial(downstream.client().session))
    task.running = downstream.stats.task_running(identity(ALICE), 60)
    tasks._own(alice, task)  # noqa: SLF001 — alice created it
    debug = line("t1", "alice's task, debug").model_copy(update={"level": "debug"})
    await logs.relay(downstream, debug)
    assert texts(alice) == ["alice's task, debug"] and not bob.got
