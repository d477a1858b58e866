"""Issue #19 items 4, 5 and 6 through the hub's MCP interface: resource subscriptions relayed per
client (`hub.relay.subscriptions`), downstream instructions merged (`hub.relay.instructions`),
and task-only tools left out (`hub.relay.tasks`).

Downstreams are `tests/fixtures/subscribing_server.py` in-process (handshake era); clients are
SDK clients connected to `build_server(hub)` in memory.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.resource_updates import Updates
from hub.config import parse_config
from hub.hub import Hub
from hub.relay.instructions import HUB_LINE, merge_instructions
from hub.frontends.server import build_server

pytestmark = pytest.mark.anyio

FIXTURE = {"module": "tests.fixtures.subscribing_server:server", "protocol": "legacy"}


def config(**hub: Any) -> Any:
    return parse_config({"hub": hub, "mcpServers": {"n": FIXTURE, "m": FIXTURE}})


@asynccontextmanager
async def client_of(hub: Hub, updates: Updates | None = None) -> AsyncIterator[Client]:
    handler = updates.handler if updates is not None else None
    async with Client(build_server(hub), mode="legacy", message_handler=handler) as client:
        yield client


async def watched(client: Client, server: str = "n") -> list[str]:
    result = await client.call_tool(f"{server}__subscribed", {})
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


async def test_updates_reach_only_the_subscribed_client_under_the_exposed_uri() -> None:
    async with Hub(config()) as hub:
        first, second = Updates(), Updates()
        async with client_of(hub, first) as a, client_of(hub, second) as b:
            assert a.server_capabilities.resources is not None and a.server_capabilities.resources.subscribe
            await a.subscribe_resource("mcphub://n/note://a")  # was -32601
            await b.subscribe_resource("mcphub://n/note://a")
            assert await watched(a) == ["note://a"]  # one downstream subscription for both clients
            await b.unsubscribe_resource("mcphub://n/note://a")
            assert await watched(a) == ["note://a"]  # a still holds it

            await a.call_tool("n__touch", {"uri": "note://a"})
            await first.wait_for("mcphub://n/note://a", 20)

            await b.subscribe_resource("mcphub://n/note://b")
            await a.call_tool("n__touch", {"uri": "note://b"})
            await second.wait_for("mcphub://n/note://b", 20)
            # Notifications to one client arrive in order: had b been sent a's update, it would be here.
            assert second.uris == ["mcphub://n/note://b"]
            assert first.uris == ["mcphub://n/note://a"]

            await a.unsubscribe_resource("mcphub://n/note://a")
            await b.unsubscribe_resource("mcphub://n/note://b")
            assert await watched(a) == []  # the last client out unsubscribed the server


async def test_subscribing_is_scoped_like_reading() -> None:
    async with Hub(config(auth={"stdio_scopes": ["n:write"]})) as hub:
        async with client_of(hub) as client:
            with pytest.raises(MCPError) as hidden:
                await client.subscribe_resource("mcphub://m/note://a")  # a server this client may not read
            assert hidden.value.error.code == -32002
            with pytest.raises(MCPError) as unknown:
                await client.subscribe_resource("mcphub://nope/note://a")
            assert unknown.value.error.code == -32002
            await client.subscribe_resource("mcphub://n/note://a")
            assert await watched(client) == ["note://a"]


async def test_downstream_instructions_are_merged_per_namespace_for_what_the_client_sees() -> None:
    async with Hub(config(auth={"stdio_scopes": ["n:write"]})) as hub:
        async with client_of(hub) as client:
            text = client.instructions or ""
    assert text.startswith(HUB_LINE)
    assert "## n\nNotes live at note://a" in text
    assert "## m" not in text  # m is not visible to this client


async def test_task_only_tools_are_not_listed() -> None:
    async with Hub(config()) as hub:
        async with client_of(hub) as client:
            names = {t.name for t in (await client.list_tools()).tools}
    assert {"n__touch", "n__subscribed"} <= names
    assert "n__only_as_task" not in names


sections = st.lists(st.tuples(st.text("abcdef", min_size=1, max_size=8),
                              st.text("xyz .", min_size=1, max_size=3000)), max_size=8)


@settings(max_examples=50, deadline=None)
@given(sections, st.integers(min_value=256, max_value=8192))
def test_merged_instructions_stay_within_the_budget_and_drop_nothing_silently(parts: list[tuple[str, str]],
                                                                              budget: int) -> None:
    text = merge_instructions(parts, budget)
    assert len(text) <= budget and text.startswith(HUB_LINE)
    for label, body in parts:
        if body.strip():
            assert f"## {label}\n" in text or label in text.rsplit("\n", 1)[-1] or "more instructions omitted" in text


async def test_a_listen_stream_holds_its_uris_on_a_2026_downstream_only_while_open(tmp_path: Any,
                                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2026-07-28 client's `subscriptions/listen` through the hub to a default (2026-07-28)
    builtin: updates arrive after an embedded write, and when the client's stream ends the hub's
    stream on the domain ends too (the domain stops announcing)."""
    import anyio

    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    from servers.ticketing.store import EmbeddedTicketing

    await EmbeddedTicketing(tmp_path).create_project("OPS")
    feed = "mcphub://ticketing/ticketing://changes"
    async with Hub(parse_config({"mcpServers": {"ticketing": {"builtin": "ticketing"}}})) as hub:
        with anyio.fail_after(30):
            while hub.downstreams["ticketing"].state != "ready":
                await anyio.sleep(0.02)  # waiting for the state "ready"
        domain_bus = hub.downstreams["ticketing"].server_object._subscriptions  # noqa: SLF001 — the domain's listeners
        before = len(domain_bus._listeners)  # noqa: SLF001 — the hub's own list-changes stream
        async with Client(build_server(hub)) as client:
            assert client.protocol_version == "2026-07-28"
            async with client.listen(resource_subscriptions=[feed]) as stream:
                assert stream.honored.resource_subscriptions == [feed]
                assert len(domain_bus._listeners) == before + 1, "one more stream on the domain"  # noqa: SLF001
                await client.call_tool("ticketing__create_ticket", {"project": "OPS", "title": "Printer on fire"})
                with anyio.fail_after(30):
                    event = await stream.__anext__()
                assert event.uri == feed  # type: ignore[union-attr]
            with anyio.fail_after(30):
                while len(domain_bus._listeners) > before:  # noqa: SLF001
                    await anyio.sleep(0.02)  # waiting for the state "no stream on the domain"


