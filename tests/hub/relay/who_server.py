"""A 2026-07-28 in-process downstream for `test_relay_known_call.py`: tool `who {tag, hold}` answers an
`InputRequiredResult` asking "question for <tag>" (state "st-<tag>"), then, called again, the answer it
got. With `hold`, the first round waits until `release()` (so another caller's call is in flight)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext

TOOLS = [types.Tool(name="who", input_schema={"type": "object"})]
STATE: dict[str, Any] = {"held": set(), "released": False}


def reset() -> None:
    STATE["held"], STATE["released"] = set(), False


def release() -> None:
    STATE["released"] = True


async def list_tools(ctx: ServerRequestContext[Any], params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> Any:
    args = params.arguments or {}
    tag = str(args.get("tag"))
    answers = params.input_responses or {}
    if "q" not in answers:
        if args.get("hold"):
            STATE["held"].add(tag)
            while not STATE["released"]:  # the test releases it once the other caller is done
                await anyio.sleep(0.01)
        question = types.ElicitRequest(params=types.ElicitRequestFormParams(
            message=f"question for {tag}", requested_schema={"type": "object", "properties": {"v": {"type": "string"}}}))
        return types.InputRequiredResult(input_requests={"q": question}, request_state=f"st-{tag}")  # type: ignore[arg-type]
    got = answers["q"].model_dump(mode="json", by_alias=True, exclude_none=True)
    said = {"tag": tag, "state": params.request_state, "answer": got.get("content")}
    return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(said))])


def server() -> Server[Any]:
    return Server("who", on_list_tools=list_tools, on_call_tool=call_tool)
