"""Resumable event streams for the hub's 2025-11-25 Streamable HTTP sessions (`Last-Event-ID`).

Built without an event store, the SDK's transport sent events without ids, so a client whose stream
dropped mid-call (a proxy's idle timeout, a network blip) could not resume it, and a `GET /mcp` with
`Last-Event-ID` got HTTP 500: the SDK returned without answering (outside review interop16 #5).

Each session gets a `SessionEvents` of its own (`with_event_stores` wraps the manager's admission):
the events the SDK writes on a call's stream or the GET stream, at most `MAX_EVENTS` and
`MAX_BYTES` per session, the oldest evicted first, and at most `HUB_BYTES` over every session of the
process (a session storing past it evicts its own oldest); they go with the session. A store per
session, never one shared: the SDK names a call's stream by the request's id, which every session reuses.

`LastEventGate` answers a `GET` with `Last-Event-ID` before the SDK sees it: an id the session holds
is replayed by the SDK (the events after it, then the stream goes on live); an id of the GET stream
that it no longer holds (or one the hub never issued) opens a fresh GET stream, the header dropped
(what was sent meanwhile is lost, as without resumption); an id of a call's stream that it no longer
holds is 410 Gone, saying so: that call's answer is lost, and waiting on a fresh stream would never
bring it. Plain calls the fast path answers as `application/json` (`hub.frontends.http.http_calls`)
have no stream to resume.

A session this replica does not hold yet, but would continue (a sealed id of its requester,
`hub.cluster.sessions`: the replica that ran the call stopped, or the balancer picked another), holds
none of its events here: judged so before the SDK adopts it and replays from an empty store — which
answered an empty 200 stream (outside review, cluster round 18 #7). A call's stream id is 410 Gone,
a GET stream's opens a fresh GET stream (the session adopted).

An event the store does not keep — larger than a session's bytes, a big result whose long strings
were lifted out (`hub.lifted`: its skeleton would replay them empty), or one the process's budget has
no room for — is a gap in its stream: resuming a call's stream from before the gap is 410 Gone too, as
replaying around it would leave the client waiting for an answer that never comes (or give it a
result with its text missing). A GET stream resumed across a gap is replayed without it, as any
notification is best effort.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from mcp.server.streamable_http import (
    GET_STREAM_KEY,
    LAST_EVENT_ID_HEADER,
    MCP_SESSION_ID_HEADER,
    EventCallback,
    EventId,
    EventMessage,
    EventStore,
    StreamId,
)
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp_types import JSONRPCMessage

from hub.lifted import PLACEHOLDER_MARK
from starlette.types import ASGIApp, Receive, Scope, Send

MAX_EVENTS = 500
"""Events kept per session."""
MAX_BYTES = 1024 * 1024
"""Bytes of events (as JSON) kept per session; a larger event is not kept at all."""
HUB_BYTES = 64 * 1024 * 1024
"""Bytes of events kept over all sessions of the process."""
_GET, _CALL = "g", "r"
"""Event id prefixes: of the GET stream's events, of a call's stream's."""
MAX_GAPS = 64
"""Streams whose latest unkept event is remembered past the oldest held event (older gaps cannot matter)."""


class EventBudget:
    """The bytes of events every session of the process holds, against `cap`."""

    def __init__(self, cap: int = HUB_BYTES) -> None:
        self.cap = cap
        self.used = 0


@dataclass
class _Event:
    stream: StreamId
    message: JSONRPCMessage | None
    size: int


class SessionEvents(EventStore):
    """One session's events for resumption, bounded (see the module)."""

    def __init__(self, budget: EventBudget, max_events: int = MAX_EVENTS, max_bytes: int = MAX_BYTES) -> None:
        self._budget = budget
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._events: OrderedDict[EventId, _Event] = OrderedDict()
        self._bytes = 0
        self._seq = 0
        self._gaps: dict[StreamId, int] = {}
        """Per stream, the sequence number of its latest event that was not kept."""

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        self._seq += 1
        event_id = f"{_GET if stream_id == GET_STREAM_KEY else _CALL}{self._seq}"
        dumped = b"" if message is None else message.model_dump_json(by_alias=True, exclude_unset=True).encode()
        size = len(dumped) + 64
        if size > self._max_bytes or size > self._budget.cap or PLACEHOLDER_MARK in dumped:
            return self._gap(stream_id, event_id)  # too big to keep (a lifted result is over a MiB)
        while self._events and (len(self._events) >= self._max_events or self._bytes + size > self._max_bytes
                                or self._budget.used + size > self._budget.cap):
            self._drop_oldest()
        if self._budget.used + size > self._budget.cap:
            return self._gap(stream_id, event_id)  # other sessions hold the budget
        self._events[event_id] = _Event(stream_id, message, size)
        self._bytes += size
        self._budget.used += size
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        """The events of `last_event_id`'s stream after it, to `send_callback`; its stream, or None if
        the id is not held."""
        last = self._events.get(last_event_id)
        if last is None:
            return None
        after = False
        for event_id, event in list(self._events.items()):
            if after and event.stream == last.stream and event.message is not None:
                await send_callback(EventMessage(event.message, event_id))
            after = after or event_id == last_event_id
        return last.stream

    def holds(self, event_id: str) -> bool:
        return event_id in self._events

    def whole_after(self, event_id: str) -> bool:
        """Whether every event of `event_id`'s stream after it was kept (it must be held)."""
        event = self._events[event_id]
        return self._gaps.get(event.stream, 0) < _seq_of(event_id)

    def _gap(self, stream_id: StreamId, event_id: str) -> str:
        self._gaps[stream_id] = self._seq
        if len(self._gaps) > MAX_GAPS:
            oldest = _seq_of(next(iter(self._events))) if self._events else self._seq
            self._gaps = {stream: seq for stream, seq in self._gaps.items() if seq >= oldest}
        return event_id

    def clear(self) -> None:
        """Drop every event (the session ended)."""
        self._budget.used -= self._bytes
        self._bytes = 0
        self._events.clear()
        self._gaps.clear()

    def _drop_oldest(self) -> None:
        _, event = self._events.popitem(last=False)
        self._bytes -= event.size
        self._budget.used -= event.size


