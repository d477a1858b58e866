"""BM25F over tool documents with weighted fields: raw postings built once, statistics per subset at query time.

Each field's term frequency is length-normalised on its own and weighted (`FIELD_WEIGHTS`), the
weighted sum goes through BM25's saturation once per term (BM25F). The index keeps only raw
counts (per term: the documents it occurs in and its count in each field; per document: each
field's length). Every statistic — N, document frequencies, average field lengths — is taken over
a `Subset` (the documents one caller may see, review search15 #3) when a query asks, and only for
the query's terms: a term costs a few numpy operations over its postings, whatever the subset, so
no subset ever needs tables of its own (re-check 15 #9).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

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

Posting = tuple[np.ndarray, np.ndarray, np.ndarray | None]
"""A term's documents (ascending), its count per field and document (fields × documents), and which of
those occurrences are conditional (None: none is)."""


@dataclass(frozen=True)
class Subset:
    """The documents one caller may see and the statistics over them that do not depend on the query."""

    mask: np.ndarray
    """Which documents count (boolean, one per document)."""
    count: int
    averages: np.ndarray
    """Each field's mean length over the subset (at least 1), float32."""
    lengths: np.ndarray
    """Each field's length per document (fields × documents, float32), conditional terms kept included."""
    kept: np.ndarray | None
    """Which of `BM25F.conditional` count in this subset (None: none)."""


def bm25(tf: np.ndarray, df: int, count: int) -> np.ndarray:
    """BM25's saturated, idf-weighted score of weighted term frequencies `tf` (float32)."""
    idf = math.log(1.0 + (count - df + 0.5) / (df + 0.5))
    return (idf * tf * (K1 + 1.0) / (tf + K1)).astype(np.float32)


def normalised(counts: np.ndarray, weight: float, lengths: np.ndarray, average: np.float32) -> np.ndarray:
    """`weight · count / (1 − B + B · length / average)`, in float32 as the score is."""
    return (weight * counts.astype(np.float64)).astype(np.float32) / ((1.0 - B) + B * lengths / average)


