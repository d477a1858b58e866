"""The requests `hub.relay.tasks` sends a server: the task-augmented `tools/call` and `tasks/*`, and the
forwarder that creates a task inside the hub's call pipeline (`TaskCreation`, never retried: `NoRetry`).

Raw requests on the caller's session (its own of a `per_client` server, `Downstream.session`), stamped
for the server's era. The task-creating call has the call pipeline's deadline; each `tasks/*` its own
(`hub.downstream.request_deadline`: `timeout_s`, `tasks/result` the hard limit), and every failure
of one is a JSON-RPC error (`hub.forwarded.jsonrpc_error`). An in-process server's request runs in a
task of its own either way, so a deadline holds while its work waits on a thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError

from hub.calls.call import Outcome, ToolCall
from hub.downstream.connection import DownstreamUnavailable
from hub.downstream.forwarders import Forwarder
from hub.downstream.request_deadline import unless_cancelled
from hub.downstream.serials import session_serial
from hub.calls.errors import forward_error
from hub.errors import HubRefusal, HubToolError, UrlElicitationRequired
from hub.forwarded import within_request_deadline
from hub.policies.retry import RetryPolicy, answered
from hub.wire import WireResult, from_server

if TYPE_CHECKING:
    from hub.config import HubConfig
    from hub.downstream.connection import Downstream
    from hub.relay.tasks import RelayedTask


async def create_task(downstream: Downstream, params: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """A task-augmented `tools/call`; (the JSON object the server answered, which session). Its failures
    are the call pipeline's to map (`HubToolError`), its deadline the pipeline's."""
    work = _send(downstream, "tools/call", params)
    return await (unless_cancelled(work) if downstream.config.transport == "inprocess" else work)


async def ask_about_task(config: HubConfig, downstream: Downstream, method: str,
                         task: RelayedTask, progress: ProgressFnT | None = None, started: float | None = None) -> dict[str, Any]:
    """`tasks/get`, `tasks/result` or `tasks/cancel` about `task`, on the session that created it (another
    is -32602 task not found), within its deadline from `started` (now, if not given); what the server
    answered (its progress on this request to `progress`, when the client asked for it)."""
    # down, `max_sessions`, `session_ended`, lost, `timeout`: each a JSON-RPC error
    body, _ = await within_request_deadline(config, downstream, method,
                                            _send(downstream, method, {"taskId": task.task_id}, task, progress),
                                            started=started)
    return body


async def _send(downstream: Downstream, method: str, params: dict[str, Any],
                task: RelayedTask | None = None, progress: ProgressFnT | None = None) -> tuple[dict[str, Any], int]:
    """The request, on the caller's session (with `task`: only the one that created it); (the answer,
    which session). The SDK's typed `send_request` would check a task-augmented `tools/call` answer as a
    `CallToolResult`, so this uses the session's dispatcher (as `Downstream.call_tool_json` does)."""
    try:
        async with downstream.session() as client:
            session = client.session
            if task is not None and task.session is not None and task.session != session_serial(session):
                raise MCPError(code=types.INVALID_PARAMS, message=f"task not found: {task.exposed[:200]!r}; the "
                               f"session with server {downstream.name!r} that ran it has ended")
            return await _send_on(downstream, session, method, params, progress), session_serial(session)
    except DownstreamUnavailable as exc:
        wait = downstream.retry_after_s()
        raise HubRefusal("unavailable", f"{exc}; retry in {wait:g}s", retry_after_s=wait,
                         details={"server": downstream.name, "reason": "down"}) from exc


async def _send_on(downstream: Downstream, session: Any, method: str, params: dict[str, Any],
                   progress: ProgressFnT | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"method": method, "params": params}
    opts: dict[str, Any] = {}
    session._stamp(data, opts)  # noqa: SLF001 — the era's `_meta` envelope exactly as the SDK writes it
    if progress is not None:
        opts["on_progress"] = progress  # the dispatcher adds its own progressToken and routes the progress back
    try:
        return await session._dispatcher.send_raw_request(method, data["params"], opts)  # type: ignore[no-any-return]  # noqa: SLF001
    except (MCPError, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
        mapped = await _task_error(exc, downstream, method)
        if mapped is exc:
            raise
        raise mapped from exc


async def _task_error(exc: Exception, downstream: Downstream, method: str) -> Exception:
    """What a failed request about a task means, by the one table (`hub.calls.errors.forward_error`), as
    for a plain call: a crash `unavailable` naming the exit code, an HTTP 503 `unavailable` and a 429
    `rate_limited` with `retry_after_s`, each counted by the breaker on the task-augmented `tools/call`
    (outside review faults19 #2: a small table of its own made every one a non-retryable
    `upstream_error` the breaker never counted). A JSON-RPC error the server answered to `tasks/*` is
    the client's answer as it is (its -32602 "task not found" among them); a transport fault becomes
    the hub's error, which `hub.forwarded.within_request_deadline` turns into a JSON-RPC error."""
    error = await forward_error(exc, downstream)
    if method == "tools/call":
        return error
    if isinstance(exc, MCPError) and (isinstance(error, (HubRefusal, UrlElicitationRequired))
                                      or "jsonrpc_code" in (error.body.details or {})):
        return exc  # the server's answer (or its "session not found"): passed on as the server sent it
    return error


def checked_call_result(body: dict[str, Any], server: str, namespace: str) -> dict[str, Any]:
    """A task-augmented call's answer that created no task: a tool result, else `upstream_error`."""
    if not isinstance(body.get("content"), list):
        raise HubToolError("upstream_error", f"server {server!r} answered a task-augmented call with neither a "
                           "task nor a tool result", details={"server": server})
    result = from_server(WireResult(body), namespace)
    assert isinstance(result, WireResult)
    return result.body


class NoRetry(RetryPolicy):
    """A retry policy that never retries (task creation is not idempotent)."""

    def __init__(self) -> None:
        super().__init__(lambda server: None)  # type: ignore[arg-type,return-value]  (settings never read)

    def wants(self, call: ToolCall, outcome: Outcome) -> bool:
        return False

    def after(self, call: ToolCall, outcome: Outcome) -> float | None:
        answered(call, outcome)  # a task creation lost in flight: its outcome is unknown
        return None


NEVER_RETRY = NoRetry()


class TaskCreation(Forwarder):
    """The hub's forwarder, except that an attempt creates the task (`create`) instead of a plain call."""

    def __init__(self, base: Forwarder, create: Any) -> None:
        super().__init__(base.downstreams, base._local, False, base.tracing)  # noqa: SLF001 — same hub, same caller
        self._create = create

    def send_now(self, call: ToolCall, on_answer: Any) -> None:
        return None  # never the express path: the awaiting driver runs task creation

    async def forward(self, call: ToolCall) -> WireResult:
        return await self._create(call)


def as_json(result: types.CallToolResult) -> dict[str, Any]:
    """A tool result as the JSON object a task-augmented call is answered with."""
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)
