"""Ranking statistics over the tools one caller may see (review search15 #3).

BM25 document frequencies and field-length averages, the example requests' BM25 table, the
namespace prior's table and the typo vocabulary all depend on which documents they are computed
over. Built over the whole catalog and masked afterwards, a server the caller cannot see moved its
ranking (a hidden 200-tool server that says "comment" and "reply" flipped a ticketing caller's top
hit) and score ratios told the caller which words hidden tools use. Decided:

- every statistic is computed over the caller's **visible set** only: its tools, their examples,
  their namespaces (a namespace's text is its *visible* tools' text) and their words (typos are
  corrected only toward words the caller's tools use), so the ranking is exactly the one a hub
  holding only those tools would give;
- a set is keyed by which documents it holds (a bitmap of the index's name-ordered documents), so
  scopes, profiles and both together share one entry whenever they see the same tools;
- `ViewCache` keeps the last `MAX_VIEWS` sets' statistics per index build (least recently used out):
  a set costs about what the whole catalog's tables cost (BM25F postings, the typo deletion index),
  so memory is bounded at `MAX_VIEWS` + 1 such tables, and a re-index drops them all with the build
  they belong to (`ToolIndex.update` swaps in a new cache). The whole catalog's set is the build's
  own statistics and is never rebuilt.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hub.search.bm25 import BM25F
from hub.search.documents import ToolDoc
from hub.search.examples import example_terms
from hub.search.typos import Spelling
from hub.search.words import SYNONYMS

MAX_VIEWS = 16
"""Visible sets whose statistics are kept per index build (a caller's first search over a new set
builds them: ~the cost of an index's BM25 tables)."""
NAMESPACE_FIELDS = ("name", "title", "description", "params")
"""The fields whose words make up a namespace's text for the namespace prior (examples are not: they
pulled requests for other servers' tools toward the namespaces that have examples)."""

Layout = tuple[np.ndarray, np.ndarray]
"""The tools that have example requests, and where each one's examples start in the stack of all
examples (tool by tool, in `docs` order)."""


@dataclass(frozen=True)
class Stats:
    """The word statistics of one visible set; every score array is as long as the whole index's."""

    bm25: BM25F
    example_bm25: BM25F
    ns_bm25: BM25F
    spelling: Spelling


def build_stats(docs: Sequence[ToolDoc], visible: np.ndarray, layout: Layout | None, ns_of: np.ndarray,
                namespaces: int) -> Stats:
    """The statistics of the documents `visible` (a boolean mask over `docs`) holds."""
    shown = np.flatnonzero(visible)
    bm25 = BM25F([docs[i].fields for i in shown], positions=shown, size=len(docs))
    vocabulary = set(bm25.postings) | set(SYNONYMS)
    rows: list[dict[str, list[str]]] = []
    where: list[int] = []
    total = 0
    if layout is not None:
        for owner, start in zip(layout[0].tolist(), layout[1].tolist()):
            examples = docs[owner].examples
            total = start + len(examples)
            if visible[owner]:
                rows += [{"description": example_terms(e, vocabulary)} for e in examples]
                where += range(start, start + len(examples))
    example_bm25 = BM25F(rows, positions=where, size=total)
    grouped: dict[int, list[str]] = {}
    for i in shown.tolist():
        grouped.setdefault(int(ns_of[i]), []).extend(t for f in NAMESPACE_FIELDS for t in docs[i].fields.get(f, ()))
    order = sorted(grouped)
    ns_bm25 = BM25F([{"description": grouped[n]} for n in order], positions=order, size=namespaces)
    spelling = Spelling({t: len(ids) for t, (ids, _) in bm25.postings.items()})
    return Stats(bm25, example_bm25, ns_bm25, spelling)


class ViewCache:
    """The statistics of recently searched visible sets of one index build (module docstring)."""

    def __init__(self, whole: Stats) -> None:
        self.whole = whole
        self._views: OrderedDict[bytes, Stats] = OrderedDict()
        self._lock = threading.Lock()
        self.built = 0
        """How many visible sets' statistics were built (for checks)."""

    def __len__(self) -> int:
        return len(self._views)

    def get(self, visible: np.ndarray, build: Callable[[], Stats]) -> Stats:
        """The statistics of `visible`: the whole build's when it holds every document, else the cached
        ones, else `build()`'s (kept, the least recently used set dropped past `MAX_VIEWS`)."""
        if visible.all():
            return self.whole
        key = np.packbits(visible).tobytes() + len(visible).to_bytes(8, "little")
        with self._lock:
            found = self._views.get(key)
            if found is not None:
                self._views.move_to_end(key)
                return found
        stats = build()
        with self._lock:
            self.built += 1
            self._views[key] = stats
            self._views.move_to_end(key)
            while len(self._views) > MAX_VIEWS:
                self._views.popitem(last=False)
        return stats

