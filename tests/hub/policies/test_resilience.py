"""Fault injection with real subprocess downstreams: deadlines, retries, breakers, bulkheads,
supervised restarts, health — and the other servers keep answering throughout.

The call scenarios run twice (`both_paths`): through the policy chain (`Hub.route_call`) and the way
the stdio front end calls, express path first (`hub.calls.drivers`), which must keep every policy."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from hub.downstream.reaper import watcher_pid
from hub.config import parse_config
from hub.hub import Hub
from hub.policies import CircuitBreaker
from tests.express_calls import PathCounts, call_like_stdio_front
from tests.conftest import ECHO, PY, ROOT, Proc, echo_stdio, free_port, start_hub_http, wait_for_port, write_config, error_body

pytestmark = pytest.mark.anyio

FAST_RESTART = {"initial_backoff_s": 0.1, "max_backoff_s": 0.4}


def child_pids() -> set[int]:
    """Live processes whose parent is this test process, but for the orphan watcher, which lives as
    long as the process that started it (`hub.downstream.reaper`)."""
    me, found = str(os.getpid()), set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            if fields.get("PPid", "").strip() == me and not fields.get("State", "").startswith("Z"):
                found.add(int(entry))
    return found - {watcher_pid()}


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Any:
    before = child_pids()
    yield
    deadline = time.monotonic() + 10
    while (child_pids() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert child_pids() - before == set(), "a downstream process outlived its hub"


VIA: dict[str, Any] = {"path": "chain", "counts": PathCounts()}


@pytest.fixture(params=["chain", "express"])
def both_paths(request: pytest.FixtureRequest) -> Any:
    VIA["path"], VIA["counts"] = request.param, PathCounts()
    yield
    counts, VIA["path"] = VIA["counts"], "chain"
    if request.param == "express":
        assert counts.express + counts.escalated > 0, "no call took the express path"


async def route(hub: Hub, name: str, args: dict[str, Any] | None = None) -> Any:
    """One call through the path `both_paths` chose."""
    if VIA["path"] == "express":
        return await call_like_stdio_front(hub, name, args or {}, VIA["counts"])
    return await hub.route_call(name, args or {})


def hub_for(servers: dict[str, Any], **hub_settings: Any) -> Hub:
    return Hub(parse_config({"hub": hub_settings, "mcpServers": servers}))


async def timed(hub: Hub, name: str, args: dict[str, Any] | None = None) -> tuple[Any, float]:
    started = time.monotonic()
    result = await route(hub, name, args)
    return result, time.monotonic() - started


class ShiftedClock:
    """Real time plus a shift the test moves: a breaker's cool-down ends without a sleep."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.shift


async def wait_until(predicate: Any, timeout: float = 60.0) -> None:
    """Wait for a state; the bound is generous (a restart on a loaded 2-core machine can take
    seconds: starting Python and importing the SDK), and costs nothing when the state comes fast."""
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.05)


@pytest.mark.usefixtures("both_paths")
async def test_hanging_call_times_out_at_the_deadline_and_others_keep_answering() -> None:
    async with hub_for({"stuck": echo_stdio(timeout_s=0.5), "ok": echo_stdio("--name", "ok")}) as hub:
        async with anyio.create_task_group() as tg:
            outcomes: dict[str, Any] = {}

            async def stuck() -> None:
                outcomes["stuck"] = await timed(hub, "stuck__hang")

            tg.start_soon(stuck)
            for _ in range(5):
                result, elapsed = await timed(hub, "ok__echo", {"text": "x"})
                assert result.structured_content == {"result": "x"} and elapsed < 0.5
        result, elapsed = outcomes["stuck"]
        # `hang` is a write with no idempotency key: sent, then timed out, its outcome is unknown (faults19 #1)
        assert error_body(result)["code"] == "timeout" and error_body(result)["retryable"] is False
        assert error_body(result)["details"]["outcome"] == "unknown"
        assert "'stuck'" in error_body(result)["message"]
        assert 0.5 <= elapsed < 0.9


