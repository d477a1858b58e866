"""Remembered listings while the hub runs (`listing_cache` keeps them on disk): which are loaded at
start, which servers the catalog still lists from memory, and which calls must wait for them.

Rules in docs/architecture.md, "Remembered listings". A call that a server listed from memory may
own waits for that server's first connection attempt before it is resolved and checked, so scopes,
read-only rules, profiles and argument checks judge it by the real listing, never a remembered one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import anyio

from hub.catalog import listing_cache
from hub.catalog.catalog import ToolCatalog
from hub.config import HubConfig
from hub.datadir import audit_digest_key, default_cache_dir
from hub.downstream.connection import Downstream

logger = logging.getLogger("hub.catalog")


class RememberedListings:
    """The hub's remembered listings: loaded once at start, refreshed as servers come up."""

    def __init__(self, config: HubConfig, data_dir: Callable[[], Path], downstreams: dict[str, Downstream],
                 catalog: ToolCatalog) -> None:
        self._config, self._data_dir, self._downstreams, self._catalog = config, data_dir, downstreams, catalog
        self.entries: dict[str, listing_cache.Remembered] = {}
        """What is remembered of each server under exactly its current key."""
        self.from_memory: set[str] = set()
        """Servers whose catalog part is still their remembered listing (`servers_for`)."""

    def load(self, waiting_start: bool) -> None:
        """Load what is remembered of each server (its listing, and its instructions, which its
        `Downstream` gives until it is connected). A hub that waits at start (one-shot commands:
        `mcp-hub tools search`, `call`) loads only built-in domains' (their key covers their code):
        it has no later moment to correct a stdio server's."""
        secret = self._secret()
        if secret is None:
            return
        for downstream in self._downstreams.values():
            exact = downstream.config.builtin is not None
            if listing_cache.cacheable(downstream.config) and (exact or not waiting_start):
                key = listing_cache.cache_key(downstream.config, secret)
                remembered = listing_cache.load(default_cache_dir(), downstream.config, key)
                if remembered is not None:
                    self.entries[downstream.name] = remembered
                    downstream.remembered_instructions = remembered.instructions

    def remember(self, downstream: Downstream) -> None:
        """Cache a server's fresh listing and instructions if they are not what the cache already holds."""
        secret = self._secret()
        if secret is None or not listing_cache.cacheable(downstream.config):
            return
        before = self.entries.get(downstream.name)
        if before is not None and (before.listing, before.instructions) == (downstream.listing, downstream.instructions):
            return
        key = before.key if before else listing_cache.cache_key(downstream.config, secret)
        now = listing_cache.Remembered(key, downstream.listing, downstream.instructions)
        listing_cache.store(default_cache_dir(), downstream.config, now)
        self.entries[downstream.name] = now

    def _secret(self) -> bytes | None:
        """The key of remembered listings' digests (`listing_cache.cache_key`); None when listings
        are not remembered (`hub.remember_listings: false`, or no data dir to keep the key in)."""
        if not self._config.hub.remember_listings:
            return None
        try:
            return audit_digest_key(self._data_dir())
        except OSError as exc:
            logger.warning("listings are not remembered between starts: %s", exc)
            return None

    def servers_for(self, name: str, hub_wide: bool = True) -> list[Downstream]:
        """Servers still making their first connection whose tools are listed from memory and that
        may own tool `name` as a caller names it: the server the name resolves to now; else (a name
        not listed, or a profile's short name — both begin with the namespace) those whose namespace
        prefixes it and those without one, and all of them for a name under no namespace. A name
        that resolves to a server not listed from memory needs none: the catalog never lets a second
        server take a name one already has. `hub_wide=False`: `name` is a profile's (a short name
        may equal another server's hub-wide name), never resolved."""
        if not self.from_memory:
            return []
        pending: dict[str, Downstream] = {}
        for server in list(self.from_memory):
            downstream = self._downstreams[server]
            if downstream.first_attempt.is_set():
                self.from_memory.discard(server)
            else:
                pending[server] = downstream
        route = self._catalog.resolve_tool(name) if hub_wide else None
        if route is not None:
            return [pending[route.server]] if route.server in pending else []
        owners = [d for d in pending.values() if not d.config.namespace or name.startswith(d.config.namespace + "__")]
        namespaced = any(name.startswith(d.config.namespace + "__") for d in self._downstreams.values() if d.config.namespace)
        return owners if namespaced else list(pending.values())

    async def wait_for(self, name: str, hub_wide: bool = True) -> None:
        """Wait for `servers_for(name)` to make their first connection attempt, up to `hub.call_wait_s`
        in all (as a call to a name no server has listed yet waits)."""
        servers = self.servers_for(name, hub_wide)
        if servers:
            with anyio.move_on_after(self._config.hub.call_wait_s):
                for downstream in servers:
                    await downstream.first_attempt.wait()

    def still_starting(self, server: str) -> bool:
        """Whether `server` is listed from memory and has not connected yet (after the wait: refused)."""
        return server in self.from_memory and self._downstreams[server].state == "starting"
