"""OpenTelemetry traces of tool calls (`hub.telemetry`): imported only when tracing is on.

When `hub.telemetry` is off the hub never imports this module (nor the OpenTelemetry SDK) and its
call path is untouched: `Hub.tracing` is None, the policy chain is the plain one, the express path
runs as before. (The `mcp` SDK itself imports `opentelemetry-api`, a no-op without an SDK.)

On, the awaiting driver (`hub.calls.drivers`) opens these spans around its steps:

    tools/call <tool>            call_span   outermost: tool, server, principal, outcome, error code,
    ├── attempt 1                attempt_span  retries, breaker state; one child per attempt
    │   └── bulkhead queue       wait_span     only when the call had to wait for a slot
    ├── retry backoff            (made by attempt_span from the end of one attempt to the next)
    └── attempt 2

The call span's parent is the caller's W3C trace context: `_meta.traceparent` (the SDK's server
makes it the ambient context; the hub's stdio fast path passes it as the `traceparent` call
attribute), else the HTTP request's `traceparent` header (same attribute). Downstreams get the
current attempt's context in `params._meta.traceparent` (`downstream_meta`); an HTTP downstream
gets it in `_meta` only (the SDK's client gives no per-request header hook).

Decisions: the hub uses a TracerProvider of its own and does not install it globally, so the SDK's
per-message spans stay no-ops (they would duplicate the hub's); the express driver is off while tracing
is on (every call takes the awaiting driver, whose coroutines carry the spans' context); calls refused
before the pipeline (unknown or hidden tool) get no span — their audit row and log line remain.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import anyio
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from hub.errors import HubToolError
from hub.policies.base import Outcome, ToolCall
from hub.policies.breaker import BreakerPolicy
from hub.policies.bulkhead import BulkheadPolicy
from hub.settings import TelemetrySettings
from hub.trace_context import TRACEPARENT, carried_trace

logger = logging.getLogger("hub.telemetry")
STOP_FLUSH_S = 1.0
"""How long the hub's stop waits for the last spans to reach the collector."""
_PROPAGATOR = TraceContextTextMapPropagator()
_LAST_END = "_otel_attempt_end"


class CallTracing:
    """The hub's tracer, the policies that make its spans, and what downstreams are sent."""

    def __init__(self, settings: TelemetrySettings, breakers: BreakerPolicy, bulkheads: BulkheadPolicy,
                 exporter: SpanExporter | None = None) -> None:
        """`exporter`: where spans go (tests pass an in-memory one, exported as each span ends);
        default OTLP over HTTP to `settings.endpoint`, batched."""
        service = settings.service_name
        if "service_name" not in settings.model_fields_set:
            service = os.environ.get("OTEL_SERVICE_NAME") or service
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}),
                                       shutdown_on_exit=False)  # the hub shuts it down itself, bounded (`aclose`)
        self._otlp: SpanExporter | None = None
        if exporter is not None:
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            self._otlp = _otlp_exporter(settings.endpoint)
            self.provider.add_span_processor(BatchSpanProcessor(self._otlp))
        self.tracer = self.provider.get_tracer("mcp-hub")
        self._breakers = breakers
        self._bulkheads = bulkheads
        self.log_filter = TraceLogFilter()
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, TraceLogFilter) for f in handler.filters):
                handler.addFilter(self.log_filter)

    async def aclose(self) -> None:
        """At hub close: the spans not yet exported get at most `STOP_FLUSH_S` to reach the collector,
        then the exporter and the provider stop (as long again at most). Both run in daemon threads of
        their own: the SDK retries an export toward a collector that is down with backoff, and waits out
        its 10 s request timeout on one that hangs, in the calling thread — a worker thread doing that
        held the process's exit (8 s, or the 10 s watchdog: outside review console15, re-check 16).
        Stopping the exporter ends the retries; a hung request is left to its daemon thread."""
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self.log_filter)
        flushed = await _in_daemon_thread(self.provider.force_flush, STOP_FLUSH_S)
        if self._otlp is not None:
            self._otlp.shutdown()
        await _in_daemon_thread(self.provider.shutdown, STOP_FLUSH_S)
        if not flushed:
            logger.warning("spans not yet exported were dropped: the trace collector did not take them within %gs "
                           "of the stop", STOP_FLUSH_S)

    # -- the caller's context and the downstream's --------------------------------------------

    def _parent(self, attributes: Mapping[str, Any]) -> Context | None:
        """The caller's trace context: the ambient one (the SDK put `_meta.traceparent` there) if
        valid, else the `traceparent` (and `tracestate`) attributes (stdio front, HTTP headers:
        `hub.trace_context`), else a new trace."""
        if trace.get_current_span().get_span_context().is_valid:
            return None
        carried = carried_trace(attributes.get)
        if carried is not None:
            context = _PROPAGATOR.extract(carried)  # its tracestate too, passed on with the span's context
            if trace.get_current_span(context).get_span_context().is_valid:
                return context
        return None

    @staticmethod
    def downstream_meta(meta: dict[str, Any] | None) -> dict[str, Any] | None:
        """`meta` (the `_meta` a downstream call carries; a new dict) plus the current span's
        `traceparent` (and `tracestate`), so the downstream's spans join the hub's trace."""
        carrier: dict[str, Any] = dict(meta or {})
        _PROPAGATOR.inject(carrier)
        return carrier or None

    # -- spans the awaiting driver opens (`hub.calls.drivers`) -----------------------------------

    @contextmanager
    def call_span(self, call: ToolCall) -> Iterator[None]:
        """One SERVER span per call, ended with its outcome, code, retries and the breaker's state."""
        route = call.route
        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": route.exposed,
                      "mcp.method.name": "tools/call", "mcp_hub.server": route.server,
                      "mcp_hub.tool.original": route.original,
                      "mcp_hub.principal": str(call.attributes.get("principal", "local")),
                      "mcp_hub.request_id": str(call.attributes.get("request_id", ""))}
        with self.tracer.start_as_current_span(f"tools/call {route.exposed}", context=self._parent(call.attributes),
                                               kind=SpanKind.SERVER, attributes=attributes,
                                               record_exception=False, set_status_on_exception=False) as span:
            try:
                yield
            finally:
                kind, code = _marks(call.outcome)
                _mark(span, kind, code)
                span.set_attribute("mcp_hub.retries", max(0, int(call.attributes.get("attempt", 1)) - 1))
                span.set_attribute("mcp_hub.breaker_state", self._breakers.breaker(route.server).state)
                if code is not None:
                    span.set_attribute("error.type", code)

    @contextmanager
    def attempt_span(self, call: ToolCall) -> Iterator[Mark]:
        """A CLIENT span per attempt (current while it runs, so the downstream gets its context),
        preceded by a `retry backoff` span covering the wait since the previous attempt ended."""
        attempt = int(call.attributes.get("attempt", 1))
        last_end = call.attributes.pop(_LAST_END, None)
        if last_end is not None:
            wait = self.tracer.start_span("retry backoff", start_time=last_end,
                                          attributes={"mcp_hub.wait": "retry_backoff", "mcp_hub.next_attempt": attempt})
            wait.end()
        breaker = self._breakers.breaker(call.route.server)
        span = self.tracer.start_span(f"attempt {attempt}", kind=SpanKind.CLIENT, attributes={
            "mcp_hub.attempt": attempt, "mcp_hub.server": call.route.server, "mcp_hub.breaker_state": breaker.state})
        mark = Mark()
        with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            try:
                yield mark
            finally:
                ended = call.attributes[_LAST_END] = time.time_ns()  # where a retry's backoff span starts
                _mark(span, *_marks(mark.outcome if isinstance(mark.outcome, Outcome) else None))
                span.end(end_time=ended)

    @contextmanager
    def wait_span(self, call: ToolCall, policy: Any) -> Iterator[Mark]:
        """A `bulkhead queue` span when the call waited for a slot: from then until it got one (or
        was refused), a child of the attempt. Other policies' waits get no span."""
        mark = Mark()
        if policy is not self._bulkheads:
            yield mark
            return
        bulkhead = self._bulkheads.bulkhead(call.route.server)
        started = time.time_ns()
        try:
            yield mark
        finally:
            got = not isinstance(mark.outcome, HubToolError) and mark.outcome is not None
            span = self.tracer.start_span("bulkhead queue", start_time=started, attributes={
                "mcp_hub.wait": "bulkhead_queue", "mcp_hub.server": call.route.server,
                "mcp_hub.max_concurrency": bulkhead.max_concurrency, "mcp_hub.slot_acquired": got})
            if not got:
                span.set_status(StatusCode.ERROR, "no slot")
            span.end()


