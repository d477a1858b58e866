"""The other replicas a task relay asks about a sealed session's tasks (`hub.cluster.tasks`).

In a sealed session a task id also names the replica holding the task (`<server>:<taskId>@<replica>.<mac>`):
another replica serving the session asks that one through Redis, or, without Redis, says that the task
is held there (never "not found": outside review, cluster round 18 #5). On one machine (no session
secrets) ids are not marked and nothing is asked. `hub.relay.tasks.TaskRelay` holds one `TaskReplicas`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import uuid4

from hub.auth.principal import Principal
from hub.cluster.signing import configured_secrets
from hub.cluster.tasks import RemoteTasks, TaskMarks, elsewhere, unmarked
from hub.downstream.request_deadline import request_deadline
from hub.forwarded import admitted, limits_of

if TYPE_CHECKING:
    from hub.hub import Hub
    from hub.profiles import ProfileView


class TaskReplicas:
    """Replica marks on task ids, and the asks to the replicas holding a session's other tasks."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._cluster: tuple[TaskMarks | None, RemoteTasks | None] | None = None
        """Replica marks on task ids and the asks to other replicas, when clustered (`_clustered`)."""

    def _clustered(self) -> tuple[TaskMarks | None, RemoteTasks | None]:
        """(marks, remote asks): both with session secrets and Redis, marks alone with secrets alone,
        neither on one machine (worked out once, on first use: the notifier is made after the relays)."""
        if self._cluster is None:
            notifier = getattr(self._hub, "cluster_notify", None)
            remote = notifier.tasks if notifier is not None else None
            secrets = configured_secrets(self._hub.config) if remote is None else []
            marks = remote.marks if remote is not None else TaskMarks(secrets, uuid4().hex) if secrets else None
            self._cluster = (marks, remote)
        return self._cluster

    def mark(self, exposed: str, connection: Any) -> str:
        """`exposed` as the client sees it: in a sealed session, marked with the replica holding it."""
        marks, _ = self._clustered()
        return marks.mark(exposed, getattr(connection, "session_id", None)) if marks is not None else exposed

    async def ask(self, connection: Any, principal: Principal, method: str, exposed: str,
                  view: ProfileView | None) -> dict[str, Any] | None:
        """A task this connection does not hold: asked of the replica that issued it in this session, if
        another one did; None when none did ("task not found" as ever). Charged to the caller's rate limit
        here, before it is asked (outside review, cluster round 26 #5: neither replica charged it, so polls
        through a replica not holding the task were never limited); the holder takes the bulkhead slot."""
        marks, remote = self._clustered()
        session_id = getattr(connection, "session_id", None)
        replica = marks.holder(exposed, session_id) if marks is not None else None
        downstream = self._hub.downstreams.get(unmarked(exposed).split(":", 1)[0])
        if replica is None or downstream is None or session_id is None:
            return None
        if remote is None:
            raise elsewhere(exposed, replica, "cannot be asked without hub.cluster.redis_url")
        seconds, _ = request_deadline(self._hub.config.hub, downstream.config, method)
        async with admitted(limits_of(self._hub), downstream.name, principal, method, seconds, slot=False):
            return await remote.ask(replica, session_id, method, exposed, seconds, view.name if view is not None else None)

    async def listed_elsewhere(self, connection: Any, view: ProfileView | None, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The tasks of this connection's sealed session the other replicas hold, on the face of profile
        `view`, but those already `listed` here; [] outside a cluster with Redis."""
        _, remote = self._clustered()
        session_id = getattr(connection, "session_id", None)
        if remote is None or not isinstance(session_id, str):
            return []
        seen = {task["taskId"] for task in listed}
        found = await remote.list_elsewhere(session_id, view.name if view is not None else None,
                                            self._hub.config.hub.timeout_s)
        return [task for task in found if task.get("taskId") not in seen]
