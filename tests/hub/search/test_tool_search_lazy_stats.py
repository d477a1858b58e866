"""Per-caller statistics cost no tables per visible set (re-check 15 #9).

Every statistic is computed over the caller's visible set (review search15 #3), but from raw tables
built once per index: with more distinct visible sets taking turns than any cache holds, a search
still builds no BM25 table and no typo index, and ranks exactly as a catalog of only its tools.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import mcp_types as types
import pytest

from hub.search.bm25 import BM25F
from hub.search.documents import ToolDoc, tool_doc
from hub.search.index import ToolIndex
from hub.search.stats import MAX_VIEWS
from hub.search.typos import Spelling
from tests.fixtures.word_embedder import WordEmbedder

WORDS = ("ticket invoice customer order refund report calendar event meeting deploy alert incident comment "
         "reply sprint board globex priya").split()
NAMES = ("Globex", "Priya", "Berlin", "Ticket", "Zorblat")
QUERIES = ("refund the customer invoice", "globex tickets", "show Priya's sprint board", "calender event",
           "invoce for globex", "zorblat", "which incidents are open?", "create a ticket for Globex")


def catalog(seed: int = 5, servers: int = 8, per_server: int = 12) -> list[ToolDoc]:
    """Tools over a few shared words, some with example requests holding sample names."""
    rng = random.Random(seed)
    docs = []
    for s in range(servers):
        for t in range(per_server):
            name = f"{rng.choice(WORDS)}_{rng.choice(WORDS)}_{t}"
            description = " ".join(rng.choices(WORDS, k=rng.randint(3, 20)))
            tool = types.Tool(name=f"srv{s}__{name}", description=description,
                              input_schema={"type": "object", "properties": {
                                  w: {"type": "string", "description": rng.choice(WORDS)} for w in rng.sample(WORDS, 3)}})
            examples = tuple(f"find {rng.choice(WORDS)} for {rng.choice(NAMES)} and {rng.choice(WORDS)}"
                             for _ in range(rng.choice((0, 2, 4))))
            docs.append(tool_doc(tool, name, f"srv{s}", f"About {rng.choice(WORDS)}.", examples=examples))
    return docs


def visible_sets(names: list[str], count: int) -> list[set[str]]:
    rng = random.Random(11)
    return [set(rng.sample(names, rng.randint(1, len(names) - 1))) for _ in range(count)]


def test_twenty_visible_sets_taking_turns_build_no_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    index = ToolIndex(WordEmbedder())
    index.update(catalog())
    built: list[str] = []

    def counting(cls: type, label: str) -> None:
        original: Callable[..., None] = cls.__init__  # type: ignore[misc]

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            built.append(label)
            original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", init)

    counting(BM25F, "bm25")
    counting(Spelling, "typos")
    sets = visible_sets([d.name for d in index.docs], MAX_VIEWS + 4)
    for _ in range(2):
        for keep in sets:
            assert index.search("refund the customer invoce", 5, allowed=keep.__contains__)
    assert built == [], "a search computes its visible set's statistics from the build's tables, building none"
    assert len(index._views) <= MAX_VIEWS, "what is kept per visible set is bounded"


def test_random_visible_sets_rank_as_catalogs_of_only_those_tools() -> None:
    docs = catalog()
    big = ToolIndex(WordEmbedder())
    big.update(docs)
    for keep in visible_sets([d.name for d in big.docs], 12):
        alone = ToolIndex(WordEmbedder())
        alone.update([d for d in docs if d.name in keep])
        for query in QUERIES:
            for mode in ("hybrid", "keyword"):
                masked = big.search(query, 8, allowed=keep.__contains__, mode=mode)
                own = alone.search(query, 8, mode=mode)
                assert [(h.name, h.score, h.keyword, h.semantic, h.why()) for h in masked] == \
                       [(h.name, h.score, h.keyword, h.semantic, h.why()) for h in own], (query, mode, sorted(keep))
