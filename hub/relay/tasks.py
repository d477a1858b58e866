"""Task-augmented `tools/call` and `tasks/get|list|result|cancel` through the hub (2025-11-25 tasks).

Rules (docs/protocol.md, "Tasks"):
- A handshake-era client's `tools/call` carrying `task` goes to the owning server as a task-augmented
  call when the tool declares `taskSupport` `"optional"` or `"required"` and the server advertises
  `tasks.requests.tools.call`; any other `task` is dropped and the call runs normally (what the spec
  asks of a receiver that does not take tasks for a request).
- The hub's policies apply to the task-augmented call as to any call: access (an unknown or hidden
  tool gets the same `not_found` result), argument validation, audit (the tool's name, outcome `ok`
  once the task exists), rate limit, deadline (for creating the task), breaker and bulkhead. Retry
  does not: creating a task twice is not safe. Each `tasks/*` has a deadline of its own
  (`hub.relay.task_requests`); `tasks/get|result|cancel` are charged to the caller's overall and the
  server's rate-limit buckets, and `tasks/get|cancel` hold a bulkhead slot, as a read does
  (`hub.forwarded.admitted`); `tasks/result` holds none (it waits for the task's end); `tasks/list` is
  charged once to the caller's overall bucket, and each `tasks/get` it makes holds a slot.
- The client sees the task id `<server>:<taskId>`; the hub maps it back. A task belongs to the client
  connection that created it: another connection (or the same one after losing sight of the server)
  gets -32602 "task not found", exactly as for an id that never existed — ids do not leak.
- Several replicas (`hub.cluster.tasks`, `hub.relay.task_replicas`): in a sealed session the id also names
  the replica holding the task, `<server>:<taskId>@<replica>.<mac>`; another replica serving the session
  asks that one through Redis, or says that the task is held there (never "not found": outside review,
  cluster round 18 #5).
- On a profile (`/mcp/<profile>`, `serve --profile`) the tool's name is resolved as a plain call's is
  (its names, its own names, nothing outside it: `SearchFront.task_target`); a name the plain call refuses
  is answered by the plain call (outside review policies17 #1). A task is seen only on the profile it
  was created on, and only while its tool is still in that profile.
- `io.modelcontextprotocol/related-task` in results and in requests a server sends while a task runs
  (e.g. an elicitation during `tasks/result`) carries the exposed id; such a request goes only to a
  call in flight on the client connection that created the task (its `tasks/result`), never to another
  connection of the same principal; with that connection gone, it is refused saying so (`related_task`;
  the ids it rewrites: `hub.relay.task_related`).
- `tasks/list` answers the caller's own live tasks (each asked of its server with `tasks/get`, up to
  `hub.relay.task_listing.LIST_CONCURRENCY` at once, each within its deadline; one the server no longer knows is forgotten,
  one it does not answer in time is left out of that listing), at most `MAX_TASKS_PER_CONNECTION`, in one page.
- A disconnect is not a cancel: the hub forgets the connection's tasks and the server lets them
  expire (their `ttl`). Until then (at most their ttl, or `RUNNING_BOUND_S`) a shared server's lines
  still count as possibly their caller's; a line tagged with such a task's `related-task` goes to that
  principal's connections that set a log level, to nobody else (`hub.relay.logs`).
- A `per_client` server: the task is created on the caller's own downstream session, and every
  `tasks/*` about it goes to that session; once that session has ended the task is "not found".
- `notifications/tasks/status` from a server goes to the connection that owns the task (for one
  from a per-client session: its owner only), its `taskId` (and `related-task`) as that client knows
  it; a status about a task no client of the hub created through it, or whose client may no longer
  see the server, goes nowhere.
- 2026-07-28 clients: tasks left the core protocol, so they are not relayed; a task-only tool is not
  listed to them, and a `task` they send is dropped.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from hub.auth.principal import Principal, identity
from hub.downstream.connection import DownstreamUnavailable
from hub.calls.call import ToolCall
from hub.calls.drivers import Drivers
from hub.calls.pipeline import Pipeline
from hub.policies.audit import new_request_id
from hub.relay.scope import may_see_server
from hub.unknown_tool import unknown_tool_result
from hub.catalog.links import expose_content
from hub.relay.task_progress import TERMINAL, TaskProgress, TaskProgressRoutes
from hub.relay.task_requests import (NEVER_RETRY, TaskCreation, as_json, ask_about_task, checked_call_result,
                                     create_task)
from hub.wire import WireResult
from hub.forwarded import admitted, jsonrpc_error, limits_of
from hub.downstream.serials import session_serial
from hub.downstream.request_deadline import request_deadline
from hub.relay.task_model import RelayedTask, running_bound_s, takes_tasks
from hub.relay.task_offer import TaskOffer
from hub.relay.task_listing import listed_tasks
from hub.relay.task_related import MAX_TASKS, MAX_TASKS_PER_CALLER, RELATED_TASK, RelatedTasks
from hub.relay.task_replicas import TaskReplicas
from hub.cluster.tasks import unmarked

if TYPE_CHECKING:
    from hub.catalog.catalog import ToolRoute
    from hub.profiles import ProfileView
    from hub.downstream.connection import Downstream
    from hub.hub import Hub

__all__ = ["MAX_TASKS", "MAX_TASKS_PER_CALLER", "MAX_TASKS_PER_CONNECTION", "RELATED_TASK", "RelayedTask", "TaskRelay"]
_NOWHERE: Any = object()
"""A profile no task was created on (`answer_for_replica`: the asking face is not the task's)."""
MAX_TASKS_PER_CONNECTION = 200
"""Tasks a client connection keeps through the hub; creating one more forgets its oldest."""
class TaskRelay:
    """The tasks each client connection created, and the relay of `tasks/*` to their servers."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self.offer = TaskOffer(hub)
        """Whether servers take task-augmented calls, and what clients are offered (`hub.relay.task_offer`)."""
        self._owned: weakref.WeakKeyDictionary[Any, OrderedDict[str, RelayedTask]] = weakref.WeakKeyDictionary()
        self._ids = RelatedTasks()
        """The tasks whose `related-task` ids are rewritten in what servers send (`hub.relay.task_related`)."""
        self._progress = TaskProgressRoutes()
        """Tasks' progress tokens (`hub.relay.task_progress`)."""
        self._replicas = TaskReplicas(hub)
        """Replica marks on task ids and the asks to other replicas, when clustered (`hub.relay.task_replicas`)."""

    # -- tools/call with a task ------------------------------------------------------------

    def wants_task(self, name: str, params: Any, protocol_version: str | None) -> bool:
        """Whether this `tools/call` is relayed as a task-augmented call (see the module's rules)."""
        if protocol_version in MODERN_PROTOCOL_VERSIONS or not isinstance(params, dict):
            return False
        if not isinstance(params.get("task"), dict):
            return False
        route = self._hub.catalog.resolve_tool(name)
        return route is not None and takes_tasks(route.tool) and self.offer.server_takes_tasks(route.server)

    async def call(self, connection: Any, principal: Principal, name: str, arguments: dict[str, Any] | None,
                   task: dict[str, Any], asked: str | None = None, view: ProfileView | None = None,
                   progress_token: str | int | None = None) -> dict[str, Any]:
        """Create the task downstream through the hub's policies; the `CreateTaskResult` (exposed id)
        or, when the hub refuses, the `isError` result, as the JSON object to answer. `name` is hub-wide,
        already resolved by the face (`asked`: as the caller wrote it; `view`: the face's profile);
        `progress_token`: the client's, kept for the task's lifetime (`TaskProgress`)."""
        hub, arguments = self._hub, arguments or {}
        route = hub.catalog.resolve_tool(name)
        attributes = {"principal": principal.name, "caller": principal, "request_id": new_request_id()}
        if route is None or connection is None or not hub.access.may_use_tool(principal, route):
            # charged and audited as any refused name; the caller's name echoed, as a plain call echoes it
            refused = await hub.refuse_call(name, arguments, principal, attributes, route, not_ready=route is None)
            return as_json(refused if refused is not None else unknown_tool_result(hub, asked or name, principal, view))
        timeout, hard = hub.settings_for(route)
        call = ToolCall(route, arguments, timeout, hard, None, attributes)

        async def create(call: ToolCall) -> WireResult:
            return await self._create(call.route, call.arguments, task, principal, connection, view, progress_token)

        # The hub's own pipeline (argument validation, audit, rate limit, deadline, breaker, bulkhead, in
        # its order) around a forwarder that creates the task, with no retry: creating twice is not safe.
        base = hub.pipeline
        pipeline = Pipeline(base.call_policies, base.attempt_policies, NEVER_RETRY, TaskCreation(base.forwarder, create))
        result = await Drivers(pipeline, hub.tracing).run(call)
        return result.body if isinstance(result, WireResult) else as_json(result)

    async def _create(self, route: ToolRoute, arguments: dict[str, Any], task: dict[str, Any], principal: Principal,
                      connection: Any, view: ProfileView | None, progress_token: str | int | None = None) -> WireResult:
        downstream = self._hub.downstreams[route.server]
        params: dict[str, Any] = {"name": route.original, "arguments": arguments, "task": task}
        meta = dict(downstream.caller.meta(principal) or {})
        progress = None
        if progress_token is not None:  # registered first: the server may report before its answer is read
            progress = self._progress.open(progress_token, route.server, principal, connection)
            meta["progressToken"] = progress.token
        if meta:
            params["_meta"] = meta
        with downstream.caller.bind(principal):
            body, session = await create_task(downstream, params)
        created = body.get("task")
        if not isinstance(created, dict) or not isinstance(created.get("taskId"), str):
            return WireResult(checked_call_result(body, route.server, downstream.config.namespace))  # run without a task
        exposed = self._replicas.mark(f"{route.server}:{created['taskId']}", connection)  # a sealed session's: its replica
        relayed = RelayedTask(exposed, route.server, created["taskId"], principal, session, route.exposed, view,
                              progress=progress)
        if created.get("status") not in TERMINAL and principal is not None:
            relayed.running = downstream.stats.task_running(identity(principal), running_bound_s(created))
        if progress is not None:
            progress.task = relayed
            if created.get("status") in TERMINAL:
                self._settled(relayed)
        exposed = self._own(connection, relayed)
        return WireResult({**self._ids.exposed_meta(body, route.server, session), "task": {**created, "taskId": exposed}})

    def _own(self, connection: Any, task: RelayedTask) -> str:
        owned = self._owned.setdefault(connection, OrderedDict())
        task.owner = weakref.ref(connection)
        owned[task.key] = task
        self._ids.add(task)
        while len(owned) > MAX_TASKS_PER_CONNECTION:
            _, old = owned.popitem(last=False)
            self._forget(old)
        return task.exposed

    def _owned_by(self, connection: Any) -> OrderedDict[str, RelayedTask] | None:
        return self._owned.get(connection) if connection is not None else None

    def _forget(self, task: RelayedTask) -> None:
        self._settled(task)
        self._ids.drop(task)

    def release(self, connection: Any) -> None:
        """The client connection is gone (its teardown): its tasks are forgotten here (a disconnect is not a
        cancel; they expire on the server), and a server's request about one is refused as its creator's gone.
        Each may still run there: it keeps counting as its caller's (`CallStats.task_running`) until its bound,
        and its record (by which a line tagged with it reaches its principal only, `hub.relay.logs`) stays
        until evicted (outside review isolation21 #1: released, its untagged lines became "the server's own
        news", every listener's)."""
        for task in (self._owned.pop(connection, None) or {}).values():
            self._progress.close(task)
            task.owner = None

    def _settled(self, task: RelayedTask) -> None:
        """The task is terminal (or forgotten): its progress token is no longer valid, and what its server
        writes is no longer its caller's (`CallStats.task_running`)."""
        self._progress.close(task)
        if task.running is not None and (downstream := self._hub.downstreams.get(task.server)) is not None:
            downstream.stats.task_done(task.running)
        task.running = None

    async def progress(self, downstream: Downstream, params: types.ProgressNotificationParams, owner: Any = None) -> None:
        """A server's `notifications/progress` with a task's token (`TaskProgress`): to the connection that
        created the task, with its own token, while it may see the server; anything else is not a task's
        (a call's progress goes to its call) and is dropped here. On the connection's own stream (its GET
        stream over Streamable HTTP), as a server sends a task's progress after `CreateTaskResult`."""
        def visible(route: TaskProgress) -> bool:
            if route.task is None:  # not created yet: its caller was just admitted by the call's policies
                return may_see_server(self._hub, route.principal, route.server)
            return self._visible(route.task, route.principal, route.task.view)

        await self._progress.relay(downstream.name, params, owner, visible)

    # -- tasks/* ---------------------------------------------------------------------------

    def find(self, connection: Any, principal: Principal, exposed: str, view: ProfileView | None = None) -> RelayedTask:
        """The caller's task `exposed` on the face of profile `view`, else -32602 — the same for another
        client's or another profile's task and a made-up id."""
        owned = self._owned_by(connection)
        relayed = owned.get(unmarked(exposed)) if owned is not None else None
        if relayed is not None and relayed.exposed != exposed:
            relayed = None  # its key with another mark (or none): not an id this connection was given
        if relayed is None or not self._visible(relayed, principal, view):
            raise MCPError(code=types.INVALID_PARAMS, message=f"task not found: {exposed[:200]!r}; "
                           "pass a taskId this connection got from a task-augmented tools/call or tasks/list")
        return relayed

    async def forward(self, connection: Any, principal: Principal, method: str, exposed: str,
                      session: Any = None, request_id: Any = None, view: ProfileView | None = None,
                      progress: ProgressFnT | None = None, *, asked_elsewhere: bool = False) -> dict[str, Any]:
        """`tasks/get`, `tasks/result` or `tasks/cancel` for the caller's task, its answer with the exposed id.
        During `tasks/result` the server's requests (elicitation, sampling) go to this caller, and the progress
        it reports on that request to `progress` (the client sent a progressToken of its own for it). A task
        of this session another replica holds is asked there (`hub.cluster.tasks`); `asked_elsewhere`: this
        is such an ask, answered here (never passed on again)."""
        try:
            relayed = self.find(connection, principal, exposed, view)
        except MCPError:
            answer = None if asked_elsewhere else await self._replicas.ask(connection, principal, method, exposed, view)
            if answer is None:
                raise
            return answer
        downstream = self._hub.downstreams[relayed.server]
        # Admitted as a read is (`hub.forwarded.admitted`; outside review isolation21 #2, polling is a flood
        # too): the caller's rate limit, and a bulkhead slot for tasks/get|cancel. When another replica asks on
        # the caller's behalf it charged the rate limit there (`TaskReplicas.ask`); the slot is taken here, where the
        # server is. tasks/result holds no slot, as it waits for the task's end.
        seconds, _ = request_deadline(self._hub.config.hub, downstream.config, method)
        started = anyio.current_time()  # the deadline counts the wait for a slot, as a call's does
        async with admitted(limits_of(self._hub), relayed.server, principal, method, seconds,
                            slot=method != "tasks/result", charge=not asked_elsewhere):
            if method == "tasks/result" and session is not None:
                with self._hub.request_relay.track(relayed.server, session, request_id, principal):
                    body = await ask_about_task(self._hub.config, downstream, method, relayed, progress, started)
            else:
                body = await ask_about_task(self._hub.config, downstream, method, relayed, started=started)
        self._audit_cancel(method, principal, relayed)
        if method == "tasks/result" or body.get("status") in TERMINAL:
            self._settled(relayed)
        body = self._ids.exposed_meta(body, relayed.server, relayed.session)
        if method == "tasks/result":  # the tool's result: its resource links under the hub's URIs
            expose_content(body.get("content"), downstream.config.namespace)
        return {**body, "taskId": exposed} if "taskId" in body else body

    async def answer_for_replica(self, connection: Any, principal: Principal, method: str, exposed: str,
                                 view_name: str | None) -> dict[str, Any]:
        """Another replica's ask about a task of this connection's session (`hub.cluster.tasks`), asked on the
        face of profile `view_name` there: answered as if asked here on that face."""
        owned = self._owned_by(connection)
        relayed = owned.get(unmarked(exposed)) if owned is not None else None
        view = relayed.view if relayed is not None else None
        if relayed is None or (view.name if view is not None else None) != view_name:
            view = None if view_name is None else _NOWHERE  # not this face's task: not found, as ever
        return await self.forward(connection, principal, method, exposed, view=view, asked_elsewhere=True)

    async def list(self, connection: Any, principal: Principal, view: ProfileView | None = None) -> dict[str, Any]:
        """The caller's live tasks (on the face of profile `view`), each as its server reports it now; in a
        sealed session, those the other replicas hold for it too (`hub.cluster.tasks`). Charged once to the
        caller's overall rate-limit bucket; each `tasks/get` it makes holds a slot of its server's bulkhead
        (a caller polling `tasks/list` floods no server: up to `MAX_TASKS_PER_CONNECTION` asks a listing)."""
        limits = limits_of(self._hub)
        if limits is not None and limits.rate_limits.configured:
            refusal = await limits.rate_limits.check_request(principal, None, "tasks/list")
            if refusal is not None:
                raise jsonrpc_error(refusal)
        tasks = await listed_tasks(self._hub, self._owned_by(connection), principal, self._forget,
                                   lambda relayed: self._visible(relayed, principal, view))
        return {"tasks": tasks + await self._replicas.listed_elsewhere(connection, view, tasks)}

    async def list_for_replica(self, connection: Any, principal: Principal, view_name: str | None) -> dict[str, Any]:
        """Another replica's `tasks/list` for this connection's session, on the face of profile `view_name` there."""
        def kept(relayed: RelayedTask) -> bool:
            return ((relayed.view.name if relayed.view is not None else None) == view_name
                    and self._visible(relayed, principal, relayed.view))
        return {"tasks": await listed_tasks(self._hub, self._owned_by(connection), principal, self._forget, kept)}

    async def status(self, downstream: Downstream, params: Any, owner: Any) -> None:
        """A server's `notifications/tasks/status`: to the client connection that owns the task (for a
        per-client session, its owner), with the task id it knows; to no one else, and to no one when
        that client may no longer see the server or the hub did not relay that task."""
        exposed = f"{downstream.name}:{params.taskId}"
        if owner is None:
            try:
                shared = session_serial(downstream.client().session)
            except DownstreamUnavailable:
                return
        for connection in [owner] if owner is not None else list(self._owned.keys()):
            relayed = (self._owned.get(connection) or {}).get(exposed)
            if relayed is None or (owner is None and relayed.session != shared):
                continue
            if getattr(params, "status", None) in TERMINAL:
                self._settled(relayed)
            if relayed.principal is None or not self._visible(relayed, relayed.principal, relayed.view):
                return
            body = params.model_dump(mode="json", exclude_none=True)
            body = {**self._ids.exposed_meta(body, downstream.name, relayed.session), "taskId": relayed.exposed}
            await connection.notify("notifications/tasks/status", body)
            notifier = getattr(self._hub, "cluster_notify", None)
            if notifier is not None and notifier.sessions is not None:  # its GET stream may be on another replica
                await notifier.sessions.notify_elsewhere(connection, "notifications/tasks/status", body)
            return

    def _visible(self, relayed: RelayedTask, principal: Principal, view: ProfileView | None) -> bool:
        """Whether `principal`, on the face of profile `view`, may see the task: it may still see its server,
        and the task was created on that face with a tool still in it (`RelayedTask.seen_on`)."""
        return may_see_server(self._hub, principal, relayed.server) and relayed.seen_on(view)

    # -- related-task ----------------------------------------------------------------------

    def related_principal(self, server: str, meta: dict[str, Any] | None, session: Any = None) -> tuple[bool, Principal | None]:
        """Whether `meta` names a `related-task`, and the principal whose connection created that task
        (`related_task`)."""
        about, relayed = self.related_task(server, meta, session)
        return about, relayed.principal if relayed is not None else None

    def related_task(self, server: str, meta: dict[str, Any] | None, session: Any = None) -> tuple[bool, RelayedTask | None]:
        """Whether `meta` names a `related-task`, and that task as the hub relayed it on `session` (the
        downstream session asking; None: a task the hub did not relay there, or has forgotten) — its
        `owner` is where the server's request about it may go. Two sessions may number their tasks alike
        (a `per_client` server, a restarted one): a task is only ever the one its own session made."""
        return self._ids.related_task(server, meta, session_serial(session) if session is not None else None)

    def expose_related(self, server: str, meta: dict[str, Any] | None, session: int | None) -> dict[str, Any] | None:
        """`meta` with its `related-task` id as the client knows it (`RelatedTasks.expose_related`)."""
        return self._ids.expose_related(server, meta, session)

    def _audit_cancel(self, method: str, principal: Principal, relayed: RelayedTask) -> None:
        if method == "tasks/cancel":
            self._hub.request_relay.audit_event(relayed.server, "task_cancel", principal, "ok", None, None)
