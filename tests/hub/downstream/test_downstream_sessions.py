"""Issue #19 item 7 at the module's level: `hub.downstream.sessions.SessionPool` gives each upstream
client its own session of a real MCP server (the SDK's `MCPServer` in memory, handshake era), capped,
expired when idle, closed when the client goes away.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server import MCPServer
from mcp.server.mcpserver import Context

from hub.downstream.sessions import SessionPool
from hub.errors import HubRefusal

pytestmark = pytest.mark.anyio


class Owner:
    """Stands for an upstream client connection (weak-referenceable, like the SDK's `Connection`)."""


def counting_server() -> MCPServer:
    """A server with per-session state: `remember(x)` appends to its session's list, `recall()` reads it."""
    server = MCPServer("stateful")
    notes: dict[int, list[str]] = {}

    @server.tool()
    def remember(x: str, ctx: Context) -> list[str]:
        notes.setdefault(id(ctx.session._connection), []).append(x)  # noqa: SLF001 — the session's identity
        return notes[id(ctx.session._connection)]  # noqa: SLF001

    return server


def pool_of(server: MCPServer, opened: list[Any] | None = None, **kwargs: Any) -> SessionPool:
    def open_session(owner: Any) -> Client:
        if opened is not None:
            opened.append(owner)
        return Client(server, mode="legacy")

    return SessionPool("stateful", open_session, **kwargs)


async def remember(pool: SessionPool, owner: Owner, x: str) -> list[str]:
    async with pool.using(owner) as client:
        return (await client.call_tool("remember", {"x": x})).structured_content["result"]


async def test_each_client_gets_its_own_session_and_keeps_it() -> None:
    server = counting_server()
    opened: list[Any] = []
    pool = pool_of(server, opened)
    a, b = Owner(), Owner()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(pool.run)
            assert await remember(pool, a, "a1") == ["a1"]
            assert await remember(pool, b, "b1") == ["b1"]  # b does not see a's state
            assert await remember(pool, a, "a2") == ["a1", "a2"]  # a's session is kept
            assert len(opened) == 2 and pool.open_count == 2
            tg.cancel_scope.cancel()
    assert pool.open_count == 0


async def test_beyond_max_sessions_a_new_client_is_refused_never_given_a_shared_session() -> None:
    server = counting_server()
    pool = pool_of(server, max_sessions=2)
    a, b, c = Owner(), Owner(), Owner()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(pool.run)
            await remember(pool, a, "a")
            await remember(pool, b, "b")
            with pytest.raises(HubRefusal) as refused:
                await remember(pool, c, "c")
            body = refused.value.body
            assert body.code == "unavailable" and body.retryable and body.details == {"server": "stateful", "reason": "sessions_full"}
            pool.close(a)  # a's client connection ended
            await pool.wait_open_count(1)
            assert await remember(pool, c, "c") == ["c"]
            tg.cancel_scope.cancel()


async def test_an_idle_session_closes_but_never_one_in_use() -> None:
    server = counting_server()
    pool = pool_of(server, idle_s=0.3)
    busy, idle = Owner(), Owner()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(pool.run)
            async with pool.using(busy) as client:
                await remember(pool, idle, "i")
                await pool.wait_open_count(1)  # the idle one expired ...
                assert (await client.call_tool("remember", {"x": "still"})).structured_content["result"] == ["still"]
            await pool.wait_open_count(0)  # ... the busy one only once released and idle
            assert await remember(pool, idle, "again") == ["again"]  # a fresh session: the old state is gone
            tg.cancel_scope.cancel()


async def test_a_client_that_goes_away_has_its_session_closed() -> None:
    server = counting_server()
    pool = pool_of(server)
    owner: Owner | None = Owner()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(pool.run)
            assert owner is not None
            await remember(pool, owner, "x")
            owner = None
            gc.collect()
            await pool.wait_open_count(0)
            tg.cancel_scope.cancel()


async def test_a_session_that_cannot_open_is_a_refusal_and_the_pool_goes_on() -> None:
    server = counting_server()
    failing = {"first": True}

    def open_session(owner: Any) -> Client:
        if failing.pop("first", False):
            return Client("http://127.0.0.1:9/mcp", mode="legacy")  # nothing listens there
        return Client(server, mode="legacy")

    pool = SessionPool("stateful", open_session)
    owner = Owner()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(pool.run)
            with pytest.raises(HubRefusal) as refused:
                await remember(pool, owner, "x")
            assert refused.value.body.details == {"server": "stateful", "reason": "down"}
            assert await remember(pool, owner, "y") == ["y"]
            tg.cancel_scope.cancel()


async def test_the_hub_gives_each_bound_client_its_own_session_of_a_per_client_server(tmp_path: Any) -> None:
    """Wired: an in-process server set to `session: per_client`; calls bound to an owner (as the front
    end binds each request's connection) go to that owner's session, not the shared one."""
    from hub.config import parse_config
    from hub.downstream.owners import bind_owner
    from hub.hub import Hub

    config = parse_config({"hub": {"data_dir": str(tmp_path)}, "mcpServers": {"st": {
        "module": "tests.hub.downstream.test_downstream_sessions:counting_server", "session": "per_client", "protocol": "legacy"}}})
    a, b = Owner(), Owner()

    async def call(owner: Owner | None, x: str) -> list[str]:
        with bind_owner(owner):
            result = await hub.route_call("st__remember", {"x": x})
        assert not result.is_error, result
        return result.structured_content["result"]  # type: ignore[index,no-any-return]

    with anyio.fail_after(30):
        async with Hub(config) as hub:
            pool = hub.downstreams["st"].pool
            assert pool is not None
            assert await call(a, "a1") == ["a1"]
            assert await call(b, "b1") == ["b1"]
            assert await call(a, "a2") == ["a1", "a2"]
            assert await call(None, "shared") == ["shared"]  # no connection (a library call): the shared session
            assert pool.open_count == 2
            hub.release_owner(a)
            await pool.wait_open_count(1)
            assert await call(a, "a3") == ["a3"]  # a new session


@asynccontextmanager
async def running(pool: SessionPool) -> AsyncIterator[None]:
    """`pool` serving for the block (bounded: a hang fails the test), stopped after it."""
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(pool.run)
            yield
            tg.cancel_scope.cancel()


async def release_after(pool: SessionPool, owner: Owner, x: str, lend_key: str) -> list[str]:
    """One stateless request: `owner` uses its session with `lend_key`, then is done with it."""
    async with pool.using(owner, lend_key) as client:
        said = (await client.call_tool("remember", {"x": x})).structured_content["result"]
    pool.close(owner)
    return said  # type: ignore[no-any-return]


async def test_a_stateless_requests_session_is_lent_to_its_callers_next_request_only() -> None:
    """A 2026-07-28 request's session (a stdio child) is parked when released and borrowed by the next
    request with the same lend key (the caller): one session for a caller's many requests, one at a time;
    never another key's, and its callbacks reach the request that holds it now."""
    server = counting_server()
    opened: list[Any] = []
    pool = pool_of(server, opened)
    async with running(pool):
        assert await release_after(pool, Owner(), "a1", "alice") == ["a1"]
        assert pool.open_count == 1  # parked, not closed
        second = Owner()
        async with pool.using(second, "alice"):
            assert opened[0]() is second  # the session's owner reference follows the borrower
            # Held by `second`: a concurrent request of the same caller gets a session of its own.
            assert await release_after(pool, Owner(), "a-concurrent", "alice") == ["a-concurrent"]
            assert len(opened) == 2
        pool.close(second)
        assert await release_after(pool, Owner(), "b1", "bob") == ["b1"]  # never alice's session
        assert len(opened) == 3 and pool.open_count == 3
        said = await release_after(pool, Owner(), "a2", "alice")
        assert said[-1] == "a2" and said[0].startswith("a") and len(opened) == 3
    assert pool.open_count == 0


async def test_parked_sessions_close_when_idle_and_make_room_for_other_callers() -> None:
    server = counting_server()
    opened: list[Any] = []
    pool = pool_of(server, opened, max_sessions=2, idle_s=0.5)
    async with running(pool):
        await release_after(pool, Owner(), "a", "alice")
        await release_after(pool, Owner(), "b", "bob")
        assert pool.open_count == 2
        # Full: a third caller closes the parked session used least recently (alice's), not a refusal.
        assert await release_after(pool, Owner(), "c", "carol") == ["c"]
        await pool.wait_open_count(2)
        assert await release_after(pool, Owner(), "a", "alice") == ["a"]  # alice's state went with it
        await pool.wait_open_count(0)  # every parked session closes once idle
        assert len(opened) == 4


async def test_one_caller_holds_at_most_a_quarter_of_the_sessions() -> None:
    """Re-check of round 12: one principal's concurrent requests took every session, and everyone else
    was refused `sessions_full`; round 13: three quarters for one caller left one quarter for all the
    others (a heavy caller and two users locked everyone else out). A caller holds a quarter (2 of 8)."""
    server = counting_server()
    pool = pool_of(server, max_sessions=8)
    assert pool.max_per_caller == 2
    bobs = [Owner() for _ in range(3)]
    async with running(pool):
        async with pool.using(bobs[0], caller="bob"), pool.using(bobs[1], caller="bob"), \
                pool.using(Owner(), caller="carol"), pool.using(Owner(), caller="dave"):
            with pytest.raises(HubRefusal) as refused:
                async with pool.using(bobs[2], caller="bob"):
                    pass
            assert refused.value.body.details == {"server": "stateful", "reason": "sessions_share"}
            async with pool.using(Owner(), caller="alice") as client:  # room for others
                assert (await client.call_tool("remember", {"x": "a"})).structured_content["result"] == ["a"]


async def test_a_caller_at_its_share_makes_room_by_closing_its_own_parked_session() -> None:
    server = counting_server()
    opened: list[Any] = []
    pool = pool_of(server, opened, max_sessions=12)
    async with running(pool):
        owners = [Owner() for _ in range(3)]
        async with pool.using(owners[0], "bob", "bob"), pool.using(owners[1], "bob", "bob"), \
                pool.using(owners[2], "bob", "bob"):
            pass
        for owner in owners:
            pool.close(owner)  # three parked sessions of bob's: his share
        assert pool.open_count == 3
        async with pool.using(Owner(), None, "bob"):  # not lent (no lend key): his oldest parked one makes room
            await pool.wait_open_count(3)


async def test_close_all_closes_parked_sessions_now_and_those_in_use_when_released_never_lending_them() -> None:
    """Re-check of round 12: a console Restart or Disable left a per-client server's parked children
    running, and they were lent again with their old state."""
    server = counting_server()
    opened: list[Any] = []
    pool = pool_of(server, opened)
    async with running(pool):
        await release_after(pool, Owner(), "old state", "alice")  # parked
        busy = Owner()
        async with pool.using(busy) as client:  # a session of its own (not lent: no lend key)
            pool.close_all()
            await pool.wait_open_count(1)  # the parked one is gone; the one in use finishes its call
            assert (await client.call_tool("remember", {"x": "still"})).structured_content["result"] == ["still"]
        pool.close(busy)
        await pool.wait_open_count(0)  # closed once released, not parked
        assert await release_after(pool, Owner(), "new", "alice") == ["new"]  # a fresh session
        assert len(opened) == 3


async def test_a_session_whose_server_ended_is_closed_even_when_parked() -> None:
    """Re-check of round 12: a per-client child that exited was parked and lent again, dead, to every
    later request of its caller."""
    server = counting_server()
    opened: list[Any] = []
    pool = pool_of(server, opened)
    async with running(pool):
        await release_after(pool, Owner(), "a", "alice")
        pool.end(opened[0])  # what its transport reports (`Downstream._open_owned`'s `ended`)
        await pool.wait_open_count(0)
        assert await release_after(pool, Owner(), "b", "alice") == ["b"] and len(opened) == 2