@pytest.mark.usefixtures("both_paths")
async def test_per_tool_timeout_and_progress_extends_up_to_the_hard_cap() -> None:
    servers = {
        "e": echo_stdio(
            timeout_s=5,
            tool_overrides={"slow": {"timeout_s": 0.4, "max_timeout_s": 1.0}, "hang": {"timeout_s": 0.3}},
        )
    }
    async with hub_for(servers) as hub:
        # 1.2 s of work with progress every 0.2 s: each notification restarts the 0.4 s idle timer.
        ok, elapsed = await timed(hub, "e__slow", {"seconds": 0.9, "steps": 6})
        assert ok.structured_content == {"result": "done"} and elapsed >= 0.9
        # Progress keeps coming, but the hard cap of 1.0 s ends it.
        capped, elapsed = await timed(hub, "e__slow", {"seconds": 3, "steps": 20})
        assert error_body(capped)["code"] == "timeout" and "hard limit" in error_body(capped)["message"]
        assert 1.0 <= elapsed < 1.4
        # The per-tool setting for `hang` wins over the server's 5 s.
        hung, elapsed = await timed(hub, "e__hang")
        assert error_body(hung)["code"] == "timeout" and 0.3 <= elapsed < 0.7


@pytest.mark.usefixtures("both_paths")
async def test_retries_only_safe_calls() -> None:
    async with hub_for({"e": echo_stdio()}) as hub:
        read = await route(hub, "e__flaky_read", {"key": "r", "failures": 2})
        assert read.is_error is not True and read.structured_content == {"attempts": 3}
        write = await route(hub, "e__flaky_write", {"key": "w", "failures": 1})
        assert write.is_error and error_body(write)["code"] == "rate_limited"
        assert error_body(write)["details"] == {"attempts": 1}, "a write without idempotency_key is never retried"
        keyed = await route(hub, "e__flaky_write", {"key": "k", "failures": 1, "idempotency_key": "abc"})
        assert keyed.structured_content == {"attempts": 2}
        exhausted = await route(hub, "e__flaky_read", {"key": "x", "failures": 5})
        assert exhausted.is_error and error_body(exhausted)["details"] == {"attempts": 3}


@pytest.mark.usefixtures("both_paths")
async def test_idempotent_override_makes_a_write_retryable() -> None:
    async with hub_for({"e": echo_stdio(tool_overrides={"flaky_write": {"idempotent": True}})}) as hub:
        result = await route(hub, "e__flaky_write", {"key": "w", "failures": 1})
        assert result.structured_content == {"attempts": 2}


@pytest.mark.usefixtures("both_paths")
async def test_breaker_opens_fails_fast_probes_and_closes() -> None:
    servers = {
        "e": echo_stdio(timeout_s=0.2, breaker={"failure_threshold": 3, "cooldown_s": 1.0}),
        "other": echo_stdio("--name", "other"),
    }
    async with hub_for(servers) as hub:
        clock = ShiftedClock()  # the cool-down passes when the test says so, not after a sleep
        hub.breakers.breakers["e"] = CircuitBreaker("e", hub.downstreams["e"].config.breaker, clock=clock)
        for _ in range(10):  # tool errors are the tool working: they never open the breaker
            assert (await route(hub, "e__fail", {})).is_error
        assert hub.breakers.breaker("e").state == "closed"

        for _ in range(3):
            result, _ = await timed(hub, "e__hang")
            assert error_body(result)["code"] == "timeout"
        breaker = hub.breakers.breaker("e")
        assert breaker.state == "open"
        fast, elapsed = await timed(hub, "e__echo", {"text": "x"})
        assert error_body(fast)["code"] == "unavailable" and elapsed < 0.05
        assert 0 < error_body(fast)["retry_after_s"] <= 1.0
        assert hub.status()["e"]["health"] == "degraded" and hub.status()["other"]["health"] == "connected"
        assert (await route(hub, "other__echo", {"text": "y"})).structured_content == {"result": "y"}

        clock.shift += 1.0
        probe = await route(hub, "e__echo", {"text": "probe"})
        assert probe.structured_content == {"result": "probe"}
        assert breaker.transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]

        for _ in range(3):
            await route(hub, "e__hang", {})
        clock.shift += 1.0
        failed_probe = await route(hub, "e__hang", {})
        assert error_body(failed_probe)["code"] == "timeout"
        assert breaker.state == "open" and breaker.transitions[-2:] == [("open", "half_open"), ("half_open", "open")]


