"""Outside review search19: tool search and profiles.

In-process hub (fixture servers imported as modules) and the word-hash embedder; no model, no sleeps:
every wait waits for a state, bounded by `fail_after`.
- #1 a hit shows the tool as the catalog holds it now, not as last indexed (a paced server);
- #2 `max_tools` counts only the tools the caller may use;
- #3 search withholds the task-only tools `tools/list` withholds;
- #4 on a profile the `not_found` hint follows the profile's mode;
- #5 a deep item in a big, "readable" listing line is left out alone;
- #6 CJK text gets keyword matches (character pairs);
- #7 `auto` is decided once per caller and catalog version;
- #8 a profile namespace that names no server is found from the config;
- #9 the query-vector cache is per caller.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import numpy as np
import pytest

from hub.auth.principal import Principal
from hub.config import parse_config
from hub.downstream.listing_repair import ListingAnswers
from hub.hub import Hub
from hub.profile_settings import ProfileSettings, namespace_problems
from hub.profiles import profile_view
from hub.search.documents import tool_doc
from hub.search.index import ToolIndex
from hub.search.meta import hit_entry, run_search, search_mode_for
from hub.search.pacing import BURST, ServerPacing
from hub.search.service import ToolSearch
import hub.unknown_tool as unknown_tool
from hub.unknown_tool import unknown_tool_result
from tests.fixtures.word_embedder import WordEmbedder

pytestmark = pytest.mark.anyio

SERVERS = {"desk": {"module": "tests.fixtures.search_catalog:desk"},
           "rooms": {"module": "tests.fixtures.search_catalog:rooms"}}
ROOMS_ONLY = Principal("rooms-key", ("rooms:read", "rooms:write"), "api_key", "k1")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MCP_HUB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MCP_HUB_SEARCH_EMBEDDER", "none")
    return tmp_path / "cache"


async def until(check: Callable[[], bool], seconds: float = 10) -> None:
    with anyio.fail_after(seconds):
        while not check():
            await anyio.sleep(0.01)


async def test_max_tools_counts_only_the_tools_the_caller_may_use() -> None:
    config = parse_config({"mcpServers": SERVERS, "profiles": {"cap": {"max_tools": 2, "tools_mode": "all"}}})
    async with Hub(config) as hub:
        view = profile_view(hub, "cap")
        # desk__* sort first; a caller that may use only rooms__* must still get its two tools.
        assert [t.name for t in view.tools(ROOMS_ONLY)] == ["rooms__book_room", "rooms__list_rooms"]
        assert view.resolve("rooms__book_room", ROOMS_ONLY) == "rooms__book_room"
        everyone = hub.access.local
        assert [t.name for t in view.tools(everyone)] == ["desk__delete_ticket", "desk__get_ticket"]
        assert view.resolve("rooms__book_room", everyone) is None, "past this caller's cap: outside the profile"
        assert view.includes("desk__get_ticket", everyone) and not view.includes("desk__get_ticket", ROOMS_ONLY)


async def test_search_withholds_task_only_tools_the_list_withholds() -> None:
    servers = {"n": {"module": "tests.fixtures.subscribing_server:server", "protocol": "legacy"}}
    async with Hub(parse_config({"mcpServers": servers, "hub": {"tools_mode": "search"}})) as hub:
        principal = hub.access.local
        route = hub.catalog.resolve_tool("n__only_as_task")
        assert route is not None
        assert hub.request_relay.tasks.offer.listable([route.tool], "2025-11-25") == [], "tools/list withholds it"
        for version in ("2025-11-25", "2026-07-28"):
            _, names = await run_search(hub, "only as task", 5, principal, None, version)
            assert names and "n__only_as_task" not in names, (version, names)


def storm_servers() -> dict[str, Any]:
    return {"desk": {"module": "tests.fixtures.search_catalog:desk"},
            "storm": {"module": "tests.hub.search.test_tool_search_storm:storm"}}


async def test_a_hit_shows_the_tool_as_listed_now_while_its_server_is_paced() -> None:
    async with Hub(parse_config({"mcpServers": storm_servers()})) as hub:
        search = ToolSearch(hub, WordEmbedder())
        now = [1000.0]
        search.pacing = ServerPacing(clock=lambda: now[0])
        assert search.search("polish a gizmo", 1)[0].name == "storm__gizmo"
        for _ in range(BURST + 2):
            search.pacing.applied("storm")  # the server has stormed: its next change waits
        await hub.route_call("storm__churn", {"revision": 7})
        await until(lambda: "r7x" in (getattr(hub.catalog.resolve_tool("storm__gizmo"), "tool", None) or
                                      types.Tool(name="x", input_schema={})).description or False)
        hit = search.search("polish a gizmo", 1)[0]
        assert hit.doc is not None and "r7x" not in (hit.doc.tool.description or ""), "the index is paced"
        assert "r7x" in hit_entry(hit)["description"], "the hit is the tool as the catalog lists it now"


async def test_not_found_hint_follows_the_profiles_mode() -> None:
    config = parse_config({"mcpServers": SERVERS, "hub": {"tools_mode": "search"},
                           "profiles": {"cursor": {"tools_mode": "all"}, "finder": {"tools_mode": "search"}}})
    async with Hub(config) as hub:
        principal = hub.access.local
        cursor, finder = profile_view(hub, "cursor"), profile_view(hub, "finder")
        text = unknown_tool_result(hub, "desk__nope", principal, cursor).structured_content["message"]
        assert "tools/list" in text and "search_tools" not in text
        assert "search_tools" in unknown_tool_result(hub, "desk__nope", principal, finder).structured_content["message"]
        token = unknown_tool.answering_view.set(cursor)  # a face that resolved the name on the profile, not passing it
        try:
            assert "tools/list" in unknown_tool_result(hub, "desk__nope", principal).structured_content["message"]
        finally:
            unknown_tool.answering_view.reset(token)
        assert "search_tools" in unknown_tool_result(hub, "desk__nope", principal).structured_content["message"]


def deep_schema(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


def test_a_deep_item_in_a_big_readable_listing_is_left_out_alone() -> None:
    answers = ListingAnswers(logging.getLogger("test.listing"))
    answers.sent_raw("tools/list", 7)
    tools = [{"name": f"t{i}", "description": "d" * 500, "inputSchema": {"type": "object"}} for i in range(300)]
    tools.append({"name": "deep", "inputSchema": deep_schema(150)})
    line = json.dumps({"jsonrpc": "2.0", "id": 7, "result": {"tools": tools}}).encode()
    assert len(line) > 64 * 1024
    repaired = json.loads(answers.repair(line, True))  # the big-line path took it as readable
    assert [t["name"] for t in repaired["result"]["tools"]] == [f"t{i}" for i in range(300)]


def test_cjk_text_is_matched_by_keywords() -> None:
    tools = [("delete_task", "删除任务"), ("send_mail", "发送电子邮件"), ("create_task", "创建任务"),
             ("delete_invoice", "請求書を削除します。"), ("book_room", "会議室を予約します。")]
    index = ToolIndex(None)
    index.update([tool_doc(types.Tool(name=f"x__{n}", description=d, input_schema={"type": "object"}), n, "x")
                  for n, d in tools])
    for query, wanted in (("删除任务", "x__delete_task"), ("发送邮件", "x__send_mail"), ("請求書を削除", "x__delete_invoice")):
        hits = index.search(query, 3, mode="keyword")
        assert hits[0].name == wanted and hits[0].keyword > 0, (query, [(h.name, h.score) for h in hits])


async def test_auto_is_decided_once_per_caller_and_catalog_version(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config({"mcpServers": SERVERS, "hub": {"tools_mode": "auto"}, "profiles": {"p": {"tools_mode": "auto"}}})
    async with Hub(config) as hub:
        view = profile_view(hub, "p")
        built = [0]
        real = hub.visible_tools

        def counted(principal: Principal) -> list[types.Tool]:
            built[0] += 1
            return real(principal)

        monkeypatch.setattr(hub, "visible_tools", counted)
        for _ in range(20):
            assert search_mode_for(hub, hub.access.local, view) is False
            assert search_mode_for(hub, hub.access.local) is False
        assert built[0] <= 2, built[0]


def test_a_profile_namespace_naming_no_server_is_a_problem() -> None:
    settings = {"cursor": ProfileSettings(namespaces=["ticketng"], include=["tickting__*", "ticketing__get_*"]),
                "ok": ProfileSettings(namespaces=["ticketing"])}
    problems = namespace_problems(["ticketing", "crm"], settings)
    assert [(path, severity) for path, severity, _ in problems] == [
        ("$.profiles.cursor.namespaces[0]", "error"), ("$.profiles.cursor.include[0]", "warning")]
    assert "did you mean 'ticketing'?" in problems[0][2]


class CountingEmbedder(WordEmbedder):
    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.extend(texts)
        return super().embed(texts)


def test_the_query_vector_cache_is_per_caller() -> None:
    embedder = CountingEmbedder()
    index = ToolIndex(embedder)
    index.update([tool_doc(types.Tool(name="x__merge_deal", description="Merge two deals.", input_schema={}), "merge_deal", "x")])
    query = "acquire globex before the board meeting"
    index.search(query, 1, caller="victim")
    embedder.texts.clear()
    index.search(query, 1, caller="victim")
    assert embedder.texts == [], "a caller's repeated search is not embedded again"
    index.search(query, 1, caller="attacker")
    assert embedder.texts == [query], "another caller's same text is embedded anew: no timing oracle"


async def test_the_http_fast_path_keeps_a_caller_within_its_max_tools(tmp_path: Path, procs: list) -> None:
    """The HTTP fast path resolved a profile's names without the caller: a tool past its `max_tools` (not in
    its `tools/list`) could still be called there."""
    from mcp import Client

    from tests.conftest import start_hub_http, error_body

    path = tmp_path / "hub.json"
    path.write_text(json.dumps({"hub": {"list_wait_s": 30, "data_dir": str(tmp_path / "data")}, "mcpServers": SERVERS,
                                "profiles": {"cap": {"max_tools": 2, "tools_mode": "all"}}}))
    url = start_hub_http(procs, path)
    with anyio.fail_after(60):
        async with Client(url + "/cap", mode="2026-07-28") as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["desk__delete_ticket", "desk__get_ticket"]
            past = await client.call_tool("rooms__list_rooms", {})
    assert past.is_error and past.structured_content is not None and error_body(past)["code"] == "not_found", past
