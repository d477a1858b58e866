"""In-process downstreams: a Python server object mounted without any transport.

`module = "package.module:attribute"` names an `MCPServer`, a low-level `Server`, or a zero-argument
callable returning one; `builtin = "<domain>"` names one of the built-in domain servers. The SDK
client talks to such a server through direct dispatch: no pipes, no JSON framing.
"""

from __future__ import annotations

import importlib
import logging
import threading
from pathlib import Path
from typing import Any

from mcp.server import MCPServer, Server

from hub.config import ServerConfig
from hub.datadir import server_data_dir, server_shared_store
from hub.domains import RegistryError, domain_target


class InProcessLoadError(Exception):
    """The configured module or attribute cannot be imported or is not an MCP server."""


def load_server_object(config: ServerConfig, shared_store_url: str | None = None) -> Server[Any] | MCPServer:
    """Import and return the server object a config entry names (built with its data dir, and the
    hub's shared store for what replicas must share: `hub.datadir.server_shared_store`)."""
    if config.builtin is not None:
        try:
            target = domain_target(config.builtin)  # registered by its package (`hub.domains`)
        except RegistryError as exc:
            raise InProcessLoadError(str(exc)) from None
    else:
        assert config.module is not None
        target = config.module
    module_name, _, attribute = target.partition(":")
    if not attribute:
        raise InProcessLoadError(f"{target!r} must look like 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InProcessLoadError(f"cannot import {module_name!r}: {exc}") from exc
    obj = getattr(module, attribute, None)
    if obj is None:
        raise InProcessLoadError(f"module {module_name!r} has no attribute {attribute!r}")
    if callable(obj) and not isinstance(obj, (Server, MCPServer)):
        with server_data_dir(Path(config.data_dir).expanduser() if config.data_dir else None), \
                server_shared_store(shared_store_url, config.namespace or config.name):
            obj = obj()
    if not isinstance(obj, (Server, MCPServer)):
        raise InProcessLoadError(f"{target!r} is a {type(obj).__name__}, not an MCP server")
    return obj


RELEASE_AFTER_S = 2.0
"""How long a replaced server object keeps its resources: its webhook processor is stopped within a
second of the replacement (`hub.webhooks`), and a request still on it finishes or is refused."""
logger = logging.getLogger("hub.downstream.inprocess")


def release_later(server: Any, after_s: float | None = None) -> None:
    """Let a replaced in-process server object (a restart, a reload) close what it holds — its SQLite
    stores — through its optional `close_resources()`, `after_s` from now, off the event loop. Each
    console Restart left one more set of open database files (re-check 19 #3)."""
    close = getattr(server, "close_resources", None)
    if not callable(close):
        return

    def run() -> None:
        try:
            close()
        except Exception:  # noqa: BLE001 — a server's own cleanup failing must not touch the hub
            logger.warning("a replaced in-process server could not close its resources", exc_info=True)

    timer = threading.Timer(RELEASE_AFTER_S if after_s is None else after_s, run)
    timer.daemon = True
    timer.start()
