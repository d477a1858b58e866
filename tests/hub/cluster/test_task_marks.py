"""Task ids that name the replica holding them (`hub.cluster.tasks.TaskMarks`): another replica of the
cluster recognises an id issued in the same session by another replica, and nothing else — not an
altered id, not another session's, not a made-up one, not one of its own."""

from __future__ import annotations

from hub.cluster.tasks import TaskMarks, unmarked

OLD, NEW = "o" * 40, "n" * 40
SESSION, OTHER = "s1.session-one", "s1.session-two"


def test_a_marked_id_names_its_replica_only_in_its_own_session() -> None:
    a, b = TaskMarks([NEW, OLD], "a" * 32), TaskMarks([OLD, NEW], "b" * 32)  # a rotation in progress
    task = a.mark("jobs:t1", SESSION)
    assert unmarked(task) == "jobs:t1" and task.startswith("jobs:t1@aaaaaaaaaaaa.")
    assert b.holder(task, SESSION) == "aaaaaaaaaaaa"
    assert a.holder(task, SESSION) is None  # its own: held here, or forgotten
    assert b.holder(task, OTHER) is None
    assert b.holder(task[:-1] + ("x" if task[-1] != "x" else "y"), SESSION) is None
    assert b.holder("jobs:t1@aaaaaaaaaaaa.0123456789abcdef", SESSION) is None
    assert TaskMarks(["z" * 40], "b" * 32).holder(task, SESSION) is None  # another cluster's secret


def test_ids_outside_sealed_sessions_are_left_as_they_were() -> None:
    marks = TaskMarks([NEW], "a" * 32)
    assert marks.mark("jobs:t1", "0123abcd") == "jobs:t1"  # a session on one replica only never moves
    assert marks.mark("jobs:t1", None) == "jobs:t1"
    assert unmarked("jobs:t1@x") == "jobs:t1@x"  # a server's own id may hold an @
