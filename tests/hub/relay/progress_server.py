"""A downstream reporting progress on every kind of request, for tests/hub/relay/test_relay_progress.py.

In-process (`{"module": "tests.hub.relay.progress_server:server", "protocol": "legacy"}`), handshake era.
- Tool `job` (`taskSupport: "optional"`): as a task it answers `CreateTaskResult` at once and keeps the
  request's `progressToken`; during `tasks/result` it reports three steps with that token (the task's
  lifetime, after `CreateTaskResult`), then answers which token it was given; `tasks/result` reports one
  step of its own request first.
- Prompt `steps`, resource `steps://r` and completions of prompt `steps` report three steps of their own
  request before answering.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp.shared.exceptions import MCPError

STAMP = "2026-12-02T00:00:00Z"
STEPS = 3


class ProgressServer(Server[Any]):
    def get_capabilities(self, *args: Any, **kwargs: Any) -> types.ServerCapabilities:
        caps = super().get_capabilities(*args, **kwargs)
        return caps.model_copy(update={"tasks": types.ServerTasksCapability(
            list=types.TasksListCapability(), cancel=types.TasksCancelCapability(),
            requests=types.ServerTasksRequestsCapability(tools=types.TasksToolsCapability(call=types.TasksCallCapability())))})


async def _steps(ctx: ServerRequestContext[Any]) -> None:
    for step in range(1, STEPS + 1):
        await ctx.session.report_progress(step, STEPS, f"step {step}")


def server() -> Server[Any]:
    ids = itertools.count(1)
    tokens: dict[str, Any] = {}
    done: set[str] = set()

    def view(task_id: str) -> dict[str, Any]:
        if task_id not in tokens:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Task not found: {task_id}")
        status = "completed" if task_id in done else "working"
        return {"taskId": task_id, "status": status, "createdAt": STAMP, "lastUpdatedAt": STAMP, "ttl": 60_000}

    async def task_calls(ctx: ServerRequestContext[Any], call_next: CallNext) -> HandlerResult:
        params = ctx.params
        if ctx.method != "tools/call" or not isinstance(params, dict) or "task" not in params:
            return await call_next(ctx)
        task_id = f"j{next(ids)}"
        tokens[task_id] = (params.get("_meta") or {}).get("progressToken")
        return {"task": view(task_id)}

    async def list_tools(ctx: ServerRequestContext[Any], params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name="job", input_schema={"type": "object"},
                                                       execution=types.ToolExecution(task_support="optional"))])

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text="ran without a task")])

    async def result(ctx: ServerRequestContext[Any], params: types.GetTaskPayloadRequestParams) -> dict[str, Any]:
        view(params.task_id)
        await ctx.session.report_progress(1, 1, "result ready")  # this request's own, if its client asked
        token = tokens[params.task_id]
        if token is not None:
            for step in range(1, STEPS + 1):
                await ctx.session.send_progress_notification(token, step, STEPS, f"task step {step}")
        done.add(params.task_id)
        return {"content": [{"type": "text", "text": json.dumps({"token_seen": token})}]}

    async def get(ctx: ServerRequestContext[Any], params: types.GetTaskRequestParams) -> dict[str, Any]:
        return view(params.task_id)

    async def list_prompts(ctx: ServerRequestContext[Any], params: Any) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[types.Prompt(name="steps")])

    async def get_prompt(ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams) -> types.GetPromptResult:
        await _steps(ctx)
        return types.GetPromptResult(messages=[types.PromptMessage(role="user", content=types.TextContent(type="text", text="done"))])

    async def list_resources(ctx: ServerRequestContext[Any], params: Any) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[types.Resource(uri="steps://r", name="r")])

    async def read_resource(ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        await _steps(ctx)
        return types.ReadResourceResult(contents=[types.TextResourceContents(uri=str(params.uri), text="done")])

    async def complete(ctx: ServerRequestContext[Any], params: types.CompleteRequestParams) -> types.CompleteResult:
        await _steps(ctx)
        return types.CompleteResult(completion=types.Completion(values=["done"]))

    made = ProgressServer("progress", on_list_tools=list_tools, on_call_tool=call_tool, on_list_prompts=list_prompts,
                          on_get_prompt=get_prompt, on_list_resources=list_resources, on_read_resource=read_resource,
                          on_completion=complete)
    made.middleware.append(task_calls)
    made.add_request_handler("tasks/get", types.GetTaskRequestParams, get)
    made.add_request_handler("tasks/result", types.GetTaskPayloadRequestParams, result)
    return made
