"""Keyword ranking of one scope's memories with statistics from that scope only.

FTS5's `bm25()` weighs a word by how many rows of the whole table hold it, across all users: a word
common in alice's private memories lost weight in bob's ranking, so the order of bob's own results
told him which words her memories hold, and roughly how often (outside review). Here BM25 is computed
from the scope's own rows: a word's document frequency is the number of the scope's memories holding
it, and lengths are compared with the scope's average. FTS5 still finds the rows (its stemming and
tokenizing), and `highlight()` counts each word's occurrences in a row.

Cost: one FTS5 query per distinct query word (at most `MAX_WORDS`), each reading at most `WORD_ROWS`
of the scope's rows; the scope's size and average length are cached until the scope is written.
"""

from __future__ import annotations

import math
import sqlite3

from servers.memory.search import terms
from servers.memory.words import fts_term

K1, B = 1.2, 0.75
MAX_WORDS = 32
WORD_ROWS = 5000
"""Most of a scope's rows read for one word (its oldest matches first); beyond it the word's weight is
near zero anyway."""
_MARK = "\x01"


class ScopeStats:
    """Per scope: how many memories and their average length (characters of text and tags), cached
    until `changed(scope_key)`; at most `limit` scopes are kept."""

    def __init__(self, limit: int = 10_000) -> None:
        self._cached: dict[str, tuple[int, float]] = {}
        self._generation = 0
        self._limit = limit

    def changed(self, key: str) -> None:
        self._cached.pop(key, None)
        self._generation += 1

    def reader(self, key: str) -> tuple[int, tuple[int, float] | None]:
        """(generation, cached stats or None), read before the query that may compute them."""
        return self._generation, self._cached.get(key)

    def keep(self, key: str, generation: int, stats: tuple[int, float]) -> None:
        if generation == self._generation:  # not kept if the scope may have changed meanwhile
            if len(self._cached) >= self._limit:
                self._cached.clear()
            self._cached[key] = stats


def scope_stats(db: sqlite3.Connection, key: str) -> tuple[int, float]:
    count, total = db.execute("SELECT count(*), total(length(content) + length(tags)) FROM memories WHERE scope_key = ?",
                              (key,)).fetchone()
    return int(count), (total / count if count else 1.0)


def memory_filter(kinds: list[str] | None, tags: list[str] | None) -> tuple[str, list[str]]:
    """SQL (` AND ...` on the `memories m` row) and its arguments for recall's kinds and tags (any of them):
    a filter narrows what each method ranks, never a list already cut to its top (outside review memory26 D2:
    one matching memory behind 50 better others was never found)."""
    sql, args = "", []
    if kinds:
        sql += f" AND m.kind IN ({','.join('?' * len(kinds))})"
        args += kinds
    if tags:
        sql += f" AND EXISTS (SELECT 1 FROM json_each(m.tags) WHERE json_each.value IN ({','.join('?' * len(tags))}))"
        args += tags
    return sql, args


def keyword_ranking(db: sqlite3.Connection, key: str, query: str, limit: int, stats: tuple[int, float],
                    kinds: list[str] | None = None, tags: list[str] | None = None) -> list[int]:
    """The rowids of scope `key`'s memories matching any word of `query` (and the filter: `memory_filter`),
    best first by BM25 over the scope alone (`stats`: its size and average length, from `scope_stats`)."""
    total, average = stats
    where, filter_args = memory_filter(kinds, tags)
    scores: dict[int, float] = {}
    for word in list(dict.fromkeys(terms(query)))[:MAX_WORDS]:
        rows = db.execute(
            "SELECT m.rowid AS id, length(m.content) + length(m.tags) AS size, highlight(memory_fts, 0, ?, '') AS content, "
            "highlight(memory_fts, 1, ?, '') AS tags FROM memory_fts JOIN memories m ON m.rowid = memory_fts.rowid "
            f"WHERE memory_fts MATCH ? AND m.scope_key = ?{where} LIMIT ?",
            (_MARK, _MARK, fts_term(word), key, *filter_args, WORD_ROWS)).fetchall()
        if not rows:
            continue
        found = len(rows)
        idf = math.log(1 + (total - found + 0.5) / (found + 0.5))
        for row in rows:
            frequency = (row["content"] or "").count(_MARK) + (row["tags"] or "").count(_MARK)
            norm = K1 * (1 - B + B * row["size"] / max(average, 1.0))
            scores[row["id"]] = scores.get(row["id"], 0.0) + idf * frequency * (K1 + 1) / (frequency + norm)
    return [ident for ident, _ in sorted(scores.items(), key=lambda item: (-item[1], -item[0]))[:limit]]
