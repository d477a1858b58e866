"""Ranking statistics over the tools one caller may see (review search15 #3), computed lazily (re-check 15 #9).

BM25 document frequencies and field-length averages, the example requests' BM25 table, the
namespace prior's table and the typo vocabulary all depend on which documents they are computed
over. Built over the whole catalog and masked afterwards, a server the caller cannot see moved its
ranking (a hidden 200-tool server that says "comment" and "reply" flipped a ticketing caller's top
hit) and score ratios told the caller which words hidden tools use. Decided:

- every statistic is computed over the caller's **visible set** only: its tools, their examples,
  their namespaces (a namespace's text is its *visible* tools' text) and their words (typos are
  corrected only toward words the caller's tools use), so the ranking is exactly the one a hub
  holding only those tools would give;
- an index build keeps only **raw** tables (`Tables`, once per build): per term the tools and example
  rows it occurs in with its count per field, per document its field lengths, per tool its namespace,
  one typo index over the whole vocabulary. A search computes its visible set's statistics for the
  query's terms only (`hub.search.bm25`: N, df and the length normalisation over the set; the
  namespace prior by `np.bincount` over the visible tools; a typo correction kept only when a visible
  tool uses the word, ranked by how many do), a few ms at 3,000 tools for any set. Per-set tables,
  ~500 ms and ~20 MB each at 3,000 tools, thrashed an LRU of 16 once 17 sets took turns;
- what a set needs whatever the query (`View`: its mask, field-length averages, example-row lengths,
  namespace lengths; under a millisecond) is kept for the last `MAX_VIEWS` sets per build (`ViewCache`,
  least recently used out), so memory is bounded whatever the number of sets; a re-index drops them
  with the build they belong to (`ToolIndex.update` swaps in a new cache). The whole catalog's view is
  the build's own and never dropped. A set is keyed by which documents it holds (a bitmap of the
  index's name-ordered documents), so scopes and profiles seeing the same tools share one entry.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hub.search.bm25 import BM25F, FIELD_WEIGHTS, SYNONYM_WEIGHT, Subset, bm25, normalised
from hub.search.documents import ToolDoc
from hub.search.examples import sample_names
from hub.search.typos import Spelling
from hub.search.words import SYNONYMS, terms

MAX_VIEWS = 16
"""Visible sets whose query-independent statistics (`View`) are kept per index build."""
NAMESPACE_FIELDS = ("name", "title", "description", "params")
"""The fields whose words make up a namespace's text for the namespace prior (examples are not: they
pulled requests for other servers' tools toward the namespaces that have examples)."""
EXAMPLE_WEIGHTS = {"description": FIELD_WEIGHTS["description"]}
"""An example request is one field of text."""

Layout = tuple[np.ndarray, np.ndarray]
"""The tools that have example requests, and where each one's examples start in the stack of all
examples (tool by tool, in `docs` order)."""


@dataclass(frozen=True)
class NamespaceView:
    """The namespace prior's statistics over a visible set: a namespace's text is its visible tools'."""

    visible: np.ndarray
    """Which namespaces hold a visible tool."""
    count: int
    lengths: np.ndarray
    """Each namespace's text length over its visible tools (float32)."""
    average: np.float32


@dataclass(frozen=True)
class View:
    """What a visible set's ranking needs whatever the query (small: masks and lengths, no postings)."""

    tools: Subset
    examples: Subset
    namespaces: NamespaceView

    def frequency(self, tables: Tables) -> Callable[[str], int]:
        """How many visible tools use a word (for typo corrections)."""
        return lambda term: tables.bm25.frequency(term, self.tools.mask)


