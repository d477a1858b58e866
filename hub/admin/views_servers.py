"""Servers page: each downstream's health and counters, with restart and enable/disable actions.

A server disabled here is stopped and its tools withdrawn until it is enabled again or the hub
restarts (the config file stays the source of truth); a server disabled in the config is listed
but can only be enabled there. Actions are applied in order and answered with what they did
(`hub.admin.actions`), on every replica when the cluster is set up (`hub.admin.cluster_actions`): done, they redirect to this page, which shows the answer once; refused, the
page is answered with 409 and the reason. Every action is audited as `admin:<verb>` with its result.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub.admin.actions import VERBS
from hub.admin.console import Console
from hub.admin.session import AdminSession


async def servers(console: Console, request: Request, session: AdminSession, refusal: str | None = None) -> Response:
    hub = console.hub
    status = hub.status()
    tool_counts: dict[str, int] = {}
    for route in hub.catalog.routes():
        tool_counts[route.server] = tool_counts.get(route.server, 0) + 1
    rows = []
    for name, s in status.items():
        downstream = hub.downstreams[name]
        rows.append({"name": name, **s, "tools": tool_counts.get(name, 0), "transport": downstream.config.transport,
                     "disabled": downstream.stopping})
    off = [s.name for s in hub.config.servers if not s.enabled]
    notice, session.notice = session.notice, None  # an action's answer, shown once
    return console.render(request, "servers.html", session, status=409 if refusal else 200, page="servers", rows=rows,
                          config_disabled=off, notice=notice, refusal=refusal)


async def act(console: Console, request: Request, session: AdminSession) -> Response:
    name = request.path_params["name"]
    verb = next((v for v in VERBS if v == request.path_params["verb"]), None)
    if verb is None or name not in console.hub.downstreams:
        asked = request.path_params["verb"]
        return console.render(request, "error.html", session, status=404, title="No such server or action",
                              message=f"There is no running server {name[:80]!r} or no action {asked[:20]!r}; "
                                      "go back to Servers and pick one from the table.")
    outcome = await console.actions.perform(name, verb, session.principal)
    done = outcome.local
    arguments = {"server": name, "result": done.result}
    if outcome.reached is not None or outcome.alone_because is not None:
        arguments["replicas"] = outcome.replicas  # answered/reached, this replica included
    if not outcome.applied:
        console.audit(session, verb, name, arguments, outcome="denied", error_code="conflict")
        refusal = (f"Not done: {verb} {name} — {done.message}" if not outcome.remote and outcome.alone_because is None
                   else f"Not done anywhere: {outcome.text()}")
        return await servers(console, request, session, refusal=refusal)
    console.audit(session, verb, name, arguments)
    session.notice = outcome.text()
    return RedirectResponse("/admin/servers", status_code=303)