def with_event_stores(manager: Any, budget: EventBudget) -> Any:
    """`manager` (a `StreamableHTTPSessionManager`), each new session's transport given a `SessionEvents`
    of its own, dropped when the session is discarded."""
    admit, discard = manager._admit_session, manager._discard_session  # noqa: SLF001 — the SDK's hooks

    def admitting(requestor: Any) -> Any:
        transport = admit(requestor)
        if transport is not None:
            transport._event_store = SessionEvents(budget)  # noqa: SLF001 — the SDK shares one store per manager
        return transport

    async def discarding(session_id: str, transport: Any) -> None:
        if isinstance(store := getattr(transport, "_event_store", None), SessionEvents):
            store.clear()
        await discard(session_id, transport)

    manager._admit_session = admitting  # noqa: SLF001
    manager._discard_session = discarding  # noqa: SLF001
    return manager


class LastEventGate:
    """Answers what the SDK cannot of a `GET` with `Last-Event-ID` (see the module), in front of `app`."""

    def __init__(self, app: ASGIApp, manager: Any) -> None:
        self.app = app
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        last = next((v.decode("latin-1") for k, v in headers if k == LAST_EVENT_ID_HEADER.encode()), None)
        session_id = next((v.decode("latin-1") for k, v in headers if k == MCP_SESSION_ID_HEADER.encode()), None)
        if last is None or not session_id:
            await self.app(scope, receive, send)
            return
        transport = self.manager._server_instances.get(session_id)  # noqa: SLF001
        if transport is None:
            if await self._adoptable(session_id, scope):
                await self._not_held(last, scope, headers, receive, send, here=False)
            else:  # an unknown session, or one of another caller: its 404
                await self.app(scope, receive, send)
            return
        store = getattr(transport, "_event_store", None)
        if not self._owns(scope, session_id) or (isinstance(store, SessionEvents) and store.holds(last)
                                                 and (store.whole_after(last) or not last.startswith(_CALL))):
            # Replayed by the SDK; a session of another caller is its 404 (recheck17 #4: a 410 here told
            # another caller that the session exists).
            await self.app(scope, receive, send)
            return
        await self._not_held(last, scope, headers, receive, send, here=True)

    async def _not_held(self, last: str, scope: Scope, headers: list[tuple[bytes, bytes]], receive: Receive,
                        send: Send, here: bool) -> None:
        """`last` names events the session does not hold (whole) here: a call's are gone, a GET stream's
        give way to a fresh GET stream."""
        if last.startswith(_CALL) and last[1:].isdigit():
            await _gone(last, send, here)
            return
        scope = {**scope, "headers": [(k, v) for k, v in headers if k != LAST_EVENT_ID_HEADER.encode()]}
        await self.app(scope, receive, send)  # a fresh GET stream

    async def _adoptable(self, session_id: str, scope: Scope) -> bool:
        adoptable = getattr(self.manager, "adoptable", None)
        return adoptable is not None and await adoptable(session_id, scope)

    def _owns(self, scope: Scope, session_id: str | None) -> bool:
        """Whether the request's credential is the one that created the session, as the SDK judges it."""
        user = scope.get("user")
        requestor = authorization_context(user) if isinstance(user, AuthenticatedUser) else None
        return requestor == self.manager._session_owners.get(session_id)  # noqa: SLF001 — the SDK's own record


def _seq_of(event_id: str) -> int:
    return int(event_id[1:])


async def _gone(last: str, send: Send, here: bool = True) -> None:
    why = (f"that the hub no longer holds whole (it keeps a session's last {MAX_EVENTS} events, "
           f"{MAX_BYTES // 1024} KiB, and no single event over that, such as a big result)" if here else
           "that this hub replica never held (the call ran on another replica, which stopped or which the "
           "balancer did not pick; a call's events stay on the replica that ran it)")
    message = (f"Last-Event-ID {last[:64]!r} names events of a call's stream {why}: that call's answer is lost; "
               "call again (a write only if it did not happen: check first), or open the event stream without "
               "Last-Event-ID")
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}).encode()
    await send({"type": "http.response.start", "status": 410,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
