"""Tools a caller may not see do not move its ranking (review search15 #3), and an order to tell someone
is an order (review search15 #7).

Word statistics (BM25 document frequencies, the namespace prior's table, the typo vocabulary, the
examples' calibration) are computed over the caller's visible set, cached per set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mcp_types as types
import numpy as np
import pytest
from mcp.server import MCPServer

from hub.auth.principal import Principal
from hub.config import parse_config
from hub.hub import Hub
from hub.search.documents import tool_doc
from hub.search.index import ToolIndex
from hub.search.intent import query_action, query_intent
from hub.search.service import ToolSearch
from hub.search.stats import MAX_VIEWS
from tests.fixtures.word_embedder import WordEmbedder

pytestmark = pytest.mark.anyio


def forum() -> MCPServer:
    """Many tools that say what the desk's tools say ("comment", "ticket", "reply") and a word of their own."""
    server = MCPServer("forum", instructions="A forum about tickets.")
    for i in range(60):
        server.add_tool(lambda thread: thread, name=f"reply_{i}",
                        description=f"Post a comment on a ticket thread {i}; reply to a ticket comment with moderation.")
    return server


DESK = {"desk": {"module": "tests.fixtures.search_catalog:desk"},
        "rooms": {"module": "tests.fixtures.search_catalog:rooms"}}
WITH_FORUM = {**DESK, "forum": {"module": "tests.hub.search.test_tool_search_visible_stats:forum",
                                "tool_overrides": {"*": {"examples": ["reply to the ticket thread", "comment on it"]}}}}
QUERIES = ("reply about the ticket", "delete a ticket comment", "moderatoin of tickets", "ticket", "book a room",
           "which rooms have an open ticket?")


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MCP_HUB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


async def rankings(servers: dict[str, Any], who: Principal) -> dict[str, list[tuple[str, float, float, float, str]]]:
    async with Hub(parse_config({"mcpServers": servers})) as hub:
        search = ToolSearch(hub, WordEmbedder())
        return {q: [(h.name, h.score, h.keyword, h.semantic, h.why()) for h in search.search(q, 10, principal=who)]
                for q in QUERIES}


async def test_tools_the_caller_may_not_see_do_not_move_its_ranking(cache_dir: Path) -> None:
    who = Principal("desk-user", ("desk:read", "desk:write", "rooms:read", "rooms:write"), "api_key")
    alone = await rankings(DESK, who)
    hidden = await rankings(WITH_FORUM, who)
    assert all(alone[q] for q in QUERIES)
    for q in QUERIES:
        assert hidden[q] == alone[q], f"{q!r}: names, order, scores and why are those of a hub without the hidden server"


async def test_each_visible_set_has_its_statistics_cached_bounded_and_dropped_on_reindex(cache_dir: Path) -> None:
    async with Hub(parse_config({"mcpServers": WITH_FORUM})) as hub:
        search = ToolSearch(hub, WordEmbedder())
        reader = Principal("r", ("desk:read",), "api_key")
        search.search("ticket", 3)
        views = search.index._views
        assert views.built == 0, "the whole catalog's set is the build's own statistics"
        search.search("ticket", 3, principal=reader)
        search.search("delete a ticket", 3, principal=reader)
        assert views.built == 1, "one build per visible set, reused by its next searches"
        search.refresh()
        assert search.index._views is views, "no change: the same build"


def index_of(count: int) -> ToolIndex:
    index = ToolIndex(WordEmbedder())
    index.update([tool_doc(types.Tool(name=f"ns{i % 7}__get_thing_{i}", description=f"Get thing {i} of kind {i % 5}.",
                                      input_schema={"type": "object"}), f"get_thing_{i}", f"ns{i % 7}")
                  for i in range(count)])
    return index


def test_the_view_cache_keeps_at_most_max_views_sets() -> None:
    index = index_of(40)
    for k in range(MAX_VIEWS + 8):
        index.search("thing of kind 3", 3, allowed=lambda name, k=k: name.endswith(f"_{k}") or name.endswith("_0"))
    assert len(index._views) == MAX_VIEWS and index._views.built == MAX_VIEWS + 8
    before = index._views
    index.update(list(index.docs))
    assert index._views is not before and len(index._views) == 0, "a re-index drops every set's statistics"


def test_a_visible_set_ranks_as_a_catalog_of_only_those_tools() -> None:
    big, small = index_of(40), index_of(40)
    keep = {d.name for d in big.docs if d.namespace in ("ns1", "ns2")}
    small.update([d for d in small.docs if d.name in keep])
    for query in ("thing of kind 3", "get thing 12", "kind 4 things"):
        masked = big.search(query, 10, allowed=keep.__contains__)
        alone = small.search(query, 10)
        assert [(h.name, h.score, h.keyword, h.semantic) for h in masked] == \
               [(h.name, h.score, h.keyword, h.semantic) for h in alone]
        assert np.isfinite([h.score for h in masked]).all()


@pytest.mark.parametrize(("query", "intent", "action"), [
    ("tell the ops channel that the deploy is done", "write", "create"),
    ("tell #ops the deploy is done", "write", "create"),
    ("can you tell Priya the invoice is paid", "write", "create"),
    ("let the team know in #ops that the release is out", "write", "create"),
    ("please let the on-call engineer know the database is down", "write", "create"),
    ("notify the finance team that invoice INV-7 was paid", "write", "create"),
    ("ping Ana about the design review", "write", "create"),
    ("message the team that standup moved to 10", "write", "create"),
    ("inform the customer their order shipped", "write", "create"),
    # the caller is the one told: a question, as before
    ("tell me who is out next week", "read", None),
    ("tell us which invoices are overdue", "read", None),
    ("let me know who is on call", "read", None),
    ("let us know which rooms are free", "read", None),
    # "let" without "know" is filler, as before
    ("let me book a room for Friday", "write", "create"),
    ("let's cancel the standup", "write", "delete"),
    ("messages from Bob about the outage?", "read", None),
])
def test_telling_someone_is_an_order_that_creates(query: str, intent: str, action: str | None) -> None:
    assert (query_intent(query), query_action(query)) == (intent, action)