@pytest.mark.usefixtures("both_paths")
async def test_crash_mid_call_restarts_with_backoff_and_rediscovers() -> None:
    servers = {"e": echo_stdio(restart=FAST_RESTART), "other": echo_stdio("--name", "other")}
    async with hub_for(servers) as hub:
        changes: list[str] = []

        async def on_change(kind: str) -> None:
            changes.append(kind)

        hub.add_change_listener(on_change)
        await route(hub, "e__grow", {})
        await wait_until(lambda: hub.catalog.resolve_tool("e__extra") is not None)

        crashed, elapsed = await timed(hub, "e__crash")
        assert error_body(crashed)["code"] == "unavailable" and elapsed < 1.5
        down = await route(hub, "e__echo", {"text": "x"})
        assert error_body(down)["code"] == "unavailable"
        assert "exited with code 7" in error_body(down)["message"]
        assert (await route(hub, "other__echo", {"text": "y"})).structured_content == {"result": "y"}

        await wait_until(lambda: hub.downstreams["e"].state == "ready")
        assert hub.downstreams["e"].restarts == 1
        assert (await route(hub, "e__echo", {"text": "back"})).structured_content == {"result": "back"}
        # The restarted server no longer has the tool `grow` added: the catalog follows and clients are told.
        await wait_until(lambda: hub.catalog.resolve_tool("e__extra") is None)
        assert "tools" in changes


async def test_a_shared_childs_stderr_reaches_operators_never_callers() -> None:
    """Outside review r38a #1: a shared stdio child's last stderr lines (a crash message quoting one caller's
    arguments, a request log) were quoted in every caller's error, the `down` refusal of whoever called next too."""
    async with hub_for({"e": echo_stdio(restart=FAST_RESTART)}) as hub:
        crashed = await route(hub, "e__crash", {"note": "customer=Initech merger (alice-private)"})
        down = await route(hub, "e__echo", {"text": "x"})
        for answer in (crashed, down):
            body = error_body(answer)
            assert body["code"] == "unavailable" and "Initech" not in json.dumps(body), body
        assert "exited with code 7" in error_body(down)["message"]
        assert "Initech merger" in hub.status()["e"]["last_error"]  # the operators' view (/healthz needs hub:admin)
        await wait_until(lambda: hub.downstreams["e"].state == "ready")


async def test_server_that_exits_at_start_keeps_being_restarted_and_fails_fast() -> None:
    servers = {"bad": echo_stdio("--exit-at-start", restart=FAST_RESTART), "ok": echo_stdio("--name", "ok")}
    async with hub_for(servers) as hub:
        assert hub.downstreams["bad"].state == "down"
        await wait_until(lambda: hub.downstreams["bad"].restarts >= 3)
        status = hub.status()["bad"]
        assert status["health"] == "down" and "exited with code 3" in status["last_error"]
        assert "refusing to start" in status["last_error"]
        assert (await route(hub, "ok__echo", {"text": "fine"})).structured_content == {"result": "fine"}


async def test_hanging_start_is_reported_and_does_not_block_the_hub() -> None:
    """No timing asserts: the hub is entered as `serve` enters it (waiting for no one), and the test
    waits for states. The connect timeout is generous, so the healthy server (whose SDK import alone
    can take ~1 s on a loaded machine) is not timed out with the hanging one."""
    servers = {"slowstart": echo_stdio("--hang-at-start"), "ok": echo_stdio("--name", "ok")}
    config = parse_config({"hub": {"connect_timeout_s": 10.0}, "mcpServers": servers})
    async with Hub(config, wait_at_start=False) as hub:
        assert hub.downstreams["slowstart"].state == "starting"
        await wait_until(lambda: hub.downstreams["ok"].state == "ready", timeout=60)
        assert (await route(hub, "ok__echo", {"text": "a"})).structured_content == {"result": "a"}
        await wait_until(lambda: "handshake within 10s" in (hub.downstreams["slowstart"].error or ""), timeout=60)
        assert hub.status()["slowstart"]["health"] == "down"
        assert (await route(hub, "ok__echo", {"text": "b"})).structured_content == {"result": "b"}


