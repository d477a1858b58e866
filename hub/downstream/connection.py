"""One downstream MCP server as the hub sees it: connect, discover, call, follow list changes.

The transport (stdio child, Streamable HTTP, legacy SSE, in-process) is picked from the config;
the protocol era is negotiated by the SDK client (`mode="auto"` probes `server/discover` and
falls back to the 2025-11-25 initialize handshake). List changes arrive as legacy
`notifications/*/list_changed` or, on 2026-07-28 connections, over a `subscriptions/listen`
stream; either way the server's part of the catalog is refetched and `on_change` is called.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.dispatcher import ProgressFnT
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from hub.config import ServerConfig
from hub.downstream.inprocess import load_server_object
from hub.downstream.stdio import stdio_child

logger = logging.getLogger("hub.downstream")

MAX_LIST_PAGES = 100
ListKind = Literal["tools", "resources", "prompts"]
State = Literal["starting", "ready", "failed", "stopped"]


@dataclass
class Listing:
    """What a server offers, fetched page by page at connect and after each list change."""

    tools: list[types.Tool] = field(default_factory=list)
    resources: list[types.Resource] = field(default_factory=list)
    resource_templates: list[types.ResourceTemplate] = field(default_factory=list)
    prompts: list[types.Prompt] = field(default_factory=list)


class DownstreamUnavailable(Exception):
    """The server is not connected (failed to start, exited, or stopped)."""


class Downstream:
    """A live connection to one configured server."""

    def __init__(
        self,
        config: ServerConfig,
        on_change: Callable[[Downstream, ListKind], Awaitable[None]] | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.state: State = "starting"
        self.error: str | None = None
        self.listing = Listing()
        self._client: Client | None = None
        self._on_change = on_change
        self._stop = anyio.Event()
        self._lost = anyio.Event()
        self._pending_refresh: set[ListKind] = set()
        self._refresh_send, self._refresh_recv = anyio.create_memory_object_stream[ListKind](8)
        self.log = logging.getLogger(f"hub.downstream.{self.name}")

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect and discover, report started (success or failure), then serve until stopped."""
        started = False
        try:
            async with self._make_client() as client:
                await self._discover(client)
                self._client = client
                self.state = "ready"
                self.log.info(
                    "connected protocol=%s tools=%d resources=%d prompts=%d",
                    client.protocol_version,
                    len(self.listing.tools),
                    len(self.listing.resources) + len(self.listing.resource_templates),
                    len(self.listing.prompts),
                )
                task_status.started()
                started = True
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._refresh_worker)
                    if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                        tg.start_soon(self._listen_for_changes, client)
                    with anyio.CancelScope() as scope:
                        tg.start_soon(_set_when, self._stop, scope)
                        tg.start_soon(_set_when, self._lost, scope)
                        await anyio.sleep_forever()
                    tg.cancel_scope.cancel()
        except Exception as exc:  # boundary: any connect failure is reported, never raised to the hub
            if not (self._lost.is_set() and self.error):
                self.error = describe_failure(exc)
            self.state = "failed"
            self.log.error("unavailable: %s", self.error)
        finally:
            self._client = None
            if self.state == "ready":
                self.state = "failed" if self._lost.is_set() and not self._stop.is_set() else "stopped"
            if not started:
                task_status.started()

    @property
    def protocol_version(self) -> str | None:
        """The protocol version negotiated with this server, while connected."""
        return self._client.protocol_version if self._client is not None else None

    def stop(self) -> None:
        self._stop.set()

    def _mark_lost(self, returncode: int | None, last_stderr: list[str]) -> None:
        if not self._stop.is_set():
            tail = f"; last stderr: {' | '.join(last_stderr)[-300:]}" if last_stderr else ""
            self.error = f"process exited with code {returncode}{tail}"
        self._lost.set()

    async def loss_reason(self, wait_s: float) -> str | None:
        """Why the connection ended, waiting briefly for a child's exit status to be known."""
        with anyio.move_on_after(wait_s):
            await self._lost.wait()
        return self.error

    def _make_client(self) -> Client:
        cfg = self.config
        transport: Any
        if cfg.transport == "stdio":
            assert cfg.command is not None
            transport = stdio_child(cfg.name, cfg.command, cfg.args, cfg.env, cfg.cwd, on_exit=self._mark_lost)
        elif cfg.transport == "streamable_http":
            assert cfg.url is not None
            transport = streamable_http_client(cfg.url, http_client=create_mcp_http_client(headers=cfg.headers))
        elif cfg.transport == "sse":
            assert cfg.url is not None
            transport = sse_client(cfg.url, headers=cfg.headers)
        else:
            transport = load_server_object(cfg)
        return Client(
            transport,
            mode=cfg.protocol,
            message_handler=self._on_message,
            cache=None,
            client_info=types.Implementation(name="mcp-hub", version="0.1.0"),
        )

    # -- discovery -------------------------------------------------------------------------

    async def _discover(self, client: Client) -> None:
        caps = client.server_capabilities
        listing = Listing()
        if caps.tools is not None:
            listing.tools = await _all_pages(client.list_tools)
        if caps.resources is not None:
            listing.resources = await _all_pages(client.list_resources)
            listing.resource_templates = await _all_pages(client.list_resource_templates)
        if caps.prompts is not None:
            listing.prompts = await _all_pages(client.list_prompts)
        self.listing = listing

    async def refresh(self, kind: ListKind) -> None:
        """Refetch one list after the server announced a change, then tell the hub."""
        client = self._client
        if client is None:
            return
        try:
            if kind == "tools":
                self.listing.tools = await _all_pages(client.list_tools)
            elif kind == "resources":
                self.listing.resources = await _all_pages(client.list_resources)
                self.listing.resource_templates = await _all_pages(client.list_resource_templates)
            else:
                self.listing.prompts = await _all_pages(client.list_prompts)
        except Exception as exc:  # boundary: a failed refresh keeps the previous listing
            self.log.warning("could not refresh %s after a change: %s", kind, describe_failure(exc))
            return
        self.log.info("%s list changed", kind)
        if self._on_change is not None:
            await self._on_change(self, kind)

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, Exception):
            self.log.warning("transport error: %s", describe_failure(message))
            return
        kind: ListKind | None = None
        if isinstance(message, types.ToolListChangedNotification):
            kind = "tools"
        elif isinstance(message, types.ResourceListChangedNotification):
            kind = "resources"
        elif isinstance(message, types.PromptListChangedNotification):
            kind = "prompts"
        if kind is not None:
            # Refetching inside the message handler would deadlock the session's reader.
            self._refresh_soon(kind)

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

    async def _listen_for_changes(self, client: Client) -> None:
        """2026-07-28: list changes come on a `subscriptions/listen` stream."""
        caps = client.server_capabilities
        try:
            async with client.listen(
                tools_list_changed=bool(caps.tools and caps.tools.list_changed),
                resources_list_changed=bool(caps.resources and caps.resources.list_changed),
                prompts_list_changed=bool(caps.prompts and caps.prompts.list_changed),
            ) as subscription:
                async for event in subscription:
                    kind = _event_kind(event)
                    if kind is not None:
                        self._refresh_soon(kind)
        except Exception as exc:  # boundary: no listen support just means no live updates
            self.log.debug("no subscriptions/listen stream: %s", describe_failure(exc))

    # -- calls -----------------------------------------------------------------------------

    def client(self) -> Client:
        if self._client is None or self.state != "ready" or self._lost.is_set():
            reason = self.error or self.state
            raise DownstreamUnavailable(f"server {self.name!r} is not connected ({reason})")
        return self._client

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None,
        progress: ProgressFnT | None = None,
    ) -> types.CallToolResult:
        client = self.client()
        return await client.call_tool(name, arguments, progress_callback=progress)


def _event_kind(event: object) -> ListKind | None:
    label = type(event).__name__
    if label.startswith("Tools"):
        return "tools"
    if label.startswith("Resources"):
        return "resources"
    if label.startswith("Prompts"):
        return "prompts"
    return None


async def _set_when(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _all_pages(fetch: Callable[..., Awaitable[Any]]) -> list[Any]:
    """Follow a list method's cursors to the end (bounded, so a broken paginator cannot hang us)."""
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(MAX_LIST_PAGES):
        page = await fetch(cursor=cursor)
        for attr in ("tools", "resources", "resource_templates", "prompts"):
            if hasattr(page, attr):
                items.extend(getattr(page, attr))
                break
        cursor = page.next_cursor
        if not cursor:
            return items
    logger.warning("stopped following pagination after %d pages", MAX_LIST_PAGES)
    return items


def describe_failure(exc: BaseException) -> str:
    """A one-line reason for a failure, unwrapping exception groups; never a traceback."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]

