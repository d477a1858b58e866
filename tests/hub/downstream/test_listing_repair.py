"""A server's listing that the SDK cannot read whole (`hub.downstream.listing_repair`, `_discover`):
the items it cannot read are left out and named, the rest served; a list beside the tools that
answers with an error is served empty; a failed `tools/list` is reported as that, not as the exit
of the process the hub stopped. Before: the server's every tool stayed out of the hub, which
restarted it forever, reporting "process exited with code 0". The server is a real subprocess
speaking raw JSON-RPC lines (`tests/fixtures/listing_server.py`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from hub.config import parse_config
from hub.hub import Hub
from tests.conftest import FIXTURES, PY, Proc, free_port, start_hub_http, wait_for_port, write_config

pytestmark = pytest.mark.anyio

SERVER = str(FIXTURES / "listing_server.py")


def config(mode: str, entry: dict[str, Any] | None = None) -> Any:
    return parse_config({"mcpServers": {"s": {**(entry or {"command": PY, "args": [SERVER, mode]}),
                                              "restart": {"initial_backoff_s": 0.05, "max_backoff_s": 0.1}}}})


def http_server(procs: list[Proc], mode: str, style: str) -> dict[str, Any]:
    """The fixture over HTTP (`json`, `events`: Streamable HTTP; `sse`: legacy SSE); its config entry."""
    port = free_port()
    procs.append(Proc([PY, SERVER, mode, "--http", str(port), style]))
    wait_for_port(port)
    if style == "sse":
        return {"type": "sse", "url": f"http://127.0.0.1:{port}/sse"}
    return {"url": f"http://127.0.0.1:{port}/mcp"}


def warnings(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("hub.downstream"))


async def call_text(hub: Hub, name: str) -> str:
    result = await hub.route_call(name, {})
    assert not result.is_error, result
    return result.content[0].text


@pytest.mark.parametrize("mode, why", [
    ("surrogate", "not Unicode text (an unpaired surrogate, or bytes not UTF-8)"),
    ("utf8", "not Unicode text (an unpaired surrogate, or bytes not UTF-8)"),
    ("deep", "nested deeper than MCP clients read JSON"),
    ("invalid", "refused by the protocol's schema: inputSchema: Field required"),
    ("schema_empty", "refused by the protocol's schema: inputSchema.type: Field required"),
    ("str_id", "refused by the protocol's schema: inputSchema: Field required"),
])
async def test_a_tool_no_client_can_read_is_left_out_and_named_and_the_others_are_served(
        mode: str, why: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with Hub(config(mode)) as hub:
        assert hub.downstreams["s"].state == "ready"
        assert [tool.name for tool in hub.catalog.tools()] == ["s__good"]
        assert await call_text(hub, "s__good") == "ok:good"
        assert hub.downstreams["s"].restarts == 0
    text = warnings(caplog)
    assert f"'bad' ({why})" in text, text
    if mode == "invalid":  # a name that is not text is named by its place; a nameless prompt too
        assert "item #2 (refused by the protocol's schema: name:" in text, text
        assert "its prompts/list answer holds" in text and "item #1 (refused by the protocol's schema: name:" in text, text
    if mode == "schema_empty":
        assert "'worse' (refused by the protocol's schema: outputSchema.type:" in text, text


async def test_an_optional_field_the_schema_refuses_is_left_out_beside_the_items(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with Hub(config("cursor")) as hub:
        assert [tool.name for tool in hub.catalog.tools()] == ["s__good"]
    assert "the answer's nextCursor (not readable, or refused by the protocol's schema)" in warnings(caplog)


async def test_the_long_texts_of_a_big_listing_survive_its_repair(caplog: pytest.LogCaptureFixture) -> None:
    """A listing over 1 MB is parsed with its long strings lifted out (`hub.lifted`): the repair
    must put them back, not serve placeholders (they reached clients empty)."""
    caplog.set_level(logging.INFO)
    async with Hub(config("lifted")) as hub:
        described = {tool.name: len(tool.description or "") for tool in hub.catalog.tools()}
    assert described == {"s__good": 200_000, "s__good2": 900_000}, described
    assert "'bad' (refused by the protocol's schema: inputSchema: Field required)" in warnings(caplog)


async def test_every_page_is_checked_and_each_good_item_kept(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with Hub(config("pages")) as hub:
        assert sorted(tool.name for tool in hub.catalog.tools()) == ["s__good", "s__second"]
    assert "left out (1 of its 2 tools served;" in warnings(caplog)


async def test_a_listing_refetched_after_a_change_is_repaired_too(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with Hub(config("later")) as hub:
        assert await call_text(hub, "s__good") == "ok:good"  # the server then announces a list change
        with anyio.fail_after(30):
            while "s__more" not in [tool.name for tool in hub.catalog.tools()]:
                await anyio.sleep(0.02)
        assert sorted(tool.name for tool in hub.catalog.tools()) == ["s__good", "s__more"]
        assert hub.downstreams["s"].state == "ready"
    assert "'bad' (nested deeper than MCP clients read JSON)" in warnings(caplog)


@pytest.mark.parametrize("mode, connect_timeout_s, expected", [
    ("lists_fail", 20, [f"declares {kind} but its list answer was an error (no {method} here)" for kind, method in (
        ("resources", "resources/list"), ("resource templates", "resources/templates/list"), ("prompts", "prompts/list"))]),
    ("res_garbage", 20, ["declares resources but its list answer was not valid (ListResourcesResult is not valid: resources:"]),
    # Before: the connect deadline passed, and the server was restarted and asked again, forever.
    ("prompts_hang", 4, ["declares prompts but did not answer their list within"]),
])
async def test_a_list_beside_the_tools_that_fails_is_served_empty(
        mode: str, connect_timeout_s: float, expected: list[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    cfg = parse_config({"hub": {"connect_timeout_s": connect_timeout_s},
                        "mcpServers": {"s": {"command": PY, "args": [SERVER, mode]}}})
    async with Hub(cfg) as hub:
        assert hub.downstreams["s"].state == "ready"
        assert [tool.name for tool in hub.catalog.tools()] == ["s__good"]
        assert hub.catalog.prompts() == []
        assert await call_text(hub, "s__good") == "ok:good"
    text = warnings(caplog)
    for line in expected:
        assert line in text, text


async def test_an_item_listed_twice_is_served_once_and_keeps_nothing_else_out(caplog: pytest.LogCaptureFixture) -> None:
    """A server listing a tool (prompt, resource, template) twice has one served — the last, the one
    the SDK's client checks that tool's results against — and the others left out, named once in a
    warning. Before: the hub refused to start ("lists two tools that both map to 's__good'; deny
    one with tools.deny": denying the name denies both), and a server that connected later had none
    of its tools served."""
    caplog.set_level(logging.INFO)
    cfg = parse_config({"mcpServers": {"s": {"command": PY, "args": [SERVER, "dupes"]},
                                       "t": {"command": PY, "args": [SERVER, "plain"]}}})
    async with Hub(cfg) as hub:
        tools = {tool.name: tool for tool in hub.catalog.tools()}
        assert sorted(tools) == ["s__good", "s__other", "t__good"]
        assert tools["s__other"].description == "second"
        assert [(p.name, p.description) for p in hub.catalog.prompts()] == [("s__p", "second")]
        assert [r.name for r in hub.catalog.resources()] == ["second"]
        assert [t.name for t in hub.catalog.resource_templates()] == ["second"]
        assert await call_text(hub, "s__other") == "ok:other"
        await hub.downstreams["s"].refresh("tools")  # listed again: warned of once, not at every listing
    text = warnings(caplog)
    assert text.count("more than once") == 4, text
    assert "lists 2 tools more than once ('good', 'other'); serving the last of each" in text, text
    assert "lists 1 prompts more than once ('p')" in text and "lists 1 resources more than once ('file:///a')" in text, text


async def test_a_resource_listed_twice_is_listed_once_to_a_client_with_its_own_session(
        tmp_path: Path, procs: list[Proc]) -> None:
    """An HTTP server's resources are listed to each client from its own session (`per_client`, the
    default for HTTP servers): the same one per URI as the shared listing (before: both, twice)."""
    entry = http_server(procs, "dupes", "json")
    hub_url = start_hub_http(procs, write_config(tmp_path, {"s": entry}, {"data_dir": str(tmp_path / "data")}))
    async with Client(hub_url, mode="legacy") as client:
        resources = (await client.list_resources()).resources
        assert [(str(r.uri), r.name) for r in resources] == [("mcphub://s/file:///a", "second")]
        tools = (await client.list_tools()).tools
        assert sorted((t.name, t.description) for t in tools if t.name == "s__other") == [("s__other", "second")]


async def test_a_name_listed_twice_is_warned_of_masked_and_within_bounds(caplog: pytest.LogCaptureFixture) -> None:
    """The warning masks what it names (a resource URI may carry a password) and what it remembers
    having warned of is bounded, however many names a server repeats, however often it lists them."""
    caplog.set_level(logging.INFO)
    async with Hub(config("plain")) as hub:
        server = hub.downstreams["s"]
        secret = "s3cr3t-" + "p" * 90
        uri = f"amqp://user:{secret}@example.test/" + "x" * 40  # sorts first: it is among the names shown
        for round_ in range(3):
            items = [types.Resource(uri=f"file:///{round_}/{i}", name=str(i)) for i in range(300)]
            items += [types.Resource(uri=uri, name="a"), types.Resource(uri=uri, name="b")] + items
            kept = server._one_of_each(items, "resources")  # noqa: SLF001 — the listing path's own filter
            assert len(kept) == 301
        assert len(server._listed_twice) <= 256  # noqa: SLF001
    text = warnings(caplog)
    assert secret[:20] not in text, text
    assert text.count("more than once") == 1, text  # past the bound, no warning repeats at each listing
    assert "lists 301 resources more than once ('amqp://[masked]@example.test/" in text, text


async def test_discovery_asks_for_the_other_lists_together() -> None:
    """At connect, once the tools are listed, the hub asks for resources, resource templates and
    prompts together, not one after another (two round trips to the server saved at every connect;
    over HTTP, network round trips). The fixture answers none of them until it was asked for all
    three (before: served empty, with warnings, at the connect deadline)."""
    cfg = parse_config({"hub": {"connect_timeout_s": 5},
                        "mcpServers": {"s": {"command": PY, "args": [SERVER, "lists_together"]}}})
    async with Hub(cfg) as hub:
        server = hub.downstreams["s"]
        assert server.state == "ready", server.error
        assert [tool.name for tool in hub.catalog.tools()] == ["s__good"]
        assert [p.name for p in hub.catalog.prompts()] == ["s__p"]
        assert [r.name for r in hub.catalog.resources()] == ["r"]
        assert [t.name for t in hub.catalog.resource_templates()] == ["t"]
        assert await call_text(hub, "s__good") == "ok:good"


async def test_the_tools_last_page_is_asked_for_before_the_other_lists() -> None:
    """A server that works through one request at a time must not have the tools' later pages
    queued behind lists the hub can do without. The fixture answers nothing more once it is asked for
    another list before the tools' second page (a first version of asking for every list together
    never connected to it)."""
    cfg = parse_config({"hub": {"connect_timeout_s": 5},
                        "mcpServers": {"s": {"command": PY, "args": [SERVER, "serial_paged"]}}})
    async with Hub(cfg) as hub:
        server = hub.downstreams["s"]
        assert server.state == "ready", server.error
        assert [tool.name for tool in hub.catalog.tools()] == ["s__good", "s__second"]
        assert await call_text(hub, "s__second") == "ok:second"


@pytest.mark.parametrize("mode, reason", [
    ("tools_fail", "its tools/list answer was an error: no tools/list here"),
    ("no_info", "InitializeResult is not valid: serverInfo: Field required"),  # was "1 validation error for InitializeResult"
])
async def test_a_failed_connection_gives_its_reason_not_the_exit_the_hub_caused(mode: str, reason: str) -> None:
    async with Hub(config(mode)) as hub:
        server = hub.downstreams["s"]
        with anyio.fail_after(30):
            while server.restarts < 2:  # retried as any failed connection (backoff), the reason kept
                await anyio.sleep(0.02)
        assert server.state != "ready"
        assert server.error == reason, server.error
        assert "process exited" not in str(hub.status()["s"])


@pytest.mark.parametrize("style", ["json", "gzip", "gzip_stacked", "events", "gzip_events", "sse"])
@pytest.mark.parametrize("mode", ["surrogate", "invalid"])
async def test_over_http_the_same_listing_is_repaired_the_same_way(
        mode: str, style: str, procs: list[Proc], caplog: pytest.LogCaptureFixture) -> None:
    """A Streamable HTTP server answering with a JSON body or an event stream (split across two
    chunks; each also gzip-compressed against the client's wish), and a legacy SSE server answering
    on its GET stream."""
    caplog.set_level(logging.INFO)
    entry = http_server(procs, mode, style)
    async with Hub(config(mode, entry)) as hub:
        assert hub.downstreams["s"].state == "ready"
        assert [tool.name for tool in hub.catalog.tools()] == ["s__good"]
        assert await call_text(hub, "s__good") == "ok:good"
    text = warnings(caplog)
    why = "not Unicode text" if mode == "surrogate" else "refused by the protocol's schema: inputSchema: Field required"
    assert f"'bad' ({why}" in text, text
    if mode == "invalid":
        assert "its prompts/list answer holds" in text, text


class _Chunks:
    """An inner byte stream that yields the given chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> Any:
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize("end, blank", [(b"\n", b"\n"), (b"\r\n", b"\r\n"), (b"\r", b"\r"), (b"\r\n", b"\n")])
@pytest.mark.parametrize("size", [1, 3, 7, 4096])
async def test_an_event_stream_in_any_chunking_is_passed_on_byte_for_byte_but_the_listing_answer(end: bytes, blank: bytes,
                                                                                                  size: int) -> None:
    """CRLF lines and an LF blank line too (found by review: the repaired event got an empty line
    before its data, which split off its `id:` field, the stream's resumption token)."""
    from hub.downstream.http_event_repair import RepairedEvents
    from hub.downstream.listing_repair import ListingAnswers

    bad = b'{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"good","inputSchema":{"type":"object"}},{"name":"bad"}]}}'
    events = [b": ping", b"event: message" + end + b'data: {"jsonrpc":"2.0","method":"notifications/message","params":{}}',
              b"id: 9" + end + b"event: message" + end + b"data: " + bad, b'data: {"jsonrpc":"2.0","id":6,"result":{}}']
    stream = b"".join(event + end + blank for event in events)
    chunks = [stream[i:i + size] for i in range(0, len(stream), size)]

    async def relayed(listings: ListingAnswers) -> bytes:
        return b"".join([chunk async for chunk in RepairedEvents(_Chunks(chunks), listings)])  # type: ignore[arg-type]

    idle = ListingAnswers(logging.getLogger("test"))
    assert await relayed(idle) == stream  # nothing waits: every byte as it came
    listings = ListingAnswers(logging.getLogger("test"))
    listings.sent_raw("tools/list", 5)
    listings.arm("tools/list")  # the SDK parsed the first answer and refused it: this one is checked
    out = await relayed(listings)
    repaired = b'{"jsonrpc": "2.0", "id": 5, "result": {"tools": [{"name": "good", "inputSchema": {"type": "object"}}]}}'
    assert out == stream.replace(b"data: " + bad, b"data: " + repaired), out
    assert not listings.waiting


async def test_a_2026_only_server_gets_both_checks_the_sdk_makes(caplog: pytest.LogCaptureFixture) -> None:
    """On 2026-07-28 the SDK checks a listing against the version's schema and then the version-free
    model; an item only the second refuses (`execution.taskSupport`) sank the list."""
    caplog.set_level(logging.INFO)
    bad = {"name": "odd", "inputSchema": {"type": "object"}, "execution": {"taskSupport": "bogus"}}
    entry = {"command": PY, "args": [str(FIXTURES / "modern_only.py")], "env": {"EXTRA_TOOL": json.dumps(bad)}}
    async with Hub(config("", entry)) as hub:
        server = hub.downstreams["s"]
        assert server.state == "ready" and server.protocol_version == "2026-07-28"
        names = [tool.name for tool in hub.catalog.tools()]
        assert "s__echo" in names and "s__odd" not in names, names
    assert "'odd' (refused by the protocol's schema: execution.taskSupport:" in warnings(caplog)


@pytest.mark.parametrize("leading", ["", "0"])
async def test_an_answer_id_the_sdk_matches_is_matched_here_too(leading: str, caplog: pytest.LogCaptureFixture) -> None:
    """The SDK takes "2" and "02" for request 2 (`coerce_request_id`)."""
    caplog.set_level(logging.INFO)
    entry = {"command": PY, "args": [SERVER, "str_id"], "env": {"ID_PREFIX": leading}}
    async with Hub(config("str_id", entry)) as hub:
        assert [tool.name for tool in hub.catalog.tools()] == ["s__good"]
    assert "'bad' (refused by the protocol's schema: inputSchema: Field required)" in warnings(caplog)


async def test_warnings_are_few_per_connection_however_the_items_change(caplog: pytest.LogCaptureFixture) -> None:
    from hub.downstream.listing_repair import MAX_WARNINGS, ListingAnswers

    listings = ListingAnswers(logging.getLogger("hub.downstream.test"))
    caplog.set_level(logging.DEBUG)
    for number in range(3 * MAX_WARNINGS):
        listings.sent_raw("tools/list", number)
        line = json.dumps({"jsonrpc": "2.0", "id": number, "result": {"tools": [{"name": f"bad{number}"}]}})
        listings.repair(line.encode(), readable=False)
    shown = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(shown) == MAX_WARNINGS and "further such warnings for this server: at debug level" in shown[-1].getMessage()
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 2 * MAX_WARNINGS


@pytest.mark.parametrize("style", ["json", "events"])
async def test_an_answer_over_a_mebibyte_passes_over_http(style: str, procs: list[Proc]) -> None:
    """A 3 MiB answer from a Streamable HTTP server, as JSON or as one event: the SDK's client refuses
    events past 1 MiB, so every answer over that from a server answering with an event stream (the
    SDK's own server does) failed; the hub now reads events up to its line cap, as a stdio line."""
    entry = http_server(procs, "big", "plain" if style == "json" else style)
    async with Hub(config("big", entry)) as hub:
        assert await call_text(hub, "s__good") == "a" * (3 * 1024 * 1024)


async def test_an_answer_past_the_legacy_sse_clients_event_size_fails_its_call_not_the_connection(procs: list[Proc]) -> None:
    """The SDK's legacy SSE client reads events of at most 1 MiB and ends the whole connection on a
    longer one (every call in flight failed, the server was reconnected): such an answer now fails
    its own call, saying what to do, and the connection stays."""
    entry = http_server(procs, "big", "sse")
    async with Hub(config("big", entry)) as hub:
        result = await hub.route_call("s__good", {})
        assert result.is_error, result
        assert "longer than the 1044480 bytes the SDK's SSE client reads" in result.content[0].text, result.content[0].text
        assert "Streamable HTTP" in result.content[0].text
        assert hub.downstreams["s"].state == "ready" and hub.downstreams["s"].restarts == 0
        again = await hub.route_call("s__good", {})  # the same connection answers the next call alike
        assert again.is_error and "legacy SSE stream" in again.content[0].text, again
        assert hub.downstreams["s"].restarts == 0


@pytest.mark.parametrize("mode", ["sloppy_202", "sloppy_200"])
async def test_a_server_that_answers_a_notification_with_an_endless_json_body_still_connects(mode: str, procs: list[Proc]) -> None:
    """A 202 or a 200 to `notifications/initialized` typed JSON, without a length, whose body never
    ends: the SDK never reads the body of a notification's POST, and the hub's transport must not
    either (found by two reviews: it waited for the body, and the connection never came up)."""
    entry = http_server(procs, mode, "json")
    async with Hub(config(mode, entry)) as hub:
        assert await call_text(hub, "s__good") == "ok:good"


@pytest.mark.parametrize("style", ["gzip", "gzip_stacked", "plain", "plain_sized", "plain_id_last", "plain_201", "events"])
async def test_an_answer_past_the_line_cap_fails_its_call_not_the_hub(style: str, procs: list[Proc]) -> None:
    """~100 KB of gzip inflating to 100 MB (a bomb of a kind that took the hub past 2 GB, inflated
    whole by httpx; `gzip, identity` still went to httpx), or 100 MB sent as it is, with or without
    its length (the SDK's client held it whole, however long): the call fails, naming the cap, as a
    stdio line over it does, and the connection stays (it was dropped and made again)."""
    entry = http_server(procs, "bomb", style)
    async with Hub(config("bomb", entry)) as hub:
        result = await hub.route_call("s__good", {})
        assert result.is_error, result
        assert "longer than the hub's line cap" in result.content[0].text, result.content[0].text
        assert hub.downstreams["s"].state == "ready" and hub.downstreams["s"].restarts == 0


# -- the legacy SSE stream's events, held whole and bounded (chunk by chunk) ---------------------

def _split(data: bytes, *cuts: int) -> list[bytes]:
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False) if b > a]


