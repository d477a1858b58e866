"""Example requests for tool search (`hub.search.examples`): read from a tool's `_meta` or the config,
indexed (keywords and vectors), and taken out of the tools the hub lists; the built-in domains
carry theirs.

Rankings run on an in-process hub with the deterministic word-hash embedder (no MiniLM here); the
fixture's right tool shares no word of the query in its name or description, only in its examples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from hub.config import parse_config
from hub.hub import Hub
import hub.search.service as service
from hub.search.examples import EXAMPLES_META_KEY, MAX_EXAMPLE_CHARS, MAX_EXAMPLES, clean_examples, example_terms
from hub.search.service import ToolSearch
from servers import BUILTIN_DOMAINS
from tests.fixtures.search_examples import HOLIDAYS
from tests.fixtures.word_embedder import GatedWordEmbedder, WordEmbedder

pytestmark = pytest.mark.anyio

PEOPLE = {"people": {"module": "tests.fixtures.search_examples:people"}}
QUERY = "anyone skiing this fortnight?"


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MCP_HUB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def config(**people: Any) -> Any:
    return parse_config({"mcpServers": {"people": {**PEOPLE["people"], **people}}})


def test_examples_of_the_wrong_shape_are_ignored_and_long_lists_are_cut() -> None:
    assert clean_examples({"a": "b"}) == ()
    assert clean_examples("who is off") == ()
    assert clean_examples(None) == ()
    kept = clean_examples([7, None, "  spaced   out  ", "x" * 10_000, "spaced out", ["nested"], ""])
    assert kept == ("spaced out", "x" * MAX_EXAMPLE_CHARS), "trimmed, cut, deduplicated; other kinds skipped"
    assert len(clean_examples([f"request {i}" for i in range(500)])) == MAX_EXAMPLES


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "semantic"])
async def test_a_request_like_a_tools_examples_finds_it(mode: str) -> None:
    async with Hub(config()) as hub:
        search = ToolSearch(hub, WordEmbedder())
        hit = search.search(QUERY, 2, mode=mode)[0]
        assert hit.name == "people__roster_gaps"
        if mode != "semantic":
            assert "examples: skiing, fortnight" in hit.why()


async def test_without_its_examples_the_tool_is_not_found_first() -> None:
    """The control for the test above: the same catalog with the examples replaced by unrelated ones."""
    override = {"tool_overrides": {"roster_gaps": {"examples": ["archive old records"]}}}
    async with Hub(config(**override)) as hub:
        search = ToolSearch(hub, WordEmbedder())
        for mode in ("hybrid", "keyword", "semantic"):
            assert search.search(QUERY, 2, mode=mode)[0].name == "people__list_staff", mode


async def test_the_config_gives_examples_to_a_tool_whose_server_has_none() -> None:
    override = {"tool_overrides": {"list_staff": {"examples": ["who reports to whom", "org chart of sales"]}}}
    async with Hub(config(**override)) as hub:
        route = hub.catalog.resolve_tool("people__list_staff")
        assert route is not None and route.examples == ("who reports to whom", "org chart of sales")
        search = ToolSearch(hub, WordEmbedder())
        assert search.search("who reports to Ana", 1)[0].name == "people__list_staff"


async def test_the_hub_lists_tools_without_their_examples_and_keeps_other_meta() -> None:
    async with Hub(parse_config({"mcpServers": {**PEOPLE, "odd": {"module": "tests.fixtures.search_examples:odd"}}})) as hub:
        listed = {t.name: t for t in hub.visible_tools(hub.access.local)}
        assert listed["people__roster_gaps"].meta == {"com.example/owner": "hr-platform"}
        assert all(EXAMPLES_META_KEY not in (t.meta or {}) for t in listed.values())
        assert hub.catalog.resolve_tool("people__roster_gaps").examples == tuple(HOLIDAYS)
        odd = {n.removeprefix("odd__"): hub.catalog.resolve_tool(n).examples for n in listed if n.startswith("odd__")}
        assert odd["as_mapping"] == odd["as_string"] == ()
        assert odd["mixed"] == ("spaced out", "x" * MAX_EXAMPLE_CHARS)
        assert len(odd["many"]) == MAX_EXAMPLES
        search = ToolSearch(hub, WordEmbedder())
        assert search.search("request number 3", 1)[0].name == "odd__many", "a server's wrong shapes break nothing"


async def test_every_built_in_tool_carries_example_requests_the_hub_indexes() -> None:
    async with Hub(parse_config({"mcpServers": {d: {"builtin": d} for d in sorted(BUILTIN_DOMAINS)}})) as hub:
        listed = hub.visible_tools(hub.access.local)
        assert len(listed) >= 60
        for tool in listed:
            assert EXAMPLES_META_KEY not in (tool.meta or {})
            examples = hub.catalog.resolve_tool(tool.name).examples
            assert len(examples) >= 8, f"{tool.name} has {len(examples)} example requests"


@pytest.mark.parametrize("mode", ["hybrid", "keyword"])
async def test_examples_that_only_scatter_the_words_do_not_outrank_a_tool_without_examples(mode: str) -> None:
    """Each example is scored on its own, and a tool without examples stands as its own example: the
    words of a request spread over another tool's examples do not add up to beat the tool that says it."""
    servers = {name: {"module": f"tests.fixtures.search_examples:{name}"} for name in ("office", "post")}
    async with Hub(parse_config({"mcpServers": servers})) as hub:
        search = ToolSearch(hub, WordEmbedder())
        assert search.search("ship a parcel to Oslo today", 2, mode=mode)[0].name == "post__send_parcel"


