"""Tool-search eval: hit@1, hit@5 and MRR of BM25 alone, embeddings alone, BM25 + priors and the shipped hybrid.

usage: python -m tools.bench.tool_search_eval [--split dev|heldout|fresh|third|fourth|fifth|reverse|all] [--stdio] [--misses]
       python -m tools.bench.tool_search_eval --write-config FILE [--stdio] [--third-catalog]

The catalog is every built-in domain plus the distractor domains of
`data/tool_search_distractors.json` (chat, mail, files, CRM, CI/CD, shop, payroll, notes, rooms),
mounted in-process (or as stdio children with `--stdio`). The requests are
`data/tool_search_queries.json`; request i is held out when i % 3 == 2 — tune on dev only.
`fresh` is `data/tool_search_fresh.json`: 53 requests in another voice (terse, chat-like), written
after round 3's tuning was finished (round 4 then read its misses). `third` is
`data/tool_search_third.json`: 69 requests (terse commands, questions, typos, non-native phrasing,
one per built-in tool), written after round 5 was frozen and ranked against the catalog plus 64
more distractor tools in eight other domains (`data/tool_search_distractors_third.json`, mounted
by `tools.bench.tool_search_third`): run once, reported as is. Round 7 (example requests) adds
`fourth` and `fifth` (`data/tool_search_{fourth,fifth}.json`, 138 requests each, two per built-in
tool, written by helpers blind to the examples and every other set; ranked against the third set's
catalog) and `reverse` (90 requests aimed at the distractor tools: do other servers' tools still rank?).
Also prints the `tools/list` token cost (JSON characters / 4) in `all` and `search` mode.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hub.config import HubConfig, parse_config  # noqa: E402
from tools.bench.catalog_server import load_catalog  # noqa: E402

DATA = Path(__file__).parent / "data"
MODES = ("bm25", "semantic", "keyword", "hybrid")
"""BM25F alone, MiniLM alone, BM25F + the priors (the ranking without an embedder), the shipped hybrid."""


def eval_config(stdio: bool = False, third: bool = False) -> HubConfig:
    """Built-in domains + distractor domains (in-process, or stdio children); `third` adds the third set's."""
    return parse_config(eval_config_dict(stdio, third))


def eval_config_dict(stdio: bool = False, third: bool = False) -> dict[str, Any]:
    """The eval's hub config as JSON (`--write-config` saves it for `mcp-hub tools search --config`)."""
    from servers import BUILTIN_DOMAINS
    from tools.bench.tool_search_third import CATALOG, domains

    servers: dict[str, Any] = {name: {"builtin": name} for name in sorted(BUILTIN_DOMAINS)}
    for domain in load_catalog():
        if stdio:
            servers[domain] = {"command": sys.executable, "args": ["-m", "tools.bench.catalog_server", domain],
                               "cwd": str(ROOT)}
        else:
            servers[domain] = {"module": f"tools.bench.catalog_server:{domain}"}
    for domain in domains() if third else []:
        if stdio:
            servers[domain] = {"command": sys.executable, "cwd": str(ROOT),
                               "args": ["-m", "tools.bench.catalog_server", domain, "--catalog", str(CATALOG)]}
        else:
            servers[domain] = {"module": f"tools.bench.tool_search_third:{domain}"}
    return {"mcpServers": servers, "hub": {"audit": {"enabled": False}}}


THIRD_CATALOG = ("third", "fourth", "fifth")
"""Splits ranked against the catalog with the third set's distractors added (255 tools)."""


def load_queries(split: str) -> list[tuple[str, str]]:
    if split in ("fourth", "fifth", "reverse"):
        return [(r["query"], r["tool"]) for r in json.loads((DATA / f"tool_search_{split}.json").read_text())]
    if split in ("fresh", "third"):
        return [tuple(r) for r in json.loads((DATA / f"tool_search_{split}.json").read_text())]  # type: ignore[misc]
    rows = [tuple(r) for r in json.loads((DATA / "tool_search_queries.json").read_text())]
    if split == "dev":
        return [r for i, r in enumerate(rows) if i % 3 != 2]  # type: ignore[misc]
    if split == "heldout":
        return [r for i, r in enumerate(rows) if i % 3 == 2]  # type: ignore[misc]
    return rows  # type: ignore[return-value]


