"""Server→client requests through the hub: sampling, elicitation and roots.

Rules (docs/domains.md, "Protocol relay"):
- Every downstream session is opened with sampling, elicitation and roots callbacks, so every
  server sees a client that can do all three (one session serves every client, so its capability
  ad is the union of what the hub can relay). Whether a given request can be answered is decided
  when it arrives, against the capabilities of the client it goes to.
- A `sampling/createMessage` or `elicitation/create` goes to the client whose `tools/call` to that
  server is in flight, on that call's own stream (`related_request_id`). A `per_client` session's
  requests go only to its own client (its call in flight; for roots, that client). With calls in
  flight on one shared session the hub cannot tell whose call caused the request (neither stdio nor
  the SDK's callbacks carry it): it goes to the most recent call only when every call in flight — and
  every prompt, read and completion, counted per connection (`CallStats.asking`) — is one principal's
  on one connection, and is refused otherwise (an outside review saw alice's password prompt reach
  bob, and bob's answer fed into alice's call). Such a server belongs in `session: per_client`.
- A 2026-07-28 server's own `InputRequiredResult` is the answer to one known call: its requests go to
  that call's client whoever else is calling, also on a shared session (`hub.relay.upstream.answering_for`;
  outside review relay26 D1 saw them refused as ambiguous).
- A request about a task (`related-task`) goes to a call in flight on the connection that created the
  task (its `tasks/result`), else to no one; with that connection gone it is refused saying so.
- `roots/list` goes to the client of the call in flight if there is one, else (asked outside any call:
  server-filesystem asks after `initialized` and on `roots/list_changed`) on a client's own stream to
  the per-client session's owner, or the client that most recently called that server with roots,
  or the one connected client that declared roots (`hub.relay.roots`); it is refused if none exists.
- A request is refused (JSON-RPC error to the server, which its tool reports) when no client is
  waiting, the client did not declare the capability, it has no back-channel (a 2026-07-28 client
  gets the request through its input-required flow instead: `hub.relay.input_required`), or it may
  not see the server. Nothing a server
  sends reaches a client that cannot see it.
- Deadline: while a relayed request waits on the user, the call's idle deadline is paused — only
  the hard deadline (`max_timeout_s`) keeps running; when the answer is relayed back the idle timer
  restarts, as after a progress notification.
- A relayed request lives no longer than the call that caused it: when that call ends while the
  request still waits on the client (with several calls of one connection in flight, nothing says
  which asked: when the last of them ends) (the client cancelled it or went away, or its deadline fired),
  the request is withdrawn — a handshake-era client gets `notifications/cancelled` for it, a
  2026-07-28 client's input-required round ends (`hub.relay.input_required`) — and the server gets
  a -32800 "request cancelled" error. The server cancelling its own request is passed on the same way.
- Each relayed request is audited: principal, server, kind (`relay:sampling`, `relay:elicitation`,
  `relay:roots`) and outcome (`ok`, `error`, `denied`; `cancelled` when the call or the server
  withdrew it, `timeout` when the call's deadline did), in the audit log and the `hub.relay` log.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from mcp.client.session import ClientRequestContext
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.message import ServerMessageMetadata

from hub.audit.log import AuditEvent
from hub.auth.principal import Principal, identity
from hub.downstream.serials import session_serial
from hub.downstream.owners import OwnerRef
from hub.policies.audit import new_request_id
from hub.policies.base import now
from hub.policies.breaker import ASKED_CLIENT
from hub.redact import Premasked, mask_short
from hub.relay.scope import may_see_server
from hub.relay.input_required import InputRequiredCalls, Park
from hub.relay.tasks import RelayedTask, TaskRelay
from hub.relay.capabilities import lacks, relay_capable
from hub.relay.roots import ClientStream, RootsClients, always_open
from hub.relay.roots_notices import RootsNotices
from hub.relay.call_bound import connection_of, pause_idle_deadline, progress_back, resume_idle_deadline, withdraw
from hub.relay.upstream import RelayedRequest, UpstreamCall, answering, current_upstream
from hub.relay.url_elicitations import UrlElicitations

if TYPE_CHECKING:
    from hub.hub import Hub

logger = logging.getLogger("hub.relay")
# A handshake-era client's progress for a server's request is relayed on purpose (`progress_back`): no warning each time.
warnings.filterwarnings("ignore", message="Client-to-server progress", category=MCPDeprecationWarning)
RELAY_LINE = Premasked("relay kind=%s server=%s principal=%s outcome=%s code=%s ms=%s")

_UNTRACKED: AbstractAsyncContextManager[Any] = nullcontext()
WITHDRAW_WAIT_S = 1.0
REQUEST_CANCELLED = -32800
"""The error a server gets for a request the hub withdrew (the code LSP and MCP SDKs use for it)."""


class RequestRelay:
    """Calls in flight per server, the clients that offered roots, and the downstream callbacks."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._in_flight: dict[str, list[UpstreamCall]] = {}
        self.roots = RootsClients(self._sees)
        """The client connections that can answer a `roots/list` asked outside any call (`hub.relay.roots`)."""
        self.roots_notices = RootsNotices(hub, self.roots)
        """Tells servers to ask for roots again when a client they may ask arrives (`hub.relay.roots_notices`)."""
        self.tasks = TaskRelay(hub)
        self.url_elicitations = UrlElicitations(lambda server: self._in_flight.get(server, ()),
                                                lambda server: (d := hub.downstreams.get(server)) is not None and d.pool is not None)
        """Where each URL-mode elicitation went: its completion notice goes there (`hub.relay.url_elicitations`)."""
        self.input_required = InputRequiredCalls()
        """2026-07-28 clients' calls between the legs of their input-required flow."""
        """Task-augmented calls and `tasks/*` (`hub.relay.tasks`): a task's server requests come through here."""

    def tracking(self, name: str, session: ServerSession, request_id: types.RequestId | None,
                 principal: Principal, park: Park | None = None) -> AbstractAsyncContextManager[Any]:
        """`tracked` for a call to the exposed tool `name`; a shared no-op for a client that offered
        nothing a server could ask (the common case: nothing added to its call's path)."""
        if not relay_capable(session):
            return _UNTRACKED
        route = self._hub.catalog.resolve_tool(name)
        if route is None or not self._hub.access.may_use_tool(principal, route):
            # Refused before it reaches its server: never a caller of it, nor a call its requests might
            # belong to (outside review roots27 #5: bob's refused call made him fs's last caller with roots).
            return _UNTRACKED
        return self.tracked(route.server, session, request_id, principal, park)

    @asynccontextmanager
    async def tracked(self, server: str, session: ServerSession, request_id: types.RequestId | None,
                      principal: Principal, park: Park | None = None) -> AsyncIterator[None]:
        """`track`, then — if requests were withdrawn when the call ended — a short wait (shielded, at most
        `WITHDRAW_WAIT_S`) for their `notifications/cancelled` to be written while the call's stream is open."""
        upstream: UpstreamCall | None = None
        try:
            with self.track(server, session, request_id, principal, park) as upstream:
                yield
        finally:
            if upstream is not None and upstream.withdrawing:
                with anyio.CancelScope(shield=True), anyio.move_on_after(WITHDRAW_WAIT_S):
                    for settled in upstream.withdrawing:
                        await settled.wait()

    def _sees(self, principal: Principal, view: Any, server: str) -> bool:
        """Whether a client of `principal` on profile `view` (None: the whole catalog) may see `server`."""
        return may_see_server(self._hub, principal, server) and (view is None or view.shows_server(server))

    @contextmanager
    def track(self, server: str, session: ServerSession, request_id: types.RequestId | None,
              principal: Principal, park: Park | None = None) -> Iterator[UpstreamCall | None]:
        """While the block runs, requests from `server` may go to this client (if it offered any); with
        `park`, through the 2026-07-28 input-required flow (`hub.relay.input_required`). Yields the
        tracked call (None: untracked); requests still pending for it when the block ends are withdrawn."""
        if not relay_capable(session):
            yield None
            return
        upstream = UpstreamCall(session, request_id, principal, server, park=park)
        calls = self._in_flight.setdefault(server, [])
        calls.append(upstream)
        connection = getattr(session, "_connection", None)
        if self.roots.called(server, connection, principal):  # kept per connection
            # A caller that can be asked on its own stream calls a server waiting for roots: told now (its ask
            # may come after this call ends), not only at the next arrival.
            group = getattr(self._hub, "_task_group", None)
            if group is not None:
                group.start_soon(self.roots_notices.tell_waiting, connection, principal, server)
        token = current_upstream.set(upstream)
        try:
            yield upstream
        finally:
            current_upstream.reset(token)
            calls.remove(upstream)
            withdraw(upstream)

    def callbacks(self, server: str, mine: OwnerRef | None = None) -> dict[str, Any]:
        """The `mcp.Client` callbacks for one downstream: each relays to a client of the hub — with
        `mine` (a per-client session's owner: its upstream connection, held weakly), only to `mine()`."""

        async def sampling(ctx: ClientRequestContext | None, params: types.CreateMessageRequestParams) -> Any:
            task = self.tasks.related_task(server, params.meta, ctx.session if ctx is not None else None)
            back = progress_back(server, ctx, params.meta)
            params = self._task_ids_exposed(server, params, ctx)
            result_type = types.CreateMessageResultWithTools if params.tools else types.CreateMessageResult
            return await self._relay(server, "sampling", types.CreateMessageRequest(params=params), result_type, mine,
                                     task, progress=back)

        async def elicitation(ctx: ClientRequestContext | None, params: types.ElicitRequestParams) -> Any:
            task = self.tasks.related_task(server, params.meta, ctx.session if ctx is not None else None)
            back = progress_back(server, ctx, params.meta)
            params = self._task_ids_exposed(server, params, ctx)
            return await self._relay(server, "elicitation", types.ElicitRequest(params=params), types.ElicitResult,
                                     mine, task, progress=back)

        async def roots(ctx: ClientRequestContext) -> Any:
            return await self._relay(server, "roots", types.ListRootsRequest(), types.ListRootsResult, mine,
                                     progress=progress_back(server, ctx, None))

        return {"sampling_callback": sampling, "elicitation_callback": elicitation, "list_roots_callback": roots}

    def _task_ids_exposed(self, server: str, params: Any, ctx: ClientRequestContext | None) -> Any:
        """`params` with a `related-task` id as the client knows it (`hub.relay.tasks`)."""
        meta = self.tasks.expose_related(server, params.meta, session_serial(ctx.session) if ctx is not None else None)
        return params if meta is params.meta else params.model_copy(update={"meta": meta})

    def _target(self, server: str, kind: str, owner: OwnerRef | None,
                task: tuple[bool, RelayedTask | None] = (False, None),
                ) -> tuple[Any, types.RequestId | None, Principal, UpstreamCall | None, list[UpstreamCall]] | None | object:
        """Where a server's request goes: the client's session (or its own stream, `ClientStream`), the
        request id of the call whose stream carries it, the principal, that call, and every call it may
        belong to (`RelayedRequest.holders`); None (no one), `AMBIGUOUS`, or a reason to refuse."""
        def ours(session: ServerSession) -> bool:  # a per-client session answers to its own client only
            return owner is None or getattr(session, "_connection", None) is owner()

        calls = [call for call in self._in_flight.get(server, ()) if ours(call.session)]
        about_task, related = task
        if about_task:
            return self._task_target(calls, related)
        known = answering.get()
        if known is not None and known.active and known.server == server:
            return self._known_target(server, known.upstream, calls)
        if owner is None and (downstream := self._hub.downstreams.get(server)) is not None:
            # Every call in flight counts, also those of clients that offered nothing a server could
            # ask (their calls are not tracked here): a request caused by one must not reach another.
            callers = downstream.stats.calling()
            if len(callers) > 1 or (calls and callers and callers != {identity(calls[-1].principal)}):
                return AMBIGUOUS
            if calls and downstream.stats.in_flight > len(calls):  # an untracked call on the wire beside them
                return AMBIGUOUS
            if calls and any(asker is not connection_of(calls[-1]) for asker in downstream.stats.askers()):
                # A prompt, read or completion of another connection is with the server too: it may be the one
                # asking (outside review relay18 D2: client A's prompt's question went to client B's call).
                return AMBIGUOUS
        if calls:
            upstream = calls[-1]
            # One caller on two connections (two windows of one key, or every client when auth is off) is
            # two places to ask: calls of several connections are as ambiguous as calls of several callers
            # (outside review, relay round 7: client A's sampling went to client B, whose answer went into A's call).
            if any(identity(call.principal) != identity(upstream.principal) or connection_of(call) is not connection_of(upstream)
                   for call in calls):
                return AMBIGUOUS
            if kind == "roots" and always_open(connection := connection_of(upstream)):
                # About the client, not the call: on its own stream, not withdrawn when a call ends (a re-ask on
                # `roots/list_changed` crossing an unrelated call was withdrawn with it in 1 ms).
                return ClientStream(connection), None, upstream.principal, None, []
            return upstream.session, upstream.request_id, upstream.principal, upstream, calls
        if kind == "roots":
            found = self.roots.target(server, owner() if owner is not None else None)
            return found if isinstance(found, str) else (found[0], None, found[1], None, [])
        return None

    def _known_target(self, server: str, upstream: UpstreamCall | None, calls: list[UpstreamCall]) -> Any:
        """Where a request that is part of one known call's answer goes (`hub.relay.upstream.answering_for`):
        that call's client, on that call, whoever else is calling — or a reason it cannot be asked."""
        if upstream is None:
            return (f"the client whose call to {server!r} this answers declared none of sampling, elicitation or "
                    "roots; the hub asks no other client. Connect with a client that offers what the tool asks for")
        if upstream not in calls:  # its call ended (or a per-client session's owner differs): no one waits
            return None
        return upstream.session, upstream.request_id, upstream.principal, upstream, [upstream]

    def _task_target(self, calls: list[UpstreamCall], related: RelayedTask | None) -> Any:
        """Where a task's request (`related-task`) goes: a call in flight on the connection that created the
        task (its `tasks/result`), else to no one — never to another connection, even of the same principal
        (review round 5: alice's task's question reached bob; relay18 D1: it reached the other window of one
        key, or any client with auth off, whose answer went into the task). Decided: with the creator's
        connection gone, the request is refused saying so — no other connection can poll the task (tasks are
        owned per connection), so none can be the one waiting on it."""
        if related is None:
            return None
        creator = related.owner() if related.owner is not None else None
        if creator is None:
            return (f"the client connection that created task {related.exposed[:200]!r} has disconnected; no other "
                    "connection may answer for it (a task belongs to the connection that created it). Fail the task "
                    "or let it expire (its ttl)")
        mine = [call for call in calls if connection_of(call) is creator]
        return (mine[-1].session, mine[-1].request_id, mine[-1].principal, mine[-1], [mine[-1]]) if mine else None

    async def _relay(self, server: str, kind: str, request: Any, result_type: Any,
                     owner: OwnerRef | None = None, task: tuple[bool, RelayedTask | None] = (False, None),
                     again: tuple[ClientStream, Principal] | None = None, progress: ProgressFnT | None = None) -> Any:
        """Relay one server request (`again`: a `roots/list` withdrawn with a call, asked on the client's own stream;
        `progress`: where the client's progress for it goes, when the server asked for some: `progress_back`)."""
        target = self._target(server, kind, owner, task) if again is None else (again[0], None, again[1], None, [])
        if target is AMBIGUOUS:
            return self._refuse(server, kind, None, f"calls from several callers or connections to {server!r} are in flight on one shared "
                                f"session, and nothing says which of them caused this {request.method}; it goes to no one "
                                f"rather than to the wrong caller. Set `session: per_client` for {server!r} in the hub's config")
        if isinstance(target, str):
            return self._refuse(server, kind, None, target)
        if target is None and task[0]:
            return self._refuse(server, kind, None, f"the client whose task this {request.method} is about is not waiting on "
                                "it (tasks/result); it goes to no one else")
        if target is None:
            downstream = self._hub.downstreams.get(server)
            if downstream is not None and downstream.stats.calling():  # untracked: no capability, or not a tool call
                return self._refuse(server, kind, None, f"what is in flight to {server!r} cannot be asked {request.method}: "
                                    "a tool call of a client that offered no such capability, or a prompt, resource read "
                                    "or completion (the hub relays a server's requests only during a tool call)")
            return self._refuse(server, kind, None, f"no client of the hub has a call to {server!r} in flight to answer {request.method}; "
                                "the hub relays a server's requests only while a client's call to it runs")
        session, request_id, principal, upstream, holders = target
        if not may_see_server(self._hub, principal, server):
            return self._refuse(server, kind, principal, f"the client that would answer {request.method} may not see server {server!r}")
        lacking = lacks(session.client_capabilities, request)
        if lacking is not None:
            return self._refuse(server, kind, principal, f"the client did not declare {lacking}; {request.method} cannot be answered")
        park = upstream.park if upstream is not None else None
        if park is None and not session.can_send_request and request_id is None:
            return self._refuse(server, kind, principal, f"the client has no channel for {request.method}")
        started = now()
        paused = [call for holder in holders if (call := pause_idle_deadline(holder.call)) is not None]
        for other in self._in_flight.get(server, ()):
            # A timeout after this says nothing of the server (`hub.policies.breaker`): for every call of
            # this caller in flight to it, since nothing says which of them asked (second outside review:
            # only the newest was excused, and five unanswered elicitations paused their caller).
            if other.call is not None and identity(other.principal) == identity(principal):
                other.call.attributes[ASKED_CLIENT] = True
        scope = anyio.CancelScope()  # cancelled by `track` when the last call it may belong to ends (`withdraw`)
        relayed = RelayedRequest(scope, anyio.Event(), list(holders))
        for holder in holders:
            holder.relayed[scope] = relayed
        try:
            with scope:
                if park is not None:
                    result = await park(request, result_type)
                else:
                    self.url_elicitations.relayed(server, owner() if owner is not None else None, request, session, upstream,
                                                  principal)
                    metadata = ServerMessageMetadata(related_request_id=request_id) if request_id is not None else None
                    # With `progress`, the SDK gives the request a progress token of the hub's own (its request
                    # id, unique on this connection) and hands the client's progress for it to `progress`.
                    result = await session.send_request(request, result_type, metadata=metadata, progress_callback=progress)
        except MCPError as exc:
            self.audit_event(server, kind, principal, "error", str(exc.error.code), started)
            if kind == "roots" and isinstance(session, ClientStream):  # unanswered on the client's own stream:
                self.roots.mark_waiting(server, owner() if owner is not None else None)  # told again when one can
            return exc.error
        except anyio.get_cancelled_exc_class():  # the server withdrew its request (or the hub is stopping)
            self.audit_event(server, kind, principal, "cancelled", None, started)
            raise
        except Exception as exc:  # boundary: the server gets an error, never a hub traceback
            self.audit_event(server, kind, principal, "error", "internal", started)
            return types.ErrorData(code=types.INTERNAL_ERROR, message=f"the hub could not relay {request.method}: {type(exc).__name__}")
        finally:
            relayed.settled.set()
            for holder in holders:
                holder.relayed.pop(scope, None)
            for call in paused:
                resume_idle_deadline(call)
        if scope.cancelled_caught and kind == "roots" and again is None and self.roots.can_ask(connection := getattr(session, "_connection", None)):
            # About the client, not the call that happened to carry it (a Streamable HTTP client may have no GET
            # stream, so it went there first): asked again on the client's own stream rather than withdrawn.
            return await self._relay(server, kind, request, result_type, owner, task, (ClientStream(connection), principal),
                                     progress)
        if scope.cancelled_caught:
            if kind == "roots" and again is None:  # withdrawn with its call, its client not askable now: told later
                self.roots.mark_waiting(server, owner() if owner is not None else None)
            outcome = relayed.ended or "cancelled"
            self.audit_event(server, kind, principal, outcome, None, started)
            return types.ErrorData(code=REQUEST_CANCELLED,
                                   message=f"{request.method} withdrawn by the hub: the client's call that caused it "
                                           f"ended ({outcome}) before the client answered")
        self.audit_event(server, kind, principal, "ok", None, started)
        return result

    def _refuse(self, server: str, kind: str, principal: Principal | None, why: str) -> types.ErrorData:
        self.audit_event(server, kind, principal, "denied", "forbidden", None)
        if (downstream := self._hub.downstreams.get(server)) is not None:
            downstream.stats.relay_refusals += 1  # the breaker does not count what fails of it
        return types.ErrorData(code=types.INVALID_REQUEST, message=f"refused by the hub: {why}")

    def audit_event(self, server: str, kind: str, principal: Principal | None, outcome: str, code: str | None,
               started: float | None) -> None:
        """Audit one relayed request (kind `relay:<kind>`) and log it on `hub.relay`."""
        ms = round((now() - started) * 1000, 3) if started is not None else None
        name = principal.name if principal is not None else "-"
        logger.info(RELAY_LINE, mask_short(kind), mask_short(server), mask_short(name), outcome, code, ms)
        audit = self._hub.audit_log
        if audit is not None:
            auth_kind, credential = (principal.kind, principal.credential) if principal is not None else ("none", "")
            audit.record(AuditEvent(time.time(), new_request_id(), name, f"relay:{kind}", server, outcome, code, ms,
                                    {}, frozenset(), auth_kind, credential))


MAX_URL_ELICITATIONS = 1000
"""URL-mode elicitations remembered for their completion notice; the oldest are forgotten first."""

AMBIGUOUS = object()
"""`_target`'s answer when calls of several principals are in flight on one shared session."""
