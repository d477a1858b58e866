"""Retrieval test sets written blind: a long business text and its questions (paraphrase and
keyword), each question naming the one section that answers it. Text and questions were written by
a helper that saw neither the search code nor the other sets, and committed before their first run.

- `LONG`: a food manufacturer's annual report, employee handbook and operating procedures
  (tools/bench/data/business_long.md, ~14.5k words, 114 sections; 30 + 30 questions).
- `VELTRAK`: a logistics software company's annual report, security policy, travel and expenses
  policy and support manual (tools/bench/data/veltrak.md, ~13.8k words, 98 sections; 25 + 25
  questions; 2026-12-03, first run after the section spread was chosen, before any other change).
Sections share vocabulary on purpose (approvals, regions, incidents, look-alike limits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class BlindSet:
    name: str
    text_path: Path
    questions_path: Path

    def _questions(self) -> dict[str, object]:
        return json.loads(self.questions_path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]

    def title(self) -> str:
        return str(self._questions()["title"])

    def text(self) -> str:
        return self.text_path.read_text(encoding="utf-8")

    def query_sets(self) -> dict[str, list[tuple[str, str]]]:
        """{'paraphrase', 'keyword'} -> (question, section heading)."""
        data = self._questions()
        return {kind: [(str(q), str(section)) for q, section in data[kind]] for kind in ("paraphrase", "keyword")}  # type: ignore[union-attr]


LONG = BlindSet("long", DATA / "business_long.md", DATA / "business_long_questions.json")
VELTRAK = BlindSet("veltrak", DATA / "veltrak.md", DATA / "veltrak_questions.json")
BLIND_SETS = {s.name: s for s in (LONG, VELTRAK)}
