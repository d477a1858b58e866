"""A shared server's log line while a task runs on it may be that task's: the task's caller counts as
calling, so a line is never handed to another caller whose plain call happens to be in flight
(re-check 20 #1: bob's task's lines reached alice). The end-to-end case is
/tmp/recheck20/repro_task_log_reaches_other_caller.py; here the rule itself."""

from __future__ import annotations

import time
from types import SimpleNamespace

from hub.downstream.stats import CallStats
from hub.relay.logs import _whose
from hub.relay.task_model import running_bound_s

ALICE, BOB = ("api_key", "alice"), ("api_key", "bob")


def test_a_running_task_makes_its_caller_part_of_the_audience_until_it_ends_or_its_bound_passes() -> None:
    stats = CallStats()
    downstream = SimpleNamespace(stats=stats)
    stats.start(ALICE)
    assert _whose(downstream) == frozenset({ALICE})  # alice's call alone: hers
    token = stats.task_running(BOB, 60)
    assert _whose(downstream) == frozenset(), "two callers: nobody's, never alice's alone"
    stats.task_done(token)
    assert _whose(downstream) == frozenset({ALICE})
    stats.task_running(BOB, 0.01)
    deadline = time.monotonic() + 5
    while stats.calling() != {ALICE}:  # a task whose end is never seen stops counting at its bound
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert running_bound_s({"ttl": 30_000}) == 30.0 and running_bound_s({"ttl": None}) == 600.0
    assert running_bound_s({"ttl": 10**12}) == 3600.0 and running_bound_s({"ttl": True}) == 600.0