@dataclass(frozen=True)
class Tables:
    """The raw tables of one index build, from which any visible set's statistics are computed."""

    bm25: BM25F
    examples: BM25F
    owner: np.ndarray
    """Each example row's tool."""
    named: tuple[np.ndarray, np.ndarray]
    """For `examples.conditional` (sample names): the tools using each, concatenated, and which name each is."""
    ns_of: np.ndarray
    namespaces: int
    ns_lengths: np.ndarray
    """Each tool's `NAMESPACE_FIELDS` length (its share of its namespace's text)."""
    spelling: Spelling

    def view(self, mask: np.ndarray) -> View:
        """The query-independent statistics of the tools `mask` holds."""
        kept = np.zeros(len(self.examples.conditional), dtype=bool)
        docs, which = self.named
        kept[which[mask[docs]]] = True
        per_ns = np.bincount(self.ns_of[mask], weights=self.ns_lengths[mask], minlength=self.namespaces)
        visible = np.bincount(self.ns_of[mask], minlength=self.namespaces) > 0
        lengths = per_ns.astype(np.float32)
        seen = lengths[visible]
        average = np.float32(max(float(seen.mean()) if len(seen) else 0.0, 1.0))
        return View(self.bm25.subset(mask), self.examples.subset(mask[self.owner], kept),
                    NamespaceView(visible, int(visible.sum()), lengths, average))

    def namespace_scores(self, query: Sequence[str], implied: Sequence[str], view: View) -> np.ndarray:
        """BM25 of the query over each namespace's visible text (0 for namespaces without visible tools)."""
        ns = view.namespaces
        rows = [self.bm25.fields.index(f) for f in NAMESPACE_FIELDS if f in self.bm25.fields]
        fields: slice | list[int] = slice(rows[0], rows[-1] + 1) if rows == list(range(rows[0], rows[-1] + 1)) else rows
        out = np.zeros(self.namespaces, dtype=np.float32)
        for term, weight in [(t, 1.0) for t in dict.fromkeys(query)] + [(t, SYNONYM_WEIGHT) for t in implied]:
            found = self.bm25.postings.get(term)
            if found is None:
                continue
            ids, counts, _ = found
            keep = view.tools.mask[ids]
            if not keep.any():
                continue
            said = counts[fields][:, keep].sum(axis=0)
            per_ns = np.bincount(self.ns_of[ids[keep]], weights=said, minlength=self.namespaces)
            where = np.flatnonzero(per_ns)
            if not len(where):
                continue
            tf = normalised(per_ns[where], FIELD_WEIGHTS["description"], ns.lengths[where], ns.average)
            out[where] += weight * bm25(tf, len(where), ns.count)
        return out


def build_tables(docs: Sequence[ToolDoc], layout: Layout | None, ns_of: np.ndarray, namespaces: int) -> Tables:
    """The raw tables of `docs` (once per index build: the cost of one set's tables)."""
    tools = BM25F([d.fields for d in docs])
    rows: list[dict[str, list[str]]] = []
    names: list[set[str]] = []
    owner: list[int] = []
    if layout is not None:
        for i in layout[0].tolist():
            for example in docs[i].examples:
                rows.append({"description": terms(example)})
                names.append(sample_names(example) - set(SYNONYMS))
                owner.append(i)
    examples = BM25F(rows, EXAMPLE_WEIGHTS, conditional=names)
    used = [tools.postings[t][0] if t in tools.postings else np.zeros(0, dtype=np.int64) for t in examples.conditional]
    named = (np.concatenate(used) if used else np.zeros(0, dtype=np.int64),
             np.repeat(np.arange(len(used), dtype=np.int64), [len(u) for u in used]))
    ns_lengths = sum((tools.lengths[tools.fields.index(f)].astype(np.float64) for f in NAMESPACE_FIELDS),
                     np.zeros(len(docs)))
    spelling = Spelling({t: len(ids) for t, (ids, _, _) in tools.postings.items()})
    return Tables(tools, examples, np.array(owner, dtype=np.int64), named, ns_of, namespaces, ns_lengths, spelling)


class ViewCache:
    """The `View`s of recently searched visible sets of one index build (module docstring)."""

    def __init__(self, whole: View) -> None:
        self.whole = whole
        self._views: OrderedDict[bytes, View] = OrderedDict()
        self._lock = threading.Lock()
        self.built = 0
        """How many visible sets' views were computed (for checks)."""

    def __len__(self) -> int:
        return len(self._views)

    def get(self, visible: np.ndarray, build: Callable[[], View]) -> View:
        """The view of `visible`: the whole build's when it holds every document, else the cached one,
        else `build()`'s (kept, the least recently used set dropped past `MAX_VIEWS`)."""
        if visible.all():
            return self.whole
        key = np.packbits(visible).tobytes() + len(visible).to_bytes(8, "little")
        with self._lock:
            found = self._views.get(key)
            if found is not None:
                self._views.move_to_end(key)
                return found
        view = build()
        with self._lock:
            self.built += 1
            self._views[key] = view
            self._views.move_to_end(key)
            while len(self._views) > MAX_VIEWS:
                self._views.popitem(last=False)
        return view
