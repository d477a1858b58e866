"""Tool-search latency at 1,000 tools: p50/p95 of `ToolIndex.search` (query embedding + BM25F +
one matrix product + fusion + priors), of BM25F alone and of BM25F + priors (`keyword`, the
ranking without an embedder), measured side by side in one run.

usage: python -m tools.bench.tool_search_latency [--tools 1000] [--rounds 3] [--examples 10] [--stub-tool-vectors] [--numpy]

`hybrid` is each request's first search (its vector computed), `hybrid_repeat` the same requests
asked again (the index keeps recent query vectors), `query_embedding` the model alone on one query.

The catalog is the distractor catalog's tools renamed into as many namespaces as it takes to
reach `--tools`; each tool gets `--examples` example requests (default 10, as every built-in tool
has: drawn in turn from the built-in domains' `examples.json`; 0 for none); its vectors are computed
once (and cached like the hub's). The queries are the eval's requests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hub.datadir import default_cache_dir  # noqa: E402
from hub.search.documents import tool_doc  # noqa: E402
from hub.search.index import ToolIndex  # noqa: E402
from hub.search.vectors import VectorCache  # noqa: E402
from hub.text.blas import single_blas_thread  # noqa: E402
from hub.text.embedding import MiniLM, fast_minilm  # noqa: E402
from tools.bench.catalog_server import load_catalog  # noqa: E402

DATA = Path(__file__).parent / "data"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class QueriesOnly:
    """MiniLM for one text at a time (a query), random unit vectors for a batch (the catalog)."""

    def __init__(self, model: MiniLM) -> None:
        self.model, self.name, self.dimensions = model, model.name, model.dimensions
        self.rng = np.random.default_rng(0)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 1:
            return self.model.embed(texts)
        rows = self.rng.standard_normal((len(texts), self.dimensions)).astype(np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tools", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stub-tool-vectors", action="store_true",
                        help="random unit vectors for the tools (a search costs the same whatever their values; "
                             "skips embedding the catalog, many minutes on a busy machine); queries still run MiniLM")
    parser.add_argument("--numpy", action="store_true", help="the float32 numpy MiniLM instead of the int8 ONNX one")
    parser.add_argument("--examples", type=int, default=10, help="example requests per tool")
    args = parser.parse_args()
    base = [(domain, tool) for domain, tools in load_catalog().items() for tool in tools]
    pool = [e for path in sorted((ROOT / "servers").glob("*/examples.json"))
            for requests in json.loads(path.read_text()).values() for e in requests]
    docs = []
    for i in range(args.tools):
        domain, tool = base[i % len(base)]
        namespace = f"{domain}{i // len(base)}"
        examples = tuple(pool[(i * args.examples + j) % len(pool)] for j in range(args.examples))
        docs.append(tool_doc(tool.model_copy(update={"name": f"{namespace}__{tool.name}"}), tool.name, namespace,
                             examples=examples))
    embedder: Any = MiniLM() if args.numpy else fast_minilm()  # fast_minilm: what tool search loads
    if args.stub_tool_vectors:
        embedder = QueriesOnly(embedder)
    index = ToolIndex(embedder, None if args.stub_tool_vectors else VectorCache(default_cache_dir(), embedder.name))
    started = time.perf_counter()
    index.update(docs)
    build_s = time.perf_counter() - started
    queries = [q for q, _ in json.loads((DATA / "tool_search_queries.json").read_text())]
    index.search("warm up the model", 10)
    timings: dict[str, list[float]] = {"hybrid": [], "hybrid_repeat": [], "bm25": [], "keyword": []}
    for round_ in range(args.rounds):
        for query in queries:
            for mode in ("hybrid", "bm25", "keyword"):
                t0 = time.perf_counter()
                index.search(query, 10, mode=mode)
                # `hybrid`: the query's first search (the model runs); `hybrid_repeat`: asked again (cached vector)
                key = "hybrid_repeat" if mode == "hybrid" and round_ else mode
                timings[key].append((time.perf_counter() - t0) * 1000)
            if round_ == 0:
                t0 = time.perf_counter()
                with single_blas_thread():
                    index.embedder.embed([query])
                timings.setdefault("query_embedding", []).append((time.perf_counter() - t0) * 1000)
    report = {"tools": len(docs), "index_build_s": round(build_s, 2), "embedded": index.embedded,
              **{f"{mode}_ms": {"p50": round(statistics.median(v), 2), "p95": round(percentile(v, 0.95), 2),
                                "n": len(v)} for mode, v in timings.items() if v}}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
