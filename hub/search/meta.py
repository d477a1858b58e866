"""Search mode's meta-tools: `search_tools(query, limit)` and `call_tool(name, arguments)`.

In search mode (`hub.tools_mode`: `search`, or `auto` past `AUTO_MAX_TOOLS` tools or
`AUTO_MAX_TOKENS` tokens of the caller's visible catalog) `tools/list` answers these two tools
plus the tools this session has found so far (progressive discovery). Decisions:
- `call_tool` runs `Hub.route_call` exactly as a direct `tools/call` would (scopes, validation,
  policies, audit under the *target* tool's name); a name the caller may not call, or that does
  not exist, is an `isError` result with code `not_found` (the name is an argument here, not the
  method's target, so it is not a JSON-RPC error) and the same text for both, so probing learns
  nothing.
- A direct `tools/call` of any tool the caller may call keeps working in search mode.
- Meta-tool names are reserved in search mode: a downstream tool exposed under the same name is
  reachable through `call_tool` only.
- **Arguments** (outside review search15 #4): a meta-tool's arguments are checked against the input
  schema it advertises, as any relayed tool's are (`hub.argument_errors`): an unknown argument
  (`args` for `arguments`, `lmit` for `limit`) is refused `invalid_argument` naming the accepted ones,
  never ignored — a misspelled `arguments` must not run the tool with its defaults. Past the schema:
  a query of blanks is refused (`blank_query`; the CLI refuses it too), `limit` must be a JSON
  integer (not `2.0`), and `call_tool`'s `arguments: null` reads as `{}` (clients send it for "no
  arguments"). The target's own arguments are the target's schema's business (`Hub.route_call`).
- **Hits** (review search15 #2): a hit is the tool as `tools/list` in `all` mode lists it — `title`,
  `output_schema`, `annotations`, `execution` and `meta` (its `_meta`, the hub's example requests
  already taken out) where the tool has them — plus `score` and `why`, so a client whose list never
  grows (2026-07-28) still learns what a tool it runs through `call_tool` does (`destructiveHint`,
  `readOnlyHint`) and what its structured result looks like. Hit keys are the MCP `Tool` model's
  field names in snake case, as `input_schema` always was; what they hold (schemas, annotations,
  `_meta`) is as MCP spells it. `icons` are left out: display only, possibly large `data:` URIs, of
  no use to a model (a client that lists gets them).
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import mcp_types as types
from pydantic import BaseModel

from hub.argument_errors import argument_error, sorted_errors
from hub.auth.principal import Principal
from hub.errors import HubToolError
from hub.search.words import STOP_WORDS

if TYPE_CHECKING:
    from hub.catalog.catalog import ToolRoute
    from hub.hub import Hub
    from hub.profiles import ProfileView
    from hub.search.index import Hit

SEARCH_TOOLS = "search_tools"
CALL_TOOL = "call_tool"
META_NAMES = frozenset({SEARCH_TOOLS, CALL_TOOL})
AUTO_MAX_TOOLS = 40
"""`auto` switches to search mode above this many visible tools (Cursor uses only the first 40)."""
AUTO_MAX_TOKENS = 10_000
"""... or above this many tokens (JSON characters / 4) of visible tool definitions."""
SEARCH_LIMIT_MAX = 20


def meta_tools() -> list[types.Tool]:
    """The two tools search mode lists first."""
    return [
        types.Tool(
            name=SEARCH_TOOLS,
            title="Search tools",
            description=(
                "Find the tools for a task among every tool this hub can call for you. Describe the task in plain "
                "words (e.g. 'who is on vacation next week'); the answer ranks tools best first with their name, "
                "description, input schema and why each matched. Then call one with call_tool (or directly by "
                "name once it appears in your tool list)."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "query": {"type": "string", "minLength": 1, "maxLength": 1000,
                              "description": "The task in natural language, or words from a tool's name."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": SEARCH_LIMIT_MAX, "default": 5,
                              "description": f"How many tools to return (1-{SEARCH_LIMIT_MAX}, default 5)."},
                },
                "required": ["query"],
                "additionalProperties": False,
            },
            annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
        ),
        types.Tool(
            name=CALL_TOOL,
            title="Call a tool",
            description=(
                "Call a tool found with search_tools, by its exact name, with arguments matching its input schema. "
                "The result is exactly what the tool returns; scopes, validation and audit apply as for a direct call."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 128,
                             "description": "The tool's exact name as search_tools returned it."},
                    "arguments": {"type": "object", "default": {},
                                  "description": "The tool's arguments, as its input schema describes."},
                },
                "required": ["name"],
                "additionalProperties": False,
            },
        ),
    ]


def search_mode_for(hub: Hub, principal: Principal, view: ProfileView | None = None) -> bool:
    """Whether this caller gets the meta-tools instead of the whole catalog (of the profile `view`)."""
    mode = view.tools_mode if view is not None else hub.config.hub.tools_mode
    if mode != "auto":
        return mode == "search"
    # `auto` is decided once per (face, caller's scopes, catalog version), not on every call (outside review
    # search19 #7: each tools/call rebuilt the caller's whole visible list to decide it).
    version, key = hub.catalog.version, (view.name if view is not None else None, tuple(principal.scopes))
    known = _auto_decided.get(hub)
    if known is None or known[0] != version:
        known = _auto_decided[hub] = (version, {})
    decided = known[1].get(key)
    if decided is None:
        visible = view.tools(principal) if view is not None else hub.visible_tools(principal)
        decided = len(visible) > AUTO_MAX_TOOLS or (
            sum(len(t.model_dump_json(by_alias=True, exclude_none=True)) for t in visible) // 4 > AUTO_MAX_TOKENS)
        if len(known[1]) >= 1024:
            known[1].clear()
        known[1][key] = decided
    return decided


_auto_decided: weakref.WeakKeyDictionary[Any, tuple[int, dict[tuple[str | None, tuple[str, ...]], bool]]] = (
    weakref.WeakKeyDictionary())
"""Per hub: (catalog version, `auto`'s decision per (face, scopes)) — see `search_mode_for`."""


@cache
def _validators() -> dict[str, Any]:
    """A compiled validator per meta-tool, for the input schema it advertises."""
    from jsonschema import Draft202012Validator

    return {tool.name: Draft202012Validator(tool.input_schema) for tool in meta_tools()}


def argument_problem(tool: str, arguments: dict[str, Any]) -> types.CallToolResult | None:
    """The `invalid_argument` result for meta-tool `tool`'s `arguments` against its advertised schema
    (an unknown argument, a wrong type, a value out of range), or None when they fit it."""
    errors = sorted_errors(_validators()[tool], arguments)
    return argument_error(tool, errors).to_result() if errors else None


def blank_query(query: str) -> bool:
    """Whether a search query says nothing — empty, blanks, punctuation, or only words like "the" and
    "of" — refused by `search_tools` and the CLI alike (re-check 15: `?!` ranked the first tools by
    name, a delete among them). Words of any script count (a query in Japanese is ranked by meaning)."""
    words = re.findall(r"\w+", query.lower())
    return not words or all(word in STOP_WORDS or word == "_" * len(word) for word in words)


def _result(payload: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(payload))],
                                structured_content=payload)


