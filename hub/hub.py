"""The hub: connects every configured server, keeps the catalog, and routes calls.

`async with Hub(config) as hub:` connects all enabled downstreams concurrently; one that fails to
start is reported (name + reason) and the others serve. Names two servers would both expose
are a config error at start. `route_call` is the single call path: look up, validate, run the
policy chain, forward.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import anyio
import mcp_types as types
from jsonschema.exceptions import SchemaError
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError

from hub.catalog import CatalogConflict, ToolCatalog, ToolRoute
from hub.config import ConfigError, ConfigProblem, HubConfig
from hub.downstream.connection import Downstream, DownstreamUnavailable, ListKind, describe_failure
from hub.errors import HubToolError
from hub.naming import namespaced_uri
from hub.policies import CallPolicy, ToolCall, compose, deadline_policy

logger = logging.getLogger("hub")

RESOURCE_NOT_FOUND = -32002
"""The JSON-RPC error code the spec names for an unknown resource URI."""
RESERVED_META_PREFIX = "io.modelcontextprotocol/"

ChangeListener = Callable[[ListKind], Awaitable[None]]


class UnknownTool(Exception):
    """No exposed tool has this name (or the caller may not see it)."""


class Hub:
    """The gateway core, independent of how clients reach it."""

    def __init__(self, config: HubConfig, policies: Sequence[CallPolicy] | None = None) -> None:
        self.config = config
        self.catalog = ToolCatalog(config.hub.name_budget)
        self.downstreams: dict[str, Downstream] = {
            s.name: Downstream(s, on_change=self._on_downstream_change) for s in config.enabled_servers()
        }
        self._policies: list[CallPolicy] = list(policies) if policies is not None else [deadline_policy]
        self._chain = compose(self._policies, self._forward)
        self._listeners: list[ChangeListener] = []
        self._task_group: anyio.abc.TaskGroup | None = None
        self._exit_stack = AsyncExitStack()

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Hub:
        self._task_group = await self._exit_stack.enter_async_context(anyio.create_task_group())
        try:
            await self._start_all()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for downstream in self.downstreams.values():
            downstream.stop()
        self._task_group = None
        await self._exit_stack.aclose()

    async def _start_all(self) -> None:
        assert self._task_group is not None
        timeout = self.config.hub.connect_timeout_s

        async def start(downstream: Downstream) -> None:
            assert self._task_group is not None
            with anyio.move_on_after(timeout) as scope:
                await self._task_group.start(downstream.run)
            if scope.cancelled_caught:
                downstream.error = f"did not finish connecting within {timeout:g}s"
                downstream.state = "failed"
                downstream.log.error("unavailable: %s", downstream.error)
                downstream.stop()

        async with anyio.create_task_group() as starters:
            for downstream in self.downstreams.values():
                starters.start_soon(start, downstream)

        problems: list[ConfigProblem] = []
        for downstream in self.downstreams.values():
            if downstream.state != "ready":
                continue
            try:
                self.catalog.set_server(downstream.config, downstream.listing)
            except CatalogConflict as exc:
                problems.append(ConfigProblem(path=f"$.mcpServers.{downstream.name}", message=str(exc)))
        if problems:
            raise ConfigError(problems, "the hub config")
        ready = [d.name for d in self.downstreams.values() if d.state == "ready"]
        failed = {d.name: d.error for d in self.downstreams.values() if d.state != "ready"}
        logger.info("serving %d tools from %d server(s); failed: %s", len(self.catalog.tools()), len(ready), failed or "none")

    # -- change propagation ----------------------------------------------------------------

    def add_change_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    async def _on_downstream_change(self, downstream: Downstream, kind: ListKind) -> None:
        before = self.catalog.version
        try:
            self.catalog.set_server(downstream.config, downstream.listing)
        except CatalogConflict as exc:
            downstream.log.error("kept the previous listing: %s", exc)
            return
        if self.catalog.version != before:
            for listener in list(self._listeners):
                try:
                    await listener(kind)
                except Exception as exc:  # boundary: one broken client must not stop the others
                    logger.warning("could not notify a client of a %s change: %s", kind, describe_failure(exc))

    # -- calls -----------------------------------------------------------------------------

    def status(self) -> dict[str, dict[str, Any]]:
        return {name: {"state": d.state, "error": d.error} for name, d in self.downstreams.items()}

    def deadline_for(self, route: ToolRoute) -> float:
        server = self.downstreams[route.server].config
        return server.timeout_s or self.config.hub.timeout_s

    async def route_call(
        self,
        name: str,
        arguments: dict[str, Any] | None,
        progress: ProgressFnT | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> types.CallToolResult:
        """Route one `tools/call`. Raises `UnknownTool`; every other failure is an `isError` result."""
        route = self.catalog.resolve_tool(name)
        if route is None:
            raise UnknownTool(name)
        arguments = arguments or {}
        call = ToolCall(route, arguments, self.deadline_for(route), progress, dict(attributes or {}))
        try:
            self._validate(route, arguments)
            return await self._chain(call)
        except HubToolError as exc:
            return exc.to_result()

    def _validate(self, route: ToolRoute, arguments: dict[str, Any]) -> None:
        try:
            errors = sorted(self.catalog.validator(route).iter_errors(arguments), key=lambda e: list(e.path))
        except SchemaError as exc:
            logger.warning("%s has an invalid inputSchema; arguments not validated: %s", route.exposed, exc.message)
            return
        if not errors:
            return
        problems = [{"field": _field_path(e.absolute_path) or "(arguments)", "problem": e.message} for e in errors[:10]]
        first = problems[0]
        raise HubToolError(
            "invalid_argument",
            f"invalid arguments for {route.exposed}: {first['field']}: {first['problem']}",
            details={"errors": problems},
        )

    async def _forward(self, call: ToolCall) -> types.CallToolResult:
        downstream = self.downstreams[call.route.server]
        try:
            result = await downstream.call_tool(call.route.original, call.arguments, call.progress)
            return strip_protocol_meta(result)
        except DownstreamUnavailable as exc:
            raise HubToolError("unavailable", f"{exc}; try again later", details={"server": downstream.name}) from exc
        except MCPError as exc:
            if exc.code == types.CONNECTION_CLOSED:
                reason = await downstream.loss_reason(wait_s=1.0)
                raise HubToolError(
                    "unavailable",
                    f"lost the connection to server {downstream.name!r} ({reason or 'connection closed'}); "
                    "try again later",
                    details={"server": downstream.name},
                ) from exc
            code = "invalid_argument" if exc.code == types.INVALID_PARAMS else "upstream_error"
            raise HubToolError(
                code,
                f"server {downstream.name!r} rejected the call: {exc.error.message}",
                details={"server": downstream.name, "jsonrpc_code": exc.code},
            ) from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise HubToolError(
                "unavailable",
                f"lost the connection to server {downstream.name!r}: {describe_failure(exc)}",
                details={"server": downstream.name},
            ) from exc
        except RuntimeError as exc:
            raise HubToolError(
                "upstream_error",
                f"server {downstream.name!r} returned an invalid result: {describe_failure(exc)}",
                details={"server": downstream.name},
            ) from exc

    # -- resources and prompts -------------------------------------------------------------

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        target = self.catalog.resolve_uri(uri)
        if target is None:
            raise MCPError(code=RESOURCE_NOT_FOUND, message=f"Resource not found: {uri}")
        server, original = target
        client = self._client_or_error(server)
        result = await client.read_resource(original)
        return self._namespace_contents(server, result)

    def _namespace_contents(self, server: str, result: types.ReadResourceResult) -> types.ReadResourceResult:
        ns = self.downstreams[server].config.namespace
        contents = [c.model_copy(update={"uri": namespaced_uri(ns, c.uri)}) for c in result.contents]
        return result.model_copy(update={"contents": contents})

    async def get_prompt(self, name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
        target = self.catalog.resolve_prompt(name)
        if target is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown prompt: {name}")
        server, original = target
        return await self._client_or_error(server).get_prompt(original, arguments)

    async def complete(
        self,
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: dict[str, str],
        context: dict[str, str] | None,
    ) -> types.CompleteResult:
        if isinstance(ref, types.PromptReference):
            target = self.catalog.resolve_prompt(ref.name)
            new_ref: Any = ref.model_copy(update={"name": target[1]}) if target else None
        else:
            target = self.catalog.resolve_uri(ref.uri)
            new_ref = ref.model_copy(update={"uri": target[1]}) if target else None
        empty = types.CompleteResult(completion=types.Completion(values=[]))
        if target is None:
            return empty
        client = self._client_or_error(target[0])
        if client.server_capabilities.completions is None:
            return empty  # the server offers no completions; "no suggestions" is the honest answer
        return await client.complete(new_ref, argument, context_arguments=context)

    def _client_or_error(self, server: str) -> Any:
        try:
            return self.downstreams[server].client()
        except DownstreamUnavailable as exc:
            raise MCPError(code=types.INTERNAL_ERROR, message=f"{exc}; try again later") from exc


def strip_protocol_meta(result: types.CallToolResult) -> types.CallToolResult:
    """Drop the downstream's reserved `io.modelcontextprotocol/*` `_meta` keys (e.g. its serverInfo
    stamp): those describe the hop to the downstream, not the hop to our client. Other keys pass."""
    if not result.meta:
        return result
    kept = {k: v for k, v in result.meta.items() if not k.startswith(RESERVED_META_PREFIX)}
    return result.model_copy(update={"meta": kept or None})


def _field_path(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
