"""The express driver on its own (`hub.calls.drivers`): it finishes a call in callbacks when no
policy has to wait, answers a refusal at once, escalates what must wait with the permits it holds,
and a call it finishes leaves the same traces as the awaiting driver. (Every resilience scenario
also runs through it: `tests/hub/policies/test_resilience.py`, `both_paths`; every policy case through both
drivers: `tests/hub/calls/test_call_pipeline.py`.)"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import pytest

from hub.audit.log import query
from hub.auth.principal import identity
from hub.config import parse_config
from hub.hub import Hub
from hub.policies import GRANTED, NeverWaits
from tests.conftest import echo_stdio, error_body
from tests.express_calls import PathCounts, call_like_stdio_front

pytestmark = pytest.mark.anyio
REQUEST_ID = "mcp-hub/request_id"


def hub_for(tmp_path: Path, servers: dict[str, Any], **hub_settings: Any) -> Hub:
    return Hub(parse_config({"hub": {"data_dir": str(tmp_path / "data"), **hub_settings}, "mcpServers": servers}))


def never(*_: Any) -> Any:
    raise AssertionError("a declined call must not call back")


async def test_a_plain_call_is_finished_in_callbacks_and_leaves_the_chains_traces(tmp_path: Path) -> None:
    async with hub_for(tmp_path, {"e": echo_stdio()}) as hub:
        counts = PathCounts()
        result = await call_like_stdio_front(hub, "e__add", {"a": 2, "b": 40}, counts)
        failed = await call_like_stdio_front(hub, "e__fail", {"reason": "r"}, counts)
        assert counts.express == 2 and counts.escalated == counts.declined == 0
        assert result.structured_content == {"total": 42} and len(result.meta[REQUEST_ID]) == 32
        assert failed.is_error and "failed on purpose: r" in failed.content[0].text
        stats, breaker = hub.downstreams["e"].stats, hub.breakers.breaker("e")
        assert stats.in_flight == 0 and stats.calls == 2 and stats.failures == 0
        assert hub.bulkheads.bulkhead("e").busy == 0
        assert breaker.state == "closed" and breaker._ok == 2  # noqa: SLF001 — both counted as the server working
        assert not hub.downstreams["e"]._json._waiting  # noqa: SLF001 — nothing left tracked
        assert not hub.drivers.deadlines._calls  # noqa: SLF001 — nor waiting for a deadline
        assert hub.audit_log is not None
        hub.audit_log.flush()
        rows = query(hub.data_dir)
        assert [(r["tool"], r["outcome"], r["request_id"]) for r in rows] == [
            ("e__add", "ok", result.meta[REQUEST_ID]), ("e__fail", "tool_error", failed.meta[REQUEST_ID])]
        assert all(r["latency_ms"] > 0 and r["principal"] == "local" for r in rows)


async def test_refuses_at_once_escalates_what_must_wait_and_holds_nothing_after(tmp_path: Path) -> None:
    servers = {"e": echo_stdio(max_concurrency=1, max_queue=4, breaker={"failure_threshold": 2, "cooldown_s": 30})}
    async with hub_for(tmp_path, servers) as hub:
        local, bulkhead, stats = hub.access.local, hub.bulkheads.bulkhead("e"), hub.downstreams["e"].stats
        assert hub.start_express("e__nope", {}, local, never, never) is None  # unknown: route_call reports it
        answers: list[Any] = []
        refused = hub.start_express("e__add", {"a": "two", "b": 1}, local, answers.append, never)
        assert refused is not None and refused.finished and error_body(answers[0])["code"] == "invalid_argument"
        assert bulkhead.busy == 0 and stats.in_flight == 0

        loop = asyncio.get_running_loop()
        hung = hub.start_express("e__hang", {}, local, never, loop.create_task)
        assert hung is not None and hung.task is None and bulkhead.busy == 1 and stats.in_flight == 1
        queued = hub.start_express("e__echo", {"text": "x"}, local, never, loop.create_task)
        assert queued is not None and queued.task is not None, "no free slot: escalated to queue for one"
        task = hung.escalate()
        loop.call_soon(task.cancel)
        await asyncio.gather(task, return_exceptions=True)
        assert (await queued.task).structured_content == {"result": "x"}  # it got the slot the hung call gave back
        assert bulkhead.busy == 0 and stats.in_flight == 0  # the awaiting driver released what express took

        breaker = hub.breakers.breaker("e")
        for _ in range(2):  # the local caller's own calls failed: it is not let through as a probe either
            breaker.record_for(identity(local), False)
        assert breaker.state == "open"
        fast = hub.start_express("e__echo", {"text": "x"}, local, answers.append, never)
        assert fast is not None and fast.finished and error_body(answers[-1])["details"]["reason"] == "breaker_open"
        assert bulkhead.busy == 0 and stats.in_flight == 0


async def test_rate_limits_and_custom_policies_keep_the_express_driver(tmp_path: Path) -> None:
    """Only `fast_calls: false` (and tracing) turn it off: an in-memory limiter admits synchronously,
    and a custom two-phase policy runs on both drivers."""
    async with hub_for(tmp_path, {"e": echo_stdio()}, fast_calls=False) as hub:
        assert hub.start_express("e__echo", {"text": "x"}, hub.access.local, never, never) is None
    limited = {"rate_limit": {"rules": [{"tools": "e__echo", "burst": 1, "per_second": 0.01}]}}
    seen = CountingPolicy()
    config = parse_config({"hub": {"data_dir": str(tmp_path / "data"), **limited}, "mcpServers": {"e": echo_stdio()}})
    async with Hub(config, policies=[seen]) as hub:
        counts = PathCounts()
        first = await call_like_stdio_front(hub, "e__echo", {"text": "x"}, counts)
        second = await call_like_stdio_front(hub, "e__echo", {"text": "x"}, counts)
        assert first.structured_content == {"result": "x"} and error_body(second)["code"] == "rate_limited"
        assert counts.express == 2 and counts.declined == counts.escalated == 0
        assert seen.admitted == 1 and seen.settled == ["ok"], "the custom policy saw the call the limiter let through"


class CountingPolicy(NeverWaits):
    phase = "attempt"

    def __init__(self) -> None:
        self.admitted = 0
        self.settled: list[str] = []

    def admit(self, call: Any) -> Any:
        self.admitted += 1
        return GRANTED

    def settle(self, call: Any, permit: Any, outcome: Any) -> None:
        self.settled.append(outcome.kind)


async def test_progress_keeps_an_express_call_alive_and_it_still_finishes_in_callbacks(tmp_path: Path) -> None:
    servers = {"e": echo_stdio(tool_overrides={"slow": {"timeout_s": 0.4, "max_timeout_s": 5}})}
    async with hub_for(tmp_path, servers) as hub:
        counts = PathCounts()
        # 1.0 s of work, progress every 0.25 s: each report moves the 0.4 s idle deadline.
        result = await call_like_stdio_front(hub, "e__slow", {"seconds": 1.0, "steps": 4}, counts)
        assert result.structured_content == {"result": "done"}
        assert counts.express == 1 and counts.escalated == 0
        # A caller that asks for progress hears each report, and the call still needs no task.
        heard: list[tuple[float, float | None, str | None]] = []

        async def listen(value: float, total: float | None, message: str | None) -> None:
            heard.append((value, total, message))

        result = await call_like_stdio_front(hub, "e__slow", {"seconds": 0.2, "steps": 2}, counts, listen)
        assert result.structured_content == {"result": "done"} and counts.express == 2
        assert heard == [(1, 2, "step 1"), (2, 2, "step 2")]


async def test_finished_express_calls_leave_no_reference_cycles(tmp_path: Path) -> None:
    """Each call's objects are freed by reference counting the moment it ends, so a busy hub does
    not feed the cyclic garbage collector (before this was checked: ~20 objects per call)."""
    async with hub_for(tmp_path, {"e": echo_stdio()}) as hub:
        counts = PathCounts()
        for _ in range(20):
            await call_like_stdio_front(hub, "e__echo", {"text": "x"}, counts)
        gc.collect()
        gc.disable()
        try:
            for _ in range(200):
                await call_like_stdio_front(hub, "e__echo", {"text": "x"}, counts)
            left = gc.collect()
        finally:
            gc.enable()
        assert counts.express == 220
        assert left < 50, f"{left} objects in reference cycles after 200 calls"
