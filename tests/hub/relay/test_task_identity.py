"""A task is only ever the one its own downstream session made (outside review, isolation round 10).

Servers number tasks per session: a restarted server, or each client's own session of a `per_client`
server, hands out `1` again. The hub told tasks apart by `id()` of the session — an address CPython
gives the next session — and by the first connection holding that number, so a server's question
about caller B's task `1` could be put to caller A (who held a task `1` from before the restart)."""

from __future__ import annotations

import gc

from hub.auth.principal import Principal
from hub.downstream.serials import session_serial
from hub.relay.tasks import RELATED_TASK, RelayedTask, TaskRelay

ALICE, BOB = Principal("alice", ("*",), "api_key"), Principal("bob", ("*",), "api_key")


class _Session:
    """Stands for a downstream `ClientSession` (weak-referenceable)."""


class _Connection:
    """Stands for an upstream client connection."""


def about(task_id: str) -> dict[str, object]:
    return {RELATED_TASK: {"taskId": task_id}}


def test_a_servers_question_about_a_task_goes_to_the_principal_of_that_sessions_task() -> None:
    relay = TaskRelay(hub=None)  # type: ignore[arg-type]
    alices, bobs = _Connection(), _Connection()
    before_restart = _Session()
    relay._own(alices, RelayedTask("st:1", "st", "1", ALICE, session_serial(before_restart)))  # noqa: SLF001
    del before_restart
    gc.collect()
    after_restart = _Session()  # often at the address the first one had
    relay._own(bobs, RelayedTask("st:1", "st", "1", BOB, session_serial(after_restart)))  # noqa: SLF001
    assert relay.related_principal("st", about("1"), after_restart) == (True, BOB)
    assert relay.related_principal("st", about("1"), _Session()) == (True, None)  # no task of that session
    assert relay.related_principal("st", about("2"), after_restart) == (True, None)
    assert relay.related_principal("st", {}, after_restart) == (False, None)


def test_two_sessions_tasks_of_one_number_are_each_their_own() -> None:
    """Re-check of round 12: each client's own session of a `per_client` server numbers its tasks from
    1; bob's task 1 replaced alice's record, and her task's question was refused as nobody's."""
    relay = TaskRelay(hub=None)  # type: ignore[arg-type]
    alices, bobs = _Session(), _Session()
    relay._own(_Connection(), RelayedTask("st:1", "st", "1", ALICE, session_serial(alices)))  # noqa: SLF001
    relay._own(_Connection(), RelayedTask("st:1", "st", "1", BOB, session_serial(bobs)))  # noqa: SLF001
    assert relay.related_principal("st", about("1"), alices) == (True, ALICE)
    assert relay.related_principal("st", about("1"), bobs) == (True, BOB)
    assert relay.expose_related("st", about("1"), session_serial(alices)) == about("st:1")
    assert relay.related_principal("st", about("1")) == (True, None)  # no session known, two tasks: nobody's

def test_a_session_serial_is_never_given_to_another_session() -> None:
    seen = set()
    for _ in range(1000):
        session = _Session()
        serial = session_serial(session)
        assert serial not in seen and session_serial(session) == serial
        seen.add(serial)
        del session
