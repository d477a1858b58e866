"""Keeping each server's catalog part in line with the server (a mixin of `hub.hub.Hub`): its list
changes, its coming up and going down, the console's Disable and Enable, name clashes retried, and the
per-client sessions of clients that left."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from hub.announcer import ALL_KINDS
from hub.catalog.catalog import CatalogConflict, ToolCatalog
from hub.catalog.first_listing import FirstListing
from hub.catalog.remembered import RememberedListings
from hub.downstream.connection import Downstream
from hub.downstream.listing import ListKind

if TYPE_CHECKING:
    from hub.relay.requests import RequestRelay
    from hub.relay.subscriptions import ResourceSubscriptions


class ServerControl:
    """The catalog side of each server's life (state lives on `Hub`)."""

    catalog: ToolCatalog
    downstreams: dict[str, Downstream]
    remembered: RememberedListings
    first_listing: FirstListing
    subscriptions: ResourceSubscriptions
    request_relay: RequestRelay
    _clashed: set[str]
    _started: bool
    _task_group: anyio.abc.TaskGroup | None

    if TYPE_CHECKING:
        def _announce_soon(self, kinds: Sequence[ListKind]) -> None: ...

    async def _on_downstream_change(self, downstream: Downstream, kind: ListKind) -> None:
        """Called inside the server's connection: changes the catalog now, announces in a task (a slow
        listener must not hold up the connection, or a stop of it)."""
        if downstream.stopping:
            return  # disabled: its tools stay withdrawn
        before = self.catalog.version
        try:
            self.catalog.set_server(downstream.config, downstream.listing)
        except CatalogConflict as exc:
            downstream.log.error("kept the previous listing: %s", exc)
            return
        if self.catalog.version != before:
            changed = self.catalog.version
            self._retry_clashed()  # another server may be exposed now: then every kind may have changed
            self._announce_soon([kind] if self.catalog.version == changed else ALL_KINDS)

    def _on_downstream_state(self, downstream: Downstream) -> None:
        """After a server comes up (again) or goes down, bring its catalog part in line at once — a
        list answer or a call right after sees it — and announce the change in a task."""
        if self._started and self._task_group is not None:
            before = self.catalog.version
            self._sync_server(downstream)
            if self.catalog.version != before and self.first_listing.settled:
                # Before the first list answer has settled, no client holds a list this change makes
                # stale: every list answer waits for the first attempts and includes it.
                self._announce_soon(ALL_KINDS)
            if downstream.state == "ready":  # a new session: renew the clients' resource subscriptions
                self._task_group.start_soon(self.subscriptions.resubscribe, downstream)
                # and, if it asked for roots before it counted as connected, have it ask again (`RootsNotices`)
                self._task_group.start_soon(self.request_relay.roots_notices.server_ready, downstream.name)

    def client_gone(self, session_id: str) -> None:
        """An upstream client's session ended: close its per-client downstream sessions now (they
        would also close once its connection is garbage-collected, or when idle)."""
        for downstream in self.downstreams.values():
            if downstream.pool is not None:
                downstream.pool.close_where(lambda owner: getattr(owner, "session_id", None) == session_id)

    def release_owner(self, owner: Any) -> None:
        """`owner` (an upstream connection) is done: its per-client sessions close once unused, and the tasks
        it created are forgotten (`TaskRelay.release`)."""
        self.request_relay.tasks.release(owner)
        for downstream in self.downstreams.values():
            if downstream.pool is not None:
                downstream.pool.close(owner)

    def stop_server(self, name: str) -> None:
        """Stop a server and withdraw its tools now (the console's Disable, ordered by `hub.admin.actions`)."""
        self.downstreams[name].stop()
        self.catalog.remove_server(name)
        self._announce_soon(ALL_KINDS)

    def start_server(self, name: str) -> None:
        """Run a server whose supervisor has ended (`Downstream.ended`) again: the console's Enable."""
        if self._task_group is None:
            raise RuntimeError("the hub is not running")
        downstream = self.downstreams[name]
        downstream.resume()
        self._task_group.start_soon(downstream.run)

    def _sync_server(self, downstream: Downstream) -> None:
        """One server's catalog part, in line with its state: a clash found now is logged, not raised.
        A part listed from memory never outlives the server's first connection: on a clash it is
        withdrawn (as if nothing had been remembered). Servers left out by a clash are tried again
        whenever another server's part changes (the name they wanted may be free now)."""
        before = self.catalog.version
        if downstream.state == "ready":
            from_memory = downstream.name in self.remembered.from_memory
            self.remembered.from_memory.discard(downstream.name)
            try:
                self.catalog.set_server(downstream.config, downstream.listing)
            except CatalogConflict as exc:
                downstream.log.error("tools not exposed: %s", exc)
                self._clashed.add(downstream.name)
                if from_memory:
                    self.catalog.remove_server(downstream.name)
            else:
                self._clashed.discard(downstream.name)
                self.remembered.remember(downstream)
        elif downstream.config.hide_when_down:
            self.catalog.remove_server(downstream.name)
        if self.catalog.version != before:
            self._retry_clashed()

    def _retry_clashed(self) -> None:
        """Expose the ready servers a clash left out, where the clash is gone."""
        for name in list(self._clashed):
            downstream = self.downstreams[name]
            if downstream.state != "ready":
                continue
            try:
                self.catalog.set_server(downstream.config, downstream.listing)
            except CatalogConflict:
                continue
            self._clashed.discard(name)
            downstream.log.info("tools exposed: the name clash is gone")
            self.remembered.remember(downstream)
