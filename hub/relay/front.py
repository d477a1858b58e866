"""The hub server's side of the relay: `logging/setLevel`, `notifications/roots/list_changed`,
`resources/subscribe` / `unsubscribe`, and the capabilities and instructions each client is given.

Handlers are registered with the SDK's public `add_request_handler` / `add_notification_handler`
(the constructor's keyword arguments warn that logging and subscribe are deprecated in
2026-07-28; they are still what every handshake-era client uses)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp.server.runner import serve_dual_era_loop
from mcp.shared.dispatcher import ProgressFnT
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from hub.auth.principal import Principal
from hub.hub import Hub
from hub.relay.instructions import hub_instructions
from hub.wire import json_number

if TYPE_CHECKING:
    from hub.profiles import ProfileView


class RelayFace(Server[Any]):
    """What a client learns when it connects, worked out when it connects: `instructions` merged
    from the servers connected by then (`hub.relay.instructions`) and `resources.subscribe` while
    any server supports it (`hub.relay.subscriptions`). `run` therefore passes no prebuilt
    initialization options: the SDK runner builds them at each `initialize`."""

    relay_hub: Hub | None = None
    relay_caller: Callable[[], Principal] | None = None
    _own_instructions: str | None = None

    @property  # type: ignore[override]
    def instructions(self) -> str | None:
        if self.relay_hub is None or self.relay_caller is None:
            return self._own_instructions
        return hub_instructions(self.relay_hub, self.relay_caller(), self._own_instructions or "")

    @instructions.setter
    def instructions(self, value: str | None) -> None:
        self._own_instructions = value

    def get_capabilities(
        self,
        notification_options: Any = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
        *,
        protocol_version: str | None = None,
    ) -> types.ServerCapabilities:
        caps = super().get_capabilities(notification_options, experimental_capabilities, extensions,
                                        protocol_version=protocol_version)
        if self.relay_hub is None or protocol_version in MODERN_PROTOCOL_VERSIONS:
            return caps
        update: dict[str, Any] = {"tasks": self.relay_hub.request_relay.tasks.offer.advertised()}
        if caps.resources is not None:
            subscribe = self.relay_hub.subscriptions.advertised()
            update["resources"] = caps.resources.model_copy(update={"subscribe": subscribe})
        return caps.model_copy(update=update)

    async def run(self, read_stream: Any, write_stream: Any, initialization_options: Any = None,
                  raise_exceptions: bool = False) -> None:
        """`Server.run`, with the initialization options built at `initialize` (see the class)."""
        async with self.lifespan(self) as lifespan_context:
            await serve_dual_era_loop(self, read_stream, write_stream, lifespan_state=lifespan_context,
                                      init_options=None, raise_exceptions=raise_exceptions)


TaskTarget = Callable[[str, Principal], Awaitable[str | None]]
"""A face's resolution of a called name to the hub-wide tool (`SearchFront.task_target`); None: not a task call."""


def install_relay_handlers(server: Server[Any], hub: Hub, caller: Callable[[], Principal],
                           target: TaskTarget, view: ProfileView | None = None) -> None:
    """Answer `logging/setLevel` (so `logging` is advertised), `resources/subscribe` and
    `unsubscribe`, task-augmented `tools/call` and `tasks/*` (`hub.relay.tasks`), pass roots changes on, and
    note each client at its `initialized` (its roots answer requests made outside a call: `hub.relay.roots`).
    `target` resolves a task-augmented call's name as the face's plain calls are resolved; `view`: its profile."""
    if isinstance(server, RelayFace):
        server.relay_hub, server.relay_caller = hub, caller

    async def set_level(ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams) -> types.EmptyResult:
        connection = _connection_of(ctx)
        if connection is not None:
            await hub.log_relay.set_level(connection, params.level, caller())
        return types.EmptyResult()

    async def subscribe(ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams) -> types.EmptyResult:
        connection = _connection_of(ctx)
        if connection is not None:
            await hub.subscriptions.subscribe(connection, str(params.uri), caller())
        return types.EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        connection = _connection_of(ctx)
        if connection is not None:
            await hub.subscriptions.unsubscribe(connection, str(params.uri), caller())
        return types.EmptyResult()

    async def roots_changed(ctx: ServerRequestContext[Any], params: types.NotificationParams) -> None:
        await hub.request_relay.roots_notices.roots_changed(caller(), _connection_of(ctx))

    async def initialized(ctx: ServerRequestContext[Any], params: types.NotificationParams) -> None:
        hub.log_relay.arrived(_connection_of(ctx), caller())  # its servers' logs, until it sets a level
        await hub.request_relay.roots_notices.client_arrived(_connection_of(ctx), caller(), view)  # its roots, asked outside a call

    server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    server.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)
    server.add_notification_handler("notifications/roots/list_changed", types.NotificationParams, roots_changed)
    server.add_notification_handler("notifications/initialized", types.NotificationParams, initialized)
    install_task_handlers(server, hub, caller, target, view)