@pytest.mark.usefixtures("both_paths")
async def test_flapping_server_trips_the_breaker() -> None:
    servers = {
        "flap": echo_stdio("--exit-after", "1", restart=FAST_RESTART, breaker={"failure_threshold": 3, "cooldown_s": 30}),
        "ok": echo_stdio("--name", "ok"),
    }
    async with hub_for(servers) as hub:
        flap = hub.downstreams["flap"]
        codes = []
        for _ in range(3):
            await wait_until(lambda: flap.state == "ready")
            codes.append(error_body(await route(hub, "flap__ping", {}))["code"])
        assert codes == ["unavailable"] * 3
        assert hub.breakers.breaker("flap").state == "open"
        await wait_until(lambda: flap.state == "ready")
        result, elapsed = await timed(hub, "flap__ping")
        assert "circuit breaker open" in error_body(result)["message"] and elapsed < 0.05
        assert flap.restarts >= 3
        assert (await route(hub, "ok__ping", {})).structured_content == {"result": 1}


@pytest.mark.usefixtures("both_paths")
async def test_garbage_on_stdout_and_tool_errors_do_not_disturb() -> None:
    async with hub_for({"g": echo_stdio("--garbage")}) as hub:
        assert (await route(hub, "g__fail", {"reason": "r"})).is_error
        assert (await route(hub, "g__add", {"a": 1, "b": 1})).structured_content == {"total": 2}
        assert hub.breakers.breaker("g").state == "closed" and hub.downstreams["g"].restarts == 0


@pytest.mark.usefixtures("both_paths")
async def test_bulkhead_keeps_the_fast_server_fast() -> None:
    servers = {
        "slow": echo_stdio("--name", "slow", max_concurrency=2, max_queue=2),
        "fast": echo_stdio("--name", "fast"),
    }
    async with hub_for(servers) as hub:
        slow_codes: list[str | None] = []
        fast_latencies: list[float] = []

        async def slow_call() -> None:
            result = await route(hub, "slow__slow", {"seconds": 1.0, "steps": 2})
            slow_codes.append(error_body(result).get("code") if result.is_error else None)

        async def fast_calls() -> None:
            await anyio.sleep(0.1)
            for _ in range(20):
                _, elapsed = await timed(hub, "fast__echo", {"text": "q"})
                fast_latencies.append(elapsed)

        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(slow_call)
            tg.start_soon(fast_calls)
        # 2 run, 2 wait their turn, the other 8 are refused at once instead of piling up.
        assert slow_codes.count(None) == 4 and slow_codes.count("unavailable") == 8
        assert max(fast_latencies) < 0.5, fast_latencies


@pytest.mark.usefixtures("both_paths")
async def test_queued_call_gives_up_before_its_deadline_with_unavailable() -> None:
    overrides = {"hang": {"timeout_s": 1.5}, "echo": {"timeout_s": 0.4}}
    async with hub_for({"s": echo_stdio(max_concurrency=1, max_queue=5, tool_overrides=overrides)}) as hub:
        results: list[Any] = []

        async def call(name: str, args: dict[str, Any]) -> None:
            results.append(await timed(hub, name, args))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "s__hang", {})
            await anyio.sleep(0.1)
            tg.start_soon(call, "s__echo", {"text": "waits for the slot"})
        codes = sorted(error_body(r)["code"] for r, _ in results)
        assert codes == ["timeout", "unavailable"]
        queued, elapsed = next(r for r in results if error_body(r[0])["code"] == "unavailable")
        assert "saturated" in error_body(queued)["message"] and 0.3 <= elapsed < 0.45


async def test_hide_when_down() -> None:
    async with hub_for({"e": echo_stdio(hide_when_down=True, restart={"initial_backoff_s": 1.0})}) as hub:
        await route(hub, "e__crash", {})
        await wait_until(lambda: hub.catalog.resolve_tool("e__echo") is None)
        await wait_until(lambda: hub.catalog.resolve_tool("e__echo") is not None)


