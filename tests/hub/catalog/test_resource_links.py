"""Outside review (interop round 8): a resource link a tool or a prompt handed a client could not be read
through the hub — it kept the server's own URI, while the hub reads only the URIs it exposes
(`mcphub://<namespace>/<uri>`). Links and embedded resources now carry the exposed URI, on every front
and path (stdio express, HTTP in both eras), and read back."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, MCPError

from hub.auth.principal import Principal
from hub.catalog.catalog import ToolRoute
from hub.catalog.uri_templates import matches_template
from hub.own_names import own_resource, own_tool_name

from tests.conftest import echo_stdio, start_hub_http, write_config, error_body
from tests.hub.frontends.test_hub_stdio import hub_params

pytestmark = pytest.mark.anyio


async def follow_links(client: Client) -> None:
    result = await client.call_tool("e__links", {"item": "7"})
    assert not result.is_error, result
    link, embedded, inline, web = result.content
    # what a client resolves itself is left alone (re-check of round 8)
    assert isinstance(inline, types.ResourceLink) and inline.uri == "data:text/plain;base64,SGVsbG8=", inline
    assert isinstance(web, types.ResourceLink) and web.uri == "https://example.org/report.pdf", web
    assert isinstance(link, types.ResourceLink) and link.uri == "mcphub://e/fixture://readme", link
    assert isinstance(embedded, types.EmbeddedResource), embedded
    assert embedded.resource.uri == "mcphub://e/fixture://items/7", embedded
    read = await client.read_resource(link.uri)
    assert read.contents[0].text == "readme of e", read  # type: ignore[union-attr]
    read = await client.read_resource(embedded.resource.uri)
    assert read.contents[0].text == "item 7", read  # type: ignore[union-attr]

    # MCP Apps: a host reads the tool's UI resource by the URI in its `_meta`, and renders only `ui://`
    tool = next(t for t in (await client.list_tools()).tools if t.name == "e__show_view")
    assert tool.meta is not None and tool.meta["ui"] == {"resourceUri": "ui://e__echo/view"}, tool.meta
    shown = await client.call_tool("e__show_view", {})
    assert shown.meta is not None and shown.meta["ui/resourceUri"] == "ui://e__echo/view", shown.meta
    listed = [str(r.uri) for r in (await client.list_resources()).resources]
    assert "ui://e__echo/view" in listed, listed
    assert (await client.read_resource("ui://e__echo/view")).contents[0].text == "<p>view</p>"  # type: ignore[union-attr]

    # an app calls its server's tools and reads its resources by the server's own names (apps round 9)
    called = await client.call_tool("show_view", {})
    assert not called.is_error and called.content[0].text == "shown", called  # type: ignore[union-attr]
    assert (await client.read_resource("ui://echo/view")).contents[0].text == "<p>view</p>"  # type: ignore[union-attr]
    assert (await client.read_resource("fixture://items/9")).contents[0].text == "item 9"  # type: ignore[union-attr]
    declared = await client.call_tool("e__apps_declared", {})
    assert declared.structured_content == {"result": True}, declared  # the hub declares MCP Apps to its servers

    prompt = await client.get_prompt("e__discuss", {"item": "8"})
    first = prompt.messages[0].content
    assert isinstance(first, types.EmbeddedResource) and first.resource.uri == "mcphub://e/fixture://items/8", first
    assert (await client.read_resource(first.resource.uri)).contents[0].text == "item 8"  # type: ignore[union-attr]


async def follow_a_long_link_in_a_big_result(client: Client) -> None:
    """A line of 1 MiB or more has its long strings lifted out as placeholders (`hub.lifted`): a long
    link was prefixed as its placeholder, which was then never put back (re-check of round 8)."""
    big = await client.call_tool("e__big_link", {"kb": 1536})
    text, long_link = big.content
    assert isinstance(text, types.TextContent) and len(text.text) == 1536 * 1024
    assert isinstance(long_link, types.ResourceLink), long_link
    assert long_link.uri == "mcphub://e/fixture://items/" + "y" * 81920, long_link.uri[:120]


async def test_links_read_back_through_the_stdio_front(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"echo": echo_stdio("--name", "e", "--links", namespace="e")})
    with anyio.fail_after(60):
        async with Client(hub_params(config)) as client:
            await follow_links(client)
            await follow_a_long_link_in_a_big_result(client)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_links_read_back_through_the_http_front(tmp_path: Path, procs: list, mode: str) -> None:
    async def no_questions(ctx: Any, params: Any) -> Any:
        raise AssertionError("not asked")

    config = write_config(tmp_path, {"echo": echo_stdio("--name", "e", "--links", namespace="e")}, {"data_dir": str(tmp_path / "data")})
    url = start_hub_http(procs, config)
    with anyio.fail_after(60):
        async with Client(url, mode=mode) as plain:  # the fast path
            await follow_links(plain)
            await follow_a_long_link_in_a_big_result(plain)  # a JSON answer (an SSE event past 1 MiB the SDK refuses)
        async with Client(url, mode=mode, elicitation_callback=no_questions) as relaying:  # the SDK's session
            await follow_links(relaying)


@pytest.mark.parametrize("withheld", [False, True])
async def test_an_own_name_two_servers_list_stays_unknown(tmp_path: Path, withheld: bool) -> None:
    """A server's own tool name resolves only when exactly one server has a tool of that name — also
    when the config withholds one server's tool (re-check of round 10: server one's withheld
    `show_view` left its name to server two's, and a call one's app meant ran on two)."""
    one = echo_stdio("--name", "one", "--links", namespace="one", **({"tools": {"deny": ["show_view"]}} if withheld else {}))
    config = write_config(tmp_path, {"one": one, "two": echo_stdio("--name", "two", "--links", namespace="two")})
    with anyio.fail_after(60):
        async with Client(hub_params(config)) as client:
            result = await client.call_tool("show_view", {})
            assert result.is_error and error_body(result)["code"] == "not_found", result  # type: ignore[index]
            assert not (await client.call_tool("two__show_view" if withheld else "one__show_view", {})).is_error


async def test_resources_are_listed_in_server_order_with_per_client_sessions(tmp_path: Path, procs: list) -> None:
    """A per-client server's resources came after every other server's (apps round 9)."""
    servers = {"a": echo_stdio("--name", "a", namespace="a", session="per_client"), "z": echo_stdio("--name", "z", namespace="z")}
    url = start_hub_http(procs, write_config(tmp_path, servers, {"data_dir": str(tmp_path / "data")}))
    with anyio.fail_after(60):
        async with Client(url, mode="legacy") as client:
            uris = [str(r.uri) for r in (await client.list_resources()).resources]
    assert uris == ["mcphub://a/fixture://readme", "mcphub://z/fixture://readme"], uris


async def test_a_down_servers_own_name_is_never_taken_for_anothers_tool(tmp_path: Path) -> None:
    """Re-check of apps round 9: a server's own name resolves only when one server the caller may see
    ever offered it — a server down now still counts, or a call meant for it would run on another's."""
    config = write_config(tmp_path, {"one": echo_stdio("--name", "one", "--links", namespace="one", hide_when_down=True,
                                                       restart={"initial_backoff_s": 30, "max_backoff_s": 30}),
                                     "two": echo_stdio("--name", "two", "--links", namespace="two")})
    with anyio.fail_after(90):
        async with Client(hub_params(config)) as client:
            assert (await client.call_tool("show_view", {})).structured_content["code"] == "not_found"  # type: ignore[index]
            await client.call_tool("one__crash", {})
            while any(t.name.startswith("one__") for t in (await client.list_tools()).tools):
                await anyio.sleep(0.05)
            after = await client.call_tool("show_view", {})
            assert after.is_error and error_body(after)["code"] == "not_found", after  # type: ignore[index]
            with pytest.raises(MCPError):  # a subscription keeps to the exposed URIs
                await client.subscribe_resource("fixture://readme")


