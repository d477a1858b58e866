"""A third retrieval test set, written blind: one long business text of another company and kind
than the handbook (tools/bench/data/business_long.md, ~12-15k words under ~100 sections that share
vocabulary on purpose) and 60 questions (tools/bench/data/business_long_questions.json: 30
paraphrases, 30 keyword), each naming the one section that answers it. Text and questions were
written by a helper that saw neither the search code nor the other sets, and committed before
their first run; the whole set is held out (nothing was tuned on it before that run).
"""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
TEXT_PATH = DATA / "business_long.md"
QUESTIONS_PATH = DATA / "business_long_questions.json"


def _questions() -> dict[str, object]:
    return json.loads(QUESTIONS_PATH.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def title() -> str:
    return str(_questions()["title"])


def text() -> str:
    return TEXT_PATH.read_text(encoding="utf-8")


def query_sets() -> dict[str, list[tuple[str, str]]]:
    """{'paraphrase', 'keyword'} -> (question, section heading)."""
    data = _questions()
    return {kind: [(str(q), str(section)) for q, section in data[kind]] for kind in ("paraphrase", "keyword")}  # type: ignore[union-attr]