def score(ranked: list[list[str]], expected: list[str]) -> dict[str, float]:
    """hit@1, hit@5 and MRR (over the top 10) of rankings against the expected names."""
    hit1 = hit5 = rr = 0.0
    for names, want in zip(ranked, expected):
        if want in names[:1]:
            hit1 += 1
        if want in names[:5]:
            hit5 += 1
        if want in names[:10]:
            rr += 1.0 / (names.index(want) + 1)
    n = max(len(expected), 1)
    return {"hit@1": round(hit1 / n, 3), "hit@5": round(hit5 / n, 3), "mrr": round(rr / n, 3), "n": len(expected)}


def _rank(names: list[str], want: str) -> int | None:
    """1-based rank of `want` in `names`, None when absent."""
    return names.index(want) + 1 if want in names else None


def tokens(obj: Any) -> int:
    """Approximate tokens of a JSON payload: characters / 4."""
    return len(json.dumps(obj, separators=(",", ":"))) // 4


async def run(splits: list[str], stdio: bool, misses: bool) -> dict[str, Any]:
    """Score `splits`; `third` against the catalog with the third set's distractors added, the rest without."""
    report: dict[str, Any] = {}
    first = [s for s in splits if s not in THIRD_CATALOG]
    if first:
        report.update(await _run_catalog(first, stdio, misses, third=False))
    if later := [s for s in splits if s in THIRD_CATALOG]:
        report.update({f"third_catalog/{k}" if "/" not in k else k: v
                       for k, v in (await _run_catalog(later, stdio, misses, third=True)).items()})
    return report


async def _run_catalog(splits: list[str], stdio: bool, misses: bool, third: bool) -> dict[str, Any]:
    from hub.hub import Hub
    from hub.search.meta import meta_tools
    from hub.search.service import tool_search

    report: dict[str, Any] = {}
    async with Hub(eval_config(stdio, third)) as hub:
        search = tool_search(hub)
        search.refresh()
        visible = hub.visible_tools(hub.access.local)
        report["catalog_tools"] = len(visible)
        report["tokens"] = {
            "all": tokens([t.model_dump(by_alias=True, exclude_none=True) for t in visible]),
            "all_without_output_schemas": tokens(
                [t.model_dump(by_alias=True, exclude_none=True, exclude={"output_schema"}) for t in visible]),
            "search": tokens([t.model_dump(by_alias=True, exclude_none=True) for t in meta_tools()]),
        }
        for split in splits:
            queries = load_queries(split)
            rankings: dict[str, list[list[str]]] = {}
            for mode in MODES:
                rankings[mode] = [[h.name for h in search.search(q, 50, mode=mode)] for q, _ in queries]
                report[f"{split}/{mode}"] = score([r[:10] for r in rankings[mode]], [w for _, w in queries])
            if misses:
                for i, (q, want) in enumerate(queries):
                    names = rankings["hybrid"][i]
                    if names[:1] != [want]:
                        ranks = {m: _rank(rankings[m][i], want) for m in MODES}
                        print(f"  miss [{split}] {q!r}: want {want} (ranks {ranks}), got {names[:3]}", file=sys.stderr)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=["dev", "heldout", "fresh", "third", "fourth", "fifth", "reverse", "all"], action="append")
    parser.add_argument("--stdio", action="store_true", help="run the distractor servers as stdio children")
    parser.add_argument("--misses", action="store_true", help="print the hybrid ranking's misses to stderr")
    parser.add_argument("--write-config", type=Path, help="only write the eval's hub config (JSON) to this file")
    parser.add_argument("--third-catalog", action="store_true",
                        help="with --write-config: add the third set's distractor domains")
    args = parser.parse_args()
    if args.write_config:
        args.write_config.write_text(json.dumps(eval_config_dict(args.stdio, args.third_catalog), indent=2))
        return
    os.environ.setdefault("MCP_HUB_DATA_DIR", tempfile.mkdtemp(prefix="tool-search-eval-"))
    # an empty vector cache: the shared one may hold the numpy MiniLM's rows under the same model name as the int8
    # model's, and which one a run reads moved a split by a request from one run to the next
    os.environ.setdefault("MCP_HUB_CACHE_DIR", tempfile.mkdtemp(prefix="tool-search-eval-cache-"))
    report = anyio.run(run, args.split or ["dev", "heldout", "fresh"], args.stdio, args.misses)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