async def _bounded(chunks: list[bytes], limit: int) -> bytes:
    """What the hub's transport passes on of a legacy SSE stream arriving in `chunks`."""
    from hub.downstream.http_event_repair import RepairedEvents
    from hub.downstream.listing_repair import ListingAnswers

    return b"".join([piece async for piece in RepairedEvents(_Chunks(chunks), ListingAnswers(logging.getLogger("t")), limit)])  # type: ignore[arg-type]


async def _read_events(chunks: list[bytes], limit: int) -> list[dict[str, Any]]:
    """What the SDK's SSE parser gets through the hub's bounded stream: each event's data, parsed."""
    out = await _bounded(chunks, limit)
    events = [e for e in out.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n\n") if e.strip()]
    return [json.loads(b"".join(line[5:].lstrip() for line in e.split(b"\n") if line.startswith(b"data:"))) for e in events]


BIG = b'{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"' + b"a" * 300 + b'"}]}}'
BIG_ID_LAST = b'{"jsonrpc":"2.0","result":{"content":[{"type":"text","text":"' + b"a" * 300 + b'"}]},"id":7}'
NEXT = b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}'


@pytest.mark.parametrize("body", [BIG, BIG_ID_LAST], ids=["id_first", "id_last"])
@pytest.mark.parametrize("ending", [b"\n\n", b"\r\n\r\n", b"\r\r", b"\n\r\n", b"\r\n\n", b"\n\r"],
                         ids=["lf", "crlf", "cr", "lf_crlf", "crlf_lf", "lf_cr"])
