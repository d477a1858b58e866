"""Issue #19 item 7 through the hub: a `per_client` server (the default for HTTP downstreams) gives
each upstream client its own downstream session — its calls, resources and sampling requests are
its own — capped by `max_sessions`, closed when idle and when the client's connection ends.

The downstream is an SDK Streamable HTTP server keeping state per session
(`tests/fixtures/session_server.py`); the hub runs as `mcp-hub serve` over HTTP; the clients are
the SDK's, each with its own `Mcp-Session-Id` to the hub.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.conftest import PY, Proc, free_port, start_hub_http, wait_for_port, write_config

pytestmark = pytest.mark.anyio

FIXTURE = str(Path(__file__).resolve().parents[2] / "fixtures" / "session_server.py")


def start_session_server(procs: list[Proc]) -> str:
    port = free_port()
    procs.append(Proc([PY, FIXTURE, str(port)]))
    wait_for_port(port)
    return f"http://127.0.0.1:{port}/mcp"


def hub_with(tmp_path: Path, procs: list[Proc], **server: Any) -> tuple[str, str]:
    """(hub URL, downstream URL): the session server aggregated as namespace `st`."""
    downstream = start_session_server(procs)
    config = write_config(tmp_path, {"st": {"url": downstream, "protocol": "legacy", **server}},
                          {"data_dir": str(tmp_path / "data")})
    return start_hub_http(procs, config), downstream


def client(url: str, name: str = "") -> Client:
    async def sampling(ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text=f"I am {name}"),
                                         model="test")

    return Client(url, mode="legacy", sampling_callback=sampling)


def answer(result: types.CallToolResult) -> Any:
    assert not result.is_error, result
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


async def remember(c: Client, x: str) -> list[str]:
    return answer(await c.call_tool("st__remember", {"x": x}))  # type: ignore[no-any-return]


async def live_sessions(downstream: str) -> int:
    """Sessions the downstream has open, not counting the one this question opens."""
    async with Client(downstream, mode="legacy") as direct:
        return answer(await direct.call_tool("live_sessions", {})) - 1  # type: ignore[no-any-return]


async def wait_until(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait (bounded, generously) for a state the hub reaches on its own."""
    with anyio.fail_after(60):
        while not await check():
            await anyio.sleep(0.05)


