"""Tool search (issue #20): ranking, scopes, incremental index and vector cache on an in-process
hub; search mode through a real hub process over stdio with the SDK client; `mcp-hub tools search`.

The embedder is the deterministic word-hash one (`tests.fixtures.word_embedder`) so no test loads
MiniLM; the MiniLM ranking is measured by `tools/bench/tool_search_eval.py`, not here.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from mcp import Client, StdioServerParameters

from hub.audit.log import query as audit_query
from hub.auth.principal import Principal
from hub.config import parse_config
from hub.hub import Hub
from hub.search.meta import answer_search
from hub.search.service import ToolSearch
from tests.conftest import PY, ROOT, echo_stdio, write_config, error_body
from tests.fixtures.word_embedder import WordEmbedder

pytestmark = pytest.mark.anyio

EMBEDDER = "tests.fixtures.word_embedder:create"
SERVERS = {"desk": {"module": "tests.fixtures.search_catalog:desk"},
           "rooms": {"module": "tests.fixtures.search_catalog:rooms"}}


class CountingEmbedder(WordEmbedder):
    """Counts the texts it embeds, so a test can see what the cache saved."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += list(texts)
        return super().embed(texts)


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("MCP_HUB_CACHE_DIR", str(path))
    return path


def names(hits: Sequence[Any]) -> list[str]:
    return [h.name for h in hits]


async def test_ranks_siblings_by_name_description_and_parameters(cache_dir: Path) -> None:
    async with Hub(parse_config({"mcpServers": SERVERS})) as hub:
        search = ToolSearch(hub, CountingEmbedder())
        assert names(search.search("search tickets by text", 3))[0] == "desk__search_tickets"
        assert names(search.search("get ticket T-9 by its id", 3))[0] == "desk__get_ticket"
        assert names(search.search("reserve a meeting room", 3))[0] == "rooms__book_room"
        assert names(search.search("ticketId", 1, mode="bm25")) == ["desk__get_ticket"], "camelCase splits into words"
        hit = search.search("delete a ticket", 1)[0]
        assert hit.name == "desk__delete_ticket" and "name: delete, ticket" in hit.why()
        scores = [h.score for h in search.search("ticket", 5)]
        assert scores == sorted(scores, reverse=True) and len(scores) == 5


async def test_search_only_ranks_tools_the_caller_may_call(cache_dir: Path) -> None:
    async with Hub(parse_config({"mcpServers": SERVERS})) as hub:
        search = ToolSearch(hub, CountingEmbedder())
        reader = Principal("reader", ("desk:read",), "api_key")
        assert "desk__delete_ticket" in names(search.search("delete ticket", 10))
        seen = names(search.search("delete ticket", 10, principal=reader))
        assert seen and set(seen) <= {"desk__search_tickets", "desk__get_ticket"}
        assert search.search("book a room", 10, principal=Principal("nobody", (), "api_key")) == []


async def test_index_follows_list_changed_and_embeds_only_new_tools(cache_dir: Path) -> None:
    async with Hub(parse_config({"mcpServers": SERVERS})) as hub:
        embedder = CountingEmbedder()
        search = ToolSearch(hub, embedder)
        assert "desk__archive_ticket" not in names(search.search("archive a closed ticket", 10))
        before = len(embedder.texts)
        assert before == 2 * len(hub.catalog.routes()) + 1, "each tool's text and name phrase, and the query"
        changed = anyio.Event()

        async def on_change(kind: str) -> None:
            if hub.catalog.resolve_tool("desk__archive_ticket") is not None:
                changed.set()

        hub.add_change_listener(on_change)
        await hub.route_call("desk__grow", {})
        with anyio.fail_after(10):
            await changed.wait()
        assert names(search.search("archive a closed ticket", 1)) == ["desk__archive_ticket"]
        new = embedder.texts[before:]
        assert len(new) == 2 and "archive" in new[0] and new[1] == "desk: archive ticket", \
            "only the new tool's texts: the repeated query's vector is the index's cached one"
        search.search("archive an old ticket", 1)
        assert embedder.texts[-1] == "archive an old ticket", "a new query is embedded"


