"""The express path on its own (`hub.express`): it takes a call only when no policy would have to
wait, and a call it finishes leaves the same traces as one the policy chain finishes. (Every
resilience scenario also runs through it: `tests/test_resilience.py`, `both_paths`.)"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import pytest

from hub.audit.log import query
from hub.config import parse_config
from hub.hub import Hub
from tests.conftest import echo_stdio
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
        assert not hub._express_deadlines._calls  # noqa: SLF001 — nor waiting for a deadline
        assert hub.audit_log is not None
        hub.audit_log.flush()
        rows = query(hub.data_dir)
        assert [(r["tool"], r["outcome"], r["request_id"]) for r in rows] == [
            ("e__add", "ok", result.meta[REQUEST_ID]), ("e__fail", "tool_error", failed.meta[REQUEST_ID])]
        assert all(r["latency_ms"] > 0 and r["principal"] == "local" for r in rows)


async def test_declines_whatever_would_wait_and_holds_nothing(tmp_path: Path) -> None:
    servers = {"e": echo_stdio(max_concurrency=1, breaker={"failure_threshold": 2, "cooldown_s": 30})}
    async with hub_for(tmp_path, servers) as hub:
        local, bulkhead, stats = hub.access.local, hub.bulkheads.bulkhead("e"), hub.downstreams["e"].stats
        assert hub.start_express("e__nope", {}, local, never, never) is None  # unknown: the chain reports it
        assert hub.start_express("e__add", {"a": "two", "b": 1}, local, never, never) is None  # invalid arguments
        assert bulkhead.busy == 0 and stats.in_flight == 0

        loop = asyncio.get_running_loop()
        hung = hub.start_express("e__hang", {}, local, never, loop.create_task)
        assert hung is not None and bulkhead.busy == 1 and stats.in_flight == 1
        assert hub.start_express("e__echo", {"text": "x"}, local, never, never) is None  # no free slot: it would queue
        task = hung.escalate()
        loop.call_soon(task.cancel)
        await asyncio.gather(task, return_exceptions=True)
        assert bulkhead.busy == 0 and stats.in_flight == 0  # the chain released what express took

        breaker = hub.breakers.breaker("e")
        breaker.record(False)
        breaker.record(False)
        assert breaker.state == "open"
        assert hub.start_express("e__echo", {"text": "x"}, local, never, never) is None  # the chain fails it fast
        assert bulkhead.busy == 0 and stats.in_flight == 0


async def test_only_the_default_chain_without_limits_takes_it(tmp_path: Path) -> None:
    limited = {"rate_limit": {"rules": [{"tools": "e__echo", "burst": 5, "per_second": 1}]}}
    for settings in ({"fast_calls": False}, limited):
        async with hub_for(tmp_path, {"e": echo_stdio()}, **settings) as hub:
            assert hub.start_express("e__echo", {"text": "x"}, hub.access.local, never, never) is None
            counts = PathCounts()
            result = await call_like_stdio_front(hub, "e__echo", {"text": "x"}, counts)
            assert result.structured_content == {"result": "x"} and counts.declined == 1


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
