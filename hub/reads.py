"""What a principal may see of the catalog, and the reads, prompts and completions forwarded for it.

A mixin of `Hub` (`hub.hub`): lists are filtered per principal (a tool it may not use, a server it
may not read, is absent), and a read or prompt of something hidden is refused as unknown. Reads,
prompts and completions are asked of their server within a deadline, charged to the caller's rate
limit and holding a slot of the server's bulkhead as a tool call does (`hub.forwarded.admitted`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.shared.dispatcher import ProgressFnT

from hub.auth.principal import Principal
from hub.completions import forward_completion
from hub.downstream.connection import DownstreamUnavailable
from hub.downstream.listing import all_pages, last_of_each
from hub.downstream.owners import current_owner
from hub.downstream.request_deadline import request_deadline, within_deadline
from hub.catalog.links import expose_prompt
from hub.forwarded import ask, get_prompt, limits_of, on_live_session, read_resource
from hub.own_names import own_resource
from hub.calls.errors import sign_in_named
from hub.errors import HubToolError
from hub.catalog.naming import namespaced_uri
from hub.relay.scope import may_see_server

if TYPE_CHECKING:
    from hub.config import HubConfig
    from hub.policies.access import AccessControl
    from hub.catalog.catalog import ToolCatalog
    from hub.downstream.connection import Downstream

RESOURCE_NOT_FOUND = -32002
"""The JSON-RPC error code the spec names for an unknown resource URI."""


class HubReads:
    """The read side of the hub (see the module)."""

    config: HubConfig
    catalog: ToolCatalog
    access: AccessControl
    downstreams: dict[str, Downstream]

    async def await_first_listing(self, wait_s: float | None = None) -> None:
        raise NotImplementedError

    # -- what a principal may see ---------------------------------------------------------

    def visible_tools(self, principal: Principal) -> list[types.Tool]:
        return [r.tool for r in self.catalog.routes() if self.access.may_use_tool(principal, r)]

    def visible_resources(self, principal: Principal) -> list[types.Resource]:
        return [r for r in self.catalog.resources() if self._readable(principal, r.uri)]

    def visible_resource_templates(self, principal: Principal) -> list[types.ResourceTemplate]:
        return [t for t in self.catalog.resource_templates() if self._readable(principal, t.uri_template)]

    def visible_prompts(self, principal: Principal) -> list[types.Prompt]:
        out = []
        for prompt in self.catalog.prompts():
            target = self.catalog.resolve_prompt(prompt.name)
            if target and self.access.may_read(principal, target[0]):
                out.append(prompt)
        return out

    def list_meta(self, kind: str, principal: Principal) -> dict[str, Any] | None:
        """The `_meta` of a list answer for `principal`: the list `_meta` of the servers it may see
        (tools: may use one of its tools or read it; the others: may read it), merged (`ToolCatalog.list_meta`)."""
        if kind == "tools":
            return self.catalog.list_meta(kind, lambda server: may_see_server(self, principal, server))
        return self.catalog.list_meta(kind, lambda server: self.access.may_read(principal, server))

    def _readable(self, principal: Principal, uri: str) -> bool:
        target = self.catalog.resolve_uri(uri)
        return target is not None and self.access.may_read(principal, target[0])

    async def resources_for(self, principal: Principal) -> list[types.Resource]:
        """`visible_resources`, except that a `per_client` server's part is what the caller's own
        session lists (a session's resources are that client's only). A server that cannot give the
        caller a session (down, `max_sessions` reached) lists nothing for it — never the shared session's."""
        owner = current_owner()
        own = {name: d for name, d in self.downstreams.items()
               if owner is not None and d.pool is not None and self.access.may_read(principal, name)}
        if not own:
            return self.visible_resources(principal)
        by_server: dict[str, list[types.Resource]] = {}
        for resource in self.visible_resources(principal):
            server = (self.catalog.resolve_uri(str(resource.uri)) or ("",))[0]
            if server not in own:
                by_server.setdefault(server, []).append(resource)
        for name, downstream in own.items():
            if downstream.state != "ready":
                continue
            try:
                listed = await _own_listing(self.config, downstream)
            except (DownstreamUnavailable, HubToolError) as exc:  # down, `max_sessions`, `timeout`
                downstream.log.warning("resources not listed for a client: %s", exc)
                continue
            if listed is None:
                continue
            ns = downstream.config.namespace
            listed, _ = last_of_each(listed, "uri")  # as the shared session's listing (`changes._one_of_each`)
            by_server[name] = [r.model_copy(update={"uri": namespaced_uri(ns, str(r.uri))}) for r in listed]
        return [r for server in sorted(by_server) for r in by_server[server]]  # in server order, as `catalog.resources`

    # -- resources and prompts -------------------------------------------------------------

    async def read_resource(self, uri: str, principal: Principal | None = None, *,
                            progress: ProgressFnT | None = None) -> types.ReadResourceResult:
        """Read `uri` for `principal`; the server's progress to `progress` (the client sent a progressToken)."""
        await self.await_first_listing()  # a read before any list waits, as a list would, for servers connecting
        reader = principal or self.access.local
        target = self.catalog.resolve_uri(uri)
        if target is None or (target[1] == uri and not self.access.may_read(reader, target[0])):
            # an MCP App reads its server's resources by the server's own URIs (`hub.own_names`), also when
            # an unprefixed server the caller may not read would take every unprefixed URI
            target = own_resource(self, uri, reader) or target  # type: ignore[arg-type]
        if target is None or not self.access.may_read(reader, target[0]):
            raise MCPError(code=RESOURCE_NOT_FOUND, message=f"Resource not found: {uri}")
        server, original = target
        with sign_in_named(server):
            result = await ask(self.config, self.downstreams[server], reader, "resources/read",
                               lambda client, reported: read_resource(client, original, reported), progress,
                               limits=limits_of(self))
        return self._namespace_contents(server, result)

    def _namespace_contents(self, server: str, result: types.ReadResourceResult) -> types.ReadResourceResult:
        ns = self.downstreams[server].config.namespace
        contents = [c.model_copy(update={"uri": namespaced_uri(ns, c.uri)}) for c in result.contents]
        return result.model_copy(update={"contents": contents})

    async def get_prompt(
        self, name: str, arguments: dict[str, str] | None, principal: Principal | None = None, *,
        progress: ProgressFnT | None = None,
    ) -> types.GetPromptResult:
        """Prompt `name` for `principal`; the server's progress to `progress` (the client sent a progressToken)."""
        await self.await_first_listing()
        target = self.catalog.resolve_prompt(name)
        if target is None or not self.access.may_read(principal or self.access.local, target[0]):
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown prompt: {name}")
        server, original = target
        with sign_in_named(server):
            result = await ask(self.config, self.downstreams[server], principal or self.access.local, "prompts/get",
                               lambda client, reported: get_prompt(client, original, arguments, reported), progress,
                               limits=limits_of(self))
        return expose_prompt(result, self.downstreams[server].config.namespace)  # its resource links readable here

    async def complete(
        self,
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: dict[str, str],
        context: dict[str, str] | None,
        principal: Principal | None = None,
        *,
        progress: ProgressFnT | None = None,
    ) -> types.CompleteResult:
        """`completion/complete` (`argument` is `{"name", "value"}`) for what `principal` can see;
        anything else is refused as unknown (`hub.completions`). The server's progress to `progress`."""
        return await forward_completion(self, ref, argument, context, principal or self.access.local, progress)


async def _own_listing(config: HubConfig, downstream: Downstream) -> list[types.Resource] | None:
    """The resources the caller's own session of `downstream` lists (None: the server has none), all its
    pages within the deadline of one request (`hub.downstream.request_deadline`). A listing is safe
    to repeat: one the server answered "session not found" to is asked once more, on the new session
    (`hub.forwarded.on_live_session`), rather than listing nothing for that server."""

    async def listing(client: Client) -> list[types.Resource] | None:
        if client.server_capabilities.resources is None:
            return None
        return await all_pages(client.list_resources)

    seconds, setting = request_deadline(config.hub, downstream.config, "resources/list")
    return await within_deadline(downstream, "resources/list", on_live_session(downstream, listing), seconds, setting)
