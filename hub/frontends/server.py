"""The hub's own MCP server: the merged catalog as one low-level SDK `Server`.

Serves both protocol eras (the SDK picks per connection). List answers are paginated with
opaque cursors; list changes reach handshake-era clients as `notifications/*/list_changed` and
2026-07-28 clients on their `subscriptions/listen` streams.
"""

from __future__ import annotations

import base64
import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import mcp_types as types
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import PromptsListChanged, ResourcesListChanged, ToolsListChanged
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from hub import __version__
from hub.downstream.listing import ListKind
from hub.downstream.owners import bind_owner as owned_by
from hub.auth.principal import Principal, current_principal
from hub.errors import UrlElicitationRequired
from hub.hub import Hub, UnknownTool
from hub.profiles import ProfileView
from hub.search.front import SearchFront
from hub.relay.front import RelayFace, install_relay_handlers, progress_of
from hub.relay.logs import requested_level
from hub.relay.capabilities import declares_url_elicitation, relay_capable
from hub.trace_context import carried_trace
from hub.unknown_tool import unknown_tool_result
from hub.wire import WireResult, sdk_result

logger = logging.getLogger("hub.server")

_RELEASE_ON_CLOSE = "mcp-hub/release-on-close"
"""`Connection.state` key: its per-client downstream sessions are closed with it."""


class HubServer(RelayFace, Server[Any]):
    """A low-level `Server` that always advertises list-change notifications (and, through
    `RelayFace`, merged instructions and `resources.subscribe` worked out at each initialize)."""

    view: ProfileView | None = None
    """The profile this server serves (None: the whole catalog)."""
    session_connections: weakref.WeakValueDictionary[str, Connection]
    """Handshake-era HTTP session id → its connection, once it made a request (`HttpToolCalls` reads it)."""

    def get_capabilities(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
        *,
        protocol_version: str | None = None,
    ) -> types.ServerCapabilities:
        # The hub always forwards list changes, whatever options a transport passes in.
        return super().get_capabilities(
            NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True),
            experimental_capabilities,
            extensions,
            protocol_version=protocol_version,
        )