def install_task_handlers(server: Server[Any], hub: Hub, caller: Callable[[], Principal],
                          target: TaskTarget, view: ProfileView | None = None) -> None:
    """A task-augmented `tools/call` is answered by a middleware: the SDK checks a `tools/call` handler's
    result as a `CallToolResult`, which a `CreateTaskResult` is not. `tasks/*` are plain handlers (the
    SDK types them but does not dispatch them). The name is resolved by `target`, as the face's plain call
    resolves it: one the plain call refuses (outside the profile `view`) is answered by the plain call,
    never looked up in the whole catalog; `tasks/*` see only tasks created on this face."""
    tasks = hub.request_relay.tasks

    async def task_calls(ctx: ServerRequestContext[Any], call_next: CallNext) -> HandlerResult:
        params = ctx.params
        if ctx.method != "tools/call" or not isinstance(params, dict) or "task" not in params:
            return await call_next(ctx)
        name = params.get("name")
        if not isinstance(name, str):
            return await call_next(ctx)
        await hub.await_first_listing()  # as a list would: a server still connecting may own the tool
        # Listed from memory: its real listing, and whether it takes tasks, come with its session (`target` waits).
        exposed = await target(name, caller())
        if exposed is None or not tasks.wants_task(exposed, params, ctx.protocol_version):
            return await call_next(ctx)  # a plain call: outside the profile, refused there as an unknown name
        arguments = params.get("arguments")
        return await tasks.call(_connection_of(ctx), caller(), exposed, arguments if isinstance(arguments, dict) else None,
                                params["task"], asked=name, view=view, progress_token=_progress_token(params))

    async def get(ctx: ServerRequestContext[Any], params: types.GetTaskRequestParams) -> dict[str, Any]:
        return await tasks.forward(_connection_of(ctx), caller(), "tasks/get", params.task_id, view=view)

    async def result(ctx: ServerRequestContext[Any], params: types.GetTaskPayloadRequestParams) -> dict[str, Any]:
        return await tasks.forward(_connection_of(ctx), caller(), "tasks/result", params.task_id, ctx.session,
                                   ctx.request_id, view=view, progress=progress_of(ctx))

    async def cancel(ctx: ServerRequestContext[Any], params: types.CancelTaskRequestParams) -> dict[str, Any]:
        return await tasks.forward(_connection_of(ctx), caller(), "tasks/cancel", params.task_id, view=view)

    async def listed(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams) -> dict[str, Any]:
        return await tasks.list(_connection_of(ctx), caller(), view)

    server.middleware.append(task_calls)
    server.add_request_handler("tasks/get", types.GetTaskRequestParams, get)
    server.add_request_handler("tasks/result", types.GetTaskPayloadRequestParams, result)
    server.add_request_handler("tasks/cancel", types.CancelTaskRequestParams, cancel)
    server.add_request_handler("tasks/list", types.PaginatedRequestParams, listed)


def progress_of(ctx: ServerRequestContext[Any]) -> ProgressFnT | None:
    """The request's progress reporter when its client asked for progress (a `progressToken`, or an in-memory
    client's callback), else None: the server's progress for a forwarded prompt, read, completion or
    `tasks/result` goes back to the client (relay18 D4: it was dropped), and a server is never asked for
    progress nobody wants."""
    meta: Any = ctx.meta or {}
    outbound = getattr(ctx.session, "_request_outbound", None)  # no public accessor: the SDK's own reporter
    wanted = (meta.get("progress_token", meta.get("progressToken")) is not None
              or getattr(outbound, "_progress_token", None) is not None or getattr(outbound, "_on_progress", None) is not None)
    if not wanted:
        return None

    async def report(value: float, total: float | None, message: str | None) -> None:
        # the SDK client parses progress into floats: an integral value goes on as the integer it was (`json_number`)
        await ctx.session.report_progress(json_number(value), json_number(total) if total is not None else None, message)

    return report


def _progress_token(params: dict[str, Any]) -> str | int | None:
    """The request's `_meta.progressToken` (a string or an integer, never a boolean), else None."""
    meta = params.get("_meta")
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    return token if isinstance(token, str | int) and not isinstance(token, bool) else None


def _connection_of(ctx: ServerRequestContext[Any]) -> Any:
    """The client connection of a request (no public accessor; see hub.server.ClientRegistry)."""
    return getattr(ctx.session, "_connection", None)
