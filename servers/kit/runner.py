"""`mcp-hub server <domain>`: one domain server on its own, over stdio, Streamable HTTP or SSE."""

from __future__ import annotations

import importlib
import logging
from typing import Any

import anyio

from servers import BUILTIN_DOMAINS
from servers.kit.caller import install_caller_boundary

logger = logging.getLogger("servers")


def load_domain(domain: str) -> Any:
    if domain not in BUILTIN_DOMAINS:
        known = ", ".join(sorted(BUILTIN_DOMAINS))
        raise ValueError(f"unknown domain {domain!r}; available: {known}")
    return importlib.import_module(BUILTIN_DOMAINS[domain].partition(":")[0])


def run_domain(domain: str, backend: str | None, transport: str, host: str, port: int, demo: bool) -> None:
    module = load_domain(domain)
    chosen = module.make_backend(backend)
    if demo:
        seed = getattr(chosen, "seed_demo", None)
        if seed is None:
            raise ValueError(f"--demo needs the embedded backend; {chosen.name} has its own data")
        anyio.run(seed)
    server = module.create_server(chosen)
    install_caller_boundary(server)  # behind a hub, each call names its caller in a signed token
    logger.info("serving %s (%s backend) over %s", domain, chosen.name, transport)
    if transport == "stdio":
        server.run()
    else:  # Streamable HTTP or SSE, with POST /webhooks/<provider> and its processor (servers.kit.webhooks)
        from servers.kit.webhooks.serve import serve_http

        anyio.run(serve_http, server, "http" if transport == "http" else "sse", host, port)