def encode_cursor(version: int, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{version}:{offset}".encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    """The offset a cursor points at; a malformed cursor is INVALID_PARAMS, as the spec names."""
    if not cursor:
        return 0
    try:
        _version, offset = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        value = int(offset)
        if value < 0:
            raise ValueError(cursor)
        return value
    except (ValueError, UnicodeDecodeError) as exc:
        raise MCPError(code=types.INVALID_PARAMS, message="Invalid cursor: pass a next_cursor from a previous page") from exc


def page(items: list[Any], cursor: str | None, size: int, version: int) -> tuple[list[Any], str | None]:
    start = decode_cursor(cursor)
    chunk = items[start : start + size]
    end = start + len(chunk)
    return chunk, encode_cursor(version, end) if end < len(items) else None


class ClientRegistry:
    """Handshake-era client connections, so list changes can be pushed to each of them.

    Held weakly: a connection whose session ended (closed, expired or evicted by the HTTP
    session caps) drops out by itself, so the registry never keeps a dead session's memory."""

    MAX_CONNECTIONS = 4096
    """Most recently active connections kept; older ones are forgotten."""

    _METHODS: dict[ListKind, str] = {
        "tools": "notifications/tools/list_changed",
        "resources": "notifications/resources/list_changed",
        "prompts": "notifications/prompts/list_changed",
    }

    def __init__(self, version: Callable[[], int]) -> None:
        self._connections: OrderedDict[int, weakref.ref[Connection]] = OrderedDict()
        self._version = version
        self._seen: dict[tuple[int, ListKind], int] = {}
        """(connection, kind) → the catalog version its last list answer was made from."""

    def listed(self, ctx: ServerRequestContext[Any, Any], kind: ListKind) -> None:
        """Note that this connection was just answered a `kind` list from the current catalog: a change
        it already saw is not announced to it again (an old-era client that closes its session right
        after listing, as langchain-mcp-adapters does, fails on a notification arriving after the close)."""
        connection = getattr(ctx.session, "_connection", None)
        if connection is not None and id(connection) in self._connections:
            self._seen[(id(connection), kind)] = self._version()

    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            connection: Connection | None = getattr(ctx.session, "_connection", None)  # no public accessor
            if connection is not None and connection.has_standalone_channel:
                key = id(connection)
                if key not in self._connections:
                    self._connections[key] = weakref.ref(connection, lambda _, key=key: self._forget(key))
                self._connections.move_to_end(key)
                while len(self._connections) > self.MAX_CONNECTIONS:
                    self._connections.popitem(last=False)
        return await call_next(ctx)

    def _forget(self, key: int) -> None:
        self._connections.pop(key, None)
        for kind in self._METHODS:
            self._seen.pop((key, kind), None)

    async def broadcast(self, kind: ListKind, *, everyone: bool = False) -> None:
        """Tell connections that a `kind` list changed; without `everyone`, only those whose last
        list of that kind predates this replica's current catalog. (A change on another replica
        leaves this replica's catalog version as it was: that one goes to everyone.)"""
        current = self._version()
        for key, ref in list(self._connections.items()):
            connection = ref()
            if connection is not None and (everyone or self._seen.get((key, kind), -1) < current):
                await connection.notify(self._METHODS[kind], None)  # best effort: never raises


def build_server(hub: Hub, view: ProfileView | None = None) -> HubServer:
    """The MCP server clients talk to; every handler delegates to `hub`. With a profile `view`, tools are
    that profile's only, under its names (`hub.profiles`); a name outside it is an unknown tool."""
    page_size = hub.config.hub.page_size
    catalog = hub.catalog
    bus = InMemorySubscriptionBus()
    clients = ClientRegistry(lambda: hub.catalog.version)

    def caller() -> Principal:
        return current_principal(hub.access.local)

    search = SearchFront(hub, view)

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        await hub.await_first_listing()  # the first answer waits (bounded) for servers still connecting
        principal = caller()
        visible = (search.tools(ctx.session, principal) if search.active(principal)
                   else view.tools(principal, ctx.protocol_version) if view is not None else hub.visible_tools(principal))
        visible = hub.request_relay.tasks.offer.listable(visible, ctx.protocol_version, search.resolve)  # task-only tools it can call
        tools, next_cursor = page(visible, params.cursor if params else None, page_size, catalog.version)
        clients.listed(ctx, "tools")
        return types.ListToolsResult(tools=tools, next_cursor=next_cursor, meta=hub.list_meta("tools", principal))

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        async def progress(value: float, total: float | None, message: str | None) -> None:
            # A no-op when this caller did not ask for progress.
            await ctx.session.report_progress(value, total, message)

        # `_meta.traceparent` is the ambient trace context already (the SDK's server puts it there); with
        # tracing on, the HTTP `traceparent` (and `tracestate`) headers are the fallback (`hub.telemetry`).
        traced = (carried_trace(ctx.request.headers.get)
                  if hub.tracing is not None and ctx.request is not None else None)
        if search.active(caller()) and (answered := await search.call(ctx.session, params.name, params.arguments,
                                                                      caller(), progress, traced)) is not None:
            return answered  # type: ignore[return-value]
        name = await search.target(params.name, caller(), ctx.protocol_version)  # exposed or own name, as `call_tool` resolves it
        if name is None:  # outside the profile: exactly what an unknown tool gets, charged and audited as one
            refused = await hub.refuse_call(params.name, params.arguments, caller())
            return refused if refused is not None else unknown_tool_result(hub, params.name, caller(), view)

        raw = dict(ctx.params or {})
        log_level = requested_level(ctx.protocol_version, raw.get("_meta"))  # a 2026-07-28 log opt-in, or None

        async def send_log(message: types.LoggingMessageNotificationParams) -> None:
            await ctx.session.send_log_message(message.level, message.data, message.logger, related_request_id=ctx.request_id)

        connection = getattr(ctx.session, "_connection", None)
        set_level = log_level is None and hub.log_relay.listens(connection)  # a handshake-era `logging/setLevel` client

        async def routed(report: Any, park: Any = None, log: Any = send_log) -> Any:
            if park is not None or log_level is not None or set_level or relay_capable(ctx.session):
                await hub.await_first_listing()  # its server may be connecting still: tracking needs the route
            route = catalog.resolve_tool(name) if log_level is not None or set_level else None
            try:
                # A client able to answer sampling/elicitation/roots is tracked while its call runs; one that
                # opted in to log messages gets its server's, those of its call on the call's stream (`hub.relay`).
                listens = (hub.log_relay.streaming(route.server if route else "", connection, log) if set_level else
                           hub.log_relay.listening(route.server if route else "", log_level if route else None,
                                                   caller(), connection, log))
                async with hub.request_relay.tracking(name, ctx.session, ctx.request_id, caller(), park):
                    with listens:
                        result = await hub.route_call(name, params.arguments, report, traced, principal=caller(), wire=True,
                                                      memory_awaited=True, url_required=declares_url_elicitation(ctx.session))
            except UnknownTool:  # or hidden from this caller: the same `not_found` result (`hub.unknown_tool`)
                return unknown_tool_result(hub, params.name, caller(), view)
            except UrlElicitationRequired as required:  # the server's -32042, whole; its completions to this client
                raise sign_in_required(ctx, required) from None
            # A result relayed as JSON goes back as the dict it is: the SDK's runner takes a dict from a
            # handler and checks it against the negotiated version, so parsing it here would only add a
            # model build and a dump.
            return sdk_result(result, ctx.request) if isinstance(result, WireResult) else result

        inputs = hub.request_relay.input_required  # 2026-07-28 clients answer a server's requests in later legs
        if inputs.applies(ctx.protocol_version, ctx.session, raw):
            return await inputs.call(raw, name, caller(), progress,
                                     lambda parked: routed(parked.progress, parked.ask, parked.send_log), send_log)
        return await routed(progress)  # type: ignore[no-any-return]

    async def list_resources(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        await hub.await_first_listing()
        items, next_cursor = page(await hub.resources_for(caller()), params.cursor if params else None, page_size, catalog.version)
        clients.listed(ctx, "resources")
        return types.ListResourcesResult(resources=items, next_cursor=next_cursor, meta=hub.list_meta("resources", caller()))

    async def list_templates(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        await hub.await_first_listing()
        items, next_cursor = page(
            hub.visible_resource_templates(caller()), params.cursor if params else None, page_size, catalog.version
        )
        return types.ListResourceTemplatesResult(resource_templates=items, next_cursor=next_cursor,
                                                 meta=hub.list_meta("resource_templates", caller()))

    def sign_in_required(ctx: ServerRequestContext[Any], required: UrlElicitationRequired) -> MCPError:
        """A server's -32042 as the JSON-RPC error it sent (its first elicitations); their completion
        notices will go to this client, if it declared URL-mode elicitation (`hub.relay.url_elicitations`)."""
        if declares_url_elicitation(ctx.session):
            hub.request_relay.url_elicitations.required(required.server, [e.elicitation_id for e in required.elicitations],
                                                        ctx.session, caller())
        return required.as_mcp_error()

    def request_logs(ctx: ServerRequestContext[Any], target: tuple[str, str] | None) -> AbstractContextManager[None]:
        """While a prompt, read or completion runs: its server's log messages at or above the level a
        2026-07-28 client named in that request's `_meta`, on the request's own stream, as for a call
        (`hub.relay.logs`); a shared no-op for a request that did not opt in."""
        level = requested_level(ctx.protocol_version, dict(ctx.params or {}).get("_meta")) if target else None
        if level is None or target is None:
            return nullcontext()

        async def send_log(message: types.LoggingMessageNotificationParams) -> None:
            await ctx.session.send_log_message(message.level, message.data, message.logger, related_request_id=ctx.request_id)

        return hub.log_relay.listening(target[0], level, caller(), getattr(ctx.session, "_connection", None), send_log)

    async def read_resource(ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        try:
            with request_logs(ctx, catalog.resolve_uri(str(params.uri))):
                return await hub.read_resource(str(params.uri), caller(), progress=progress_of(ctx))
        except UrlElicitationRequired as required:
            raise sign_in_required(ctx, required) from None

    async def list_prompts(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        await hub.await_first_listing()
        items, next_cursor = page(hub.visible_prompts(caller()), params.cursor if params else None, page_size, catalog.version)
        clients.listed(ctx, "prompts")
        return types.ListPromptsResult(prompts=items, next_cursor=next_cursor, meta=hub.list_meta("prompts", caller()))

    async def get_prompt(ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams) -> types.GetPromptResult:
        try:
            with request_logs(ctx, catalog.resolve_prompt(params.name)):
                return await hub.get_prompt(params.name, params.arguments, caller(), progress=progress_of(ctx))
        except UrlElicitationRequired as required:
            raise sign_in_required(ctx, required) from None

    async def complete(ctx: ServerRequestContext[Any], params: types.CompleteRequestParams) -> types.CompleteResult:
        context = params.context.arguments if params.context else None
        argument = {"name": params.argument.name, "value": params.argument.value}
        ref = params.ref
        target = catalog.resolve_prompt(ref.name) if isinstance(ref, types.PromptReference) else catalog.resolve_uri(ref.uri)
        with request_logs(ctx, target):
            return await hub.complete(ref, argument, context, caller(), progress=progress_of(ctx))

    def input_schema(name: str) -> dict[str, Any] | None:
        exposed = search.resolve(name)
        route = catalog.resolve_tool(exposed) if exposed is not None else None
        return route.tool.input_schema if route is not None else None

    server = HubServer(
        hub.config.hub.name,
        version=__version__,
        instructions="Tools from several systems, namespaced as <server>__<tool>.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_completion=complete,
        # Listen streams also hold their resource URIs downstream (`hub.relay.subscriptions`).
        on_subscriptions_listen=hub.subscriptions.listen_handler(bus, caller),
        # Without this the SDK lists every tool (through our handler) on each 2026-era HTTP tools/call
        # to check Mcp-Param headers; a catalog lookup answers the same question in O(1).
        get_tool_input_schema=input_schema,
    )
    server.middleware.append(clients.middleware)
    server.view = view
    server.session_connections = weakref.WeakValueDictionary()

    async def bind_owner(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """The request's upstream connection as `current_owner`: a `per_client` server gives it its own
        session. A 2026-07-28 request has no session beyond itself: its downstream sessions are released
        when it is answered (a call parked for input-required keeps its session until it finishes); a
        stdio server's is then lent to the same caller's next such request (`SessionPool`)."""
        connection = getattr(ctx.session, "_connection", None)  # no public accessor
        if (connection is not None and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
                and not connection.state.get(_RELEASE_ON_CLOSE)):
            if connection.session_id is not None:  # a Streamable HTTP session: its calls may take the fast path
                server.session_connections[connection.session_id] = connection
            # The connection's teardown (stdio EOF, legacy SSE stream closed, Streamable HTTP DELETE or
            # expiry) closes its per-client downstream sessions at once, not at garbage collection.
            connection.state[_RELEASE_ON_CLOSE] = True
            connection.exit_stack.callback(hub.release_owner, connection)
        stateless = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        with owned_by(connection, principal=caller(), stateless=stateless):
            try:
                return await call_next(ctx)
            finally:
                if connection is not None and stateless:
                    hub.release_owner(connection)

    server.middleware.append(bind_owner)
    # logging/setLevel, roots changes, task-augmented calls resolved as plain ones (`hub.relay`)
    install_relay_handlers(server, hub, caller, search.task_target, view)

    async def announce(kind: ListKind, everyone: bool = False) -> None:
        event = {"tools": ToolsListChanged, "resources": ResourcesListChanged, "prompts": PromptsListChanged}[kind]()
        await bus.publish(event)
        await clients.broadcast(kind, everyone=everyone)

    async def announce_from_elsewhere(kind: ListKind) -> None:
        await announce(kind, everyone=True)

    hub.add_change_listener(announce)
    if hub.cluster_notify is not None:  # other replicas' list changes reach this replica's streams
        hub.cluster_notify.on_list_changed(announce_from_elsewhere)
    return server
