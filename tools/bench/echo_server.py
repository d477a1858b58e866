"""The downstream every contender of tools/bench/hub_overhead.py and sdk_client.py calls: a trivial
`echo` tool, and `big` (a text result of a given size and kind, for the large-result figures).

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


SAMPLES = {
    "x": "x",
    # A JSON document as text, as tools that dump records return it: quotes and backslashes to escape.
    "json": '{"id": 1234, "name": "item \\"quoted\\"", "path": "C:\\\\data\\\\f.csv", "ok": true},\n',
    # Prose in several scripts: raw UTF-8 in the line.
    "prose": "Le caf\u00e9 co\u00fbte 3 \u20ac; \u6771\u4eac\u306e\u5929\u6c17; \u0417\u0434\u0440\u0430\u0432\u0441\u0442\u0432\u0443\u0439.\n",
}


@mcp.tool()
def big(size: int, kind: str = "x") -> str:
    """Return a text of about `size` bytes of UTF-8 (at most 64 MB): `x` repeated, or `json` records, or `prose` in several scripts."""
    sample = SAMPLES[kind]
    size = max(0, min(size, 64 << 20)) * len(sample) // len(sample.encode())
    return (sample * (size // len(sample) + 1))[:size]


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        mcp.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        mcp.run()
