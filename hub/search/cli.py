"""`mcp-hub tools search QUERY`: the ranking a caller would get from `search_tools`, for people and scripts."""

from __future__ import annotations

import json
import sys

from hub.config import HubConfig


async def run_search(config: HubConfig, query: str, limit: int, as_json: bool, profile: str | None = None) -> int:
    """Print the best `limit` tools for `query`, best first (a JSON array with `--json`).

    The local principal ranks (stdio semantics: every tool); with `profile`, only that profile's tools,
    under the names the profile exposes. An unknown profile exits 2 naming the defined ones."""
    from hub.hub import Hub
    from hub.profiles import UnknownProfile, profile_settings, profile_view
    from hub.search.service import MAX_LIMIT, tool_search

    if profile is not None:
        try:
            profile_settings(config, profile)
        except UnknownProfile as exc:
            print(f"mcp-hub: {exc}", file=sys.stderr)
            return 2
    if not 1 <= limit <= MAX_LIMIT:
        print(f"mcp-hub: --limit must be from 1 to {MAX_LIMIT}", file=sys.stderr)
        return 2
    async with Hub(config) as hub:
        view = profile_view(hub, profile) if profile is not None else None
        hits = await tool_search(hub).asearch(query, limit, view=view)
        for name, status in hub.status().items():
            if status["state"] != "ready" and status["last_error"]:
                print(f"server {name} unavailable: {status['last_error']}", file=sys.stderr)
    if as_json:
        print(json.dumps([{"name": h.name, "score": h.score, "keyword": h.keyword, "semantic": h.semantic,
                           "description": (h.doc.tool.description or "") if h.doc else "", "why": h.why()}
                          for h in hits], indent=2))
        return 0
    if not hits:
        print("no tools match")
        return 0
    width = max(len(h.name) for h in hits)
    for rank, h in enumerate(hits, 1):
        first = ((h.doc.tool.description or "") if h.doc else "").strip().splitlines()[:1]
        print(f"{rank:>2}. {h.name:<{width}}  {h.score:.3f}  {(first[0] if first else '')[:70]}")
    return 0
