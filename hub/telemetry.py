"""OpenTelemetry traces of tool calls (`hub.telemetry`): imported only when tracing is on.

When `hub.telemetry` is off the hub never imports this module (nor the OpenTelemetry SDK) and its
call path is untouched: `Hub.tracing` is None, the policy chain is the plain one, the express path
runs as before. (The `mcp` SDK itself imports `opentelemetry-api`, a no-op without an SDK.)

On, `CallTracing.wrap` threads four thin policies into the hub's default chain:

    tools/call <tool>            call_span   outermost: tool, server, principal, outcome, error code,
    ├── attempt 1                attempt_span  retries, breaker state; one child per attempt
    │   └── bulkhead queue       queue_span    only when the call had to wait for a slot
    ├── retry backoff            (made by attempt_span from the end of one attempt to the next)
    └── attempt 2

The call span's parent is the caller's W3C trace context: `_meta.traceparent` (the SDK's server
makes it the ambient context; the hub's stdio fast path passes it as the `traceparent` call
attribute), else the HTTP request's `traceparent` header (same attribute). Downstreams get the
current attempt's context in `params._meta.traceparent` (`downstream_meta`); an HTTP downstream
gets it in `_meta` only (the SDK's client gives no per-request header hook).

Decisions: the hub uses a TracerProvider of its own and does not install it globally, so the SDK's
per-message spans stay no-ops (they would duplicate the hub's); the express path is off while tracing
is on (every call takes the awaiting chain, which these policies wrap); calls refused before the chain
(unknown tool, invalid arguments) get no span — their audit row and log line remain.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
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
from hub.policies.base import CallNext, CallPolicy, ToolCall
from hub.policies.breaker import BreakerPolicy
from hub.policies.bulkhead import BulkheadPolicy
from hub.settings import TelemetrySettings
from hub.wire import ToolResult

logger = logging.getLogger("hub.telemetry")
TRACEPARENT = "traceparent"
"""The W3C header and `_meta` key; also the `ToolCall.attributes` key of a caller's trace context."""
_PROPAGATOR = TraceContextTextMapPropagator()
_LAST_END = "_otel_attempt_end"
_SLOT_AT = "_otel_slot_at"


