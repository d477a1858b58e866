"""Fixture MCP servers built from a JSON tool catalog (the tool-search eval's distractors).

`python -m tools.bench.catalog_server DOMAIN [--catalog FILE]` serves one domain over stdio; in a
hub config, `"module": "tools.bench.catalog_server:DOMAIN"` mounts it in-process. A catalog is
`{domain: [[name, description, {param: description}], ...]}`; every tool answers a text echo.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server

DEFAULT_CATALOG = Path(__file__).parent / "data" / "tool_search_distractors.json"


def load_catalog(path: Path = DEFAULT_CATALOG) -> dict[str, list[types.Tool]]:
    """domain → its tools, with a string parameter per catalog entry (all optional)."""
    raw = json.loads(path.read_text())
    out: dict[str, list[types.Tool]] = {}
    for domain, entries in raw.items():
        out[domain] = [
            types.Tool(name=name, description=description,
                       input_schema={"type": "object",
                                     "properties": {p: {"type": "string", "description": d} for p, d in params.items()}})
            for name, description, params in entries
        ]
    return out


def make_server(domain: str, path: Path = DEFAULT_CATALOG) -> Server[Any]:
    """A low-level server listing `domain`'s tools; a call answers which tool ran with what."""
    tools = load_catalog(path).get(domain)
    if tools is None:
        raise KeyError(f"no domain {domain!r} in {path}")
    names = {t.name for t in tools}

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        if params.name not in names:
            return types.CallToolResult(content=[types.TextContent(type="text", text=f"unknown tool {params.name}")],
                                        is_error=True)
        text = json.dumps({"tool": params.name, "arguments": params.arguments or {}})
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    return Server(f"{domain}-fixture", instructions=f"Fixture {domain} tools for the tool-search eval.",
                  on_list_tools=list_tools, on_call_tool=call_tool)


def __getattr__(name: str) -> Any:
    """`tools.bench.catalog_server:<domain>` in a hub config: a factory for that domain's server."""
    if name.startswith("_"):
        raise AttributeError(name)
    if name not in load_catalog():
        raise AttributeError(name)
    return lambda: make_server(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("domain")
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    args = parser.parse_args()
    server = make_server(args.domain, args.catalog)

    async def run() -> None:
        from mcp.server.stdio import stdio_server

        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(run)


if __name__ == "__main__":
    sys.exit(main())
