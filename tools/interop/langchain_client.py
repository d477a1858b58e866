"""Load the hub's tools with langchain-mcp-adapters and invoke one; prints a JSON summary.

Runs in its own virtualenv (langchain-mcp-adapters 0.3 pins mcp<2), talking to the hub over the
wire. usage: python langchain_client.py stdio CONFIG HUB_PYTHON | http URL
"""

from __future__ import annotations

import asyncio
import json
import sys

from langchain_mcp_adapters.client import MultiServerMCPClient


async def main() -> None:
    mode = sys.argv[1]
    if mode == "stdio":
        config, hub_python = sys.argv[2], sys.argv[3]
        connection = {
            "transport": "stdio",
            "command": hub_python,
            "args": ["-m", "hub.cli", "serve", "--config", config, "--log-level", "warning"],
        }
    else:
        connection = {"transport": "streamable_http", "url": sys.argv[2]}
    client = MultiServerMCPClient({"hub": connection})
    tools = await client.get_tools()
    by_name = {t.name: t for t in tools}
    result = await by_name["echo__add"].ainvoke({"a": 20, "b": 22})
    print(json.dumps({"tools": sorted(by_name), "result": str(result)}))


asyncio.run(main())
