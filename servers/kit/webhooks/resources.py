"""Subscribable change resources: a domain's feed as `<domain>://changes` and one URI per record,
`<domain>://<kind>s/<record id, percent-encoded>` (e.g. `ticketing://tickets/OPS-12`), with
`notifications/resources/updated` sent when new changes reach the feed.

Rules decided here:
- Reading `<domain>://changes` gives the newest 50 changes (oldest first) and `latest_seq`; page the
  whole feed with `list_changes`. Reading a record URI gives that record's newest 50 changes, not the
  record itself (the feed is all this layer knows; read the record with the domain's get tool). Both
  are cheap: one indexed query on the feed table.
- Handshake-era clients `resources/subscribe` to either URI; 2026-07-28 clients get the same updates
  on their `subscriptions/listen` stream. Only URIs of this domain's shape may be subscribed.
- New changes are noticed after every tool call of this server (embedded writes) and after the
  webhook processor appends (provider webhooks). Changes written by another process on the same
  data dir are noticed at this server's next tool call or webhook, not before.
- Each update is sent once per subscribed URI per batch of new changes, best effort, on the client
  connection's standalone channel; a connection that went away is forgotten (held weakly).
- With `publish_every_change(publish)` (the HTTP hub with replicas, `hub.webhooks`), every batch's
  URIs also go to `publish` whether or not anyone listens here: the subscriber of a change this
  process made (a webhook it processed) may be connected to another replica.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import weakref
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote

import anyio
import mcp_types as types
from mcp.server import MCPServer
from mcp.shared.exceptions import MCPError

from servers.kit.webhooks.feed import ChangeFeed, _ensure, in_scope

logger = logging.getLogger("servers.webhooks")
RECENT = 50
RECORD_KINDS: dict[str, tuple[str, ...]] = {
    "ticketing": ("ticket",), "calendar": ("event", "calendar"),
    "accounting": ("invoice", "contact", "payment", "journal"), "hris": ("employee", "time_off_request"),
}
"""Record kinds with a per-record URI, per domain (others still update `<domain>://changes`)."""


def feed_uri(domain: str) -> str:
    return f"{domain}://changes"


def record_uri(domain: str, kind: str, record_id: str) -> str:
    return f"{domain}://{kind}s/{quote(record_id, safe='')}"


def _recent(feed: ChangeFeed, where: str, args: list[Any]) -> Any:
    """The feed's latest changes (`where`: more conditions, joined with AND) and its latest seq."""
    scoped, scope_args = in_scope(feed.scope)

    def work(db: sqlite3.Connection) -> dict[str, Any]:
        _ensure(db)
        rows = db.execute(f"SELECT * FROM kit_changes WHERE {scoped} {where} ORDER BY seq DESC LIMIT ?",
                          [*scope_args, *args, RECENT]).fetchall()
        latest = db.execute(f"SELECT MAX(seq) FROM kit_changes WHERE {scoped}", scope_args).fetchone()[0] or 0
        changes = [{k: r[k] for k in ("seq", "kind", "record_id", "action", "changed_at", "source")} for r in reversed(rows)]
        return {"latest_seq": latest, "changes": changes}

    return feed.store.run(work)


def _connection(ctx: Any) -> Any:
    """The client connection a request came on (`ctx.session` is a per-request proxy; the hub's
    relay keys on the same `Connection`). Held weakly: a closed connection drops its subscriptions."""
    return ctx.session._connection  # noqa: SLF001 — the SDK exposes no public accessor on ServerRequestContext


