"""`mcp-hub tools search QUERY`: the ranking a caller would get from `search_tools`, for people and scripts.

Decisions (outside review search15 #5, #8):
- A query that is empty or only blanks is refused (exit 2, as every usage error, saying why), as
  `search_tools` refuses it (`hub.search.meta.blank_query`): ranking nothing would print tools at
  score 0.0 in name order, which a script cannot tell from an answer.
- The table shows names and descriptions the servers gave, and the unavailable servers' errors:
  all inert (`hub.terminal`), so a server's escape sequences never reach the operator's terminal.
  `--json` is JSON (every control character escaped) and needs nothing more.
"""

from __future__ import annotations

import json
import sys

from hub.config import HubConfig
from hub.terminal import first_line, inert


async def run_search(config: HubConfig, query: str, limit: int, as_json: bool, profile: str | None = None) -> int:
    """Print the best `limit` tools for `query`, best first (a JSON array with `--json`).

    The local principal ranks (stdio semantics: every tool); with `profile`, only that profile's tools,
    under the names the profile exposes. An unknown profile exits 2 naming the defined ones."""
    from hub.cli_run import print_unavailable
    from hub.hub import Hub
    from hub.profiles import UnknownProfile, profile_settings, profile_view
    from hub.search.meta import blank_query
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
    if blank_query(query):
        print("mcp-hub: the query says nothing to search by (empty, punctuation, or only words like 'the'); "
              "describe the task in plain words, e.g. "
              "mcp-hub tools search 'list overdue invoices'", file=sys.stderr)
        return 2
    async with Hub(config) as hub:
        view = profile_view(hub, profile) if profile is not None else None
        hits = await tool_search(hub).asearch(query, limit, view=view)
        print_unavailable(hub.status())
    if as_json:
        print(json.dumps([{"name": h.name, "score": h.score, "keyword": h.keyword, "semantic": h.semantic,
                           "description": (h.doc.tool.description or "") if h.doc else "", "why": h.why()}
                          for h in hits], indent=2))
        return 0
    if not hits:
        print("no tools match")
        return 0
    names = [inert(h.name) for h in hits]
    width = max(len(name) for name in names)
    for rank, (name, h) in enumerate(zip(names, hits), 1):
        print(f"{rank:>2}. {name:<{width}}  {h.score:.3f}  {first_line(h.doc.tool.description if h.doc else '', 70)}")
    return 0
