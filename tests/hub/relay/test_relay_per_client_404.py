"""Relay round 15 (D1, D1b): a `per_client` Streamable HTTP server that restarts answers HTTP 404
("session not found") for a client's own session. On every path that meets it — calls, reads,
listings, tasks, subscribe/unsubscribe, log levels — that session ends exactly as one whose server
exited does: its subscriptions are renewed on the client's new session, and the request is answered
with the hub's retryable `session_ended` (or, for a listing, a read and a subscribe, asked again once
on the new session). Before, only a call ended it, never renewing subscriptions, and a client that only
(un)subscribed got -32600 "Session not found" for ever.

The downstream is `tests/fixtures/session_relay_server.py` (subscriptions, log level and tasks per
session), restarted on the same port; the hub runs as `mcp-hub serve`; the client is the SDK's.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.conftest import PY, Proc, free_port, start_hub_http, wait_for_port, write_config
from tests.relay_support import RELAY_FIXTURE, Heard, answer, eventually, raw

pytestmark = pytest.mark.anyio

URI = "mcphub://st/note://a"


@pytest.fixture
def started() -> Iterator[list[Proc]]:
    """Processes of one test, stopped in reverse order (the hub before its downstream)."""
    procs: list[Proc] = []
    yield procs
    for proc in reversed(procs):
        proc.stop()


class Downstream:
    """The per-session fixture server on a fixed port, restartable (its sessions are then unknown to it)."""

    def __init__(self, started: list[Proc]) -> None:
        self.port, self._started = free_port(), started
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._proc = self._start()

    def _start(self) -> Proc:
        proc = Proc([PY, RELAY_FIXTURE, str(self.port)])
        self._started.insert(0, proc)  # stopped after the hub
        wait_for_port(self.port)
        return proc

    hub_url = ""

    async def hub_connected(self) -> None:
        """Wait until the hub's own (shared) session of the server is up: a hub that noticed the restart
        lists no resources of a `per_client` server until it has reconnected (`Hub.resources_for`)."""
        async def connected() -> bool:
            async with httpx.AsyncClient() as http:
                return (await http.get(self.hub_url.replace("/mcp", "/healthz"), timeout=5)).json().get("status") == "ok"
        await eventually(connected)

    def restart(self) -> None:
        self._proc.stop()
        self._started.remove(self._proc)
        self._proc = self._start()


@asynccontextmanager
async def hub_and_client(tmp_path: Path, started: list[Proc]) -> AsyncIterator[tuple[Client, Heard, Downstream]]:
    downstream = Downstream(started)
    config = write_config(tmp_path, {"st": {"url": downstream.url, "protocol": "legacy", "session": "per_client"}},
                          {"data_dir": str(tmp_path / "data")})
    url = start_hub_http(started, config)
    downstream.hub_url = url
    heard = Heard()
    with anyio.fail_after(120):
        async with Client(url, mode="legacy", message_handler=heard.on_message, logging_callback=heard.on_log) as client:
            yield client, heard, downstream


def session_ended(exc: MCPError) -> bool:
    """Whether a JSON-RPC error is the hub's retryable `session_ended` refusal (its body as `data`)."""
    data = exc.error.data
    return isinstance(data, dict) and data.get("retryable") is True and data.get("details", {}).get("reason") == "session_ended"


async def touched(client: Client) -> bool:
    """Whether the client's own downstream session is subscribed to note://a (a call: it may meet the 404)."""
    result = await client.call_tool("st__touch", {"x": "a"})
    return not result.is_error and answer(result) is True


async def test_a_call_meeting_the_404_renews_the_clients_subscriptions_on_its_new_session(tmp_path: Path, started: list) -> None:
    """D1: the call's 404 ended the session without renewing what it held; updates stopped for good."""
    async with hub_and_client(tmp_path, started) as (client, heard, downstream):
        await client.subscribe_resource(URI)
        assert await touched(client)
        await heard.until(lambda: heard.updated == [URI])
        downstream.restart()
        refused = await client.call_tool("st__touch", {"x": "a"})  # meets the 404
        if refused.is_error:
            assert json.loads(refused.content[0].text)["details"]["reason"] == "session_ended"  # type: ignore[union-attr]
        await eventually(lambda: touched(client))  # renewed on the new session, no subscribe by the client
        await heard.until(lambda: heard.updated[-1:] == [URI] and len(heard.updated) >= 2)


