"""Resource links and embedded resources in what a server returns, under the URIs the hub exposes.

A server's `resource_link` (and an embedded `resource`) names its resource by the server's own URI;
the hub exposes that server's resources as `mcphub://<namespace>/<uri>` (`namespaced_uri`) and reads
only those, so a client following a link a tool or a prompt handed it got "Resource not found" for a
resource that exists (outside review, interop round 8). Tool results and prompt messages therefore
carry the exposed URI — and so does an MCP Apps tool's UI resource (`expose_meta`) — as
`resources/list`, `resources/read` and resource updates already did (a result passes here once: a
server's URI that happens to start with `mcphub://` is prefixed as its listing is). Left as they are: URIs a client resolves by itself, never through `resources/read` —
`data:` (the content is in the URI), `http:` and `https:` (the spec's "fetch it directly") (re-check
of round 8: such links had become unreadable hub URIs). A long URI of a big result, lifted out of its
line as a placeholder (`hub.lifted`), is restored before it is prefixed.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types

from hub.catalog.naming import namespaced_uri
from hub.lifted import Lifted, restore

_LINK_TYPES = ("resource_link", "resource")
SELF_RESOLVED = ("data:", "http:", "https:")
"""Schemes of URIs a client resolves itself: left as the server sent them."""


def expose_block(block: Any, namespace: str, lifted: Lifted | None = None) -> Any:
    """A content block (a JSON object, changed in place, or a model, copied) with its resource URI
    exposed; any other block as it is. `lifted`: what was lifted out of the big line it came from."""
    if not namespace:
        return block
    if isinstance(block, dict):
        kind = block.get("type")
        if kind == "resource_link" and isinstance(block.get("uri"), str):
            block["uri"] = _exposed(block["uri"], namespace, lifted)
        elif kind == "resource" and isinstance(resource := block.get("resource"), dict) and isinstance(resource.get("uri"), str):
            resource["uri"] = _exposed(resource["uri"], namespace, lifted)
        return block
    if isinstance(block, types.ResourceLink):
        return block.model_copy(update={"uri": _exposed(block.uri, namespace)})
    if isinstance(block, types.EmbeddedResource):
        return block.model_copy(update={"resource": block.resource.model_copy(update={"uri": _exposed(block.resource.uri, namespace)})})
    return block


def expose_content(content: Any, namespace: str, lifted: Lifted | None = None) -> Any:
    """A list of content blocks with their resource URIs exposed (a JSON list in place; a list of
    models copied only if one changes). Cheap when nothing links: one look at each block's type."""
    if not namespace or not isinstance(content, list):
        return content
    if not any((block.get("type") if isinstance(block, dict) else getattr(block, "type", None)) in _LINK_TYPES
               for block in content):
        return content
    if all(isinstance(block, dict) for block in content):
        for block in content:
            expose_block(block, namespace, lifted)
        return content
    return [expose_block(block, namespace) for block in content]


UI_META = "ui"
LEGACY_UI_META = "ui/resourceUri"
"""MCP Apps: a tool names its UI resource in `_meta.ui.resourceUri` (or, older, `_meta["ui/resourceUri"]`,
also in a tool result's `_meta`); a host reads it with `resources/read`, so it is exposed like any
resource URI (a `ui://` one keeps its scheme: `hub.catalog.naming.UI_SCHEME`)."""


def expose_meta(meta: Any, namespace: str) -> Any:
    """A tool's or a result's `_meta` with its MCP Apps UI resource URI exposed (a copy; else `meta` itself)."""
    if not namespace or not isinstance(meta, dict):
        return meta
    ui, legacy = meta.get(UI_META), meta.get(LEGACY_UI_META)
    named = isinstance(ui, dict) and isinstance(ui.get("resourceUri"), str)
    if not named and not isinstance(legacy, str):
        return meta
    exposed = dict(meta)
    if named:
        exposed[UI_META] = {**ui, "resourceUri": namespaced_uri(namespace, ui["resourceUri"])}
    if isinstance(legacy, str):
        exposed[LEGACY_UI_META] = namespaced_uri(namespace, legacy)
    return exposed


def expose_prompt(result: types.GetPromptResult, namespace: str) -> types.GetPromptResult:
    """A prompt's messages with the resource URIs in them exposed."""
    if not namespace or not any(isinstance(m.content, (types.ResourceLink, types.EmbeddedResource)) for m in result.messages):
        return result
    messages = [m.model_copy(update={"content": expose_block(m.content, namespace)}) for m in result.messages]
    return result.model_copy(update={"messages": messages})


def _exposed(uri: str, namespace: str, lifted: Lifted | None = None) -> str:
    if lifted is not None:
        uri = restore(uri, lifted)  # a placeholder must never be prefixed (it would never be put back)
    return uri if uri[:6].lower().startswith(SELF_RESOLVED) else namespaced_uri(namespace, uri)