async def test_each_client_has_its_own_session_state_resources_and_sampling(tmp_path: Path, procs: list) -> None:
    url, downstream = hub_with(tmp_path, procs)
    with anyio.fail_after(120):
        async with client(url, "A") as a, client(url, "B") as b:
            assert await remember(a, "a1") == ["a1"]
            assert await remember(b, "b1") == ["b1"]  # B does not see A's state
            assert await remember(a, "a2") == ["a1", "a2"]  # A keeps its session
            assert {str(r.uri) for r in (await a.list_resources()).resources} == {"mcphub://st/note://a1", "mcphub://st/note://a2"}
            assert {str(r.uri) for r in (await b.list_resources()).resources} == {"mcphub://st/note://b1"}
            assert (await a.read_resource("mcphub://st/note://a1")).contents[0].text == "note a1"  # type: ignore[union-attr]
            with pytest.raises(MCPError):
                await b.read_resource("mcphub://st/note://a1")
            # A sampling request goes to the client whose session asked it, with both calls in flight.
            asked: dict[str, str] = {}

            async def ask(c: Client, who: str) -> None:
                asked[who] = answer(await c.call_tool("st__ask", {}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(ask, a, "A")
                tg.start_soon(ask, b, "B")
            assert asked == {"A": "I am A", "B": "I am B"}
            assert await live_sessions(downstream) == 3  # the hub's shared (catalog) session + A's + B's
        # Both clients closed their connections: their downstream sessions are closed too.
        await wait_until(lambda: _equals(live_sessions(downstream), 1))


async def test_shared_setting_keeps_one_session_for_every_client(tmp_path: Path, procs: list) -> None:
    url, _ = hub_with(tmp_path, procs, session="shared")
    with anyio.fail_after(120):
        async with client(url) as a, client(url) as b:
            assert await remember(a, "a1") == ["a1"]
            assert await remember(b, "b1") == ["a1", "b1"]  # one session: what `shared` means


async def test_beyond_max_sessions_a_client_is_refused_until_one_closes(tmp_path: Path, procs: list) -> None:
    url, _ = hub_with(tmp_path, procs, max_sessions=1)
    with anyio.fail_after(120):
        async with client(url) as b:
            async with client(url) as a:
                assert await remember(a, "a1") == ["a1"]
                refused = await b.call_tool("st__remember", {"x": "b1"})
                assert refused.is_error and refused.structured_content is not None
                body = refused.structured_content
                assert body["code"] == "unavailable" and body["retryable"] is True
                assert body["details"]["reason"] == "sessions_full" and body["retry_after_s"] > 0
                with pytest.raises(MCPError):  # never the shared session instead, for reads either
                    await b.read_resource("mcphub://st/note://a1")
                assert await b.list_resources() is not None and not (await b.list_resources()).resources

            async def b_gets_a_session() -> bool:  # A's connection ended: its session closes, B's opens
                result = await b.call_tool("st__remember", {"x": "b1"})
                return not result.is_error and answer(result) == ["b1"]

            await wait_until(b_gets_a_session)


async def test_an_idle_session_is_closed_and_a_later_call_opens_a_new_one(tmp_path: Path, procs: list) -> None:
    url, downstream = hub_with(tmp_path, procs, session_idle_s=0.5)
    with anyio.fail_after(120):
        async with client(url) as a:
            assert await remember(a, "a1") == ["a1"]
            await wait_until(lambda: _equals(live_sessions(downstream), 1))  # only the shared session is left
            assert await remember(a, "a2") == ["a2"]  # a new session: the old one's state is gone


async def test_a_2026_07_28_request_gets_a_session_of_its_own_released_when_answered(tmp_path: Path, procs: list) -> None:
    url, downstream = hub_with(tmp_path, procs)
    with anyio.fail_after(120):
        async with client(url, "modern") as legacy, Client(url, mode="auto") as modern:
            assert modern.protocol_version == "2026-07-28"
            assert await remember(legacy, "kept") == ["kept"]
            assert await remember(modern, "m1") == ["m1"]  # stateless: no session to share with anyone
            assert await remember(modern, "m2") == ["m2"]
            await wait_until(lambda: _equals(live_sessions(downstream), 2))  # the shared one + the legacy client's
            assert await remember(legacy, "again") == ["kept", "again"]


async def test_a_client_whose_session_the_restarted_server_forgot_gets_a_new_one(tmp_path: Path, procs: list) -> None:
    """Re-check of round 13: after the server restarted, a client's own session answered 404 ("Session
    not found") to every call, until 300 s after its last use — never, while it kept retrying. The
    server's "no such session" ends it: the call says to call again, and the next gets a new session."""
    port = free_port()
    server = Proc([PY, FIXTURE, str(port)])
    procs.append(server)
    wait_for_port(port)
    config = write_config(tmp_path, {"st": {"url": f"http://127.0.0.1:{port}/mcp", "protocol": "legacy",
                                            "health_interval_s": 1}}, {"data_dir": str(tmp_path / "data")})
    url = start_hub_http(procs, config)
    with anyio.fail_after(120):
        async with client(url, "a") as a:
            assert await remember(a, "before") == ["before"]
            server.stop()
            restarted = Proc([PY, FIXTURE, str(port)])
            procs.append(restarted)
            wait_for_port(port)
            refused = await a.call_tool("st__remember", {"x": "lost"})
            if refused.is_error:  # the call the server answered 404 to: retryable, saying why
                body = json.loads(refused.content[0].text)  # type: ignore[union-attr]
                assert body["retryable"] is True and body["details"]["reason"] in ("session_ended", "down"), body
                while (again := await a.call_tool("st__remember", {"x": "after"})).is_error:
                    await anyio.sleep(0.2)  # waiting for the state "the server is back for the hub": a few tries
                assert answer(again) == ["after"]
            else:
                assert answer(refused) == ["lost"]

async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected
