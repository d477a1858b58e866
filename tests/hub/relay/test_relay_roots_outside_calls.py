"""Outside review interop16 #2: a server that asks `roots/list` outside any tool call — after
`initialized` and on `notifications/roots/list_changed`, as @modelcontextprotocol/server-filesystem
does — gets its client's roots through the hub. The hub remembered clients by the SDK's per-request
session, so behind the stdio front every such ask was refused, and over HTTP a re-ask failed "no channel".

Real processes: the hub (`mcp-hub serve`, stdio or HTTP), the roots-tracking fixture server as its stdio
child (`tests/fixtures/roots_tracking_server.py`), SDK clients declaring roots.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import FIXTURES, PY, ROOT, Proc, start_hub_http, write_config
from tests.relay_support import answer, eventually

pytestmark = pytest.mark.anyio

TRACKER = str(Path(FIXTURES) / "roots_tracking_server.py")


class Roots:
    """A client's roots, which a test may change."""

    def __init__(self, *uris: str) -> None:
        self.uris = list(uris)

    async def __call__(self, ctx: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri=uri) for uri in self.uris])


def tracker(session: str | None = None) -> dict[str, Any]:
    return {"command": PY, "args": [TRACKER], **({"session": session} if session else {})}


@asynccontextmanager
async def connected(target: Any, roots: Roots) -> AsyncIterator[Client]:
    async with Client(target, mode="legacy", list_roots_callback=roots) as client:
        yield client


async def has_roots(client: Client, uris: list[str]) -> bool:
    return answer(await client.call_tool("fs__allowed_dirs", {}))["roots"] == uris  # type: ignore[no-any-return]


async def test_behind_the_stdio_front_the_one_clients_roots_answer_at_init_and_after_a_change(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"fs": tracker()}, {"data_dir": str(tmp_path / "data")})
    hub = StdioServerParameters(command=PY, args=["-m", "hub.cli", "serve", "--config", str(config)],
                                env=dict(os.environ), cwd=str(ROOT))
    roots = Roots("file:///work/project")
    with anyio.fail_after(120):
        async with connected(hub, roots) as client:
            await eventually(lambda: has_roots(client, ["file:///work/project"]), within_s=30)
            roots.uris = ["file:///work/other"]
            await client.send_roots_list_changed()
            await eventually(lambda: has_roots(client, ["file:///work/other"]), within_s=30)
            assert answer(await client.call_tool("fs__allowed_dirs", {}))["lastError"] is None


async def test_a_shared_server_that_asked_before_any_client_asks_again_when_one_with_roots_arrives(
        tmp_path: Path, procs: list[Proc]) -> None:
    config = write_config(tmp_path, {"fs": tracker("shared")}, {"data_dir": str(tmp_path / "data")})
    url = start_hub_http(procs, config)
    hub = procs[-1]

    async def refused_at_init() -> bool:  # the server asked when no client was there to answer
        return any("relay kind=roots server=fs" in line and "outcome=denied" in line for line in list(hub.stderr_lines))

    await eventually(refused_at_init, within_s=60)
    with anyio.fail_after(120):
        async with connected(url, Roots("file:///a")) as client:
            await eventually(lambda: has_roots(client, ["file:///a"]), within_s=30)


async def test_a_per_client_sessions_re_ask_goes_to_its_own_client_only(tmp_path: Path, procs: list[Proc]) -> None:
    config = write_config(tmp_path, {"fs": tracker("per_client")}, {"data_dir": str(tmp_path / "data")})
    url = start_hub_http(procs, config)
    roots_a, roots_b = Roots("file:///a"), Roots("file:///b")
    with anyio.fail_after(120):
        async with connected(url, roots_a) as a, connected(url, roots_b) as b:
            for client in (a, b):  # each opens its own session (a child of its own) of `fs`
                assert answer(await client.call_tool("fs__allowed_dirs", {}))["asks"] >= 1
            roots_a.uris = ["file:///a2"]
            await a.send_roots_list_changed()  # A's child asks again, outside any call: A answers
            await eventually(lambda: has_roots(a, ["file:///a2"]), within_s=30)
            seen_b = answer(await b.call_tool("fs__allowed_dirs", {}))["roots"]
            assert seen_b in (None, ["file:///b"])  # never A's
            await b.send_roots_list_changed()
            await eventually(lambda: has_roots(b, ["file:///b"]), within_s=30)


async def test_a_shared_servers_out_of_call_ask_with_several_clients_follows_the_last_caller_or_is_refused(
        tmp_path: Path, procs: list[Proc]) -> None:
    config = write_config(tmp_path, {"fs": tracker("shared")}, {"data_dir": str(tmp_path / "data")})
    url = start_hub_http(procs, config)
    with anyio.fail_after(120):
        async with Client(url, mode="legacy") as reader, connected(url, Roots("file:///a")) as a:  # reader: no roots
            async def state() -> dict[str, Any]:
                return answer(await reader.call_tool("fs__allowed_dirs", {}))  # type: ignore[no-any-return]

            async def a_answered() -> bool:  # A was the one client with roots when the server asked
                return (await state())["roots"] == ["file:///a"]

            await eventually(a_answered, within_s=30)
            async with connected(url, Roots("file:///b")) as b:
                asks = (await state())["asks"]
                await a.send_roots_list_changed()  # two clients with roots, neither called `fs`: whose? refused

                async def refused() -> bool:
                    now = await state()
                    return now["asks"] > asks and "none has called" in (now["lastError"] or "")

                await eventually(refused, within_s=30)
                assert (await state())["roots"] == ["file:///a"]  # B's never sent
                await a.call_tool("fs__allowed_dirs", {})  # A is the last caller with roots now
                asks = (await state())["asks"]
                await a.send_roots_list_changed()

                async def asked_again() -> bool:
                    now = await state()
                    return now["asks"] > asks and now["lastError"] is None

                await eventually(asked_again, within_s=30)
                await b.send_roots_list_changed()  # fs's roots are A's: B's change does not concern it
                await a.send_roots_list_changed()  # a marker: had B's been passed on, fs would count one more ask
                after = asks + 2

                async def marker() -> bool:
                    return (await state())["asks"] >= after

                await eventually(marker, within_s=30)
                final = await state()
                assert final["asks"] == after and final["roots"] == ["file:///a"]
