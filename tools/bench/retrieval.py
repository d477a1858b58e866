"""Retrieval quality of the memory domain's document search: recall@5 and MRR of keyword (FTS5
BM25), semantic (embeddings) and hybrid (reciprocal rank fusion) modes, side by side, on the
Python language-reference topics with 50 hand-written queries (tools/bench/retrieval_corpus.py).

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
from tools.bench.retrieval_corpus import QUERIES, corpus  # noqa: E402

MODES = ("keyword", "semantic", "hybrid")


async def evaluate(embedder: Embedder, folder: Path) -> dict[str, tuple[float, float]]:
    service = MemoryService(folder, embedder)
    started = time.perf_counter()
    titles: dict[str, str] = {}
    for key, text in corpus().items():
        result = await service.documents.ingest(key, text, f"pydoc:{key}", [], None)
        titles[result.document.id] = key
    stats = await service.documents.stats()
    print(f"  indexed {stats['documents']} documents, {stats['chunks']} chunks in {time.perf_counter() - started:.1f}s", flush=True)
    scores = {}
    for mode in MODES:
        found_at = []
        for query, answers in QUERIES:
            hits = (await service.documents.search(query, mode, None, None, None, 10)).hits
            rank = next((i for i, hit in enumerate(hits, start=1) if titles[hit.document_id] in answers), None)
            found_at.append(rank)
        recall = sum(1 for r in found_at if r is not None and r <= 5) / len(found_at)
        mrr = sum(1 / r for r in found_at if r is not None) / len(found_at)
        scores[mode] = (recall, mrr)
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
    print()
    print(f"{'embedder':<10} {'mode':<9} {'recall@5':>9} {'MRR':>7}")
    for choice, scores in table.items():
        for mode in MODES:
            recall, mrr = scores[mode]
            print(f"{choice:<10} {mode:<9} {recall:>9.3f} {mrr:>7.3f}")
        best_single = max(scores["keyword"][1], scores["semantic"][1])
        verdict = "beats" if scores["hybrid"][1] > best_single and scores["hybrid"][0] >= max(scores["keyword"][0], scores["semantic"][0]) \
            else "does NOT beat"
        print(f"{choice:<10} hybrid {verdict} both single modes (MRR {scores['hybrid'][1]:.3f} vs best single {best_single:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