async def test_vectors_of_unchanged_tools_are_reused_across_restarts(cache_dir: Path) -> None:
    config = parse_config({"mcpServers": SERVERS})
    async with Hub(config) as hub:
        first = CountingEmbedder()
        ToolSearch(hub, first).refresh()
        assert len(first.texts) == 2 * len(hub.catalog.routes()) > 0
    assert list((cache_dir / "tool-search").glob("*.npz"))
    async with Hub(config) as hub:
        second = CountingEmbedder()
        search = ToolSearch(hub, second)
        assert names(search.search("reserve a meeting room", 1)) == ["rooms__book_room"]
        assert second.texts == ["reserve a meeting room"], "tool vectors come from the cache; only the query is embedded"


# -- search mode through a real hub process over stdio -------------------------------------------------


async def audited(data_dir: Path, rows: int, tool: str) -> list[dict[str, Any]]:
    """The audit rows for `tool` once there are `rows` of them (the writer batches: wait for the state)."""
    with anyio.move_on_after(20):
        while len(found := audit_query(data_dir, tool=tool)) < rows:
            await anyio.sleep(0.05)
    return audit_query(data_dir, tool=tool)


def hub_params(config: Path, data_dir: Path, **env: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=PY, args=["-m", "hub.cli", "serve", "--config", str(config), "--log-level", "warning"],
        env={"PYTHONPATH": str(ROOT), "MCP_HUB_DATA_DIR": str(data_dir), "MCP_HUB_CACHE_DIR": str(data_dir / "cache"),
             "MCP_HUB_SEARCH_EMBEDDER": EMBEDDER, **env},
        cwd=str(ROOT),
    )


async def test_search_mode_lists_meta_tools_and_discovers_progressively(tmp_path: Path) -> None:
    config = write_config(tmp_path, SERVERS, hub={"tools_mode": "search"})
    changed = anyio.Event()

    async def on_message(message: object) -> None:
        if type(message).__name__ == "ToolListChangedNotification":
            changed.set()

    async with Client(hub_params(config, tmp_path), mode="legacy", message_handler=on_message) as client:
        listed = (await client.list_tools()).tools
        assert [t.name for t in listed] == ["search_tools", "call_tool"]
        assert listed[0].input_schema["required"] == ["query"]

        found = await client.call_tool("search_tools", {"query": "find tickets by text", "limit": 3})
        assert found.is_error is False and found.structured_content is not None
        tools = found.structured_content["tools"]
        assert tools[0]["name"] == "desk__search_tickets" and len(tools) == 3
        assert tools[0]["input_schema"]["properties"]["text"]["type"] == "string"
        assert "ticket" in tools[0]["why"] and tools[0]["description"].startswith("Find tickets")
        with anyio.fail_after(10):
            await changed.wait()
        relisted = [t.name for t in (await client.list_tools()).tools]
        assert relisted[:2] == ["search_tools", "call_tool"] and set(relisted[2:]) == {t["name"] for t in tools}

        direct = await client.call_tool("desk__get_ticket", {"ticket_id": "T-1"})
        via_meta = await client.call_tool("call_tool", {"name": "desk__get_ticket", "arguments": {"ticket_id": "T-1"}})
        assert via_meta.is_error is False
        assert via_meta.structured_content == direct.structured_content == {"id": "T-1", "title": "Printer on fire"}

        invalid = await client.call_tool("call_tool", {"name": "desk__get_ticket", "arguments": {"ticket_id": 5}})
        assert invalid.is_error and error_body(invalid)["code"] == "invalid_argument"
        unknown = await client.call_tool("call_tool", {"name": "desk__nope", "arguments": {}})
        assert unknown.is_error and error_body(unknown)["code"] == "not_found"
        bad_query = await client.call_tool("search_tools", {"query": ""})
        assert bad_query.is_error and error_body(bad_query)["code"] == "invalid_argument"

        rows = await audited(tmp_path, 3, "desk__get_ticket")
        assert len(rows) == 3, "the direct call, the call_tool call and the invalid one are each audited"
        assert {row["outcome"] for row in rows} == {"ok", "error"}


