"""Resource links and embedded resources in what a server returns, under the URIs the hub exposes.

A server's `resource_link` (and an embedded `resource`) names its resource by the server's own URI;
the hub exposes that server's resources as `mcphub://<namespace>/<uri>` (`namespaced_uri`) and reads
only those, so a client following a link a tool or a prompt handed it got "Resource not found" for a
resource that exists (outside review, interop round 8). Tool results and prompt messages therefore
carry the exposed URI, as `resources/list`, `resources/read` and resource updates already did. A URI
already under the hub's scheme for that namespace is left as it is (a result passes here once, but
a retried or replayed one must not be prefixed twice).
"""

from __future__ import annotations

from typing import Any

import mcp_types as types

from hub.catalog.naming import RESOURCE_SCHEME, namespaced_uri

_LINK_TYPES = ("resource_link", "resource")


def expose_block(block: Any, namespace: str) -> Any:
    """A content block (a JSON object, changed in place, or a model, copied) with its resource URI
    exposed; any other block as it is."""
    if not namespace:
        return block
    if isinstance(block, dict):
        kind = block.get("type")
        if kind == "resource_link" and isinstance(block.get("uri"), str):
            block["uri"] = _exposed(block["uri"], namespace)
        elif kind == "resource" and isinstance(resource := block.get("resource"), dict) and isinstance(resource.get("uri"), str):
            resource["uri"] = _exposed(resource["uri"], namespace)
        return block
    if isinstance(block, types.ResourceLink):
        return block.model_copy(update={"uri": _exposed(block.uri, namespace)})
    if isinstance(block, types.EmbeddedResource):
        return block.model_copy(update={"resource": block.resource.model_copy(update={"uri": _exposed(block.resource.uri, namespace)})})
    return block


def expose_content(content: Any, namespace: str) -> Any:
    """A list of content blocks with their resource URIs exposed (a JSON list in place; a list of
    models copied only if one changes). Cheap when nothing links: one look at each block's type."""
    if not namespace or not isinstance(content, list):
        return content
    if not any((block.get("type") if isinstance(block, dict) else getattr(block, "type", None)) in _LINK_TYPES
               for block in content):
        return content
    if all(isinstance(block, dict) for block in content):
        for block in content:
            expose_block(block, namespace)
        return content
    return [expose_block(block, namespace) for block in content]


def expose_prompt(result: types.GetPromptResult, namespace: str) -> types.GetPromptResult:
    """A prompt's messages with the resource URIs in them exposed."""
    if not namespace or not any(isinstance(m.content, (types.ResourceLink, types.EmbeddedResource)) for m in result.messages):
        return result
    messages = [m.model_copy(update={"content": expose_block(m.content, namespace)}) for m in result.messages]
    return result.model_copy(update={"messages": messages})


def _exposed(uri: str, namespace: str) -> str:
    return uri if uri.startswith(f"{RESOURCE_SCHEME}://{namespace}/") else namespaced_uri(namespace, uri)
