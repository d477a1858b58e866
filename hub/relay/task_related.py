"""The tasks whose `io.modelcontextprotocol/related-task` ids the hub rewrites, and that rewriting.

While a task runs, its server names it by its own id (`_meta` of a result, a notification, a request to
the client); the client knows it by the id the hub exposed (`hub.relay.tasks`). Servers number their
tasks per session (a restarted server, or each client's own session of a `per_client` server, hands out
`1` again), so a task is found by (server, the `session_serial` of the session that made it, its id),
never by its id alone. Bounded over all connections (`MAX_TASKS`) and per principal
(`MAX_TASKS_PER_CALLER`); `TaskRelay` adds a task here when it is created and drops it when forgotten.
"""

from __future__ import annotations

from typing import Any

from hub.auth.principal import identity
from hub.relay.fair_cap import FairCap
from hub.relay.task_model import RelayedTask

RELATED_TASK = "io.modelcontextprotocol/related-task"
MAX_TASKS = 10_000
"""Tasks whose `related-task` ids the hub rewrites, over all connections (`FairCap`: the principal
holding the most forgets its oldest first)."""
MAX_TASKS_PER_CALLER = 2_000
"""Of those, at most this many of one principal (its own oldest are forgotten first)."""


class RelatedTasks:
    """(server, the session that made it, its task id) → the task, for rewriting `related-task` in what
    servers send."""

    def __init__(self) -> None:
        self._exposed: FairCap[tuple[str, int | None, str], RelayedTask] = FairCap(MAX_TASKS_PER_CALLER, MAX_TASKS)
        """Two sessions number their tasks alike (each client's own of a `per_client` server): keyed
        without the session, one caller's task record replaced another's (re-check of round 12)."""

    def add(self, task: RelayedTask) -> None:
        """Rewrite `task`'s id from now on (until it is dropped or evicted)."""
        self._exposed.put((task.server, task.session, task.task_id), identity(task.principal) if task.principal else None, task)

    def drop(self, task: RelayedTask) -> None:
        """`task` is forgotten: its id is no longer rewritten (unless another record took its key)."""
        if self._exposed.get((task.server, task.session, task.task_id)) is task:
            self._exposed.pop((task.server, task.session, task.task_id))

    def related_task(self, server: str, meta: dict[str, Any] | None, session: int | None) -> tuple[bool, RelayedTask | None]:
        """Whether `meta` names a `related-task`, and that task as the hub relayed it on `session` (a
        `session_serial`; None: unknown)."""
        related = meta.get(RELATED_TASK) if meta else None
        if not isinstance(related, dict) or not isinstance(related.get("taskId"), str):
            return False, None
        return True, self._related(server, related["taskId"], session)

    def expose_related(self, server: str, meta: dict[str, Any] | None, session: int | None) -> dict[str, Any] | None:
        """`meta` with its `related-task` id as the client knows it (unchanged when the hub did not relay
        that task on `session`, a `session_serial`)."""
        related = meta.get(RELATED_TASK) if meta else None
        if not isinstance(related, dict) or not isinstance(related.get("taskId"), str):
            return meta
        relayed = self._related(server, related["taskId"], session)
        return meta if relayed is None else {**meta, RELATED_TASK: {**related, "taskId": relayed.exposed}}  # type: ignore[dict-item]

    def exposed_meta(self, body: dict[str, Any], server: str, session: int | None) -> dict[str, Any]:
        """`body` with the `related-task` of its `_meta` as the client knows it (`expose_related`)."""
        meta = body.get("_meta")
        if not isinstance(meta, dict):
            return body
        return {**body, "_meta": self.expose_related(server, meta, session)}

    def _related(self, server: str, task_id: str, session: int | None) -> RelayedTask | None:
        """The task `task_id` of `server` that `session` made; with no session known (a 2026-07-28
        server's own input-required answer), the one task of that id, if only one."""
        if session is not None:
            return self._exposed.get((server, session, task_id))
        found = [task for (name, _, tid), task in self._exposed.items() if name == server and tid == task_id]
        return found[0] if len(found) == 1 else None
