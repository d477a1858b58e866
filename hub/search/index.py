"""The tool index: BM25F and MiniLM embeddings over the same documents, fused into one ranking.

`update(docs)` is incremental where it costs: the BM25F tables are rebuilt (milliseconds for a
thousand tools) but only tools whose embedded text changed are embedded, and vectors come from
the cross-restart `VectorCache` first. `search` embeds the query once and ranks every tool with
one matrix product; callers pass which tools the principal may see, so nothing else is ranked.

Fusion (decided on the dev split of `tools/bench/tool_search_eval.py`): a tool's vector is the
mean of its full text's and its `namespace: name words` phrase's; each signal is scaled to [0, 1]
over the tools the caller may see (BM25 by its maximum, cosine from the median to the maximum, so
a flat semantic field adds little), then `score = BM25_SHARE·bm25 + (1−BM25_SHARE)·cos`, plus
three priors that do not rest on words the query shares with the tool (`hub.search.intent`):
read/write intent agreement (±INTENT_WEIGHT), a parameter taking a value shape the query holds
(+SHAPE_WEIGHT), and how well the query matches the tool's whole namespace, BM25 over all its
tools' text scaled by the best namespace (×NAMESPACE_WEIGHT); and (round 5) ±SPECIFIC_WEIGHT on tools
that read one record by id, by whether the query holds an identifier (`hub.search.specific`). Query
words no tool uses and that are not English are read as the tool words one edit away
(`hub.search.typos`). Every word statistic (BM25 document frequencies, the examples' and the
namespaces' tables, the typo vocabulary) is computed over the tools the caller may see, at query time
from raw tables built once (`hub.search.stats`, review search15 #3, re-check 15 #9). Without an embedder the shipped
ranking is BM25F plus the priors. Reciprocal-rank fusion, a namespace prior from mean vectors
and an exact-name-word bonus were tried on dev and did not pay (docs/tool-search.md).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import mcp_types as types
import numpy as np

from hub.search.documents import ToolDoc, text_key
from hub.search.intent import SHAPES, query_action, query_intent, query_shapes
from hub.search.specific import query_holds_id
from hub.search.stats import Layout, Tables, View, ViewCache, build_tables
from hub.search.vectors import VectorCache
from hub.search.words import SYNONYMS, expansions, phrase_expansions, surface_words, terms
from hub.text.blas import single_blas_thread
from hub.text.embedding import Embedder

BM25_SHARE = 0.55
"""Weight of the keyword signal in the fused score (the rest is semantic)."""
INTENT_WEIGHT = 0.2
"""Added when the query's read/write intent matches the tool's, subtracted when it contradicts it."""
SHAPE_WEIGHT = 0.2
"""Added to tools with a parameter of a value shape the query holds (`OPS-12`, an email address)."""
NAMESPACE_WEIGHT = 0.25
"""Weight of the namespace prior: how well the query matches the tool's whole namespace."""
QUERY_CACHE = 1024
"""Query vectors kept (384 floats each: 1.5 MB at most)."""
ACTION_WEIGHT = 0.1
"""Added when an order's kind of write (create, update, delete) is the one the tool's name says; subtracted
from destructive tools (`ToolDoc.destructive`) when the order creates (review console7 #4: "refund a
charge" ranked `delete_refund` first, its `refund_id` parameter repeating the noun)."""
EXAMPLE_SHARE = 0.25
"""For a tool with example requests (`hub.search.examples`), the share of its cosine that is the best
of its examples' cosines (the rest is its own text's)."""
EXAMPLE_KEYWORD_WEIGHT = 0.75
"""Added to a tool's BM25F score: this times the BM25 score of its best-matching example request, each
example scored as a document of its own (one example saying most of the query counts; the same words
scattered over ten examples do not add up, which pulled every word toward the tools with examples).
A tool without examples stands as its own example: this times its own BM25F score is added, so having
examples gives no tool an edge by itself (in the eval, tools of servers without examples kept their
ranks only so: `docs/tool-search.md`, round 7). On the semantic side a tool without examples keeps its
own cosine, and the examples' best cosines are first shifted down by the median, over the tools that
have examples, of (best example's − own text's) (`CALIBRATION_TOOLS`): a short request-shaped example
is nearer almost any request than a tool's own text, which otherwise lifted every tool with examples
above the rest."""
CALIBRATION_TOOLS = 5
"""With at least this many tools having examples, their best-example cosines are shifted by the median
gap (best example's − own text's) over those tools; with fewer, each tool's by its own examples' mean gap."""
MAX_QUERY_CHARS = 1000
"""A longer query is cut to this before any work (`search_tools` refuses one; the CLI and library callers
do not): the query's regexes, words, typo probes and its cached vector all cost at most this much."""
SPECIFIC_WEIGHT = 0.1
"""Added to tools that read one record by id when the query holds an identifier, subtracted when it
holds none (`hub.search.specific`)."""

