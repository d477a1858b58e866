"""Search mode on the hub's MCP face: meta-tools in `tools/list`, progressive discovery per session.

`SearchFront.tools(session, principal)` is what `tools/list` answers in search mode: the meta-tools,
then every tool a `search_tools` call of this session returned (still visible to the caller), in
the order found. After a search finds new tools the session gets `notifications/tools/list_changed`
so a client that re-lists sees them. A 2026-07-28 client has no session: it gets the meta-tools and
calls what it finds through `call_tool` (or directly by name).

`SearchFront.target` is the one way a name a caller calls becomes a hub-wide tool name, for
`call_tool` and for a direct `tools/call` alike (outside review search15 #6: on a profile `call_tool`
knew only the profile's names while `tools/call` also took the server's own name, so the tool a
model is told to use refused names the other path ran): the profile's (or hub's) exposed name, else
the caller's one tool its server calls so (`hub.own_names`, judged within the profile).
"""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.shared.dispatcher import ProgressFnT

from hub.auth.principal import Principal
from hub.downstream.connection import describe_failure
from hub.own_names import await_own_tool_name
from hub.unknown_tool import answering_view
from hub.calls.hub_tools import answer_hub_tool
from hub.search.meta import (CALL_TOOL, META_NAMES, SEARCH_TOOLS, call_arguments, meta_tools, not_callable, run_search,
                             search_mode_for, search_request)

if TYPE_CHECKING:
    from hub.hub import Hub
    from hub.profiles import ProfileView
    from hub.wire import ToolResult

logger = logging.getLogger("hub.search")

MAX_FOUND = 200
"""Tools a session's list keeps from its searches; the oldest found leave first."""


class SearchFront:
    """Answers `tools/list` and the meta-tool calls for callers in search mode."""

    def __init__(self, hub: Hub, view: ProfileView | None = None) -> None:
        self.hub = hub
        self.view = view
        """A profile: search and list only its tools, under its names (names found are the profile's)."""
        self._found: weakref.WeakKeyDictionary[Any, dict[str, None]] = weakref.WeakKeyDictionary()

    def active(self, principal: Principal) -> bool:
        return search_mode_for(self.hub, principal, self.view)

    def resolve(self, name: str, principal: Principal | None = None, protocol_version: str | None = None) -> str | None:
        """The hub-wide name of a name this face exposes (None: outside its profile, or past `principal`'s
        `max_tools` on it, counted for a client of `protocol_version` as its list is)."""
        return self.view.resolve(name, principal, protocol_version) if self.view is not None else name

    async def target(self, name: str, principal: Principal, protocol_version: str | None = None) -> str | None:
        """The hub-wide name a call of `name` goes to: this face's exposed name for it, else (no such tool
        here) the caller's one tool whose server calls it `name`, within the profile; None outside the
        profile. On the whole catalog an unknown name is returned as it is, for `Hub.route_call` to judge
        (a server still connecting may own it). Waits first for servers listed from memory that may own it."""
        answering_view.set(self.view)  # an unknown name's hint follows this face's mode (`hub.unknown_tool`)
        await self.hub.await_memory_servers(name, self.view is None)  # judged (profile included) by real listings
        exposed = self.resolve(name, principal, protocol_version)
        if exposed is None or self.hub.catalog.resolve_tool(exposed) is None:  # an own name (an MCP App's, a model's)?
            view = self.view
            keep = (lambda hub_wide: view.includes(hub_wide, principal, protocol_version)) if view is not None else (lambda hub_wide: True)
            exposed = await await_own_tool_name(self.hub, name, principal, keep) or exposed
        return exposed

    async def task_target(self, name: str, principal: Principal, protocol_version: str | None = None) -> str | None:
        """The hub-wide tool a task-augmented `tools/call` of `name` goes to, resolved exactly as a plain call's
        (`target`: the profile's names, own names within it); None when the plain call must answer it: a
        meta-tool in search mode, a name outside the profile (outside review policies17 #1: the task path
        looked names up in the whole catalog, so a profile's caller created tasks on tools outside it)."""
        if name in META_NAMES and self.active(principal):
            return None
        return await self.target(name, principal, protocol_version)

    def tools(self, session: Any, principal: Principal) -> list[types.Tool]:
        out = meta_tools()
        for name in self._session_found(session):
            exposed = self.resolve(name, principal, getattr(session, "protocol_version", None))
            route = self.hub.catalog.resolve_tool(exposed) if exposed is not None else None
            if route is not None and name not in META_NAMES and self.hub.access.may_use_tool(principal, route):
                out.append(route.tool if name == exposed else route.tool.model_copy(update={"name": name}))
        return out

    def _session_found(self, session: Any) -> dict[str, None]:
        """The names found on this client connection (the SDK builds a session object per request)."""
        connection = getattr(session, "_connection", session)
        try:
            return self._found.setdefault(connection, {})
        except TypeError:  # not weak-referenceable: nothing to remember it by
            return {}

    async def call(self, session: Any, name: str, arguments: dict[str, Any] | None, principal: Principal,
                   progress: ProgressFnT | None, traced: dict[str, str] | None = None) -> ToolResult | None:
        """Answer a meta-tool call; None for any other name (the normal path takes it). `traced`: the
        caller's trace context from the HTTP headers (`hub.trace_context`), for the tool `call_tool` calls."""
        arguments = arguments or {}
        if name == SEARCH_TOOLS:  # a call like any: rate limited and audited (`hub.calls.hub_tools`)
            request = search_request(arguments)
            names: list[str] = []

            async def run() -> types.CallToolResult:
                assert not isinstance(request, types.CallToolResult)
                result, hits = await run_search(self.hub, *request, principal, self.view,
                                                getattr(session, "protocol_version", None))  # as its tools/list
                names.extend(hits)
                return result

            problem = request if isinstance(request, types.CallToolResult) else None
            answer = await answer_hub_tool(self.hub, SEARCH_TOOLS, arguments, principal, problem, run)
            found = self._session_found(session)
            new = [n for n in names if n not in found]
            if new:
                found.update(dict.fromkeys(new))
                while len(found) > MAX_FOUND:
                    found.pop(next(iter(found)))
                await self._announce(session)
            return answer
        if name == CALL_TOOL:
            parsed = call_arguments(arguments)
            if isinstance(parsed, types.CallToolResult):  # its own arguments: audited as a direct call's would be
                return await answer_hub_tool(self.hub, CALL_TOOL, arguments, principal, parsed, None)
            target, inner = parsed
            from hub.hub import UnknownTool

            exposed = await self.target(target, principal)  # as a direct `tools/call` resolves it
            if exposed is None:  # outside the profile: refused (charged, audited) as an unknown name
                return await self.hub.refuse_call(target, inner, principal) or not_callable(target)
            try:
                return await self.hub.route_call(exposed, inner, progress, traced, principal=principal, memory_awaited=True)
            except UnknownTool:
                return not_callable(target)
        return None

    async def _announce(self, session: Any) -> None:
        send = getattr(session, "send_tool_list_changed", None)
        if send is None:
            return
        try:
            await send()
        except Exception as exc:  # boundary: a client that cannot take the notice still has its answer
            logger.debug("could not send tools/list_changed after a search: %s", describe_failure(exc))