async def test_http_downstream_health_check_and_reconnect(tmp_path: Path, procs: list) -> None:
    port = free_port()
    first = Proc([PY, ECHO, "http", str(port), "--name", "web"])
    procs.append(first)
    wait_for_port(port)
    servers = {"web": {"url": f"http://127.0.0.1:{port}/mcp", "health_interval_s": 0.2, "restart": FAST_RESTART}}
    async with hub_for(servers) as hub:
        assert (await route(hub, "web__echo", {"text": "1"})).structured_content == {"result": "1"}
        first.stop()
        await wait_until(lambda: hub.downstreams["web"].state == "down")
        assert error_body(await route(hub, "web__echo", {"text": "2"}))["code"] == "unavailable"
        procs.append(Proc([PY, ECHO, "http", str(port), "--name", "web"]))
        wait_for_port(port)
        await wait_until(lambda: hub.downstreams["web"].state == "ready")
        assert (await route(hub, "web__echo", {"text": "3"})).structured_content == {"result": "3"}


def wait_for_health(base: str, ready: Any, timeout: float = 30.0) -> dict[str, Any]:
    """`/healthz` once `ready(body)` holds: `serve` listens before its servers are up."""
    deadline = time.monotonic() + timeout
    while not ready(body := httpx.get(f"{base}/healthz").json()):
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    return body  # type: ignore[no-any-return]


def test_status_command_and_healthz(tmp_path: Path, procs: list) -> None:
    config = write_config(tmp_path, {"e": echo_stdio(), "bad": echo_stdio("--exit-at-start")})
    url = start_hub_http(procs, config)
    base = url.removesuffix("/mcp")
    body = wait_for_health(base, lambda b: b["servers"]["e"]["health"] == "connected" and b["servers"]["bad"]["last_error"])
    assert body["status"] == "degraded" and body["degraded"] == ["bad"]
    assert set(body["servers"]["e"]) >= {"health", "breaker", "in_flight", "restarts", "last_error", "p50_ms", "p95_ms"}
    done = subprocess.run([PY, "-m", "hub.cli", "status", "--url", base], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("hub: degraded")
    assert lines[1].split()[:4] == ["SERVER", "HEALTH", "BREAKER", "IN-FLIGHT"]
    bad_row = next(line for line in lines if line.startswith("bad "))
    assert "down" in bad_row and "exited with code 3" in bad_row
    nobody = subprocess.run([PY, "-m", "hub.cli", "status", "--url", f"http://127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, cwd=ROOT)
    assert nobody.returncode == 2 and "no hub answered" in nobody.stderr


async def test_calls_cut_off_by_the_hubs_own_restart_do_not_open_the_breaker() -> None:
    """Outside review console15: a console Restart of a healthy server with four calls in flight opened
    its breaker (each cut-off call and its retries counted as the server failing), refusing every caller
    for a cool-down after the server was back. Calls the hub's own Restart cuts off are `restarted_by_hub`:
    retried when retry-safe, never counted."""
    servers = {"e": echo_stdio(restart=FAST_RESTART, breaker={"failure_threshold": 2},
                               tool_overrides={"slow": {"read_only": True}})}
    async with hub_for(servers) as hub:
        downstream = hub.downstreams["e"]
        outcomes: list[Any] = []

        async def slow() -> None:
            outcomes.append(await hub.route_call("e__slow", {"seconds": 4, "steps": 8}))

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(slow)
            await wait_until(lambda: downstream.stats.in_flight == 4)
            assert downstream.restart("restarted by the test")
        assert len(outcomes) == 4
        for outcome in outcomes:  # each either ran again on the new child, or says what happened
            if outcome.is_error:
                body = error_body(outcome)
                assert body["code"] == "unavailable" and body["details"]["reason"] in ("restarted_by_hub", "down"), body
        assert hub.breakers.breaker("e").state == "closed", hub.breakers.breaker("e").transitions
        await wait_until(lambda: downstream.state == "ready")
        assert (await hub.route_call("e__echo", {"text": "back"})).structured_content == {"result": "back"}
