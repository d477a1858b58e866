"""Memory ingest speed and retrieval quality, per embedder, on two corpora: end-to-end ingest
(`DocumentStore.ingest`: chunking, embedding, SQLite + FTS5) in chunks/s, characters/s and chunks
per CPU-second (robust on a shared machine), then hit@5 and MRR per query kind and mode on the
pydoc topics (tools/bench/retrieval_corpus.py), the business handbook
(tools/bench/retrieval_business.py, with its held-out questions reported apart) and, with
`--corpus long` and `--corpus veltrak`, two long business texts written blind
(tools/bench/retrieval_long.py).

    .venv/bin/python tools/bench/memory_ingest.py [--embedder minilm minilm-numpy]
        [--corpus business long veltrak pydoc] [--chunk-size 500] [--overlap 100] [--modes hybrid keyword semantic]

`minilm` is the default embedder (int8 under ONNX Runtime); `minilm-numpy` is the float32 numpy
path it replaced (slow: give it --corpus business on a busy machine).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hub.text.embedding import Embedder, MiniLM, QuantizedMiniLM  # noqa: E402
from servers.memory.chunking import CHUNK_OVERLAP, CHUNK_SIZE  # noqa: E402
from servers.memory.service import MemoryService  # noqa: E402
from tools.bench import retrieval_business as business  # noqa: E402
from tools.bench.retrieval_long import BLIND_SETS  # noqa: E402
from tools.bench.retrieval_corpus import QUERY_SETS, corpus  # noqa: E402


def make(name: str) -> Embedder:
    return QuantizedMiniLM() if name == "minilm" else MiniLM()


async def score(service: MemoryService, sets: dict[str, list[tuple[str, object]]], hit: object, modes: list[str]) -> dict:
    """{kind: {mode: (hit@5, MRR, n)}}."""
    out: dict[str, dict[str, tuple[float, float, int]]] = {}
    for kind, queries in sets.items():
        for mode in modes:
            ranks = []
            for query, answer in queries:
                hits = (await service.documents.search(query, mode, None, None, None, 10)).hits  # type: ignore[arg-type]
                ranks.append(next((i for i, h in enumerate(hits, start=1) if hit(h, answer)), None))  # type: ignore[operator]
            out.setdefault(kind, {})[mode] = (sum(1 for r in ranks if r and r <= 5) / len(ranks),
                                              sum(1 / r for r in ranks if r) / len(ranks), len(ranks))
    return out


async def run_one(embedder: Embedder, folder: Path, corpora: list[str], size: int, overlap: int, modes: list[str]) -> None:
    service = MemoryService(folder, embedder)
    embedder.embed(["warm up"])  # model load is not ingest
    docs: list[tuple[str, str, str]] = []
    if "business" in corpora:
        docs.append((business.TITLE, business.text(), "bench://business"))
    for name in (n for n in BLIND_SETS if n in corpora):
        docs.append((BLIND_SETS[name].title(), BLIND_SETS[name].text(), f"bench://blind-{name}"))
    if "pydoc" in corpora:
        docs += [(key, text, f"pydoc:{key}") for key, text in corpus().items()]
    chars = sum(len(t) for _, t, _ in docs)
    wall, cpu = time.perf_counter(), time.process_time()
    titles = {}
    for title, text, source in docs:
        result = await service.documents.ingest(title, text, source, [], None, size, overlap)
        titles[result.document.id] = title
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    chunks = (await service.documents.stats())["chunks"]
    print(f"  ingest: {chunks} chunks, {chars:,} characters in {wall:.1f}s = {chunks / wall:.1f} chunks/s, "
          f"{chars / wall / 1000:.1f} KB/s; {chunks / cpu:.1f} chunks per CPU-second ({cpu:.1f} CPU s; load {os.getloadavg()[0]:.1f})",
          flush=True)

    def under(title: str) -> object:
        """A hit answers a (question, section) when it is a chunk of `title` under that section."""
        return lambda h, section: titles[h.document_id] == title and h.heading.endswith(section)

    if "business" in corpora:
        table = await score(service, business.query_sets(), under(business.TITLE), modes)
        report("business", table)
    for name in (n for n in BLIND_SETS if n in corpora):
        table = await score(service, BLIND_SETS[name].query_sets(), under(BLIND_SETS[name].title()), modes)
        report(name, table)
    if "pydoc" in corpora:
        table = await score(service, QUERY_SETS, lambda h, answers: titles[h.document_id] in answers, modes)
        report("pydoc", table)


def report(corpus_name: str, table: dict) -> None:
    for kind, by_mode in table.items():
        cells = "  ".join(f"{mode} {r5:.3f}/{mrr:.3f}" for mode, (r5, mrr, _n) in by_mode.items())
        n = next(iter(by_mode.values()))[2]
        print(f"  {corpus_name:<9} {kind:<20} (n={n:>2}) hit@5/MRR: {cells}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedder", nargs="+", default=["minilm"], choices=("minilm", "minilm-numpy"))
    parser.add_argument("--corpus", nargs="+", default=["business", "pydoc"], choices=("business", "long", "veltrak", "pydoc"))
    parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE)
    parser.add_argument("--overlap", type=int, default=CHUNK_OVERLAP)
    parser.add_argument("--modes", nargs="+", default=["hybrid", "keyword", "semantic"])
    args = parser.parse_args()
    print(f"memory ingest bench: {os.cpu_count()} cores, chunk size {args.chunk_size}, overlap {args.overlap}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.embedder:
            print(f"{name}:", flush=True)
            anyio.run(run_one, make(name), Path(folder) / name, args.corpus, args.chunk_size, args.overlap, args.modes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
