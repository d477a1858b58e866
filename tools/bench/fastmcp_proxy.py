"""FastMCP's proxy for the hub benchmark: `create_proxy` over the echo server, mounted on a FastMCP
server under a namespace, served over stdio. Runs in its own venv (.cache/bench-venv, FastMCP
4.1.2 — 4.1.3 and later pin a certifi release the package registry here does not have yet).

    .cache/bench-venv/bin/python fastmcp_proxy.py PYTHON ECHO_SERVER
"""

from __future__ import annotations

import sys

from fastmcp import FastMCP
from fastmcp.server import create_proxy

python, echo = sys.argv[1], sys.argv[2]
root = FastMCP("fastmcp-hub")
root.mount(create_proxy({"mcpServers": {"echo": {"command": python, "args": [echo]}}}), namespace="echo")

if __name__ == "__main__":
    root.run(show_banner=False)