Mode = str
"""`hybrid` (shipped), `bm25` or `semantic` alone, or `keyword` (BM25F + priors: what ships without an
embedder); all but `hybrid` are for the eval and for debugging."""


@dataclass(frozen=True)
class Hit:
    """One ranked tool: fused `score`, both signals scaled to [0, 1], and what matched."""

    name: str
    score: float
    keyword: float
    semantic: float
    matched: dict[str, list[str]] = field(default_factory=dict)
    doc: ToolDoc | None = field(default=None, compare=False, repr=False)
    signals: tuple[str, ...] = ()
    """Priors that raised this tool: `reads`/`writes` (intent agreed), `takes ⟨key⟩` (a value shape),
    `reads the one record named` (the query holds an identifier and the tool reads one record by id)."""
    tool: types.Tool | None = field(default=None, compare=False, repr=False)
    """The tool as the catalog holds it when the search answers (`ToolSearch.search`), which a hit presents;
    `doc.tool` is the tool as last indexed, for ranking only (outside review search19 #1)."""

    def why(self) -> str:
        """A one-line reason: the query words found per field, the priors and the semantic similarity."""
        parts = [f"{f}: {', '.join(words)}" for f, words in self.matched.items()]
        parts += list(self.signals)
        parts.append(f"meaning {self.semantic:.2f}")
        return "; ".join(parts)