def test_own_names_are_judged_over_what_the_caller_may_see() -> None:
    routes = {"a": ToolRoute("a__shared", "a", "shared", types.Tool(name="a__shared", input_schema={"type": "object"})),
              "b": ToolRoute("b__shared", "b", "shared", types.Tool(name="b__shared", input_schema={"type": "object"}))}
    downstreams = {"a": SimpleNamespace(state="ready"), "b": SimpleNamespace(state="ready")}
    catalog = SimpleNamespace(resolve_tool=lambda name: None, routes=lambda: list(routes.values()),
                              routes_named=lambda name: [r for r in routes.values() if downstreams[r.server].state == "ready"],
                              offered_by=lambda name: {"a", "b"}, serves=lambda server: downstreams[server].state == "ready")
    sees: set[str] = {"a"}
    access = SimpleNamespace(may_read=lambda principal, server: server in sees,
                             may_use_tool=lambda principal, route: route.server in sees)
    hub: Any = SimpleNamespace(catalog=catalog, access=access, downstreams=downstreams)
    caller = Principal(name="k", scopes=())
    assert own_tool_name(hub, "shared", caller) == "a__shared"  # b is hidden from this caller: unique for it
    downstreams["b"].state = "down"
    assert own_tool_name(hub, "shared", caller) is None  # a server down might be the one meant: never another's
    downstreams["b"].state = "ready"
    sees.add("b")
    assert own_tool_name(hub, "shared", caller) is None  # two servers it may see: ambiguous
    assert own_tool_name(hub, "shared", caller, keep=lambda exposed: exposed.startswith("a__")) == "a__shared"  # a profile
    assert own_tool_name(hub, "a__shared", caller) is None  # a name with `__` is never a server's own name


def test_uri_templates_match_in_bounded_work() -> None:
    assert matches_template("videos://bunny-1mb", "videos://{id}") and not matches_template("videos://a/b", "videos://{id}")
    assert matches_template("f://a.txt", "f://{name}{.ext}") and matches_template("file:///a/b", "file:///{+path}")
    assert matches_template("x://s?q=1", "x://s{?q,limit}") and not matches_template("x.y://s", "x+y://s")
    assert not matches_template("f://" + "a" * 40_000, "f://{a}{b}{c}")  # past MAX_URI: no template is tried


def test_an_own_uri_never_reaches_another_server_while_one_is_stopped_or_by_an_exposed_form() -> None:
    """Re-check of round 10: after a console Disable of server a, its URIs were answered by another server."""
    downstreams = {"a": SimpleNamespace(state="ready"), "b": SimpleNamespace(state="ready")}
    catalog = SimpleNamespace(serves=lambda server: downstreams[server].state == "ready",
                              servers_owning=lambda uri, servers: {"b"} & servers)
    access = SimpleNamespace(may_read=lambda principal, server: True)
    hub: Any = SimpleNamespace(catalog=catalog, access=access, downstreams=downstreams)
    caller = Principal(name="k", scopes=())
    assert own_resource(hub, "file:///notes.txt", caller) == ("b", "file:///notes.txt")
    assert own_resource(hub, "ui://a__app.html", caller) is None  # the exposed form of a's UI: never b's
    downstreams["a"].state = "stopped"
    assert own_resource(hub, "file:///notes.txt", caller) is None  # a stopped server might be the one meant
