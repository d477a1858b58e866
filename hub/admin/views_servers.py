"""Servers page: each downstream's health and counters, with restart and enable/disable actions.

A server disabled here is stopped and its tools withdrawn until it is enabled again or the hub
restarts (the config file stays the source of truth); a server disabled in the config is listed
but can only be enabled there. Every action is written to the audit log as `admin:<verb>`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub.admin.console import Console
from hub.admin.session import AdminSession

VERBS = ("restart", "disable", "enable")


async def servers(console: Console, request: Request, session: AdminSession) -> Response:
    hub = console.hub
    status = hub.status()
    tool_counts: dict[str, int] = {}
    for route in hub.catalog.routes():
        tool_counts[route.server] = tool_counts.get(route.server, 0) + 1
    rows = []
    for name, s in status.items():
        downstream = hub.downstreams[name]
        rows.append({"name": name, **s, "tools": tool_counts.get(name, 0), "transport": downstream.config.transport,
                     "disabled": downstream.state == "stopped"})
    off = [s.name for s in hub.config.servers if not s.enabled]
    return console.render(request, "servers.html", session, page="servers", rows=rows, config_disabled=off,
                          notice=request.query_params.get("notice"))


async def act(console: Console, request: Request, session: AdminSession) -> Response:
    name, verb = request.path_params["name"], request.path_params["verb"]
    downstream = console.hub.downstreams.get(name)
    if verb not in VERBS or downstream is None:
        return console.render(request, "error.html", session, status=404, title="No such server or action",
                              message=f"There is no running server {name[:80]!r} or no action {verb[:20]!r}; "
                                      "go back to Servers and pick one from the table.")
    if verb == "restart":
        downstream.restart(f"restarted from the admin console by {session.principal}")
    else:
        console.hub.set_server_enabled(name, verb == "enable")
    console.audit(session, verb, name, {"server": name})
    return RedirectResponse(f"/admin/servers?notice={verb}:{name}", status_code=303)
