"""Scale of the memory domain's document search: ingest N chunks (default 100,000), then search
latency p50/p95 per mode, and the ingest rate.

    .venv/bin/python tools/bench/memory_scale.py [--chunks 100000] [--queries 200]

The corpus is synthetic but made of real prose: 850-character windows of consecutive words from
CPython's language reference (pydoc_data.topics), 100 paragraphs per document, so chunking, FTS5 and
the vectors see natural word statistics. The bulk ingest uses the static embedder distilled from
MiniLM (`MEMORY_EMBEDDER=static`, ~4,000 texts/s); the default MiniLM (int8, ONNX Runtime) is far
slower (tools/bench/memory_ingest.py), so its ingest rate is measured on a sample and its per-query embedding time is reported
separately (add it to the static figures for a MiniLM-indexed store of the same size).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hub.datadir import default_data_dir  # noqa: E402
from servers.memory.embedding import StaticMiniLM, fast_minilm  # noqa: E402
from servers.memory.service import MemoryService  # noqa: E402
from tools.bench.common import percentile  # noqa: E402
from tools.bench.retrieval_corpus import QUERIES, corpus  # noqa: E402

PER_DOCUMENT = 100
PARAGRAPH = 850


def documents(total_chunks: int, seed: int = 7) -> list[str]:
    words = " ".join(corpus().values()).split()
    rng = random.Random(seed)
    out = []
    for _ in range(max(1, total_chunks // PER_DOCUMENT)):
        paragraphs = []
        for _ in range(PER_DOCUMENT):
            start = rng.randrange(0, len(words) - 400)
            text, end = "", start
            while len(text) < PARAGRAPH:
                text += words[end] + " "
                end += 1
            paragraphs.append(text.strip())
        out.append("\n\n".join(paragraphs))
    return out


async def ingest_all(service: MemoryService, texts: list[str]) -> tuple[int, float]:
    started = time.perf_counter()
    for number, text in enumerate(texts):
        await service.documents.ingest(f"Document {number}", text, f"bench://{number}", [f"t{number % 10}"], None)
        if number and number % 100 == 0:
            done = (await service.documents.stats())["chunks"]
            print(f"  {done:>7} chunks, {done / (time.perf_counter() - started):,.0f} chunks/s", flush=True)
    elapsed = time.perf_counter() - started
    return (await service.documents.stats())["chunks"], elapsed


async def latencies(service: MemoryService, queries: list[str], mode: str) -> list[float]:
    out = []
    for query in queries:
        started = time.perf_counter()
        await service.documents.search(query, mode, None, None, None, 10)  # type: ignore[arg-type]
        out.append((time.perf_counter() - started) * 1000)
    return out


async def run(chunks: int, query_count: int, folder: Path) -> None:
    texts = documents(chunks)
    static = StaticMiniLM(default_data_dir() / "models")  # distilled once (~1 min), then cached
    service = MemoryService(folder / "static", static)
    print(f"ingesting {len(texts) * PER_DOCUMENT:,} chunks ({len(texts):,} documents) with {static.name}", flush=True)
    count, elapsed = await ingest_all(service, texts)
    reopened = MemoryService(folder / "static", static)  # a fresh process's view: vectors read from SQLite
    started = time.perf_counter()
    await reopened.documents._vectors()
    load = time.perf_counter() - started
    size = (folder / "static" / "memory.sqlite").stat().st_size / 1e6
    queries = [QUERIES[i % len(QUERIES)][0] for i in range(query_count)]
    await latencies(service, queries[:10], "hybrid")  # warm caches
    results = {mode: await latencies(service, queries, mode) for mode in ("keyword", "semantic", "hybrid")}

    minilm = fast_minilm()
    sample = MemoryService(folder / "minilm", minilm)
    started = time.perf_counter()
    for number, text in enumerate(texts[:5]):
        await sample.documents.ingest(f"Document {number}", text, f"bench://{number}", [], None)
    minilm_rate = (await sample.documents.stats())["chunks"] / (time.perf_counter() - started)
    embed_ms = []
    for query in queries:
        started = time.perf_counter()
        minilm.embed([query])
        embed_ms.append((time.perf_counter() - started) * 1000)

    print()
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, SQLite {__import__('sqlite3').sqlite_version}")
    print(f"chunks indexed: {count:,} in {elapsed:.1f}s = {count / elapsed:,.0f} chunks/s (static embedder, end to end: "
          f"chunking, embedding, SQLite + FTS5); database {size:,.0f} MB; vector index load {load:.2f}s")
    print(f"MiniLM ingest rate (500-chunk sample): {minilm_rate:.1f} chunks/s; "
          f"MiniLM query embedding p50 {statistics.median(embed_ms):.1f} ms, p95 {percentile(embed_ms, 95):.1f} ms")
    print(f"search latency over {count:,} chunks, {query_count} queries each (limit 10):")
    for mode, values in results.items():
        print(f"  {mode:<8} p50 {statistics.median(values):6.1f} ms   p95 {percentile(values, 95):6.1f} ms   max {max(values):6.1f} ms")
    hybrid_p95 = percentile(results["hybrid"], 95)
    print(f"target hybrid p95 <= 50 ms: {'met' if hybrid_p95 <= 50 else 'MISSED'} ({hybrid_p95:.1f} ms; with MiniLM query "
          f"embedding about {hybrid_p95 + percentile(embed_ms, 95):.1f} ms)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        anyio.run(run, args.chunks, args.queries, Path(folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
