"""The downstream every contender of tools/bench/hub_overhead.py and sdk_client.py calls: a trivial
`echo` tool, and `big` (a text result of a given size, for the large-result figures).

    python echo_server.py            # stdio
    python echo_server.py http PORT  # Streamable HTTP on 127.0.0.1:PORT/mcp
"""

from __future__ import annotations

import sys

from mcp.server import MCPServer

mcp = MCPServer("echo")


@mcp.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@mcp.tool()
def big(size: int) -> str:
    """Return a text of `size` bytes (at most 64 MB)."""
    return "x" * max(0, min(size, 64 << 20))


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        mcp.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        mcp.run()