async def test_one_caller_holds_at_most_its_share_of_listen_streams() -> None:
    """The hub kept the SDK's 1,024 listen streams for everyone, with no share per caller: one key held
    them all and every other 2026-07-28 client was refused its change notifications (outside review
    isolation16). Now a caller holds at most `hub.http.max_sessions_per_principal` streams; the next is
    refused with what to do, and closing one makes room."""
    import anyio
    from contextlib import AsyncExitStack

    hub = Hub(parse_config({"hub": {"http": {"max_sessions_per_principal": 2}}, "mcpServers": {"n": FIXTURE}}))
    async with hub, Client(build_server(hub)) as client, AsyncExitStack() as streams:
        await streams.enter_async_context(client.listen(tools_list_changed=True))
        await streams.enter_async_context(client.listen(prompts_list_changed=True))
        with anyio.fail_after(30), pytest.raises(MCPError) as refused:
            async with client.listen(tools_list_changed=True):
                pass
        assert "max_sessions_per_principal" in refused.value.error.message, refused.value.error
        assert refused.value.error.data["code"] == "rate_limited", refused.value.error.data
        await streams.aclose()
        with anyio.fail_after(30):
            while hub.subscriptions.streams_of:
                await anyio.sleep(0.02)  # waiting for the state "the hub saw both streams end"
            async with client.listen(tools_list_changed=True) as again:
                assert again.honored.tools_list_changed
            while hub.subscriptions.streams_of:
                await anyio.sleep(0.02)  # waiting for the state "every stream of this caller ended"
