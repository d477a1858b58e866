"""The third held-out set's own distractor domains (wiki, tasks, recruiting, expenses, support, on-call,
travel, e-signature: `data/tool_search_distractors_third.json`), mounted like the first set's.

In a hub config, `"module": "tools.bench.tool_search_third:DOMAIN"` mounts one domain in-process; over
stdio, `python -m tools.bench.catalog_server DOMAIN --catalog data/tool_search_distractors_third.json`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.bench.catalog_server import load_catalog, make_server

CATALOG = Path(__file__).parent / "data" / "tool_search_distractors_third.json"


def domains() -> list[str]:
    """The domains of the third distractor catalog."""
    return sorted(load_catalog(CATALOG))


def __getattr__(name: str) -> Callable[[], Any]:
    """`tools.bench.tool_search_third:<domain>` in a hub config: a factory for that domain's server."""
    if name.startswith("_") or name not in load_catalog(CATALOG):
        raise AttributeError(name)
    return lambda: make_server(name, CATALOG)
