"""A server's own names for its tools and resources, taken for the names the hub exposes them under.

An MCP App calls its server's tools and reads its server's resources by the names the server gave
them, as the app knows them — not `<namespace>__<tool>` or `mcphub://<namespace>/<uri>` — and hosts
pass those on unchanged (outside review, apps round 9: every app's button failed `not_found` through
the hub). So a name no tool is exposed under is taken for the caller's one tool whose server calls it
so, and an unprefixed URI for the one server of the caller's that lists it or has a template it
matches. Only when that is unambiguous, and safe (re-checks of apps round 9):
- only while every server the hub runs (all but those an operator stopped) is up and listed: a server
  starting or down could be the one the name meant, and its call must never run on another server;
- judged over every server that offered such a tool while the hub runs — one down or stopped now, or
  exposing the name itself (no namespace), still counts — but those up now that the caller may not
  see (and, on a profile, those outside it): their tools make no answer of the caller's differ;
- never a name with `__`, nor a URI under the hub's schemes (`mcphub://…`, `ui://<ns>__…`): they read as
  exposed ones; a tool name counts as offered even where the config withholds that tool;
- for a URI, a server that lists it wins over one whose template matches it, and while any server is
  stopped by an operator no URI resolves (nothing records which URIs a stopped server had).
The caller's access is checked as for any call; a name that resolves to nothing is answered as an
unknown one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hub.auth.principal import Principal
from hub.catalog.naming import SEPARATOR, split_uri
from hub.relay.scope import may_see_server

if TYPE_CHECKING:
    from hub.hub import Hub


def own_tool_name(hub: Hub, name: str, principal: Principal, keep: Callable[[str], bool] = lambda exposed: True) -> str | None:
    """The exposed name of the caller's one tool whose server calls it `name` (`keep`: a profile's
    own filter of exposed names), or None."""
    if SEPARATOR in name or hub.catalog.resolve_tool(name) is not None or not all_up(hub):
        return None
    routes = hub.catalog.routes_named(name)
    outside = {route.server for route in routes if not keep(route.exposed)}  # a profile's servers only
    offering = {server for server in hub.catalog.offered_by(name) if server not in outside
                and not (hub.catalog.serves(server) and not may_see_server(hub, principal, server))}
    if len(offering) != 1:
        return None
    mine = [route for route in routes if route.server in offering and hub.access.may_use_tool(principal, route)]
    return mine[0].exposed if len(mine) == 1 else None


async def await_own_tool_name(hub: Hub, name: str, principal: Principal,
                              keep: Callable[[str], bool] = lambda exposed: True) -> str | None:
    """`own_tool_name`, first waiting (bounded by `hub.list_wait_s`, as a first list does) for the servers
    still making their first connection: before it, not every server is up, and a call by an own name
    made before the session's first `tools/list` was refused while the same call after it ran (outside
    review search15 #6). Once the first listing is settled this never waits."""
    if SEPARATOR in name or hub.catalog.resolve_tool(name) is not None:
        return None
    if not all_up(hub):
        await hub.await_first_listing()
    return own_tool_name(hub, name, principal, keep)


def own_resource(hub: Hub, uri: str, principal: Principal) -> tuple[str, str] | None:
    """`(server, uri)` for an unprefixed URI of the caller's one readable server that lists it or has a
    template it matches, or None. For `resources/read` only: a subscription keeps to exposed URIs."""
    if split_uri(uri) is not None or not all_up(hub, stopped_too=True):
        return None  # an exposed-looking URI is never another server's own; a stopped server keeps its URIs
    readable = {name for name in hub.downstreams if hub.access.may_read(principal, name)}
    owners = hub.catalog.servers_owning(uri, readable)
    return (owners.pop(), uri) if len(owners) == 1 else None


def all_up(hub: Hub, stopped_too: bool = False) -> bool:
    """Whether every server the hub runs (all but those an operator stopped, unless `stopped_too`) is
    up and listed. Resources have no record of who offered a URI, so a stopped server stops them all."""
    return all(d.state == "ready" and hub.catalog.serves(name) for name, d in hub.downstreams.items()
               if stopped_too or d.state != "stopped")
