"""2025-11-25 tasks across replicas: a task lives on the replica that created it (its server's session
is there), and any replica holding a copy of the session answers `tasks/get|result|cancel` about it by
asking that replica through Redis.

Before, a task created through replica A was "task not found" on replica B — word for word the answer
for a task that does not exist — so a client polling through a round-robin balancer saw its task
vanish on every other poll, and might create a write task again (outside review, cluster round 18 #5).

Rules (docs/deploy.md, "Sessions"):
- In a sealed session (`hub.cluster.session_secrets`), a task id the hub gives its client carries the
  replica that holds it and a MAC over (that replica, the id, the session) with a key derived from the
  first secret (every secret verifies): `<server>:<taskId>@<replica>.<mac>`. So another replica knows
  the id was issued in this very session, and by whom; a made-up or another session's id is "not
  found" as ever, and says nothing more. Without session secrets, ids are `<server>:<taskId>` as before.
- With `hub.cluster.redis_url` too, a replica that does not hold such a task asks the holder on the
  notification channel (`task_ask`, HMAC-signed with that key and at most 60 s old, each ask answered
  once: write access to Redis does not read or cancel tasks). The ask is charged to the caller's rate
  limit on the replica asked (`hub.relay.tasks`); the holder answers for its copy of the session, as if
  asked there (taking the bulkhead slot), and the ask counts as use of that copy (its idle timeout
  does not run while another replica asks about it). Its replies (`task_answer`: an acknowledgment at
  once and every `ANSWER_BEAT_S` while it works, then the answer) are sealed (`hub.cluster.replies`:
  AES-GCM under a key derived from the secrets), so a result never crosses Redis in clear and a reply
  not made by a replica of this deployment, or not from the replica asked, is ignored (outside review,
  cluster round 26 #2). `tasks/result` waits up to the request's own deadline (the server's hard
  limit, as locally) once acknowledged; the 2 s acknowledgment bounds only the acknowledgment (round
  26 #1). Not carried over: the progress of a `tasks/result` asked through another replica, and a
  server's request during it (elicitation, sampling: refused, as for a client gone — these need
  affinity anyway).
- The holder not acknowledging within `ACK_S` (stopped, restarted, Redis down), going silent for
  `SILENT_S` after it did, or no longer holding the session's copy (closed there: a disconnect is not a
  cancel, the task was forgotten — never "not found"), is an error naming the replica and saying the
  task itself may still run on its server.
- `tasks/list` answers this replica's tasks of the session and those every other replica holds for it
  (one signed ask to all; each replica acknowledges at once and answers within `hub.timeout_s`). Waited
  for: the replicas known alive (`hub.cluster.replies.Members`, sealed heartbeats) and those that
  acknowledged; a subscriber of the channel that is no replica of this deployment is not (round 26 #6).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError

from hub.cluster.replies import ALIVE_EVENT, Members, ReplicaMessages
from hub.cluster.sealing import PREFIX
from hub.cluster.session_state import in_use
from hub.cluster.signing import SharedKeys, canonical, configured_secrets, id_digest

if TYPE_CHECKING:
    from hub.cluster.notify import ClusterNotifier
    from hub.hub import Hub

logger = logging.getLogger("hub.cluster")

ACK_S = 2.0
"""How long a replica waits for the holder of a task to acknowledge an ask (not for its answer)."""
ANSWER_BEAT_S = 5.0
"""How often the holder acknowledges again while it answers (a long `tasks/result`)."""
SILENT_S = 3 * ANSWER_BEAT_S
"""A holder that acknowledged and then says nothing for this long has stopped (killed, Redis gone)."""
MAX_ASK_AGE_S = 60.0
SEEN_ASKS = 8192
_PURPOSE = b"mcp-hub task ids v1"
_MARK = re.compile(r"@([0-9a-f]{12})\.([A-Za-z0-9_-]{16})\Z")
def unmarked(exposed: str) -> str:
    """A task id as the hub keys it (`<server>:<taskId>`): without its replica mark, if it has one."""
    found = _MARK.search(exposed)
    return exposed[:found.start()] if found is not None else exposed


class TaskMarks:
    """Task ids that say which replica holds them, verifiable by every replica of the cluster."""

    def __init__(self, secrets: Sequence[str], replica: str) -> None:
        self._keys = SharedKeys(_PURPOSE, secrets)
        self.replica = replica[:12]

    def mark(self, base: str, session_id: str | None) -> str:
        """`base` with this replica's mark, for a sealed session; unchanged otherwise (it never moves)."""
        if not _sealed(session_id):
            return base
        assert session_id is not None
        return f"{base}@{self.replica}.{self._keys.sign(canonical([self.replica, base, id_digest(session_id)]), 16)}"

    def holder(self, exposed: str, session_id: str | None) -> str | None:
        """The replica that issued `exposed` in this session, when it is another one; else None."""
        found = _MARK.search(exposed)
        if found is None or not _sealed(session_id) or found.group(1) == self.replica:
            return None
        assert session_id is not None
        base, replica = exposed[:found.start()], found.group(1)
        ok = self._keys.verify(canonical([replica, base, id_digest(session_id)]), found.group(2), 16)
        return replica if ok else None

    def sign(self, payload: dict[str, Any]) -> str:
        return self._keys.sign(canonical(payload))

    def signed(self, payload: dict[str, Any], signature: Any) -> bool:
        return self._keys.verify(canonical(payload), signature)