async def test_an_event_past_the_legacy_limit_fails_its_request_wherever_the_chunks_split(body: bytes, ending: bytes) -> None:
    """Whatever the chunks: the over-long answer becomes one error answer for its id (read from its
    start, or its end: the TypeScript SDK writes the id last), and the event after it arrives whole.
    Found by review: an event whose end came in the chunk that crossed the limit went through whole
    (the SDK then dropped the connection); a split end after a dropped event swallowed the next
    event; an id written last left the call to wait for its deadline."""
    stream = b"event: message\ndata: " + body + ending + b"event: message\ndata: " + NEXT + ending
    first_end = len(b"event: message\ndata: " + body)
    cuts = sorted({1, 50, 150, first_end - 1, first_end, first_end + 1, first_end + len(ending) - 1, len(stream) - 2})
    for count in range(0, 4):  # no cut, then one, two and three cuts at the awkward places
        for chosen in ([()] if count == 0 else [tuple(cuts[i:i + count]) for i in range(len(cuts) - count + 1)]):
            events = await _read_events(_split(stream, *chosen), limit=200)
            assert [e.get("id") for e in events] == [7, None], (chosen, events)
            assert "legacy SSE stream longer than the 200 bytes" in events[0]["error"]["message"], events[0]
            assert events[1] == json.loads(NEXT), (chosen, events)


