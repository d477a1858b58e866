"""`mcp-hub server <domain>`: one domain server on its own, over stdio, Streamable HTTP or SSE."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import Any

import anyio

from hub.domains import domain_target
from servers.kit.caller import install_caller_boundary

logger = logging.getLogger("servers")


def load_domain(domain: str) -> Any:
    """The registered domain's server module (`make_backend`, `create_server`); `RegistryError` if unknown."""
    return importlib.import_module(domain_target(domain).partition(":")[0])


async def seed_demo(server_module: str, backend: Any) -> None:
    """`--demo`: sample data on the embedded backend, seeded here so a store never imports its sample
    data — the domain's `demo.seed(backend)` (`servers/<domain>/demo.py`) where it has one, else the
    store's own `seed_demo()` (ticketing, HRIS and calendar keep a few rows inline)."""
    if getattr(backend, "name", None) != "embedded":
        raise ValueError(f"--demo needs the embedded backend; {getattr(backend, 'name', 'this backend')} has its own data")
    demo_module = server_module.rpartition(".")[0] + ".demo"
    if importlib.util.find_spec(demo_module) is not None:
        await importlib.import_module(demo_module).seed(backend)
    else:
        await backend.seed_demo()


def run_domain(domain: str, backend: str | None, transport: str, host: str, port: int, demo: bool) -> None:
    module = load_domain(domain)
    chosen = module.make_backend(backend)
    if demo:
        anyio.run(seed_demo, module.__name__, chosen)
    server = module.create_server(chosen)
    install_caller_boundary(server)  # behind a hub, each call names its caller in a signed token
    logger.info("serving %s (%s backend) over %s", domain, chosen.name, transport)
    if transport == "stdio":
        server.run()
    else:  # Streamable HTTP or SSE, with POST /webhooks/<provider> and its processor (servers.kit.webhooks)
        from servers.kit.webhooks.serve import serve_http

        anyio.run(serve_http, server, "http" if transport == "http" else "sse", host, port)