class BM25F:
    """Immutable raw postings of `docs` (each a mapping field → list of terms), scored over any `Subset`.

    `conditional[k]` names terms whose occurrences in document `k` count only in subsets that keep them
    (`Subset.kept`): a sample name in an example request is a keyword only where the caller's own tools
    use the word (`hub.search.examples`)."""

    def __init__(self, docs: Sequence[Mapping[str, list[str]]], weights: Mapping[str, float] = FIELD_WEIGHTS,
                 conditional: Sequence[Collection[str]] | None = None) -> None:
        self.fields = tuple(weights)
        self.weights = tuple(float(weights[f]) for f in self.fields)
        self.size = len(docs)
        """How many documents there are (every score array is this long)."""
        self.lengths = np.zeros((len(self.fields), len(docs)), dtype=np.float32)
        """Each field's length per document, without conditional occurrences."""
        counts: dict[str, dict[int, list[int]]] = {}
        flagged: dict[str, set[int]] = {}
        extra: list[tuple[int, int, str, int]] = []
        for k, doc in enumerate(docs):
            names = conditional[k] if conditional is not None else ()
            for f, field in enumerate(self.fields):
                words = doc.get(field, ())
                if not words:
                    continue
                self.lengths[f, k] = len(words)
                for term, count in Counter(words).items():
                    counts.setdefault(term, {}).setdefault(k, [0] * len(self.fields))[f] += count
                    if term in names:
                        flagged.setdefault(term, set()).add(k)
                        extra.append((f, k, term, count))
                        self.lengths[f, k] -= count
        self.postings: dict[str, Posting] = {}
        for term, per_doc in counts.items():
            ids = np.fromiter(per_doc, dtype=np.int64, count=len(per_doc))
            table = np.ascontiguousarray(np.array(list(per_doc.values()), dtype=np.int32).T)
            marks = flagged.get(term)
            self.postings[term] = (ids, table, None if marks is None else np.isin(ids, list(marks)))
        self.conditional = sorted(flagged)
        """The terms conditional somewhere, in a fixed order (`Subset.kept` follows it)."""
        self._conditional_index = {t: j for j, t in enumerate(self.conditional)}
        self._extra = (np.array([e[0] for e in extra], dtype=np.int64), np.array([e[1] for e in extra], dtype=np.int64),
                       np.array([self._conditional_index[e[2]] for e in extra], dtype=np.int64),
                       np.array([e[3] for e in extra], dtype=np.float32))

    def subset(self, mask: np.ndarray, kept: np.ndarray | None = None) -> Subset:
        """The query-independent statistics of the documents `mask` holds (`kept`: which conditional terms count)."""
        lengths = self.lengths
        if kept is not None and len(self._extra[0]) and kept.any():
            fields, docs, which, counts = self._extra
            on = kept[which]
            lengths = lengths + np.bincount(fields[on] * self.size + docs[on], weights=counts[on],
                                            minlength=lengths.size).reshape(lengths.shape).astype(np.float32)
        averages = []
        for f in range(len(self.fields)):
            seen = lengths[f][mask]
            averages.append(max(float(seen.mean()) if len(seen) else 0.0, 1.0))
        return Subset(mask, int(mask.sum()), np.array(averages, dtype=np.float32), lengths, kept)

    def frequency(self, term: str, mask: np.ndarray) -> int:
        """How many documents `mask` holds use `term` (conditional occurrences included)."""
        found = self.postings.get(term)
        return 0 if found is None else int(np.count_nonzero(mask[found[0]]))

    def _occurrences(self, term: str, subset: Subset) -> tuple[np.ndarray, np.ndarray] | None:
        """The subset's documents using `term` and the term's count per field in each (None when none)."""
        found = self.postings.get(term)
        if found is None:
            return None
        ids, counts, marks = found
        keep = subset.mask[ids]
        if marks is not None and (subset.kept is None or not subset.kept[self._conditional_index[term]]):
            keep &= ~marks
        if not keep.any():
            return None
        return ids[keep], counts[:, keep]

    def term_scores(self, term: str, subset: Subset) -> tuple[np.ndarray, np.ndarray] | None:
        """(documents, BM25F score of `term` in each) over `subset`, None when no document of it uses `term`."""
        found = self._occurrences(term, subset)
        if found is None:
            return None
        ids, counts = found
        tf: np.ndarray | None = None
        for f in np.flatnonzero(counts.any(axis=1)).tolist():  # fields in order; an absent one adds exact zeros
            part = normalised(counts[f], self.weights[f], subset.lengths[f][ids], subset.averages[f])
            tf = part if tf is None else tf + part
        assert tf is not None
        return ids, bm25(tf, len(ids), subset.count)

    def scores(self, query: Sequence[str], implied: Sequence[str], subset: Subset) -> np.ndarray:
        """One score per document (0 where no query word occurs or outside `subset`)."""
        out = np.zeros(self.size, dtype=np.float32)
        for term, weight in [(t, 1.0) for t in dict.fromkeys(query)] + [(t, SYNONYM_WEIGHT) for t in implied]:
            found = self.term_scores(term, subset)
            if found is not None:
                out[found[0]] += weight * found[1]
        return out

    def matched(self, doc: int, query: Sequence[str], subset: Subset | None = None) -> dict[str, list[str]]:
        """field → the query words found in that field of `doc` (conditional ones only where `subset` keeps them)."""
        out: dict[str, list[str]] = {}
        for term in dict.fromkeys(query):
            found = self.postings.get(term)
            if found is None:
                continue
            ids, counts, marks = found
            k = int(np.searchsorted(ids, doc))
            if k == len(ids) or ids[k] != doc:
                continue
            if marks is not None and marks[k] and (subset is None or subset.kept is None
                                                   or not subset.kept[self._conditional_index[term]]):
                continue
            for field in sorted(self.fields[f] for f in range(len(self.fields)) if counts[f, k]):
                out.setdefault(field, []).append(term)
        return out
