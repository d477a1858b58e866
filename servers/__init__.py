"""Built-in domain MCP servers.

Each domain registers itself with the hub through the `mcp_hub.domains` entry-point group in
`pyproject.toml` (read by `hub.domains`); each domain's `server` module has `make_backend(name)`
and `create_server(backend=None)`. `BUILTIN_DOMAINS` (name -> "module:factory") is that registry,
read from the installed entry points so there is one table.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "BUILTIN_DOMAINS":
        from hub.domains import domain_names, domain_target

        return {domain: domain_target(domain) for domain in domain_names()}
    raise AttributeError(f"module 'servers' has no attribute {name!r}")
