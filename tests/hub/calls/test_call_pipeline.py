"""Both drivers of the call pipeline (`hub.calls.drivers`) over one table of cases, with the real
policies and a scripted server: every case must give the same answer, audit row, stats, breaker
and bulkhead state whether the express driver started the call (and finished it in callbacks, or
escalated it) or the awaiting driver ran it from the start."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
import orjson
import pytest
from jsonschema import Draft202012Validator
from mcp.shared.exceptions import MCPError

from hub.calls.call import ToolCall
from hub.calls.drivers import Drivers, ExpressCall
from hub.calls.pipeline import Pipeline
from hub.errors import HubToolError
from hub.metrics import HubMetrics
from hub.policies import BreakerPolicy, BulkheadPolicy, DeadlinePolicy, RetryPolicy
from hub.policies.bulkhead import NOBODY
from hub.policies.audit import AuditPolicy
from hub.policies.validation import ArgumentPolicy
from hub.policies.ratelimit import MemoryBuckets, RateLimitPolicy
from hub.settings import AuditSettings, BreakerSettings, RateLimitSettings, RetrySettings
from hub.wire import WireResult, wire_result
from tests.policy_support import Stats, make_call

pytestmark = pytest.mark.anyio

OK = {"content": [{"type": "text", "text": "ok"}]}
TOOL_ERROR = {"content": [{"type": "text", "text": "no such ticket"}], "isError": True,
              "structuredContent": {"code": "not_found", "message": "no such ticket", "retryable": False}}
PROVIDER_429 = {"content": [{"type": "text", "text": "slow down"}], "isError": True,
                "structuredContent": {"code": "rate_limited", "message": "slow down", "retryable": True, "retry_after_s": 0.5}}
HANG = "hang"
LOST = None


class FakePending:
    """What the `JsonChannel` returns for a call sent from a callback."""

    def __init__(self, server: FakeServer, on_answer: Callable[[Any], None] | None, progress: Any) -> None:
        self.channel = server
        self.answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.on_answer = on_answer
        self.progress = progress


class FakeServer:
    """A forwarder (`hub.downstream.forwarders.Forwarder`'s interface) over a scripted server: each
    attempt plays the next answer (a result dict, `LOST` or `HANG`), after optional progress."""

    def __init__(self, answers: list[Any], progress_steps: int = 0) -> None:
        self.answers = answers
        self.progress_steps = progress_steps
        self.attempts = 0
        self.stats = Stats()
        self.plays: set[asyncio.Task[None]] = set()

    def downstream(self, call: ToolCall) -> Any:
        return self

    def forget(self, pending: FakePending) -> None:
        pass

    def send_now(self, call: ToolCall, on_answer: Callable[[Any], None] | None) -> FakePending:
        self.attempts += 1
        pending = FakePending(self, on_answer, call.on_progress)
        task = asyncio.get_running_loop().create_task(self._play(pending, self.answers[min(self.attempts, len(self.answers)) - 1]))
        self.plays.add(task)
        task.add_done_callback(self.plays.discard)
        return pending

    async def _play(self, pending: FakePending, answer: Any) -> None:
        for step in range(self.progress_steps):
            if pending.progress is not None:
                await pending.progress(step + 1, self.progress_steps, None)
        if answer == HANG:
            return
        message = None if answer is LOST else {"jsonrpc": "2.0", "id": "x", "result": answer}
        pending.answer.set_result(message)
        if pending.on_answer is not None:
            pending.on_answer(message)

    async def adopt(self, call: ToolCall) -> Any:
        pending, call.sent = call.sent, None
        pending.on_answer = None
        message = await pending.answer
        if message is None:
            raise MCPError(code=types.CONNECTION_CLOSED, message="Connection closed")
        return wire_result(message["result"])

    async def forward(self, call: ToolCall) -> Any:
        call.sent = self.send_now(call, None)
        return await self.adopt(call)

    async def error(self, call: ToolCall, exc: Exception) -> HubToolError:
        assert isinstance(exc, MCPError) and exc.code == types.CONNECTION_CLOSED
        return HubToolError("unavailable", "lost the connection to server 's'", details={"server": "s"})


class Catalog:
    """The two things argument validation asks of the catalog."""

    def fast_check(self, route: Any) -> None:
        return None

    def validator(self, route: Any) -> Any:
        return Draft202012Validator({"type": "object", "properties": {"n": {"type": "integer"}}})


class Auditor(AuditPolicy):
    def __init__(self, store_down: bool = False) -> None:
        audit = type("Store", (), {"healthy": False, "last_error": "disk full"})() if store_down else None
        super().__init__(audit, AuditSettings(on_failure="fail_closed"), HubMetrics(dict))  # type: ignore[arg-type]
        self.rows: list[tuple[str, str | None]] = []

    def observe(self, call: ToolCall, outcome: str, code: str | None, seconds: float) -> None:
        self.rows.append((outcome, code))


@dataclass
class Case:
    name: str
    answers: list[Any] = field(default_factory=lambda: [OK])
    arguments: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 30.0
    progress_steps: int = 0
    store_down: bool = False
    rate_limited: bool = False
    breaker_open: bool = False
    slot_taken: str | None = None
    """"refuse": the only slot is held and the queue is 0; "wait": held, then freed once the call queues."""
    cancel: bool = False
    expected: tuple[str, str | None] = ("ok", None)
    express_finishes: bool = False


CASES = [
    Case("ok", expected=("ok", None), express_finishes=True),
    Case("tool error", answers=[TOOL_ERROR], expected=("tool_error", "not_found"), express_finishes=True),
    Case("progress", progress_steps=3, express_finishes=True),
    Case("refused by the audit", store_down=True, expected=("error", "unavailable"), express_finishes=True),
    Case("refused by validation", arguments={"n": "two"}, expected=("error", "invalid_argument"), express_finishes=True),
    Case("refused by the rate limit", rate_limited=True, expected=("error", "rate_limited"), express_finishes=True),
    Case("refused by the breaker", breaker_open=True, expected=("error", "unavailable"), express_finishes=True),
    Case("refused by the bulkhead", slot_taken="refuse", expected=("error", "unavailable"), express_finishes=True),
    Case("queued for the bulkhead", slot_taken="wait"),
    Case("timeout", answers=[HANG], timeout_s=0.05, expected=("error", "timeout")),
    Case("lost server", answers=[LOST, LOST], expected=("error", "unavailable")),
    Case("cancel", answers=[HANG], cancel=True, expected=("cancelled", None)),
    Case("provider 429, retried, then ok", answers=[PROVIDER_429, OK]),
]


@dataclass
class Run:
    answer: Any
    rows: list[tuple[str, str | None]]
    stats: tuple[int, int, int]
    breaker: tuple[str, int, int, int]
    bulkhead: tuple[int, int]
    attempts: int
    heard: int
    finished_in_callbacks: bool


async def run_case(case: Case, express: bool) -> Run:
    server = FakeServer(case.answers, case.progress_steps)
    auditor = Auditor(case.store_down)
    limits = RateLimitSettings.model_validate({"rules": [{"tools": "s__*", "burst": 1, "per_second": 0.001}]})
    rate = RateLimitPolicy(limits, MemoryBuckets())
    breakers = BreakerPolicy(lambda s: BreakerSettings(failure_threshold=5, cooldown_s=30))
    bulkheads = BulkheadPolicy(lambda s: (1, 1 if case.slot_taken == "wait" else 0))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    retry = RetryPolicy(lambda s: RetrySettings(max_attempts=2), jitter=lambda: 0.0, sleep=sleep)
    pipeline = Pipeline([auditor, ArgumentPolicy(Catalog()), rate, DeadlinePolicy()],  # type: ignore[arg-type]
                        [breakers, bulkheads], retry, server)  # type: ignore[arg-type]
    drivers = Drivers(pipeline)
    if case.rate_limited:
        assert rate.admit(make_call()) is not None  # the one token of the bucket is spent
    if case.breaker_open:
        for _ in range(5):
            breakers.breaker("s").record(False)
    bulkhead = bulkheads.bulkhead("s")
    if case.slot_taken:
        bulkhead.take(NOBODY)
    heard: list[float] = []

    async def listen(progress: float, total: float | None, message: str | None) -> None:
        heard.append(progress)

    call = make_call(timeout_s=case.timeout_s, max_timeout_s=case.timeout_s, arguments=case.arguments)
    call.progress = listen
    call.attributes.update(request_id="r", principal="local")
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[Any] = loop.create_future()
    started: ExpressCall | None = None
    if express:
        def escalate(coroutine: Any) -> asyncio.Task[Any]:
            task = loop.create_task(coroutine)
            task.add_done_callback(lambda t: answered.cancel() if t.cancelled() else answered.set_result(t.result()))
            return task

        started = drivers.try_start(call, answered.set_result, escalate)
    else:
        runner = loop.create_task(drivers.run(call))
        runner.add_done_callback(lambda t: answered.cancel() if t.cancelled() else answered.set_result(t.result()))
    if case.slot_taken == "wait":
        while bulkhead.waiting == 0:
            await asyncio.sleep(0)
        bulkhead.release(NOBODY)
    if case.cancel:
        while server.attempts == 0:
            await asyncio.sleep(0)
        task = started.escalate() if started is not None else runner
        loop.call_soon(task.cancel)
    try:
        answer: Any = await answered
    except asyncio.CancelledError:
        answer = "no answer"
    if case.slot_taken == "refuse":
        bulkhead.release(NOBODY)
    await asyncio.gather(*server.plays)
    if isinstance(answer, WireResult):
        answer = types.CallToolResult.model_validate(answer.body, by_name=False)
    if isinstance(answer, types.CallToolResult) and answer.is_error and isinstance(answer.structured_content, dict):
        body = dict(answer.structured_content)  # timings differ from run to run: compared without them
        body["message"] = body["message"].split(" after ")[0]
        body.get("details", {}).pop("elapsed_s", None)
        if "retry_after_s" in body:
            body["retry_after_s"] = round(body["retry_after_s"])
        answer = (body, answer.meta)
    b = breakers.breaker("s")
    return Run(answer, auditor.rows, (server.stats.in_flight, server.stats.calls, server.stats.failures),
               (b.state, b.consecutive_failures, b._ok, b._failed),  # noqa: SLF001
               (bulkhead.busy, bulkhead.waiting), server.attempts, len(heard),
               started is not None and started.task is None)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_both_drivers_agree(case: Case) -> None:
    awaited = await run_case(case, express=False)
    expressed = await run_case(case, express=True)
    assert expressed.finished_in_callbacks == case.express_finishes
    expressed.finished_in_callbacks = False
    assert expressed == awaited
    assert awaited.rows == [case.expected], "one audit row per call, with its outcome and code"
    assert awaited.bulkhead == (0, 0) and awaited.stats[0] == 0, "every permit settled, nothing left in flight"
    if case.expected[0] == "ok":
        assert awaited.answer.meta == {"mcp-hub/request_id": "r"}
    elif case.expected[0] != "cancelled":
        assert awaited.answer[0]["code"] == case.expected[1] and awaited.answer[1] == {"mcp-hub/request_id": "r"}
    if case.progress_steps:
        assert awaited.heard == case.progress_steps


def test_a_servers_error_code_is_recorded_masked_bounded_and_never_as_a_placeholder() -> None:
    """A server's `structuredContent.code` goes to audit rows, metrics and the log line: a long one
    is cut (with a digest), a secret in it masked, and one of 64 KiB or more — lifted out of its big
    line — is named, never written as the placeholder (which carries the process's token)."""
    from hub.calls.call import CODE_LIMIT, Outcome
    from hub.frontends.stdio.json_lines import parse_big
    from hub.wire import wire_result

    def code_of(code: str) -> str | None:
        body = {"content": [{"type": "text", "text": "x" * 2_000_000}], "isError": True, "structuredContent": {"code": code}}
        _, message = parse_big(bytearray(orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": body})))
        return Outcome(result=wire_result(message["result"])).code

    assert code_of("not_found") == "not_found"
    long_code = code_of("E" * 1000)
    assert long_code is not None and long_code.startswith("E" * CODE_LIMIT) and len(long_code) < 100
    assert code_of("c" * 70_000) == "(a code of 64 KiB or more)"
    assert "sk-live" not in (code_of("failed sk-live-0123456789abcdefghijklmnop") or "")


def test_a_servers_code_that_is_not_a_plain_string_is_no_internal_error() -> None:
    """Escape sequences and line breaks never reach a log line or audit row; a code that is an
    object or a list is no code (the retry policy raised `unhashable type`: the client got -32603)."""
    from hub.calls.call import Outcome
    from hub.policies.retry import transient_result
    from hub.wire import wire_result

    def result(code: object) -> Any:
        return wire_result({"content": [{"type": "text", "text": "no"}], "isError": True, "structuredContent": {"code": code}})

    assert Outcome(result=result("bad\x1b[31m\nline\x00")).code == "bad?[31m?line?"
    for code in ({"a": 1}, ["unavailable"], 3, None):
        assert transient_result(result(code)) == (False, None) and Outcome(result=result(code)).code is None
    assert transient_result(result("unavailable")) == (True, None)