class Mark:
    """What a traced step came to, set by the driver inside the span (None: it raised)."""

    __slots__ = ("outcome",)

    def __init__(self) -> None:
        self.outcome: Any = None


class TraceLogFilter(logging.Filter):
    """Adds `trace_id` and `span_id` to every record made while a span is active (empty strings
    otherwise), and appends them to the message so the hub's one-line format shows them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "trace_id", None) is not None:
            return True  # another handler's filter did it already
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            record.trace_id = record.span_id = ""
            return True
        record.trace_id, record.span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
        record.msg = f"{record.getMessage()} trace_id={record.trace_id} span_id={record.span_id}"
        record.args = None
        return True


def _marks(outcome: Outcome | None) -> tuple[str, str | None]:
    """(outcome, error code) as the audit records them; None (the step raised): `cancelled`."""
    return ("cancelled", None) if outcome is None else (outcome.kind, outcome.code)


def _mark(span: Span, kind: str, code: str | None) -> None:
    span.set_attribute("mcp_hub.outcome", kind)
    if code is not None:
        span.set_attribute("mcp_hub.error_code", code)
    if kind != "ok":
        span.set_status(StatusCode.ERROR, code or kind)


async def _in_daemon_thread(work: Callable[[], object], wait_s: float) -> bool:
    """Run `work` in a daemon thread (one the process does not wait for at exit) and wait for it at most
    `wait_s`; whether it finished."""
    done = threading.Event()

    def run() -> None:
        try:
            work()
        finally:
            done.set()

    threading.Thread(target=run, name="mcp-hub-span-stop", daemon=True).start()
    return await anyio.to_thread.run_sync(done.wait, wait_s)


def _otlp_exporter(endpoint: str | None) -> SpanExporter:
    """OTLP/HTTP exporter; `endpoint` a base URL (`/v1/traces` appended) or None for the OTEL_* env."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise RuntimeError("hub.telemetry is on but the OTLP exporter is not installed; "
                           "install the extra: pip install 'mcp-hub[otel]'") from exc
    if endpoint is None:
        return OTLPSpanExporter()
    url = endpoint if endpoint.rstrip("/").endswith("/v1/traces") else endpoint.rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=url)