class CallTracing:
    """The hub's tracer, the policies that make its spans, and what downstreams are sent."""

    def __init__(self, settings: TelemetrySettings, breakers: BreakerPolicy, bulkheads: BulkheadPolicy,
                 exporter: SpanExporter | None = None) -> None:
        """`exporter`: where spans go (tests pass an in-memory one, exported as each span ends);
        default OTLP over HTTP to `settings.endpoint`, batched."""
        service = settings.service_name
        if "service_name" not in settings.model_fields_set:
            service = os.environ.get("OTEL_SERVICE_NAME") or service
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        if exporter is not None:
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            self.provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(settings.endpoint)))
        self.tracer = self.provider.get_tracer("mcp-hub")
        self._breakers = breakers
        self._bulkheads = bulkheads
        self.log_filter = TraceLogFilter()
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, TraceLogFilter) for f in handler.filters):
                handler.addFilter(self.log_filter)

    def shutdown(self) -> None:
        """Flush spans not yet exported and stop the exporter (at hub close)."""
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self.log_filter)
        self.provider.shutdown()

    def wrap(self, policies: Sequence[CallPolicy], retry: CallPolicy, bulkhead: CallPolicy) -> list[CallPolicy]:
        """`policies` with the tracing policies threaded in: the call span outermost, an attempt span
        inside `retry`, the bulkhead-queue measurement around `bulkhead` (each only if present)."""
        out: list[CallPolicy] = [self.call_span]
        for policy in policies:
            if policy is bulkhead:
                out += [self.queue_span, policy, self._slot_taken]
            else:
                out.append(policy)
            if policy is retry:
                out.append(self.attempt_span)
        return out

    # -- the caller's context and the downstream's --------------------------------------------

    def _parent(self, attributes: Mapping[str, Any]) -> Context | None:
        """The caller's trace context: the ambient one (the SDK put `_meta.traceparent` there) if
        valid, else the `traceparent` attribute (stdio fast path, HTTP header), else a new trace."""
        if trace.get_current_span().get_span_context().is_valid:
            return None
        carried = attributes.get(TRACEPARENT)
        if isinstance(carried, str) and carried:
            context = _PROPAGATOR.extract({TRACEPARENT: carried})
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

    # -- policies ------------------------------------------------------------------------------

    async def call_span(self, call: ToolCall, call_next: CallNext) -> ToolResult:
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
            outcome = _Outcome()
            try:
                return await outcome.run(call_next, call)
            finally:
                outcome.mark(span)
                span.set_attribute("mcp_hub.retries", max(0, int(call.attributes.get("attempt", 1)) - 1))
                span.set_attribute("mcp_hub.breaker_state", self._breakers.breaker(route.server).state)
                if outcome.code is not None:
                    span.set_attribute("error.type", outcome.code)

    async def attempt_span(self, call: ToolCall, call_next: CallNext) -> ToolResult:
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
        with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            outcome = _Outcome()
            try:
                return await outcome.run(call_next, call)
            finally:
                ended = call.attributes[_LAST_END] = time.time_ns()  # where a retry's backoff span starts
                outcome.mark(span)
                span.end(end_time=ended)

    async def queue_span(self, call: ToolCall, call_next: CallNext) -> ToolResult:
        """A `bulkhead queue` span when the call found no free slot: from then until it got one
        (or was refused). Made after the fact, with those two times, as a child of the attempt."""
        bulkhead = self._bulkheads.bulkhead(call.route.server)
        if call.sent is not None or bulkhead.slots.value > 0:
            return await call_next(call)  # no wait: no span
        started = time.time_ns()
        call.attributes[_SLOT_AT] = None
        try:
            return await call_next(call)
        finally:
            got = call.attributes.pop(_SLOT_AT, None)
            span = self.tracer.start_span("bulkhead queue", start_time=started, attributes={
                "mcp_hub.wait": "bulkhead_queue", "mcp_hub.server": call.route.server,
                "mcp_hub.max_concurrency": bulkhead.max_concurrency, "mcp_hub.slot_acquired": got is not None})
            if got is None:
                span.set_status(StatusCode.ERROR, "no slot")
            span.end(end_time=got)

    @staticmethod
    async def _slot_taken(call: ToolCall, call_next: CallNext) -> ToolResult:
        if _SLOT_AT in call.attributes and call.attributes[_SLOT_AT] is None:
            call.attributes[_SLOT_AT] = time.time_ns()
        return await call_next(call)


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


class _Outcome:
    """What one call or attempt came to (`ok`, `tool_error`, `error` or `cancelled`, and the error
    code), recorded while it runs and then written onto its span."""

    def __init__(self) -> None:
        self.outcome, self.code = "error", None  # an exception other than the two below: `error`

    async def run(self, call_next: CallNext, call: ToolCall) -> ToolResult:
        try:
            result = await call_next(call)
        except HubToolError as exc:
            self.code = exc.body.code
            raise
        except anyio.get_cancelled_exc_class():
            self.outcome = "cancelled"
            raise
        self.outcome, self.code = _result_outcome(result)
        return result

    def mark(self, span: Span) -> None:
        span.set_attribute("mcp_hub.outcome", self.outcome)
        if self.code is not None:
            span.set_attribute("mcp_hub.error_code", self.code)
        if self.outcome != "ok":
            span.set_status(StatusCode.ERROR, self.code or self.outcome)


def _result_outcome(result: ToolResult) -> tuple[str, str | None]:
    """(`ok` | `tool_error`, the error code an `isError` result carries) — as the audit records it."""
    if not result.is_error:
        return "ok", None
    body = result.structured_content
    code = body.get("code") if isinstance(body, dict) else None
    return "tool_error", code if isinstance(code, str) else None


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

