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
  notification channel (`task_ask`, HMAC-signed with that key and at most 60 s old: write access to
  Redis does not read or cancel tasks); the holder answers for its copy of the session, as if asked
  there (`task_answer`: an acknowledgment at once, then the answer). `tasks/result` waits up to the
  server's hard limit, as locally. Not carried over: the progress of a `tasks/result` asked through
  another replica, and a server's request during it (elicitation, sampling: refused, as for a client
  gone — these need affinity anyway).
- The holder not acknowledging within `ACK_S` (stopped, restarted, Redis down), or no longer holding
  the session's copy (idled out there: a disconnect is not a cancel, the task was forgotten), is an
  error naming the replica and saying the task itself may still run on its server.
- `tasks/list` answers this replica's tasks of the session and those every other replica holds for it
  (one signed ask to all, `publish_counted` saying how many to wait for, each within `hub.timeout_s`).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError

from hub.cluster.sealing import PREFIX
from hub.cluster.signing import SharedKeys, canonical, id_digest

if TYPE_CHECKING:
    from hub.cluster.notify import ClusterNotifier
    from hub.config import HubConfig
    from hub.hub import Hub

logger = logging.getLogger("hub.cluster")

ACK_S = 2.0
"""How long a replica waits for the holder of a task to acknowledge an ask."""
MAX_ASK_AGE_S = 60.0
_PURPOSE = b"mcp-hub task ids v1"
_MARK = re.compile(r"@([0-9a-f]{12})\.([A-Za-z0-9_-]{16})\Z")
SECRETS_ENV = "MCP_HUB_SESSION_SECRETS"


def configured_secrets(config: HubConfig) -> list[str]:
    """`hub.cluster.session_secrets`, else `$MCP_HUB_SESSION_SECRETS` (as `hub.cluster.sessions` reads them)."""
    found = [s.get_secret_value() for s in config.hub.cluster.session_secrets]
    return found or [s for s in os.environ.get(SECRETS_ENV, "").split(",") if s.strip()]


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

    def __init__(self, hub: Hub, notifier: ClusterNotifier, marks: TaskMarks) -> None:
        self._hub = hub
        self._notifier = notifier
        self.marks = self._marks = marks
        self._waiting: dict[str, anyio.abc.ObjectSendStream[dict[str, Any]]] = {}
        notifier.on_event("task_ask", self._asked)
        notifier.on_event("task_answer", self._answered)

    async def ask(self, replica: str, session_id: str, method: str, exposed: str, seconds: float,
                  view: str | None) -> dict[str, Any]:
        """`method` about task `exposed` of this session, answered by `replica` that holds it (within `seconds`
        once acknowledged); its answer, or its JSON-RPC error raised."""
        ask_id = uuid4().hex
        payload = {"to": replica, "from": self._marks.replica, "ask": ask_id, "at": time.time(), "method": method,
                   "taskId": exposed, "session": id_digest(session_id), "view": view}
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](2)
        self._waiting[ask_id] = send
        try:
            await self._notifier.publish({"type": "task_ask", "payload": payload, "sig": self._marks.sign(payload)})
            with anyio.move_on_after(ACK_S):
                await receive.receive()  # the holder's acknowledgment
                with anyio.move_on_after(seconds + ACK_S):
                    answer = await receive.receive()
                    if "error" in answer:
                        error = answer["error"]
                        raise MCPError(code=int(error.get("code", types.INTERNAL_ERROR)),
                                       message=str(error.get("message", "")), data=error.get("data"))
                    return dict(answer.get("result") or {})
                raise elsewhere(exposed, replica, f"did not answer {method} within {seconds + ACK_S:g}s")
            raise elsewhere(exposed, replica, f"did not answer within {ACK_S:g}s (it may have stopped, or Redis "
                            "is not reachable)")
        finally:
            self._waiting.pop(ask_id, None)
            send.close()

    async def list_elsewhere(self, session_id: str, view: str | None, seconds: float) -> list[dict[str, Any]]:
        """The tasks the other replicas hold for this session (on the face of profile `view`), as each
        answers within `seconds`; none when Redis does not take the ask."""
        ask_id = uuid4().hex
        payload = {"to": "*", "from": self._marks.replica, "ask": ask_id, "at": time.time(), "method": "tasks/list",
                   "taskId": None, "session": id_digest(session_id), "view": view}
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](64)
        self._waiting[ask_id] = send
        found: list[dict[str, Any]] = []
        try:
            try:
                reached = await self._notifier.publish_counted({"type": "task_ask", "payload": payload,
                                                               "sig": self._marks.sign(payload)})
            except Exception as exc:  # noqa: BLE001 — this replica's tasks are still listed
                logger.info("tasks/list asked no other replica (Redis: %s)", type(exc).__name__)
                return found
            with anyio.move_on_after(seconds):
                for _ in range(reached):
                    answer = await receive.receive()
                    listed = (answer.get("result") or {}).get("tasks")
                    found += [task for task in listed if isinstance(task, dict)] if isinstance(listed, list) else []
            return found
        finally:
            self._waiting.pop(ask_id, None)
            send.close()

    async def _answered(self, event: dict[str, Any]) -> None:
        if event.get("to") != self._marks.replica:
            return
        waiting = self._waiting.get(str(event.get("ask")))
        if waiting is not None:
            try:
                waiting.send_nowait(event)
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
        reply = {"type": "task_answer", "to": payload.get("from"), "ask": payload.get("ask")}
        if payload.get("method") != "tasks/list":  # a list is answered by every replica, at once
            await self._notifier.publish({**reply, "ack": True})
        try:
            result = await self._answer(payload)
        except MCPError as exc:
            await self._notifier.publish({**reply, "error": exc.error.model_dump(mode="json", exclude_none=True)})
            return
        except Exception as exc:  # noqa: BLE001 — the asking replica's client gets an error, never a hang
            logger.warning("could not answer another replica's %s: %s", payload.get("method"), type(exc).__name__)
            await self._notifier.publish({**reply, "error": {"code": types.INTERNAL_ERROR, "message": (
                f"the replica holding task {str(payload.get('taskId'))[:200]!r} failed to answer; try again")}})
            return
        await self._notifier.publish({**reply, "result": result})

    async def _answer(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The ask, answered for this replica's copy of the session, as if its client had asked here."""
        exposed, method = str(payload.get("taskId")), str(payload.get("method"))
        sessions = self._notifier.sessions
        held = sessions.held(str(payload.get("session"))) if sessions is not None else None
        view = payload.get("view")
        view = view if isinstance(view, str) else None
        if method == "tasks/list":
            return await self._hub.request_relay.tasks.list_for_replica(held[0], held[1], view) if held else {"tasks": []}
        if method not in ("tasks/get", "tasks/result", "tasks/cancel") or held is None:
            raise elsewhere(exposed, self._marks.replica, "no longer holds this session (its copy there closed, "
                            "idle or stopped, and forgot its tasks)")
        connection, principal = held
        return await self._hub.request_relay.tasks.answer_for_replica(connection, principal, method, exposed, view)


def remote_tasks(hub: Hub, notifier: ClusterNotifier) -> RemoteTasks | None:
    """The cross-replica task relay when session secrets are configured too, else None."""
    secrets = configured_secrets(hub.config)
    return RemoteTasks(hub, notifier, TaskMarks(secrets, notifier.replica)) if secrets else None