def test_a_huge_example_is_cut_before_it_is_split_and_a_lone_surrogate_is_replaced() -> None:
    words = "ab " * 5_000_000
    assert clean_examples([words]) == (("ab " * 67)[:MAX_EXAMPLE_CHARS].strip(),)
    assert clean_examples(["who is off \ud800 today"]) == ("who is off ? today",)


def test_the_config_caps_examples_once_when_it_is_read() -> None:
    cfg = parse_config({"mcpServers": {"people": {**PEOPLE["people"], "tool_overrides": {
        "*": {"examples": [f"request {i}" for i in range(1000)] + ["x" * 5000]}}}}})
    override = next(s for s in cfg.servers if s.name == "people").tool_overrides["*"]
    assert override.examples == [f"request {i}" for i in range(MAX_EXAMPLES)]


async def test_an_example_with_a_lone_surrogate_breaks_no_search() -> None:
    override = {"tool_overrides": {"list_staff": {"examples": ["who reports to \ud800 whom"]}}}
    async with Hub(config(**override)) as hub:
        search = ToolSearch(hub, WordEmbedder())
        assert search.search("who reports to whom", 1)[0].name == "people__list_staff"


def test_sample_names_in_examples_are_not_keywords() -> None:
    assert example_terms("show unpaid invoices for Globex in Berlin", {"invoic"}) == ["unpaid", "invoic"]
    assert example_terms("Jira ticket for Priya, at Acme", {"jira", "ticket"}) == ["jira", "ticket"]
    assert example_terms("What is OPS-12 about? Ask Dana", set()) == ["ops", "12", "about", "ask"]


async def test_why_names_the_words_of_the_example_that_counted() -> None:
    servers = {name: {"module": f"tests.fixtures.search_examples:{name}"} for name in ("office", "post")}
    async with Hub(parse_config({"mcpServers": servers})) as hub:
        search = ToolSearch(hub, WordEmbedder())
        hit = next(h for h in search.search("ship a parcel to Oslo today", 2) if h.name == "office__list_closures")
        said = next(p for p in hit.why().split("; ") if p.startswith("examples: "))
        assert said in ("examples: oslo", "examples: today", "examples: ship", "examples: parcel"), said


async def test_a_search_ranks_on_the_current_index_while_a_slow_reindex_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "FRESH_WAIT_S", 0.2)
    servers = {"desk": {"module": "tests.fixtures.search_catalog:desk"}}
    async with Hub(parse_config({"mcpServers": servers})) as hub:
        embedder = GatedWordEmbedder("Move a closed ticket")  # the new tool's description, not the query
        search = ToolSearch(hub, embedder)
        assert search.search("delete a ticket", 1)[0].name == "desk__delete_ticket"
        await hub.route_call("desk__grow", {})
        with anyio.fail_after(10):
            while not embedder.entered.is_set():  # the re-index after list_changed is embedding the new tool
                await anyio.sleep(0.01)
        with anyio.fail_after(5):
            hits = await anyio.to_thread.run_sync(lambda: search.search("archive a closed ticket", 5))
        assert "desk__archive_ticket" not in [h.name for h in hits], "ranked on the index as it stood"
        embedder.release.set()
        with anyio.fail_after(10):
            while "desk__archive_ticket" not in [h.name for h in search.search("archive a closed ticket", 1)]:
                await anyio.sleep(0.01)

