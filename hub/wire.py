"""`tools/call` results kept as the JSON object a downstream sent, for the hub's fast path.

Parsing a result into `CallToolResult` on the way in and serialising it again on the way out is most
of what a hop costs; a call that arrives and leaves as JSON-RPC (the hub's stdio front end to a
stdio downstream) skips both. The policies read only `is_error` and `structured_content`, which a
`WireResult` offers as well, so every policy stays on the path.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types

from hub.catalog.links import expose_content, expose_meta
from hub.lifted import SPLICE_SCOPE_KEY, SPLICING, hold, lifted_of, restore
from hub.redact import known_secrets, mask_known

RESERVED_META_PREFIX = "io.modelcontextprotocol/"
HOP_META_KEYS = frozenset(RESERVED_META_PREFIX + key for key in (
    "protocolVersion", "clientInfo", "clientCapabilities", "logLevel", "serverInfo", "subscriptionId"))
"""The reserved `_meta` keys that describe one connection (who is at each end, what was negotiated):
true of the hop to the downstream, false of the hop to the hub's client, so they never pass. Every
other key — reserved ones such as `io.modelcontextprotocol/ui` or `/related-task` included — passes
intact (issue #19 item 8; docs/domains.md, "Protocol relay")."""


class WireResult:
    """A `tools/call` result as the downstream's JSON object (already checked for shape).

    A result read from a big line may hold placeholders for its long strings (`hub.lifted`):
    `skeleton` is that object as it is, for a front that splices the original bytes back in as it
    writes; `body` is the complete object (restored once, on first use)."""

    __slots__ = ("skeleton",)

    def __init__(self, body: dict[str, Any]) -> None:
        self.skeleton = body

    @property
    def body(self) -> dict[str, Any]:
        lifted = lifted_of(self.skeleton)
        if lifted is not None:
            self.skeleton = restore(self.skeleton, lifted)
        return self.skeleton

    @property
    def is_error(self) -> bool:
        return self.skeleton.get("isError") is True

    @property
    def structured_content(self) -> Any:
        return self.skeleton.get("structuredContent")

    @property
    def meta(self) -> dict[str, Any] | None:
        meta = self.skeleton.get("_meta")
        return meta if isinstance(meta, dict) else None

    def with_meta(self, meta: dict[str, Any] | None) -> WireResult:
        body = {k: v for k, v in self.skeleton.items() if k != "_meta"}
        if meta:
            body["_meta"] = meta
        return WireResult(body)


ToolResult = types.CallToolResult | WireResult
"""What the policy chain carries: a parsed result, or one kept on the wire."""


def without_protocol_meta(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """`meta` without the `HOP_META_KEYS` (they describe one hop only); None when nothing is left."""
    if not meta:
        return None
    kept = {k: v for k, v in meta.items() if k not in HOP_META_KEYS}
    return kept or None


def strip_protocol_meta(result: ToolResult) -> ToolResult:
    """Drop the downstream's `HOP_META_KEYS` from a result's `_meta` (e.g. its serverInfo stamp):
    those describe the hop to the downstream, not the hop to our client. Other keys pass."""
    meta = result.meta
    if not meta or not any(key in HOP_META_KEYS for key in meta):
        return result
    return replace_meta(result, without_protocol_meta(meta))


def from_server(result: ToolResult, namespace: str) -> ToolResult:
    """A server's result as the hub passes it on: without the hop's `_meta` keys (`strip_protocol_meta`),
    its resource links, embedded resources and MCP Apps UI resource under the URIs the hub exposes
    (`hub.catalog.links`)."""
    result = strip_protocol_meta(result)
    if (meta := expose_meta(result.meta, namespace)) is not result.meta:
        result = replace_meta(result, meta)
    if isinstance(result, WireResult):  # in place: a big result's other lifted strings stay lifted
        expose_content(result.skeleton.get("content"), namespace, lifted_of(result.skeleton))
        if result.is_error and known_secrets():
            _mask_error_texts(result.skeleton.get("content"))
        return result
    content = expose_content(result.content, namespace)
    if result.is_error and known_secrets():
        content = [block.model_copy(update={"text": mask_known(block.text)})
                   if isinstance(block, types.TextContent) else block for block in content]
    return result if content is result.content else result.model_copy(update={"content": content})


def _mask_error_texts(content: Any) -> None:
    """An `isError` result's text blocks without the credentials configured for servers
    (`hub.redact.mask_known`): a tool's error is the server's own words, as its JSON-RPC error message
    is, which is masked so (re-check 15: a key repeated in an `isError` result reached the caller).
    A successful result is data and passes as sent."""
    for block in content if isinstance(content, list) else ():
        if isinstance(block, dict) and isinstance(text := block.get("text"), str):
            block["text"] = mask_known(text)


def as_sent(result: types.CallToolResult) -> WireResult:
    """A result the SDK client parsed, back as the JSON object the server sent: only the fields it
    set (a parsed model fills in defaults, e.g. `isError: false`, that the server never said)."""
    return wire_result(result.model_dump(by_alias=True, mode="json", exclude_unset=True))


def json_number(value: float) -> float | int:
    """`value` as an integer when it is integral: the SDK parses every progress number into a
    float, so a server's `1` would otherwise reach the client as `1.0`. JSON has one number type;
    an integral value sent as an integer is what the server sent (or equal to it)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def replace_meta(result: ToolResult, meta: dict[str, Any] | None) -> ToolResult:
    if isinstance(result, WireResult):
        return result.with_meta(meta)
    return result.model_copy(update={"meta": meta})


def result_json(result: ToolResult, skeleton: bool = False) -> dict[str, Any]:
    """The result as the JSON object to send; with `skeleton`, as it was read (placeholders for
    long strings left in, for a front that writes with `hub.lifted.splice`)."""
    if isinstance(result, WireResult):
        return result.skeleton if skeleton else result.body
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


def sdk_result(result: WireResult, request: Any) -> dict[str, Any]:
    """`result` for the SDK's server face to send: its skeleton if the front will splice the long
    strings back in as it writes (`request` came through the HTTP front's `SpliceLifted`, whose
    scope says so, or this runs under the stdio front's `SPLICING`), else complete (restored)."""
    lifted = lifted_of(result.skeleton)
    scope = getattr(request, "scope", None)
    if lifted is not None and (SPLICING.get() or isinstance(scope, dict) and scope.get(SPLICE_SCOPE_KEY)):
        hold(lifted)
        return result.skeleton
    return result.body


def wire_result(body: Any) -> WireResult:
    """The downstream's result if it has the shape of a complete `CallToolResult`; else
    `RuntimeError` saying what is wrong (the hub reports it as an invalid result from that server).

    Structured content is not checked against the tool's `outputSchema` here: the hub advertises
    the downstream's schema unchanged, so the client that receives the result checks it (the SDK
    client does), and a second check in the hub would only double the cost.
    """
    if not isinstance(body, dict):
        raise RuntimeError("the result is not a JSON object")
    kind = body.get("resultType", "complete")
    if kind != "complete":
        raise RuntimeError(f"it asked for more input (resultType {kind!r}), which the hub cannot relay")
    content = body.get("content")
    if not isinstance(content, list) or not all(isinstance(block, dict) and isinstance(block.get("type"), str) for block in content):
        raise RuntimeError("its content is not a list of content blocks")
    if "isError" in body and not isinstance(body["isError"], bool):
        raise RuntimeError("its isError is not a boolean")
    structured = body.get("structuredContent")
    if structured is not None and not isinstance(structured, dict):
        raise RuntimeError("its structuredContent is not an object")
    if "resultType" not in body:
        # A handshake-era server's result: complete by definition, and a 2026-era client of the hub
        # must be told so (the field is required there; handshake-era answers leave it out again).
        body = {**body, "resultType": "complete"}
    return WireResult(body)