async def test_events_within_the_legacy_limit_pass_as_they_came() -> None:
    stream = b": keep-alive\n\nevent: endpoint\ndata: /messages?s=1\n\r\nevent: message\ndata: " + NEXT + b"\r\n\n"
    for cut in range(1, len(stream)):
        assert await _bounded(_split(stream, cut), 200) == stream, cut


async def test_a_legacy_answer_past_the_limit_is_failed_by_its_id_even_with_fields_after_its_data() -> None:
    """An id written last, then another field (`id:`): the message ends with its last data line
    (found by review: no id was read, and the call waited for its deadline)."""
    answer = b'{"jsonrpc":"2.0","result":{"content":[{"type":"text","text":"' + b"a" * 6000 + b'"}]},"id":7}'
    stream = b"event: message\ndata: " + answer + b"\nid: 5\n\nevent: message\ndata: " + NEXT + b"\n\n"
    events = await _read_events([stream], limit=200)
    assert [e.get("id") for e in events] == [7, None], events


async def test_a_servers_request_past_the_legacy_limit_fails_no_call_of_the_hub() -> None:
    """A server's request longer than the limit, its id first and its method after the first 4 KiB:
    nothing answers it, and the hub's own call with the same id is left alone (found by review: it
    was failed)."""
    request = b'{"jsonrpc":"2.0","id":7,"params":{"text":"' + b"a" * 6000 + b'"},"method":"sampling/createMessage"}'
    stream = b"event: message\ndata: " + request + b"\n\nevent: message\ndata: " + NEXT + b"\n\n"
    for cut in (0, 100, 5000, len(stream) - 40):
        assert await _read_events(_split(stream, cut) if cut else [stream], limit=200) == [json.loads(NEXT)], cut
