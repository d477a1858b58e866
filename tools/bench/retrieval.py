"""Retrieval quality of the memory domain's document search: recall@5 and MRR of keyword (FTS5
BM25), semantic (embeddings) and hybrid (reciprocal rank fusion) modes, side by side, on the
Python language-reference topics with 114 hand-written queries (tools/bench/retrieval_corpus.py):
84 paraphrases and 30 exact-term queries, reported per kind and together.

    .venv/bin/python tools/bench/retrieval.py [--embedder minilm|static|both]

A query is answered at rank r when the r-th chunk returned belongs to one of its topics.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from servers.memory.embedding import Embedder, MiniLM, StaticMiniLM  # noqa: E402
from servers.memory.service import MemoryService  # noqa: E402
from tools.bench.retrieval_corpus import QUERIES, QUERY_SETS, corpus  # noqa: E402

MODES = ("keyword", "semantic", "hybrid")


async def evaluate(embedder: Embedder, folder: Path) -> dict[str, dict[str, tuple[float, float]]]:
    """{query kind or 'all': {mode: (recall@5, MRR)}}."""
    service = MemoryService(folder, embedder)
    started = time.perf_counter()
    titles: dict[str, str] = {}
    for key, text in corpus().items():
        result = await service.documents.ingest(key, text, f"pydoc:{key}", [], None)
        titles[result.document.id] = key
    stats = await service.documents.stats()
    print(f"  indexed {stats['documents']} documents, {stats['chunks']} chunks in {time.perf_counter() - started:.1f}s", flush=True)
    scores: dict[str, dict[str, tuple[float, float]]] = {}
    for mode in MODES:
        found_at: dict[str, int | None] = {}
        for query, answers in QUERIES:
            hits = (await service.documents.search(query, mode, None, None, None, 10)).hits
            found_at[query] = next((i for i, hit in enumerate(hits, start=1) if titles[hit.document_id] in answers), None)
        for kind, queries in {**QUERY_SETS, "all": QUERIES}.items():
            ranks = [found_at[query] for query, _ in queries]
            recall = sum(1 for r in ranks if r is not None and r <= 5) / len(ranks)
            mrr = sum(1 / r for r in ranks if r is not None) / len(ranks)
            scores.setdefault(kind, {})[mode] = (recall, mrr)
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedder", choices=("minilm", "static", "both"), default="both")
    args = parser.parse_args()
    print(f"retrieval benchmark: {len(QUERIES)} queries over CPython {platform.python_version()}'s pydoc_data.topics; "
          f"{os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        choices = ["minilm", "static"] if args.embedder == "both" else [args.embedder]
        table = {}
        for choice in choices:
            print(f"{choice}:", flush=True)
            embedder: Embedder = MiniLM() if choice == "minilm" else StaticMiniLM(base / "models")
            table[choice] = anyio.run(evaluate, embedder, base / choice)
    kinds = [*QUERY_SETS, "all"]
    print()
    print(f"{'embedder':<10} {'mode':<9} " + " ".join(f"{f'{kind} ({len(QUERY_SETS.get(kind, QUERIES))})':>22}" for kind in kinds))
    print(f"{'':<10} {'':<9} " + " ".join(f"{'R@5':>13} {'MRR':>8}" for _ in kinds))
    for choice, table_scores in table.items():
        for mode in MODES:
            print(f"{choice:<10} {mode:<9} " + " ".join(f"{table_scores[kind][mode][0]:>13.3f} {table_scores[kind][mode][1]:>8.3f}"
                                                    for kind in kinds))
        overall = table_scores["all"]
        beats = all(overall["hybrid"][i] > max(overall["keyword"][i], overall["semantic"][i]) for i in (0, 1))
        print(f"{choice:<10} over all {len(QUERIES)} queries hybrid {'beats' if beats else 'does NOT beat'} both single modes on "
              f"recall@5 and MRR")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
