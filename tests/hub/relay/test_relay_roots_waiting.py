"""Outside review roots27: a server's `roots/list` asked outside any call that no client could answer is
made again once one can — and never reaches, nor is blocked by, a client that may not see the server.

Real processes: `mcp-hub serve` over HTTP, the roots-tracking fixture as its stdio child
(`tests/fixtures/roots_tracking_server.py`: it asks after `initialized`, on `roots/list_changed`, and on
`ask_later`), raw Streamable HTTP sessions (`tests/raw_session.py`) whose GET streams the tests open and close.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from hub.audit.log import query
from tests.conftest import FIXTURES, PY, Proc, echo_stdio, start_hub_http, write_config
from tests.raw_session import RawSession
from tests.relay_support import create_key, eventually

pytestmark = pytest.mark.anyio
TRACKER = str(Path(FIXTURES) / "roots_tracking_server.py")


def tracker(session: str = "shared") -> dict[str, Any]:
    return {"command": PY, "args": [TRACKER], "session": session}


def hub_url(tmp_path: Path, procs: list[Proc], servers: dict[str, Any], **hub: Any) -> str:
    return start_hub_http(procs, write_config(tmp_path, servers, {"data_dir": str(tmp_path / "data"), **hub}))


async def state_is(session: RawSession, **expected: Any) -> bool:
    """Whether `fs`'s state, read by `session`, has these values (a `lastError` string: a part of it)."""
    state = await session.call("fs__allowed_dirs")
    return all(state[name] is not None and part in state[name] if name == "lastError" and part is not None
               else state[name] == part for name, part in expected.items())


def roots_asks(tmp_path: Path) -> list[tuple[str, str]]:
    """The relayed `roots/list` requests the hub audited so far (principal, outcome), answered or refused."""
    return [(row["principal"], row["outcome"]) for row in query(tmp_path / "data", tool="relay:roots", limit=1000)]


async def test_a_server_refused_while_a_get_stream_was_closed_is_asked_again_when_it_reopens(
        tmp_path: Path, procs: list[Proc]) -> None:
    url = hub_url(tmp_path, procs, {"fs": tracker()})
    async with httpx.AsyncClient(timeout=60) as http, anyio.create_task_group() as group:
        reader = await RawSession(http, url).open()  # no roots: its calls tell no one, it is never asked
        client = await RawSession(http, url, ["file:///a"]).open()
        await client.open_get(group)
        await eventually(lambda: state_is(reader, roots=["file:///a"]), within_s=30)
        client.close_get()
        client.roots = ["file:///b"]
        await reader.call("fs__ask_later", {"delay": 0.2})  # asked with the GET stream closed: refused
        await eventually(lambda: state_is(reader, lastError="no GET event stream open"), within_s=45)  # why, said
        await client.open_get(group)  # asked again now, not only at the client's next call of `fs`
        await eventually(lambda: state_is(reader, roots=["file:///b"], lastError=None), within_s=30)
        group.cancel_scope.cancel()


async def test_a_per_client_session_refused_without_a_get_stream_is_asked_again_when_it_opens(
        tmp_path: Path, procs: list[Proc]) -> None:
    url = hub_url(tmp_path, procs, {"fs": tracker("per_client")})
    async with httpx.AsyncClient(timeout=60) as http, anyio.create_task_group() as group:
        client = await RawSession(http, url, ["file:///own"]).open()
        await client.call("fs__ask_later", {"delay": 0.5})  # its own session asks after the call: no GET stream yet
        # Three asks: the hub's own listing session's after `initialized` (for no one), then this client's session's
        # after `initialized` (on the call that opened it, or refused) and `ask_later`'s. Watched in the audit, not
        # by calling fs: an ask meeting a call of this client in flight goes on that call's stream and is answered.
        async def asked_three_times() -> bool:
            return len(roots_asks(tmp_path)) >= 3
        await eventually(asked_three_times, within_s=60)
        state = await client.call("fs__allowed_dirs")
        assert state["asks"] == 2 and "no GET event stream open" in (state["lastError"] or ""), (state, roots_asks(tmp_path))
        await client.open_get(group)
        await eventually(lambda: state_is(client, roots=["file:///own"], lastError=None), within_s=30)
        group.cancel_scope.cancel()


