"""Tool search costs what the catalog's text costs, whatever a server sends (review console7 #1).

One 30,000-character hex word in a tool description made the typo index keep every one-letter
deletion of it (quadratic: gigabytes, ~22 s per re-index). Costs are counted here, not timed: the
characters of typo-index keys built, the terms a tool yields, the text embedded, and (end to end)
the memory an index build allocates.
"""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Iterator, Sequence
from pathlib import Path

import mcp_types as types
import numpy as np
import pytest
from mcp.server import MCPServer

import hub.search.typos as typos
from hub.config import parse_config
from hub.hub import Hub
from hub.search.documents import ToolDoc, tool_doc
from hub.search.index import ToolIndex
from hub.search.service import ToolSearch
from tests.fixtures.word_embedder import WordEmbedder

pytestmark = pytest.mark.anyio

KEY_CHARS_PER_WORD = 25 * 24
"""What the typo index may build per catalog word: at most 25 keys of at most 24 letters."""


def hex_word(length: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    return "a" + "".join(rng.choice("0123456789abcdef") for _ in range(length - 1))


@pytest.fixture
def key_chars(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the characters of every typo-index key (one-letter deletion) built, as `[total]`."""
    counted = [0]
    real = typos._deletions

    def counting(word: str) -> set[str]:
        out = real(word)
        counted[0] += sum(len(k) for k in out)
        return out

    monkeypatch.setattr(typos, "_deletions", counting)
    yield counted


def monster(length: int) -> types.Tool:
    """A tool with a `length`-character word in every text a server controls, and a huge schema."""
    word = hex_word(length)
    props = {f"p{i}_{word}": {"type": "string", "description": f"ada@example.com {word} " + "x." * length,
                              "enum": [word] * 50} for i in range(60)}
    return types.Tool(name=f"get_{word}", title=f"Title {word}", description=f"Key fingerprint {word}. Use it.",
                      input_schema={"type": "object", "properties": props, "required": [[1], word, "p0"]})


def plain(name: str, description: str) -> types.Tool:
    return types.Tool(name=name, description=description, input_schema={"type": "object", "properties": {}})


def catalog(extra: Sequence[types.Tool]) -> list[ToolDoc]:
    tools = [plain("zeppelin_mooring_schedule", "Schedule zeppelin mooring at the airship mast."),
             plain("list_calendar_events", "Events on the calendar between two days.")] + list(extra)
    return [tool_doc(t, t.name, "evil") for t in tools]


def test_the_typo_index_is_linear_in_the_vocabulary(key_chars: list[int]) -> None:
    words = {"calendar": 3, "employee": 5, "a" * 5000: 1, hex_word(3000): 1, "b" * 40: 1}
    spelling = typos.Spelling(words)
    assert key_chars[0] <= KEY_CHARS_PER_WORD * len(words), "a long word is not worth typo keys"
    assert spelling.corrections("calender") == ["calendar"], "typo tolerance still works for real words"
    assert spelling.corrections("emplyee") == ["employee"]
    key_chars[0] = 0
    assert spelling.corrections("c" * 5000) == [] and spelling.corrections("a" * 4999) == []
    assert key_chars[0] <= 2 * KEY_CHARS_PER_WORD, "nor is a long query word worth probes"


def test_indexing_cost_does_not_grow_faster_than_the_text(key_chars: list[int]) -> None:
    costs: list[int] = []
    for length in (1000, 2000, 4000):
        key_chars[0] = 0
        ToolIndex(None).update(catalog([monster(length)]))
        costs.append(key_chars[0])
    assert costs[2] <= 2.5 * costs[0], f"typo keys built for words of 1k, 2k, 4k characters: {costs}"


def test_a_tool_yields_bounded_terms_and_text_whatever_it_sends() -> None:
    rng = random.Random(3)
    huge = " ".join("w" + "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(8)) for _ in range(100_000))
    tool = monster(30_000).model_copy(update={"description": "Fetch the zeppelin. " + huge})
    doc = tool_doc(tool, tool.name, "evil", instructions=huge)
    terms = [t for field in doc.fields.values() for t in field]
    assert len(terms) <= 10_000, {f: len(ts) for f, ts in doc.fields.items()}
    assert max(len(t) for t in terms) <= 64
    assert len(doc.embed_text) <= 4_000 and len(doc.name_text) <= 200
    assert "zeppelin" in doc.fields["description"] and "⟨email⟩" in doc.fields["params"], "the start still counts"
    assert doc.intent == "read", "the name's verb is still read"


class RecordingEmbedder(WordEmbedder):
    """The word-hash embedder, remembering how long each text it embedded was."""

    def __init__(self) -> None:
        self.lengths: list[int] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.lengths.extend(len(t) for t in texts)
        return super().embed(texts)


def test_a_huge_query_costs_what_its_first_thousand_characters_cost(key_chars: list[int]) -> None:
    embedder = RecordingEmbedder()
    index = ToolIndex(embedder)
    index.update(catalog([]))
    key_chars[0] = 0
    embedder.lengths.clear()
    query = "zeppelin mooring " + "x" * 20_000 + " qwrtzpl" * 5_000
    hits = index.search(query, 2)
    assert hits[0].name == "zeppelin_mooring_schedule"
    assert embedder.lengths == [1000], "the query is cut before it is embedded (and cached)"
    assert key_chars[0] <= 2 * KEY_CHARS_PER_WORD * 200, "typo probes for at most the cut query's words"


def long_key_server() -> MCPServer:
    """A server whose tool description holds a 12,000-character hex key (review console7 #1, smaller)."""
    server = MCPServer("evil")

    @server.tool(description="Key fingerprint " + hex_word(12_000))
    def huge_desc() -> str:
        return "ok"

    @server.tool(description="Schedule zeppelin mooring at the airship mast.")
    def zeppelin_mooring_schedule() -> str:
        return "ok"

    return server


async def test_a_long_word_in_a_description_costs_the_index_little_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_CACHE_DIR", str(tmp_path / "cache"))
    server = {"module": "tests.hub.search.test_tool_search_costs:long_key_server"}
    config = parse_config({"mcpServers": {"evil": server}})
    async with Hub(config) as hub:
        search = ToolSearch(hub, WordEmbedder())
        typos.english_words()  # loaded once per process, not part of an index build
        tracemalloc.start()
        try:
            search.refresh()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16_000_000, f"an index build of 2 tools allocated {peak / 1e6:.0f} MB"
        assert search.search("zeppelin mooring airship", 1)[0].name == "evil__zeppelin_mooring_schedule"