class ChangeResources:
    """Who subscribed to what (client connections held weakly), and the feed position already announced."""

    def __init__(self, server: MCPServer, domain: str, feed: ChangeFeed) -> None:
        self.server, self.domain, self.feed = server, domain, feed
        self.kinds = RECORD_KINDS.get(domain, ())
        self.sessions: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
        self.announced: int | None = None
        """Highest feed seq already announced; None while nobody listens."""
        self.publish: Callable[[list[str]], Awaitable[None]] | None = None
        """Also told every batch's URIs, listeners here or not (`publish_every_change`)."""
        self._lock = anyio.Lock()

    def accepts(self, uri: str) -> bool:
        if uri == feed_uri(self.domain):
            return True
        prefix = f"{self.domain}://"
        collection, _, record = uri.removeprefix(prefix).partition("/")
        return uri.startswith(prefix) and bool(record) and collection.removesuffix("s") in self.kinds

    def _listening(self) -> bool:
        bus = getattr(self.server, "_subscriptions", None)
        return any(self.sessions.values()) or bool(getattr(bus, "_listeners", None))

    def wanted(self) -> bool:
        """Whether new changes are to be announced: someone listens here, or they are published."""
        return self.publish is not None or self._listening()

    async def publish_every_change(self, publish: Callable[[list[str]], Awaitable[None]]) -> None:
        """From now on, give `publish` the URIs of every new batch of changes (never raising), from
        this feed position on (what is already in the feed is not news)."""
        await self._catch_up()
        self.publish = publish

    async def subscribe(self, ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
        uri = str(params.uri)
        if not self.accepts(uri):
            raise MCPError(code=types.INVALID_PARAMS, message=f"{uri} cannot be subscribed; subscribe to "
                           f"{feed_uri(self.domain)} or a record URI such as {record_uri(self.domain, (self.kinds or ('record',))[0], 'ID')}")
        await self._catch_up()  # changes before this subscription are not announced to it
        self.sessions.setdefault(_connection(ctx), set()).add(uri)
        return types.EmptyResult()

    async def unsubscribe(self, ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        self.sessions.get(_connection(ctx), set()).discard(str(params.uri))
        return types.EmptyResult()

    async def _latest(self) -> int:
        scoped, scope_args = in_scope(self.feed.scope)

        def work(db: sqlite3.Connection) -> int:
            _ensure(db)
            return int(db.execute(f"SELECT MAX(seq) FROM kit_changes WHERE {scoped}", scope_args).fetchone()[0] or 0)

        return await self.feed.store.run(work)

    async def _catch_up(self) -> None:
        async with self._lock:
            if self.announced is None:
                self.announced = await self._latest()

    async def check(self) -> None:
        """Announce the changes appended since the last check to their subscribers (and `publish`)."""
        if not self.wanted():
            self.announced = None
            return
        async with self._lock:
            start = self.announced if self.announced is not None else await self._latest()

            scoped, scope_args = in_scope(self.feed.scope)

            def work(db: sqlite3.Connection) -> list[sqlite3.Row]:
                _ensure(db)
                return db.execute(f"SELECT seq, kind, record_id FROM kit_changes WHERE {scoped} AND seq > ? ORDER BY seq",
                                  [*scope_args, start]).fetchall()

            rows = await self.feed.store.run(work)
            if not rows:
                self.announced = start
                return
            self.announced = int(rows[-1]["seq"])
        uris = [feed_uri(self.domain)]
        uris += sorted({record_uri(self.domain, r["kind"], r["record_id"]) for r in rows if r["kind"] in self.kinds})
        await self._announce(uris)

    async def _announce(self, uris: list[str]) -> None:
        for connection, wanted in list(self.sessions.items()):
            for uri in (u for u in uris if u in wanted):
                await connection.notify("notifications/resources/updated", {"uri": uri})  # best effort: never raises
        bus = getattr(self.server, "_subscriptions", None)
        if bus is not None and getattr(bus, "_listeners", True):
            from mcp.shared.subscriptions import ResourceUpdated

            for uri in uris:
                await bus.publish(ResourceUpdated(uri=uri))
        if self.publish is not None:
            await self.publish(uris)


def attach_change_resources(server: MCPServer, domain: str, feed: ChangeFeed) -> ChangeResources:
    """Register the feed and record resources on `server`, the subscribe handlers, and the checks
    after each tool call and each webhook batch."""
    resources = ChangeResources(server, domain, feed)

    @server.resource(feed_uri(domain), name=f"{domain}-changes", mime_type="application/json",
                     description=f"The newest changes in {domain} (subscribe for updates; page with list_changes).")
    async def changes() -> str:
        return json.dumps(await _recent(feed, "", []))

    for kind in resources.kinds:
        def reader(kind: str = kind) -> Any:
            async def record_changes(record_id: str) -> str:
                body = await _recent(feed, "AND kind = ? AND record_id = ?", [kind, unquote(record_id)])
                return json.dumps({"kind": kind, "record_id": unquote(record_id), **body})
            return record_changes

        server.resource(f"{domain}://{kind}s/{{record_id}}", name=f"{domain}-{kind}-changes", mime_type="application/json",
                        description=f"The newest changes of one {kind} (subscribe for updates).")(reader())

    lowlevel = server._lowlevel_server  # noqa: SLF001 — MCPServer has no public hook for resources/subscribe
    lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, resources.subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, resources.unsubscribe)
    listen = lowlevel.get_request_handler("subscriptions/listen")
    if listen is not None:
        async def listen_from_now(ctx: Any, params: types.SubscriptionsListenRequestParams) -> Any:
            """A 2026-07-28 stream naming resources is announced changes from its start on, as a
            `resources/subscribe` is (without this, its first batch would be taken as the start)."""
            if params.notifications.resource_subscriptions:
                await resources._catch_up()
            return await listen.handler(ctx, params)

        lowlevel.add_request_handler("subscriptions/listen", types.SubscriptionsListenRequestParams, listen_from_now)

    call_tool = server.call_tool

    async def call_tool_then_announce(*args: Any, **kwargs: Any) -> Any:
        try:
            return await call_tool(*args, **kwargs)
        finally:
            if resources.wanted():
                try:
                    await resources.check()
                except Exception:  # noqa: BLE001 — the call's answer matters more than the announcement
                    logger.exception("could not announce changes after a tool call")

    server.call_tool = call_tool_then_announce  # type: ignore[method-assign] — also taken by the hub's direct calls
    feed.listeners.append(resources.check)
    return resources