async def resubscribed(client: Client) -> bool:
    """Subscribes (again): True once done on a new session. The hub's own session meets the 404 too and reconnects
    meanwhile; the server reads "down" until then (a loaded machine: a CI run met it), which only delays it."""
    try:
        await client.subscribe_resource(URI)
    except MCPError as exc:
        if "is down" not in str(exc):
            raise
        return False
    return True


async def test_a_watcher_that_only_resubscribes_after_the_404_gets_a_new_session(tmp_path: Path, started: list) -> None:
    """D1b: with no call in between, unsubscribe and subscribe answered -32600 "Session not found" for ever."""
    async with hub_and_client(tmp_path, started) as (client, _heard, downstream):
        await client.subscribe_resource(URI)
        downstream.restart()
        await client.unsubscribe_resource(URI)  # ended with the session: done, also while the hub reconnects
        await eventually(lambda: resubscribed(client))
        assert await touched(client)


async def test_subscribing_again_after_the_404_subscribes_the_new_session(tmp_path: Path, started: list) -> None:
    """D1: a subscription recorded as held made a fresh subscribe a no-op; it is sent, meets the 404 and
    is asked again on a new session."""
    async with hub_and_client(tmp_path, started) as (client, _heard, downstream):
        await client.subscribe_resource(URI)
        downstream.restart()
        await eventually(lambda: resubscribed(client))
        assert await touched(client)


async def test_a_task_request_meeting_the_404_is_session_ended_and_renews_subscriptions(
        tmp_path: Path, started: list) -> None:
    """`tasks/*` answered the raw -32600 and left the subscriptions dead. (A task lives on the session
    that made it: once that session ended, it is "not found".)"""
    async with hub_and_client(tmp_path, started) as (client, _heard, downstream):
        created = await raw(client, "tools/call", {"name": "st__job", "arguments": {}, "task": {"ttl": 60_000}})
        params = {"taskId": created["task"]["taskId"]}
        await client.subscribe_resource(URI)
        downstream.restart()
        with pytest.raises(MCPError) as refused:
            await raw(client, "tasks/get", params)
        assert session_ended(refused.value), refused.value.error
        await eventually(lambda: touched(client))  # the subscription was renewed on a new session
        with pytest.raises(MCPError, match="not found"):
            await raw(client, "tasks/get", params)


async def test_a_read_meeting_the_404_is_asked_again_on_a_new_session_and_renews_subscriptions(
        tmp_path: Path, started: list) -> None:
    """A read is safe to repeat (the 404 means the server ran nothing), as a listing is: it was refused
    `session_ended` ("call again"; outside review recheck15 #10). Now it is served on the new session."""
    async with hub_and_client(tmp_path, started) as (client, _heard, downstream):
        await client.subscribe_resource(URI)
        assert (await client.read_resource(URI)).contents
        downstream.restart()
        read = await client.read_resource(URI)  # meets the 404, asked again on a new session
        assert [str(c.uri) for c in read.contents] == [URI]
        await eventually(lambda: touched(client))  # the subscription was renewed on that session


async def test_listing_resources_after_the_404_asks_again_on_a_new_session(tmp_path: Path, started: list) -> None:
    """The client's own part of `resources/list` is safe to repeat: the listing failed whole (-32600)."""
    async with hub_and_client(tmp_path, started) as (client, _heard, downstream):
        assert [str(r.uri) for r in (await client.list_resources()).resources] == [URI]
        downstream.restart()
        await downstream.hub_connected()  # if the hub noticed the restart, its client's session is still the old one

        async def listed() -> bool:  # each listing is answered (never -32600); on a loaded machine the hub may notice
            return [str(r.uri) for r in (await client.list_resources()).resources] == [URI]  # the restart only now

        await eventually(listed)


async def test_set_level_meeting_the_404_ends_the_session_and_the_new_one_gets_the_level(tmp_path: Path, started: list) -> None:
    """`logging/setLevel` swallowed the 404 and left the dead session in place: the next call met it."""
    async with hub_and_client(tmp_path, started) as (client, heard, downstream):
        assert answer(await client.call_tool("st__say", {"text": "before"})) is False  # a session, no level yet
        downstream.restart()
        await client.set_logging_level("info")  # meets the 404 on the client's own session
        assert answer(await client.call_tool("st__say", {"text": "after"})) is True  # a new session, with the level
        await heard.until(lambda: heard.logs == [("st/fixture", "after")])
