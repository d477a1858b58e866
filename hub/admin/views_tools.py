"""Tools page: the catalog as the hub exposes it, filtered by text, namespace and annotation, with
each tool's input schema and the scopes a caller needs — `PAGE` tools a page.

The search box matches name and description, case-insensitively, every word (the catalog's
ranked tool search is for agents; an operator wants a predictable filter). Pages are a keyset over
exposed names (`after=<last name shown>`), so a catalog of thousands of tools is never rendered at
once: filtering touches only names, descriptions and annotations, and schemas and scopes are
worked out for the page's rows only (a 5,000-tool page once took the event loop ~0.4 s).
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from hub.admin.console import Console
from hub.admin.session import AdminSession
from hub.catalog.catalog import ToolRoute

ANNOTATIONS = {"read_only": "read-only", "destructive": "destructive", "idempotent": "idempotent",
               "open_world": "open world"}
PAGE = 50
"""Tools per page."""


async def tools(console: Console, request: Request, session: AdminSession) -> Response:
    hub = console.hub
    q = request.query_params.get("q", "").strip()[:200]
    ns = request.query_params.get("ns", "")[:128]
    hint = request.query_params.get("annotation", "")
    after = request.query_params.get("after", "")[:512]
    words = q.lower().split()
    routes = hub.catalog.routes()
    namespace_of = {name: d.config.namespace or name for name, d in hub.downstreams.items()}
    namespaces = sorted({namespace_of.get(r.server, r.server) for r in routes})
    matching = []
    for route in routes:
        if ns and namespace_of.get(route.server, route.server) != ns:
            continue
        if words and not all(w in f"{route.exposed} {route.tool.description or ''}".lower() for w in words):
            continue
        if hint and hint not in _hints(route):
            continue
        matching.append(route)
    matching.sort(key=lambda r: r.exposed)
    start = next((i for i, r in enumerate(matching) if r.exposed > after), len(matching)) if after else 0
    page = matching[start:start + PAGE]
    shown = [{"name": r.exposed, "server": r.server, "namespace": namespace_of.get(r.server, r.server),
              "description": r.tool.description or "", "hints": [ANNOTATIONS[h] for h in _hints(r)],
              "scopes": " ".join(hub.access.tool_scopes(r)),
              "schema": json.dumps(r.tool.input_schema, indent=2, sort_keys=True)} for r in page]
    kept = {k: v for k, v in (("q", q), ("ns", ns), ("annotation", hint)) if v}
    more = start + PAGE < len(matching)
    return console.render(request, "tools.html", session, page="tools", tools=shown, q=q, ns=ns, annotation=hint,
                          namespaces=namespaces, annotations=ANNOTATIONS, total=len(routes), matching=len(matching),
                          first=start + 1, next_url=f"/admin/tools?{urlencode({**kept, 'after': page[-1].exposed})}"
                          if more and page else None,
                          first_url=f"/admin/tools?{urlencode(kept)}" if start else None)


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
