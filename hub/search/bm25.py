"""BM25F over tool documents with weighted fields, scored with numpy postings.

Each field's term frequency is length-normalised on its own and weighted (`FIELD_WEIGHTS`), the
weighted sum goes through BM25's saturation once per term (BM25F). Postings are numpy arrays
per term, so a query costs one vector add per query term, whatever the catalog size.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

FIELD_WEIGHTS: dict[str, float] = {
    "name": 2.0,
    "title": 2.0,
    "description": 1.0,
    "params": 0.8,
    "namespace": 1.0,
    "instructions": 0.2,
}
"""How much a word counts in each field: the tool's own name parts most, server instructions least.
(A tool's example requests are not a field: `hub.search.index` scores each example on its own.)"""

K1 = 1.2
B = 0.6
SYNONYM_WEIGHT = 0.35
"""A word the query only implies (`hub.search.words.SYNONYMS`) counts this much of a word it says."""


class BM25F:
    """An immutable BM25F index over `docs` (each a mapping field → list of terms).

    With `positions` (review search15 #3) the index covers a subset of a larger document list: every
    statistic (document frequencies, average field lengths, N) is computed over `docs` alone, and
    document `k` answers at `positions[k]` of a `size`-long score array (0 elsewhere), so a caller's
    ranking is computed over the tools it may see and no hidden tool moves it."""

    def __init__(self, docs: Sequence[Mapping[str, list[str]]], weights: Mapping[str, float] = FIELD_WEIGHTS,
                 positions: Sequence[int] | np.ndarray | None = None, size: int | None = None) -> None:
        where = np.arange(len(docs), dtype=np.int64) if positions is None else np.asarray(positions, dtype=np.int64)
        assert len(where) == len(docs)
        self.count = len(docs)
        """How many documents the statistics are computed over."""
        self.size = len(docs) if size is None else size
        """How long a score array is (the whole document list when `positions` maps a subset into it)."""
        lengths = {f: np.array([len(d.get(f, ())) for d in docs], dtype=np.float32) for f in weights}
        averages = {f: max(float(v.mean()) if len(v) else 0.0, 1.0) for f, v in lengths.items()}
        weighted: dict[str, dict[int, float]] = defaultdict(dict)
        self.fields_of: dict[str, dict[int, set[str]]] = defaultdict(dict)
        """term → doc → the fields it occurs in (for "why matched")."""
        for k, doc in enumerate(docs):
            i = int(where[k])
            for field, weight in weights.items():
                words = doc.get(field, ())
                if not words:
                    continue
                norm = 1.0 - B + B * lengths[field][k] / averages[field]
                for term, count in Counter(words).items():
                    weighted[term][i] = weighted[term].get(i, 0.0) + weight * count / norm
                    self.fields_of[term].setdefault(i, set()).add(field)
        self.postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for term, per_doc in weighted.items():
            ids = np.fromiter(per_doc.keys(), dtype=np.int64, count=len(per_doc))
            tf = np.fromiter(per_doc.values(), dtype=np.float32, count=len(per_doc))
            idf = math.log(1.0 + (self.count - len(per_doc) + 0.5) / (len(per_doc) + 0.5))
            self.postings[term] = (ids, (idf * tf * (K1 + 1.0) / (tf + K1)).astype(np.float32))

    def scores(self, query: Sequence[str], implied: Sequence[str] = ()) -> np.ndarray:
        """One score per document (0 where no query word occurs)."""
        out = np.zeros(self.size, dtype=np.float32)
        for term, weight in [(t, 1.0) for t in dict.fromkeys(query)] + [(t, SYNONYM_WEIGHT) for t in implied]:
            found = self.postings.get(term)
            if found is not None:
                out[found[0]] += weight * found[1]
        return out

    def matched(self, doc: int, query: Sequence[str]) -> dict[str, list[str]]:
        """field → the query words found in that field of `doc`."""
        out: dict[str, list[str]] = {}
        for term in dict.fromkeys(query):
            for field in sorted(self.fields_of.get(term, {}).get(doc, ())):
                out.setdefault(field, []).append(term)
        return out