HIT_TOOL_FIELDS = ("title", "output_schema", "annotations", "execution", "meta")
"""The `Tool` fields a hit carries where the tool has them, besides its name, description and input schema."""


def hit_entry(hit: Hit) -> dict[str, Any]:
    """One hit: the tool as `tools/list` lists it (under the caller's name for it; no icons), its score and why."""
    tool = hit.tool if hit.tool is not None else hit.doc.tool if hit.doc is not None else None  # the live one first
    entry: dict[str, Any] = {"name": hit.name, "description": (tool.description or "") if tool else "",
                             "input_schema": tool.input_schema if tool else {}}
    for field in HIT_TOOL_FIELDS if tool is not None else ():
        value = getattr(tool, field)
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json", by_alias=True, exclude_none=True)
        if value is not None:
            entry[field] = value
    entry["score"], entry["why"] = hit.score, hit.why()
    return entry


def hits_payload(hits: Sequence[Hit]) -> dict[str, Any]:
    """`search_tools`' structured answer."""
    return {"tools": [hit_entry(hit) for hit in hits]}


def search_request(arguments: dict[str, Any]) -> tuple[str, int] | types.CallToolResult:
    """`search_tools`' (query, limit), or the `invalid_argument` result saying what is wrong."""
    if (refused := argument_problem(SEARCH_TOOLS, arguments)) is not None:
        return refused
    query = arguments.get("query")
    limit = arguments.get("limit", 5)
    if not isinstance(query, str) or blank_query(query) or len(query) > 1000:
        return HubToolError("invalid_argument", "query must be a string of at most 1000 characters that says what "
                            "to do (not empty, punctuation or only words like 'the'); describe the task, e.g. "
                            "'list overdue invoices'").to_result()
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= SEARCH_LIMIT_MAX:
        return HubToolError("invalid_argument", f"limit must be an integer from 1 to {SEARCH_LIMIT_MAX}",
                            details={"limit": limit if isinstance(limit, int) else str(limit)[:40]}).to_result()
    return query, limit