async def test_a_client_without_a_get_stream_does_not_make_each_of_its_calls_an_unanswerable_ask(
        tmp_path: Path, procs: list[Proc]) -> None:
    url = hub_url(tmp_path, procs, {"fs": tracker()})
    async with httpx.AsyncClient(timeout=60) as http:
        client = await RawSession(http, url, ["file:///a"]).open()
        await eventually(lambda: state_is(client, asks=1), within_s=30)  # its ask at start, refused: no client then
        for _ in range(5):
            state = await client.call("fs__allowed_dirs")
        assert state["asks"] == 1 and state["roots"] is None, state  # one told per call was one refused ask per call


async def test_an_ask_refused_as_ambiguous_is_made_again_once_a_client_calls_the_server(
        tmp_path: Path, procs: list[Proc]) -> None:
    url = hub_url(tmp_path, procs, {"fs": tracker()})
    async with httpx.AsyncClient(timeout=60) as http, anyio.create_task_group() as group:
        a = await RawSession(http, url, ["file:///a"]).open()
        b = await RawSession(http, url, ["file:///b"]).open()
        await a.open_get(group)  # told: two clients with roots and neither has called fs — refused
        await b.open_get(group)
        reader = await RawSession(http, url).open()  # no roots: its calls make it no one's caller
        await eventually(lambda: state_is(reader, lastError="none has called"), within_s=30)
        await eventually(lambda: state_is(a, roots=["file:///a"], lastError=None), within_s=30)  # a calls fs: a's
        assert b.asked == 0
        group.cancel_scope.cancel()


async def test_a_profile_that_leaves_a_server_out_never_gets_its_roots_asks(tmp_path: Path, procs: list[Proc]) -> None:
    config = write_config(tmp_path, {"fs": tracker(), "other": echo_stdio()}, {"data_dir": str(tmp_path / "data")})
    config.write_text(json.dumps({**json.loads(config.read_text()), "profiles": {"only-other": {"namespaces": ["other"]}}}))
    url = start_hub_http(procs, config)
    async with httpx.AsyncClient(timeout=60) as http, anyio.create_task_group() as group:
        client = await RawSession(http, url + "/only-other", ["file:///private"]).open()
        await client.open_get(group)
        reader = await RawSession(http, url).open()
        await reader.call("fs__ask_later", {"delay": 0.1})
        await eventually(lambda: state_is(reader, asks=2, lastError="no client that declared roots and may see"), within_s=30)
        assert client.asked == 0
        group.cancel_scope.cancel()


async def test_a_caller_refused_a_server_never_becomes_the_client_its_roots_asks_go_to(
        tmp_path: Path, procs: list[Proc]) -> None:
    data_dir = tmp_path / "data"
    url = hub_url(tmp_path, procs, {"fs": tracker()}, auth={"enabled": True})
    alice_key, bob_key = create_key(data_dir, "alice", "fs:write"), create_key(data_dir, "bob", "gh:write")  # bob: not fs
    async with httpx.AsyncClient(timeout=60) as http, anyio.create_task_group() as group:
        alice = await RawSession(http, url, ["file:///alice"], alice_key).open()
        bob = await RawSession(http, url, ["file:///bob"], bob_key).open()
        await alice.open_get(group)
        await bob.open_get(group)
        reader = await RawSession(http, url, None, alice_key).open()  # no roots: its calls change no one's caller
        await eventually(lambda: state_is(reader, roots=["file:///alice"]), within_s=30)
        asks = (await alice.call("fs__ask_later", {"delay": 1.0}))["asks"]  # alice: fs's last caller with roots
        refused = await bob.request("tools/call", {"name": "fs__allowed_dirs", "arguments": {}})
        assert refused["result"]["isError"] is True, refused  # bob may not use fs
        await eventually(lambda: state_is(reader, asks=asks + 1, roots=["file:///alice"], lastError=None), within_s=30)
        assert bob.asked == 0
        group.cancel_scope.cancel()
