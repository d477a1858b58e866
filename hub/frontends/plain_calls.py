"""What the fronts' `tools/call` fast paths share: which requests they may take, and their answer.

A *plain* call is a well-formed JSON-RPC `tools/call` request whose params hold only `name`,
`arguments` and `_meta` (anything else, such as 2026-07-28 `inputResponses`, is the SDK's
multi-round-trip machinery) and whose progress token, if any, is valid. The stdio front
(`hub.frontends.stdio.stdio_calls`) and the HTTP front (`hub.frontends.http.http_calls`) answer such
calls themselves; anything else goes to the SDK's server unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp_types import SERVER_INFO_META_KEY

from hub.wire import ToolResult, result_json
from hub.policies.validation import SDK_READ_DEPTH, too_deep

HANDSHAKE_VERSION = "2025-11-25"
"""The handshake-era version the fast paths answer for; older negotiated versions go to the SDK."""
_KNOWN_PARAMS = frozenset({"name", "arguments", "_meta"})
_SERVER_REQUESTS = ("sampling", "elicitation", "roots")


@dataclass(frozen=True, slots=True)
class PlainCall:
    request_id: int | str
    name: str
    arguments: dict[str, Any] | None
    meta: dict[str, Any]
    progress_token: int | str | None


def plain_call(message: dict[str, Any]) -> PlainCall | None:
    """`message` as a plain `tools/call`, or None when the SDK should answer it (as it would)."""
    if message.get("method") != "tools/call" or message.get("jsonrpc") != "2.0":
        return None
    request_id = message.get("id")
    params = message.get("params")
    if not isinstance(request_id, (int, str)) or isinstance(request_id, bool) or not isinstance(params, dict):
        return None
    name, arguments, meta = params.get("name"), params.get("arguments"), params.get("_meta", {})
    if not isinstance(name, str) or not (arguments is None or isinstance(arguments, dict)) or not isinstance(meta, dict):
        return None
    if not _KNOWN_PARAMS.issuperset(params):
        return None  # e.g. inputResponses / requestState: the SDK's multi-round-trip machinery
    token = meta.get("progressToken")
    if "progressToken" in meta and (not isinstance(token, (int, str)) or isinstance(token, bool)):
        return None  # not a valid token (null included: outside review engines16 #5): the SDK refuses it
    if too_deep(message, SDK_READ_DEPTH):
        return None  # the SDK refuses it too, as it would any deeper line (outside review engines16 #4)
    return PlainCall(request_id, name, arguments, meta, token)


def offers_server_requests(capabilities: Any) -> bool:
    """Whether client capabilities (as JSON) offer what a server may ask of a client: sampling,
    elicitation or roots. Such a client's calls go through the SDK's session (`hub.relay`)."""
    return isinstance(capabilities, dict) and any(key in capabilities for key in _SERVER_REQUESTS)


def result_reply(request_id: int | str, result: ToolResult, server_info: dict[str, str] | None) -> dict[str, Any]:
    """The JSON-RPC answer the SDK's server gives for `result`: handshake era when `server_info` is
    None, else 2026-07-28 (`resultType` and the hub's `serverInfo` in `_meta`). A big result's long
    strings stay placeholders here (`hub.lifted`); the front writes the downstream's bytes in their place."""
    body = result_json(result, skeleton=True)
    if server_info is None:
        body = {k: v for k, v in body.items() if k != "resultType"} if "resultType" in body else body
    else:
        meta = body.get("_meta")
        body = {**body, "resultType": "complete", "_meta": {**(meta if isinstance(meta, dict) else {}), SERVER_INFO_META_KEY: server_info}}
    return {"jsonrpc": "2.0", "id": request_id, "result": body}


def error_reply(request_id: int | str | None, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
