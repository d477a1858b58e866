"""The tool index: BM25F and MiniLM embeddings over the same documents, fused into one ranking.

`update(docs)` is incremental where it costs: the BM25F tables are rebuilt (milliseconds for a
thousand tools) but only tools whose embedded text changed are embedded, and vectors come from
the cross-restart `VectorCache` first. `search` embeds the query once and ranks every tool with
one matrix product; callers pass which tools the principal may see, so nothing else is ranked.

Fusion (decided on the dev split of `tools/bench/tool_search_eval.py`): a tool's vector is the
mean of its full text's and its `namespace: name words` phrase's; each signal is scaled to [0, 1]
over the tools the caller may see (BM25 by its maximum, cosine from the median to the maximum, so
a flat semantic field adds little), then `score = BM25_SHARE·bm25 + (1−BM25_SHARE)·cos`.
Reciprocal-rank fusion and a per-namespace prior were tried and did not pay (docs/tool-search.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from hub.search.bm25 import BM25F
from hub.search.documents import ToolDoc, text_key
from hub.search.vectors import VectorCache
from hub.search.words import expansions, terms
from hub.text.blas import single_blas_thread
from hub.text.embedding import Embedder

BM25_SHARE = 0.55
"""Weight of the keyword signal in the fused score (the rest is semantic)."""

Mode = str
"""`hybrid` (shipped), `bm25` or `semantic` (for the eval and for debugging)."""


@dataclass(frozen=True)
class Hit:
    """One ranked tool: fused `score`, both signals scaled to [0, 1], and what matched."""

    name: str
    score: float
    keyword: float
    semantic: float
    matched: dict[str, list[str]] = field(default_factory=dict)
    doc: ToolDoc | None = field(default=None, compare=False, repr=False)

    def why(self) -> str:
        """A one-line reason: the query words found per field and the semantic similarity."""
        parts = [f"{f}: {', '.join(words)}" for f, words in self.matched.items()]
        parts.append(f"meaning {self.semantic:.2f}")
        return "; ".join(parts)


class ToolIndex:
    """Documents, their BM25F tables and their vectors; thread-safe (search runs in a worker thread)."""

    def __init__(self, embedder: Embedder | None, cache: VectorCache | None = None) -> None:
        self.embedder = embedder
        self.cache = cache
        self.docs: list[ToolDoc] = []
        self.embedded = 0
        """How many tool texts (two per tool) this index has run through the model: cache misses."""
        self._bm25 = BM25F([])
        self._vectors: np.ndarray | None = None
        self._by_key: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def update(self, docs: Sequence[ToolDoc]) -> None:
        """Replace the indexed tools; embed only texts never seen by this index or its cache."""
        with self._lock:
            bm25 = BM25F([d.fields for d in docs])
            vectors = self._embed_all(docs) if self.embedder is not None else None
            self.docs, self._bm25, self._vectors = list(docs), bm25, vectors

    def _embed_all(self, docs: Sequence[ToolDoc]) -> np.ndarray:
        """Each tool's semantic vector: the mean of its full text's and its name phrase's vectors."""
        assert self.embedder is not None
        texts = {text_key(t): t for d in docs for t in (d.embed_text, d.name_text)}
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
            return np.zeros((0, self.embedder.dimensions), dtype=np.float32)
        full = np.stack([self._by_key[text_key(d.embed_text)] for d in docs])
        name = np.stack([self._by_key[text_key(d.name_text)] for d in docs])
        return ((full + name) / 2.0).astype(np.float32)

    def search(self, query: str, limit: int = 10, allowed: Callable[[str], bool] | None = None,
               mode: Mode = "hybrid") -> list[Hit]:
        """The best `limit` tools for `query` among those `allowed` accepts, best first."""
        with self._lock:
            docs, bm25, vectors = self.docs, self._bm25, self._vectors
        if not docs or limit <= 0:
            return []
        mask = np.array([allowed(d.name) for d in docs], dtype=bool) if allowed is not None else np.ones(len(docs), bool)
        if not mask.any():
            return []
        words = terms(query)
        keyword = bm25.scores(words, expansions(words))
        keyword = np.where(mask, keyword, 0.0)
        top = float(keyword.max())
        keyword = keyword / top if top > 0 else keyword
        semantic = np.zeros(len(docs), dtype=np.float32)
        if vectors is not None and mode != "bm25" and self.embedder is not None:
            with single_blas_thread():
                cosine = vectors @ self.embedder.embed([query])[0]
            visible = cosine[mask]
            floor, ceiling = float(np.median(visible)), float(visible.max())
            semantic = np.clip((cosine - floor) / max(ceiling - floor, 1e-6), 0.0, 1.0)
        if mode == "bm25" or vectors is None:
            fused = keyword
        elif mode == "semantic":
            fused = semantic
        else:
            fused = BM25_SHARE * keyword + (1.0 - BM25_SHARE) * semantic
        fused = np.where(mask, fused, -np.inf)
        count = min(limit, int(mask.sum()))
        order = np.argpartition(-fused, count - 1)[:count] if count < len(docs) else np.arange(len(docs))
        order = sorted(order, key=lambda i: (-fused[i], docs[i].name))
        return [Hit(docs[i].name, round(float(fused[i]), 4), round(float(keyword[i]), 4), round(float(semantic[i]), 4),
                    bm25.matched(int(i), words), docs[i]) for i in order]