async def test_call_tool_cannot_reach_a_tool_outside_the_callers_scopes(tmp_path: Path) -> None:
    config = write_config(tmp_path, SERVERS, hub={"tools_mode": "search"})
    async with Client(hub_params(config, tmp_path, MCP_HUB_SCOPES="desk:read rooms:read"), mode="legacy") as client:
        found = await client.call_tool("search_tools", {"query": "delete a ticket for good", "limit": 10})
        assert "desk__delete_ticket" not in {t["name"] for t in found.structured_content["tools"]}
        refused = await client.call_tool("call_tool", {"name": "desk__delete_ticket", "arguments": {"ticket_id": "T-1"}})
        assert refused.is_error and error_body(refused)["code"] == "not_found"
        unknown = await client.call_tool("call_tool", {"name": "desk__nope", "arguments": {}})
        assert error_body(unknown)["message"].replace("desk__nope", "X") == \
            error_body(refused)["message"].replace("desk__delete_ticket", "X"), "hidden and unknown read the same"
        allowed = await client.call_tool("call_tool", {"name": "desk__get_ticket", "arguments": {"ticket_id": "T-2"}})
        assert allowed.structured_content == {"id": "T-2", "title": "Printer on fire"}
        denied = await audited(tmp_path, 1, "desk__delete_ticket")
        assert [row["outcome"] for row in denied] == ["denied"]


async def test_auto_mode_switches_to_search_past_40_visible_tools(tmp_path: Path) -> None:
    small = write_config(tmp_path, SERVERS, hub={"tools_mode": "auto"})
    async with Client(hub_params(small, tmp_path), mode="legacy") as client:
        assert len((await client.list_tools()).tools) == 6, "6 tools: under the threshold, listed as they are"
    many = tmp_path / "many"
    many.mkdir()
    big = write_config(many, {**SERVERS, "e": echo_stdio("--many", "40")}, hub={"tools_mode": "auto"})
    async with Client(hub_params(big, tmp_path), mode="legacy") as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["search_tools", "call_tool"]
        found = await client.call_tool("search_tools", {"query": "reserve a meeting room", "limit": 1})
        assert [t["name"] for t in found.structured_content["tools"]] == ["rooms__book_room"]


async def test_all_mode_is_unchanged(tmp_path: Path) -> None:
    config = write_config(tmp_path, SERVERS)
    async with Client(hub_params(config, tmp_path), mode="legacy") as client:
        listed = [t.name for t in (await client.list_tools()).tools]
        assert "search_tools" not in listed and "desk__search_tickets" in listed and len(listed) == 6


# -- CLI -------------------------------------------------------------------------------------------------


def test_cli_tools_search_json(tmp_path: Path) -> None:
    config = write_config(tmp_path, SERVERS)
    env = {"PYTHONPATH": str(ROOT), "MCP_HUB_DATA_DIR": str(tmp_path), "MCP_HUB_CACHE_DIR": str(tmp_path / "cache"),
           "MCP_HUB_SEARCH_EMBEDDER": EMBEDDER, "PATH": "/usr/bin:/bin"}
    run = subprocess.run([PY, "-m", "hub.cli", "tools", "search", "reserve a meeting room", "--config", str(config),
                          "--limit", "3", "--json"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    ranked = json.loads(run.stdout)
    assert [r["name"] for r in ranked][0] == "rooms__book_room" and len(ranked) == 3
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    table = subprocess.run([PY, "-m", "hub.cli", "tools", "--config", str(config)], capture_output=True, text=True,
                           env=env, cwd=ROOT, timeout=120)
    assert table.returncode == 0 and "desk__get_ticket" in table.stdout, "plain `mcp-hub tools` still prints the table"
    refused = subprocess.run([PY, "-m", "hub.cli", "tools", "search", "x", "--config", str(config), "--limit", "0"],
                             capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert refused.returncode == 2 and "--limit" in refused.stderr


async def test_a_search_before_the_first_listing_waits_for_the_servers_still_connecting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2026-07-28 client has no session to list in first: its first `search_tools` must see every server
    that is still making its first connection, as a first `tools/list` would (bounded by `list_wait_s`)."""
    monkeypatch.setenv("MCP_HUB_SEARCH_EMBEDDER", "tests.fixtures.word_embedder:create")
    config = parse_config({"hub": {"list_wait_s": 60, "remember_listings": False},
                           "mcpServers": {"ok": echo_stdio("--name", "ok")}})
    async with Hub(config, wait_at_start=False) as hub:
        assert hub.catalog.resolve_tool("ok__echo") is None, "entered before any server was up"
        _, found = await answer_search(hub, {"query": "echo the text back", "limit": 3}, hub.access.local)
        assert "ok__echo" in found