def _sealed(session_id: str | None) -> bool:
    return isinstance(session_id, str) and session_id.startswith(PREFIX)


def elsewhere(exposed: str, replica: str, why: str) -> MCPError:
    """The error for a task of this session that another replica holds and could not answer for."""
    return MCPError(code=types.INVALID_PARAMS, data={"reason": "other_replica", "replica": replica},
                    message=f"task {exposed[:200]!r} is held by another replica of this hub ({replica}), which {why}; "
                            "the task itself may still be running on its server. Ask again (another request may "
                            "reach that replica), or have the balancer keep this session on one replica "
                            "(docs/deploy.md, Sessions)")


class RemoteTasks:
    """Asks about tasks another replica holds, and answers the other replicas' asks about ours."""

    def __init__(self, hub: Hub, notifier: ClusterNotifier, marks: TaskMarks, messages: ReplicaMessages) -> None:
        self._hub = hub
        self._notifier = notifier
        self.marks = self._marks = marks
        self._messages = messages
        self.members = Members(messages, marks.replica, notifier.publish)
        self._waiting: dict[str, tuple[str, anyio.abc.ObjectSendStream[dict[str, Any]]]] = {}
        """Ask id → the replica asked ("*": all) and where its replies go."""
        self._asks: OrderedDict[str, None] = OrderedDict()
        """Ask ids answered here (a signed ask replayed within its 60 s is not answered twice)."""
        notifier.on_event("task_ask", self._asked)
        notifier.on_event("task_answer", self._answered)
        notifier.on_event(ALIVE_EVENT, self.members.on_beat)
        notifier.in_background(self.members.run)

    async def ask(self, replica: str, session_id: str, method: str, exposed: str, seconds: float,
                  view: str | None) -> dict[str, Any]:
        """`method` about task `exposed` of this session, answered by `replica` that holds it: its answer, or
        its JSON-RPC error raised. Waits `ACK_S` for the acknowledgment, then up to the request's own
        deadline (`seconds`, plus `ACK_S` for the way back) for the answer, as long as the holder shows it
        is still at it (an acknowledgment every `ANSWER_BEAT_S`). Outside review, cluster round 26 #1: the
        acknowledgment's 2 s bounded the whole wait, so a `tasks/result` of a task running longer was cut."""
        ask_id = uuid4().hex
        payload = {"to": replica, "from": self._marks.replica, "ask": ask_id, "at": time.time(), "method": method,
                   "taskId": exposed, "session": id_digest(session_id), "view": view}
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](16)
        self._waiting[ask_id] = (replica, send)
        try:
            await self._notifier.publish({"type": "task_ask", "payload": payload, "sig": self._marks.sign(payload)})
            deadline = anyio.current_time() + seconds + ACK_S
            acknowledged = False
            while True:
                gap = min(SILENT_S, max(0.0, deadline - anyio.current_time())) if acknowledged else ACK_S
                reply: dict[str, Any] | None = None
                with anyio.move_on_after(gap):
                    reply = await receive.receive()
                if reply is None:
                    raise elsewhere(exposed, replica, _silence(method, acknowledged, gap, seconds + ACK_S,
                                                               anyio.current_time() >= deadline))
                if reply.get("kind") == "ack":
                    acknowledged = True
                    continue
                return _result(reply)
        finally:
            self._waiting.pop(ask_id, None)
            send.close()

    async def list_elsewhere(self, session_id: str, view: str | None, seconds: float) -> list[dict[str, Any]]:
        """The tasks the other replicas hold for this session (on the face of profile `view`), as each
        answers within `seconds`; none when Redis does not take the ask. Waited for: the replicas known
        alive (`Members`) and those that acknowledged — a subscriber of the channel that is neither (not a
        replica of this deployment) is waited for `ACK_S` at most, and only while no replica is known
        (outside review, cluster round 26 #6: one foreign subscriber made every listing take `seconds`)."""
        ask_id = uuid4().hex
        payload = {"to": "*", "from": self._marks.replica, "ask": ask_id, "at": time.time(), "method": "tasks/list",
                   "taskId": None, "session": id_digest(session_id), "view": view}
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](256)
        self._waiting[ask_id] = ("*", send)
        found: list[dict[str, Any]] = []
        alive = self.members.alive()
        try:
            try:
                reached = await self._notifier.publish_counted({"type": "task_ask", "payload": payload,
                                                               "sig": self._marks.sign(payload)})
            except Exception as exc:  # noqa: BLE001 — this replica's tasks are still listed
                logger.info("tasks/list asked no other replica (Redis: %s)", type(exc).__name__)
                return found
            started = anyio.current_time()
            acked: set[str] = set()
            answered: set[str] = set()
            with anyio.move_on_after(seconds):
                while not _listing_done(alive, acked, answered, reached, anyio.current_time() - started):
                    waited = anyio.current_time() - started
                    reply: dict[str, Any] | None = None
                    with anyio.move_on_after(ACK_S - waited if waited < ACK_S else math.inf):
                        reply = await receive.receive()
                    if reply is None:
                        continue
                    sender = str(reply.get("from"))
                    acked.add(sender)
                    if reply.get("kind") == "ack" or sender in answered:
                        continue
                    answered.add(sender)
                    listed = (reply.get("body") or {}).get("tasks") if reply.get("kind") == "result" else None
                    found += [task for task in listed if isinstance(task, dict)] if isinstance(listed, list) else []
            return found
        finally:
            self._waiting.pop(ask_id, None)
            send.close()

    async def _answered(self, event: dict[str, Any]) -> None:
        """A reply to an ask of this replica: taken only when it opens (sealed by a replica of this
        deployment: outside review, cluster round 26 #2, anyone publishing on Redis answered first), is
        addressed here, and comes from the replica asked."""
        if event.get("to") != self._marks.replica:
            return
        reply = self._messages.open(event.get("sealed"))
        if reply is None:
            logger.warning("ignored a task answer from Redis that is not sealed by a replica of this hub, "
                           "altered, stale or replayed")
            return
        waiting = self._waiting.get(str(reply.get("ask")))
        sender = reply.get("from")
        if reply.get("to") != self._marks.replica or waiting is None or not isinstance(sender, str):
            return
        if waiting[0] not in ("*", sender):
            return
        self.members.heard(sender)
        try:
            waiting[1].send_nowait(reply)
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async def _asked(self, event: dict[str, Any]) -> None:
        payload = event.get("payload")
        if not isinstance(payload, dict) or payload.get("to") not in (self._marks.replica, "*"):
            return
        at = payload.get("at")
        if not self._marks.signed(payload, event.get("sig")) or not isinstance(at, int | float) or abs(time.time() - at) > MAX_ASK_AGE_S:
            logger.warning("ignored a task request from Redis that is unsigned, altered or stale")
            return
        ask_id, asker = str(payload.get("ask")), str(payload.get("from"))
        if ask_id in self._asks:
            return  # a replay of a signed ask (its id is covered by the signature)
        self._asks[ask_id] = None
        while len(self._asks) > SEEN_ASKS:
            self._asks.popitem(last=False)
        self.members.heard(asker)
        async with anyio.create_task_group() as beating:
            beating.start_soon(self._beat, asker, ask_id)  # an acknowledgment now, and while it is answered
            try:
                kind, body = "result", await self._answer(payload)
            except MCPError as exc:
                kind, body = "error", exc.error.model_dump(mode="json", exclude_none=True)
            except Exception as exc:  # noqa: BLE001 — the asking replica's client gets an error, never a hang
                logger.warning("could not answer another replica's %s: %s", payload.get("method"), type(exc).__name__)
                kind, body = "error", {"code": types.INTERNAL_ERROR, "message": (
                    f"the replica holding task {str(payload.get('taskId'))[:200]!r} failed to answer; try again")}
            beating.cancel_scope.cancel()
        await self._reply(asker, ask_id, kind, body)

    async def _beat(self, asker: str, ask_id: str) -> None:
        while True:
            await self._reply(asker, ask_id, "ack", None)
            await anyio.sleep(ANSWER_BEAT_S)

    async def _reply(self, asker: str, ask_id: str, kind: str, body: Any) -> None:
        """A reply to `asker`'s ask, sealed (only a replica of this deployment reads or makes one: a task's
        result does not cross Redis in clear)."""
        sealed = self._messages.seal({"to": asker, "from": self._marks.replica, "ask": ask_id, "kind": kind,
                                      "body": body})
        await self._notifier.publish({"type": "task_answer", "to": asker, "sealed": sealed})

    async def _answer(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The ask, answered for this replica's copy of the session, as if its client had asked here; the
        ask counts as use of that copy, so it does not idle out while polled through another replica
        (outside review, cluster round 26 #3: it did, and the task was then "not found")."""
        exposed, method = str(payload.get("taskId")), str(payload.get("method"))
        sessions = self._notifier.sessions
        held = sessions.held(str(payload.get("session"))) if sessions is not None else None
        view = payload.get("view")
        view = view if isinstance(view, str) else None
        if method == "tasks/list":
            if held is None:
                return {"tasks": []}
            with in_use(held[0]):
                return await self._hub.request_relay.tasks.list_for_replica(held[0], held[1], view)
        if method not in ("tasks/get", "tasks/result", "tasks/cancel") or held is None:
            raise elsewhere(exposed, self._marks.replica, "no longer holds this session (its copy there closed, "
                            "idle or stopped, and forgot its tasks)")
        connection, principal = held
        with in_use(connection):
            return await self._hub.request_relay.tasks.answer_for_replica(connection, principal, method, exposed, view)


def _result(reply: dict[str, Any]) -> dict[str, Any]:
    """A holder's final reply: its result, or its JSON-RPC error raised."""
    body = reply.get("body")
    if reply.get("kind") == "error":
        error = body if isinstance(body, dict) else {}
        raise MCPError(code=int(error.get("code", types.INTERNAL_ERROR)), message=str(error.get("message", "")),
                       data=error.get("data"))
    return dict(body) if isinstance(body, dict) else {}


def _silence(method: str, acknowledged: bool, gap: float, limit: float, past_deadline: bool) -> str:
    """Why the holder's answer did not come, for `elsewhere`."""
    if not acknowledged:
        return f"did not answer within {ACK_S:g}s (it may have stopped, or Redis is not reachable)"
    if past_deadline:
        return f"did not answer {method} within {limit:g}s (the request's deadline)"
    return (f"stopped answering {method}: no sign of it for {gap:g}s (it may have stopped, or Redis is not "
            "reachable)")


def _listing_done(alive: set[str], acked: set[str], answered: set[str], reached: int, waited: float) -> bool:
    """Whether a `tasks/list` asked of all has its answers: every replica that acknowledged has answered, and
    no more acknowledgments are due — from every receiver PUBLISH counted, or (known alive replicas all
    acknowledged, or `ACK_S` passed) from the real replicas."""
    if not acked <= answered:
        return False
    if len(acked) >= reached:
        return True
    return waited >= ACK_S or (bool(alive) and alive <= acked)


def remote_tasks(hub: Hub, notifier: ClusterNotifier) -> RemoteTasks | None:
    """The cross-replica task relay when session secrets are configured too, else None."""
    secrets = configured_secrets(hub.config)
    return RemoteTasks(hub, notifier, TaskMarks(secrets, notifier.replica), ReplicaMessages(secrets)) if secrets else None
