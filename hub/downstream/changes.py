"""Following a downstream's list changes: discovery, refetch on `list_changed`, the 2026-07-28
`subscriptions/listen` stream (a mixin of `hub.downstream.connection.Downstream`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
from mcp import Client
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from hub.errors import describe_failure
from hub.redact import bounded_name
from hub.downstream.listing import KEY_OF_KIND, ListKind, Listing, all_pages, event_kind, last_of_each
from hub.downstream.listing_repair import MAX_BAD_ITEMS, METHOD_OF_KIND, ListingAnswers


MAX_LISTED_TWICE = 256
"""Names listed twice a server is warned of (past that, no more warnings: memory stays bounded)."""


class ChangeFollowing:
    """Discovery and list refetches of one downstream (state lives on `Downstream`)."""

    listing: Listing
    listings: ListingAnswers | None
    connect_timeout_s: float
    log: logging.Logger
    _client: Client | None
    _on_change: Callable[[Any, ListKind], Awaitable[None]] | None
    _pending_refresh: set[ListKind]
    _listed_twice: set[tuple[str, str]]
    _refresh_send: anyio.abc.ObjectSendStream[ListKind]
    _refresh_recv: anyio.abc.ObjectReceiveStream[ListKind]

    async def _discover(self, client: Client) -> None:
        """The server's tools to their last page, then every other list it declares asked for
        together (two round trips fewer than one after another). Tools come first: a `tools/list`
        that fails fails the connection, the others cannot, and a server that answers one request at
        a time must not keep the tools' later pages behind lists the hub can do without."""
        caps = client.server_capabilities
        listing = Listing()
        if caps.tools is not None:
            try:
                listing.tools = await self._all_pages(client.list_tools, listing.meta, "tools")
            except MCPError as exc:
                raise ConnectionError(f"its tools/list answer was an error: {describe_failure(exc)}") from exc

        async def beside(fetch: Callable[..., Awaitable[Any]], kind: str) -> None:
            setattr(listing, kind, await self._beside_tools(fetch, listing.meta, kind))

        async with anyio.create_task_group() as tg:
            if caps.resources is not None:
                tg.start_soon(beside, client.list_resources, "resources")
                tg.start_soon(beside, client.list_resource_templates, "resource_templates")
            if caps.prompts is not None:
                tg.start_soon(beside, client.list_prompts, "prompts")
        self.listing = listing

    async def _all_pages(self, fetch: Callable[..., Awaitable[Any]], meta: dict[str, dict[str, Any]], kind: str) -> list[Any]:
        """`all_pages`; a page the SDK read but refused (its version's schema) is asked for again,
        the answer then repaired (`hub.downstream.listing_repair`: what it cannot read left out).
        One item per name (URI) is kept (`_one_of_each`)."""
        try:
            items = await all_pages(fetch, meta, kind)
        except ValidationError as exc:
            if self.listings is None or exc.error_count() > MAX_BAD_ITEMS:
                raise  # past repair: the whole list fails, as it would have
            self.listings.arm(METHOD_OF_KIND[kind])
            items = await all_pages(fetch, meta, kind)
        return self._one_of_each(items, kind)

    def _one_of_each(self, items: list[Any], kind: str) -> list[Any]:
        """A server that lists one name twice (its bug: names are its keys, and a call names only
        the tool) has one item per name served, the last (the one the SDK's client checks a call's
        result and headers against), and the others named in a warning once per server. Before, a
        tool listed twice kept every tool of the server out, and at start stopped the hub itself
        with a config error no config could fix."""
        kept, again = last_of_each(items, KEY_OF_KIND[kind])
        if again and len(self._listed_twice) < MAX_LISTED_TWICE:
            warned = {name for listed, name in self._listed_twice if listed == kind}
            distinct = sorted(set(again))
            # Masked (a resource URI may hold a password) and remembered: a bounded number only.
            new = [name for name in map(bounded_name, distinct[:MAX_LISTED_TWICE]) if name not in warned]
            self._listed_twice.update((kind, name) for name in new[:MAX_LISTED_TWICE - len(self._listed_twice)])
            if new:
                count = len(new) + max(0, len(distinct) - MAX_LISTED_TWICE)
                shown = ", ".join(repr(name) for name in new[:5]) + (f", and {count - 5} more" if count > 5 else "")
                self.log.warning("lists %d %s more than once (%s); serving the last of each, leaving out the "
                                 "others (a bug of the server: each should be listed once)",
                                 count, kind.replace("_", " "), shown)
        return kept

    async def _beside_tools(self, fetch: Callable[..., Awaitable[Any]], meta: dict[str, dict[str, Any]], kind: str) -> list[Any]:
        """A list other than tools, at connect: one the server declares but answers with an error,
        with a result that cannot be read even once repaired, or not before the connect deadline
        (many servers declare every capability and implement tools only), is served empty,
        with a warning, instead of keeping its tools out of the hub. Its next `list_changed` fetches
        it again."""
        # Up to the connect deadline, less a tenth of it: a hung list must not fail the connection.
        wait_s = max(0.05, anyio.current_effective_deadline() - anyio.current_time() - self.connect_timeout_s / 10)
        with anyio.move_on_after(wait_s):
            try:
                return await self._all_pages(fetch, meta, kind)
            except (MCPError, ValidationError) as exc:
                self.log.warning("declares %s but its list answer was %s (%s); serving its other lists without them",
                                 kind.replace("_", " "), "an error" if isinstance(exc, MCPError) else "not valid",
                                 describe_failure(exc))
                return []
        self.log.warning("declares %s but did not answer their list within %.1fs; serving its other lists without them",
                         kind.replace("_", " "), wait_s)
        return []

    async def refresh(self, kind: ListKind) -> None:
        """Refetch one list after the server announced a change, then tell the hub."""
        client = self._client
        if client is None:
            return
        try:
            meta = self.listing.meta
            if kind == "tools":
                self.listing.tools = await self._all_pages(client.list_tools, meta, "tools")
            elif kind == "resources":
                self.listing.resources = await self._all_pages(client.list_resources, meta, "resources")
                self.listing.resource_templates = await self._all_pages(client.list_resource_templates, meta, "resource_templates")
            else:
                self.listing.prompts = await self._all_pages(client.list_prompts, meta, "prompts")
        except Exception as exc:  # boundary: a failed refresh keeps the previous listing
            self.log.warning("could not refresh %s after a change: %s", kind, describe_failure(exc))
            return
        self.log.info("%s list changed", kind)
        if self._on_change is not None:
            await self._on_change(self, kind)

    def _refresh_soon(self, kind: ListKind) -> None:
        if kind in self._pending_refresh:
            return  # a refetch is already queued and will see this change too
        self._pending_refresh.add(kind)
        try:
            self._refresh_send.send_nowait(kind)
        except anyio.WouldBlock:
            self._pending_refresh.discard(kind)

    async def _refresh_worker(self) -> None:
        async for kind in self._refresh_recv:
            self._pending_refresh.discard(kind)
            await self.refresh(kind)

    async def _listen_for_changes(
        self, client: Client, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """2026-07-28: list changes come on a `subscriptions/listen` stream. Reports started once the
        server acknowledged the subscription (or refused it)."""
        caps = client.server_capabilities
        wanted = {
            "tools_list_changed": bool(caps.tools and caps.tools.list_changed),
            "resources_list_changed": bool(caps.resources and caps.resources.list_changed),
            "prompts_list_changed": bool(caps.prompts and caps.prompts.list_changed),
        }
        if not any(wanted.values()):
            task_status.started()
            return
        started = False
        try:
            async with client.listen(**wanted) as subscription:
                task_status.started()
                started = True
                async for event in subscription:
                    kind = event_kind(event)
                    if kind is not None:
                        self._refresh_soon(kind)
        except Exception as exc:  # boundary: no listen support just means no live updates
            self.log.debug("no subscriptions/listen stream: %s", describe_failure(exc))
        finally:
            if not started:
                task_status.started()