class ToolIndex:
    """Documents, their BM25F tables and their vectors; thread-safe (search runs in a worker thread)."""

    def __init__(self, embedder: Embedder | None, cache: VectorCache | None = None) -> None:
        self.embedder = embedder
        self.cache = cache
        self.docs: list[ToolDoc] = []
        self.embedded = 0
        """How many texts (two per tool, and one per example request) this index has run through the model:
        cache misses."""
        self._vectors: np.ndarray | None = None
        self._layout: Layout | None = None
        """The tools that have example requests, and where each one's examples start in the stack of all
        examples (tool by tool, in `docs` order); None when no tool has examples."""
        self._tables = build_tables([], None, np.zeros(0, dtype=np.int64), 0)
        """The raw word tables of this build, from which every visible set's statistics are computed."""
        self._views = ViewCache(self._tables.view(np.ones(0, dtype=bool)))
        """The query-independent statistics of the whole build and of recently searched visible sets."""
        self._example_vectors: np.ndarray | None = None
        self._intents = np.zeros(0, dtype=np.float32)
        self._actions: dict[str, np.ndarray] = {}
        self._destructive = np.zeros(0, dtype=np.float32)
        self._one = np.zeros(0, dtype=np.float32)
        self._shapes: dict[str, np.ndarray] = {}
        self._ns_of = np.zeros(0, dtype=np.int64)
        self._by_key: dict[str, np.ndarray] = {}
        self._queries: OrderedDict[tuple[Hashable, str], np.ndarray] = OrderedDict()
        """Recent queries' vectors (an agent repeats and refines its searches): the model runs once per text."""
        self._lock = threading.Lock()
        self._updating = threading.Lock()

    def update(self, docs: Sequence[ToolDoc]) -> None:
        """Replace the indexed tools; embed only texts never seen by this index or its cache.

        Documents are kept in name order, so a ranking (ties included) does not depend on which
        server answered its tools/list first. The new tables are built (and new texts embedded: seconds
        for a big server's examples) outside the lock searches take; only the swap is under it, so
        searches keep ranking on the current index meanwhile. Updates run one at a time."""
        docs = sorted(docs, key=lambda d: d.name)
        with self._updating:
            vectors, example_vectors = self._embed_all(docs) if self.embedder is not None else (None, None)
            owners = [i for i, d in enumerate(docs) if d.examples]
            layout = (np.array(owners, dtype=np.int64),
                      np.cumsum([0] + [len(docs[i].examples) for i in owners[:-1]]).astype(np.int64)) if owners else None
            intents = np.array([{"read": 1.0, "write": -1.0}.get(d.intent or "", 0.0) for d in docs], dtype=np.float32)
            names = {n: i for i, n in enumerate(sorted({d.namespace for d in docs}))}
            ns_of = np.array([names[d.namespace] for d in docs], dtype=np.int64)
            tables = build_tables(docs, layout, ns_of, len(names))
            whole = tables.view(np.ones(len(docs), dtype=bool))
            shapes = {term: np.array([term in d.fields.get("params", ()) for d in docs], dtype=np.float32)
                      for term in SHAPES}
            actions = {a: np.array([d.action == a for d in docs], dtype=np.float32) for a in ("create", "update", "delete")}
            destructive = np.array([d.destructive for d in docs], dtype=np.float32)
            one = np.array([d.one for d in docs], dtype=np.float32)
            with self._lock:
                self.docs, self._vectors, self._shapes = list(docs), vectors, shapes
                self._layout, self._example_vectors, self._views = layout, example_vectors, ViewCache(whole)
                self._tables, self._intents, self._ns_of, self._actions = tables, intents, ns_of, actions
                self._one, self._destructive = one, destructive

    def _embed_all(self, docs: Sequence[ToolDoc]) -> tuple[np.ndarray, np.ndarray | None]:
        """Each tool's semantic vector (the mean of its full text's and its name phrase's vectors), and
        every example's vector, stacked tool by tool (None when no tool has examples)."""
        assert self.embedder is not None
        texts = {text_key(t): t for d in docs for t in (d.embed_text, d.name_text, *d.examples)}
        missing: dict[str, str] = {}
        for key, text in texts.items():
            if key not in self._by_key:
                cached = self.cache.get(key) if self.cache is not None else None
                if cached is not None and cached.shape == (self.embedder.dimensions,):
                    self._by_key[key] = cached
                else:
                    missing[key] = text
        if missing:
            rows = self.embedder.embed(list(missing.values()))
            self.embedded += len(missing)
            new = dict(zip(missing, rows))
            self._by_key.update(new)
            if self.cache is not None:
                self.cache.put_many(new, set(texts))
        self._by_key = {k: v for k, v in self._by_key.items() if k in texts}
        if not docs:
            return np.zeros((0, self.embedder.dimensions), dtype=np.float32), None
        full = np.stack([self._by_key[text_key(d.embed_text)] for d in docs])
        name = np.stack([self._by_key[text_key(d.name_text)] for d in docs])
        rows = [self._by_key[text_key(e)] for d in docs for e in d.examples]
        examples = np.stack(rows).astype(np.float32) if rows else None
        return ((full + name) / 2.0).astype(np.float32), examples

    def _query_vector(self, query: str, caller: Hashable = None) -> np.ndarray:
        """The query's embedding, from the last `QUERY_CACHE` queries' when this `caller` asked it before.
        Keyed by caller (outside review search19 #9): one cache for all let any caller time whether another
        had searched a given text. An agent repeating its own searches still gets the model run once."""
        assert self.embedder is not None
        key = (caller, query)
        with self._lock:
            found = self._queries.get(key)
            if found is not None:
                self._queries.move_to_end(key)
                return found
        vector = self.embedder.embed([query])[0]
        with self._lock:
            self._queries[key] = vector
            while len(self._queries) > QUERY_CACHE:
                self._queries.popitem(last=False)
        return vector

    def search(self, query: str, limit: int = 10, allowed: Callable[[str], bool] | None = None,
               mode: Mode = "hybrid", caller: Hashable = None) -> list[Hit]:
        """The best `limit` tools for `query` among those `allowed` accepts, best first. `caller`: whose
        search it is, for the query-vector cache (`_query_vector`)."""
        with self._lock:
            docs, vectors, views, tables = self.docs, self._vectors, self._views, self._tables
            layout, example_vectors = self._layout, self._example_vectors
            intents, ns_of, shapes = self._intents, self._ns_of, self._shapes
            actions, one, destructive = self._actions, self._one, self._destructive
        if not docs or limit <= 0:
            return []
        query = query[:MAX_QUERY_CHARS]
        mask = np.array([allowed(d.name) for d in docs], dtype=bool) if allowed is not None else np.ones(len(docs), bool)
        if not mask.any():
            return []
        view = views.get(mask, lambda: tables.view(mask))
        bm25, example_bm25 = tables.bm25, tables.examples
        words = terms(query) + query_shapes(query)
        shown = surface_words(query)
        words += tables.spelling.correct(words, known=SYNONYMS, written=shown, frequency=view.frequency(tables))
        implied = expansions(words)
        implied += phrase_expansions(query, words + implied)
        keyword = bm25.scores(words, implied, view.tools)
        example_scores = None
        if layout is not None:
            example_scores = example_bm25.scores(words, implied, view.examples)
            as_example = keyword.copy()
            as_example[layout[0]] = np.maximum.reduceat(example_scores, layout[1])
            keyword = keyword + EXAMPLE_KEYWORD_WEIGHT * as_example
        keyword = np.where(mask, keyword, 0.0)
        top = float(keyword.max())
        keyword = keyword / top if top > 0 else keyword
        semantic = np.zeros(len(docs), dtype=np.float32)
        if vectors is not None and mode in ("hybrid", "semantic") and self.embedder is not None:
            with single_blas_thread():
                query_vector = self._query_vector(query, caller)
                cosine = vectors @ query_vector
                if layout is not None and example_vectors is not None and EXAMPLE_SHARE:
                    owners, starts = layout
                    each = example_vectors @ query_vector
                    best = np.maximum.reduceat(each, starts)
                    # a short request-shaped example is nearer any request than a tool's own text is: take
                    # the typical gap off, so having examples lifts no tool by itself (EXAMPLE_KEYWORD_WEIGHT)
                    seen = mask[owners]  # the typical gap of the caller's own tools: hidden ones move nothing
                    if int(seen.sum()) >= CALIBRATION_TOOLS:
                        best -= float(np.median((best - cosine[owners])[seen]))
                    else:  # too few tools for a typical gap: each tool's examples' mean stands for it
                        mean = np.add.reduceat(each, starts) / np.diff(np.append(starts, len(each)))
                        best -= mean - cosine[owners]
                    cosine[owners] = (1.0 - EXAMPLE_SHARE) * cosine[owners] + EXAMPLE_SHARE * best
            visible = cosine[mask]
            floor, ceiling = float(np.median(visible)), float(visible.max())
            semantic = np.clip((cosine - floor) / max(ceiling - floor, 1e-6), 0.0, 1.0)
        if mode == "bm25":
            fused = keyword
        elif mode == "semantic":
            fused = semantic
        else:
            fused = keyword if vectors is None or mode == "keyword" else BM25_SHARE * keyword + (1.0 - BM25_SHARE) * semantic
            fused = fused + _priors(query, words, implied, intents, shapes, ns_of, tables, view)
            action = query_action(query)
            if action is not None and action in actions:
                fused = fused + ACTION_WEIGHT * actions[action]
            if action == "create" and len(destructive) == len(docs):
                fused = fused - ACTION_WEIGHT * destructive
            if SPECIFIC_WEIGHT and len(one) == len(docs):
                fused = fused + SPECIFIC_WEIGHT * one * (1.0 if query_holds_id(query) else -1.0)
        fused = np.where(mask, fused, -np.inf)
        count = min(limit, int(mask.sum()))
        order = np.argpartition(-fused, count - 1)[:count] if count < len(docs) else np.arange(len(docs))
        # every tool tied with the last one kept competes by name (argpartition picks among ties by position,
        # which hidden tools shift)
        order = np.flatnonzero(fused >= fused[order].min()) if count < len(docs) else order
        order = sorted(order, key=lambda i: (-fused[i], docs[i].name))[:count]
        signals = _signals(query, docs, shapes) if mode in ("hybrid", "keyword") else (lambda i: ())

        def matched(i: int) -> dict[str, list[str]]:
            found = bm25.matched(i, words)
            if layout is not None and example_scores is not None and docs[i].examples:
                start = int(layout[1][np.searchsorted(layout[0], i)])
                best = start + int(np.argmax(example_scores[start:start + len(docs[i].examples)]))
                said = [t for ts in example_bm25.matched(best, words, view.examples).values() for t in ts]
                if said:  # the words of the example that counted: the best one
                    found["examples"] = list(dict.fromkeys(said))
            return {f: [shown.get(t, t) for t in ts] for f, ts in found.items()}

        return [Hit(docs[i].name, round(float(fused[i]), 4), round(float(keyword[i]), 4), round(float(semantic[i]), 4),
                    matched(int(i)), docs[i], signals(int(i))) for i in order]


