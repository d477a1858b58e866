"""Ranking pieces shared by document and memory search: FTS5 query text from free text, reciprocal
rank fusion, snippets, and the vector (de)serialisation used in SQLite."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from servers.memory.words import fts_term, is_unspaced, query_words

if TYPE_CHECKING:
    import numpy as np

RRF_K = 60
# Document search fuses with k = 5: the top of either list counts for much more than a chunk both
# methods rank middling, so an exact term's best BM25 hit and a paraphrase's best semantic hit both
# stay in the top 5 (k = 60 let mid-ranked chunks push them out; docs/memory.md has the figures).
DOCUMENT_RRF_K = 5
# Function words that carry no topic: left in, they make every chunk a BM25 match for a question.
STOPWORDS = frozenset("""a about above after again all am an and any are as at be because been before being below between both but by
can could did do does doing down during each few for from further had has have having he her here hers him his how i if in into is it
its itself just me more most my no nor not now of off on once only or other our out over own same she should so some such than that the
their them then there these they this those through to too under until up very was we were what when where which while who whom why
will with would you your yours""".split())


def terms(query: str) -> list[str]:
    """The words of a query that say what it is about (no stopwords, no single letters), split as the
    FTS tables' text is (`servers.memory.words`: CJK and Thai as character pairs; a lone character of such a
    script is a word)."""
    words = [t for t in query_words(query) if len(t) > 1 or t.isdigit() or is_unspaced(t)]
    content = [w for w in words if w not in STOPWORDS]
    return content or words


def fts_query(query: str) -> str | None:
    """`fts_any` of the words of `query` (`terms`), or None when it has none."""
    words = terms(query)
    return fts_any(dict.fromkeys(words)) if words else None


def fts_any(words: Iterable[str]) -> str:
    """An FTS5 MATCH expression that cannot be a syntax error: every word (`terms`) quoted (`fts_term`), any may match."""
    return " OR ".join(fts_term(w) for w in words)


def fuse(rankings: dict[str, Sequence[int]], k: int = RRF_K,
         weights: dict[str, float] | None = None) -> list[tuple[int, float, dict[str, int]]]:
    """Reciprocal rank fusion: (id, score, {method: rank}) best first; rank 1 is the top of a list.
    `weights` scales a method's votes (1 for a method it does not name)."""
    scores: dict[int, float] = {}
    ranks: dict[int, dict[str, int]] = {}
    for method, ids in rankings.items():
        weight = weights.get(method, 1.0) if weights else 1.0
        for rank, ident in enumerate(ids, start=1):
            scores[ident] = scores.get(ident, 0.0) + weight / (k + rank)
            ranks.setdefault(ident, {})[method] = rank
    return sorted(((i, s, ranks[i]) for i, s in scores.items()), key=lambda item: (-item[1], item[0]))


SECTION_REPEAT = 0.5
"""Hybrid document search scales a chunk's fused score by this for each better chunk of the same
section (document and heading path) above it..."""
SECTION_KEEP_TOP = 2
"""...unless a method ranked the chunk this high or higher: a section's second chunk holding the exact
term (keyword #1) must not be pushed down (outside review)."""


def spread_sections(fused: Sequence[tuple[int, float, dict[str, int]]], section: dict[int, tuple[str, str]],
                    factor: float = SECTION_REPEAT, keep_top: int = SECTION_KEEP_TOP) -> list[tuple[int, float, dict[str, int]]]:
    """`fused` (best first) re-scored so that one section cannot fill the top: the n-th chunk of a
    section (by `section`: id → (document, heading path); ids it lacks are left alone) keeps
    `factor`**(n-1) of its score, unless a method ranked it `keep_top` or better; then sorted again,
    ties in their old order, so the scores shown stay in order. A section's best chunk is never
    moved down by its own section's other chunks. Measured (docs/memory.md, "Section spread"):
    with all four retrieval corpora indexed, paraphrase hit@5 on the two long blind texts 24 → 25
    of 30 and 18 → 19 of 25, nothing lost."""
    seen: dict[tuple[str, str], int] = {}
    rescored = []
    for position, (ident, score, ranks) in enumerate(fused):
        key = section.get(ident)
        repeat = seen.get(key, 0) if key is not None else 0
        if key is not None:
            seen[key] = repeat + 1
        kept = bool(ranks) and min(ranks.values()) <= keep_top
        rescored.append((score if kept else score * factor**repeat, position, ident, ranks))
    rescored.sort(key=lambda item: (-item[0], item[1]))
    return [(ident, score, ranks) for score, _, ident, ranks in rescored]


RARE_SHARE = 0.01
"""A word in at most this share of the chunks (and in at least one) counts as rare."""
_TOKEN = re.compile(r"[\w-]+", re.UNICODE)


def named_words(query: str) -> set[str]:
    """The words of `query` written as codes or names: with a digit (`FL-02`, `HR17`), two capitals
    (`TH-INC`, `DPA`), or a capital (`the Spendwise app`; a first word only if it is no stopword:
    "How", "Who" open questions); lowercased, split as `terms` splits them."""
    named: set[str] = set()
    for position, token in enumerate(_TOKEN.findall(query)):
        capital = token[:1].isupper() and (position > 0 or token.lower() not in STOPWORDS)
        if capital or any(c.isdigit() for c in token) or sum(c.isupper() for c in token) >= 2:
            named.update(query_words(token))
    return named


def keyword_coverage(document_frequency: dict[str, int], held: set[str], total: int,
                     named: frozenset[str] | set[str] = frozenset()) -> float:
    """How much of a query's distinctive wording the best keyword hit holds: the IDF-weighted share
    of the query's words (`document_frequency`: word → chunks holding it, of `total`) that it holds
    (`held`). Document search weights the keyword ranking's votes by it: a keyword question's best
    BM25 hit holds its rare words (≈ 1, a full vote, as before), while a paraphrase shares only
    common words with the text, so its BM25 hits are mostly noise and must not outvote the semantic
    ranking's (blind long business set: paraphrase MRR 0.55 → 0.64, keyword hit@5 unchanged).

    A hit holding a rare word (`RARE_SHARE`) that the query writes as a code or a name (`named`,
    from `named_words`) gets a full vote whatever else the query says: in "TH-INC numbering scheme
    explained" the words the code's section lacks must not sink it (outside review)."""
    if any(0 < document_frequency.get(w, 0) <= max(1.0, RARE_SHARE * total) for w in held & named):
        return 1.0
    weights = {w: math.log((total + 1) / (df + 0.5)) for w, df in document_frequency.items()}
    whole = sum(max(weight, 0.0) for weight in weights.values())
    return sum(max(weights[w], 0.0) for w in held if w in weights) / whole if whole > 0 else 1.0


def snippet(text: str, query: str, width: int = 240) -> str:
    """About `width` characters of `text` around the first query word it contains."""
    lowered = text.lower()
    positions = [lowered.find(w) for w in terms(query)]
    positions = [p for p in positions if p >= 0]
    start = max(0, min(positions) - width // 3) if positions else 0
    if start:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < start + 30 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start + width // 2 else end
    return ("…" if start else "") + " ".join(text[start:end].split()) + ("…" if end < len(text) else "")


def to_blob(vector: np.ndarray) -> bytes:
    import numpy as np

    return np.asarray(vector, dtype=np.float32).tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    import numpy as np

    return np.frombuffer(blob, dtype=np.float32)
