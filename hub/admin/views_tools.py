"""Tools page: the catalog as the hub exposes it, filtered by text, namespace and annotation, with
each tool's input schema and the scopes a caller needs.

The search box matches name and description, case-insensitively, every word (the catalog's
ranked tool search is for agents; an operator wants a predictable filter).
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from hub.admin.console import Console
from hub.admin.session import AdminSession
from hub.catalog.catalog import ToolRoute

ANNOTATIONS = {"read_only": "read-only", "destructive": "destructive", "idempotent": "idempotent",
               "open_world": "open world"}


async def tools(console: Console, request: Request, session: AdminSession) -> Response:
    hub = console.hub
    q = request.query_params.get("q", "").strip()[:200]
    ns = request.query_params.get("ns", "")
    hint = request.query_params.get("annotation", "")
    words = q.lower().split()
    namespaces = sorted({hub.downstreams[r.server].config.namespace or r.server for r in hub.catalog.routes()
                         if r.server in hub.downstreams})
    shown = []
    for route in sorted(hub.catalog.routes(), key=lambda r: r.exposed):
        config = hub.downstreams[route.server].config if route.server in hub.downstreams else None
        namespace = (config.namespace or route.server) if config else route.server
        hints = _hints(route)
        text = f"{route.exposed} {route.tool.description or ''}".lower()
        if words and not all(w in text for w in words):
            continue
        if ns and namespace != ns or hint and hint not in hints:
            continue
        shown.append({"name": route.exposed, "server": route.server, "namespace": namespace,
                      "description": route.tool.description or "", "hints": [ANNOTATIONS[h] for h in hints],
                      "scopes": " ".join(hub.access.tool_scopes(route)),
                      "schema": json.dumps(route.tool.input_schema, indent=2, sort_keys=True)})
    return console.render(request, "tools.html", session, page="tools", tools=shown, q=q, ns=ns, annotation=hint,
                          namespaces=namespaces, annotations=ANNOTATIONS, total=len(hub.catalog.routes()))


def _hints(route: ToolRoute) -> list[str]:
    """Which annotations hold for a tool (read-only and idempotent as the hub resolved them)."""
    hints = route.tool.annotations
    out = []
    if route.read_only:
        out.append("read_only")
    if hints is not None and hints.destructive_hint is True:
        out.append("destructive")
    if route.idempotent:
        out.append("idempotent")
    if hints is not None and hints.open_world_hint:
        out.append("open_world")
    return out