def _signals(query: str, docs: Sequence[ToolDoc], shapes: dict[str, np.ndarray]) -> Callable[[int], tuple[str, ...]]:
    """For "why matched": which priors raised tool `i` (intent agreed, a value shape it takes)."""
    intent = query_intent(query)
    held = [t for t in query_shapes(query) if t in shapes]
    named = query_holds_id(query)

    def of(i: int) -> tuple[str, ...]:
        out = [f"{intent}s" if intent is not None and docs[i].intent == intent else ""]
        out += [f"takes {t}" for t in held if shapes[t][i]]
        out += ["reads the one record named" if named and docs[i].one else ""]
        return tuple(o for o in out if o)

    return of


def _priors(query: str, words: list[str], implied: list[str], intents: np.ndarray, shapes: dict[str, np.ndarray],
            ns_of: np.ndarray, tables: Tables, view: View) -> np.ndarray:
    """Per tool: intent agreement (±INTENT_WEIGHT), value shapes (+SHAPE_WEIGHT), namespace prior."""
    out = np.zeros(len(intents), dtype=np.float32)
    intent = query_intent(query)
    if intent is not None:
        out += INTENT_WEIGHT * intents * (1.0 if intent == "read" else -1.0)
    for term in query_shapes(query):
        if term in shapes:
            out += SHAPE_WEIGHT * shapes[term]
    if NAMESPACE_WEIGHT and view.namespaces.count > 1:
        prior = np.where(view.namespaces.visible, tables.namespace_scores(words, implied, view), 0.0)
        top = float(prior.max())
        if top > 0:
            out += NAMESPACE_WEIGHT * (prior / top)[ns_of].astype(np.float32)
    return out