async def run_search(hub: Hub, query: str, limit: int, principal: Principal, view: ProfileView | None = None,
                     protocol_version: str | None = None) -> tuple[types.CallToolResult, list[str]]:
    """Rank for a checked `search_request`; its result and the names it found (to join the session's list).
    Only tools the caller's `tools/list` would list are ranked: `hub.request_relay.tasks.listable` for its
    `protocol_version` (task-only tools withheld from a 2026-07-28 client, or of a server taking no tasks).
    Decided: stricter than the list for a server still starting (listed from memory): the list gives its
    task-only tools the benefit of the doubt, search does not, since a hit is meant to be run through
    `call_tool`, which cannot make a task call; they rank once the handshake says the server takes tasks."""
    from hub.relay.task_model import task_only
    from hub.search.service import tool_search

    await hub.await_first_listing()  # as a list would: a search before it must not miss servers still connecting
    tasks = hub.request_relay.tasks

    def listable(route: ToolRoute) -> bool:
        return not task_only(route.tool) or (tasks.offer.server_takes_tasks(route.server)
                                             and bool(tasks.offer.listable([route.tool], protocol_version)))

    hits = await tool_search(hub).asearch(query, limit, principal, view, listable, protocol_version)
    return _result(hits_payload(hits)), [h.name for h in hits]


async def answer_search(hub: Hub, arguments: dict[str, Any], principal: Principal,
                        view: ProfileView | None = None) -> tuple[types.CallToolResult, list[str]]:
    """Run `search_tools` unmetered (the face meters it: `hub.calls.hub_tools`); its result and the names it found."""
    parsed = search_request(arguments)
    if isinstance(parsed, types.CallToolResult):
        return parsed, []
    return await run_search(hub, *parsed, principal, view)


def call_arguments(arguments: dict[str, Any]) -> tuple[str, dict[str, Any]] | types.CallToolResult:
    """`call_tool`'s (name, arguments), or the `invalid_argument` result saying what is wrong."""
    if arguments.get("arguments", {}) is None:
        arguments = {k: v for k, v in arguments.items() if k != "arguments"}  # null: no arguments
    if (refused := argument_problem(CALL_TOOL, arguments)) is not None:
        return refused
    name, inner = arguments.get("name"), arguments.get("arguments", {})
    if not isinstance(name, str) or not name:
        return HubToolError("invalid_argument", "name must be the exact tool name search_tools returned").to_result()
    if not isinstance(inner, dict):
        return HubToolError("invalid_argument", "arguments must be a JSON object of the tool's arguments",
                            details={"tool": name[:128]}).to_result()
    return name, inner


def not_callable(name: str) -> types.CallToolResult:
    """The answer for a name that does not exist or that the caller may not call (the same for both)."""
    return HubToolError("not_found", f"no tool named {name[:128]!r} that you may call; "
                        "find tools with search_tools and pass a name it returned",
                        details={"tool": name[:128]}).to_result()
