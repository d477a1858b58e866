"""The outermost policy: every call (allowed, denied, failed) leaves an audit row, a metric and a
log line, all tagged with the request id the caller gets back in `_meta`."""

from __future__ import annotations

import fnmatch
import itertools
import logging
import secrets
import time
from typing import Any

import anyio

from hub.audit.log import AuditEvent, AuditLog
from hub.errors import HubToolError
from hub.metrics import HubMetrics
from hub.policies.base import CallNext, ToolCall, now
from hub.settings import AuditSettings
from hub.wire import ToolResult, replace_meta

logger = logging.getLogger("hub.calls")
REQUEST_ID_META = "mcp-hub/request_id"
_REQUEST_IDS = itertools.count(1)
_PROCESS_TAG = f"{secrets.randbits(64):016x}"


def new_request_id() -> str:
    """32 hex digits, unique per call: a random tag for this process and a counter (no syscall
    per call, unlike `uuid4`; ids are labels for correlating logs, not secrets)."""
    return f"{_PROCESS_TAG}{next(_REQUEST_IDS):016x}"


class AuditPolicy:
    def __init__(self, audit: AuditLog | None, settings: AuditSettings, metrics: HubMetrics) -> None:
        self.audit = audit
        self.settings = settings
        self.metrics = metrics
        self._kept: dict[str, frozenset[str]] = {}

    async def __call__(self, call: ToolCall, call_next: CallNext) -> ToolResult:
        # A call the express path already sent was admitted then: it is seen through, not refused.
        refusal = self._refusal(call) if call.sent is None else None
        if refusal is not None:
            self.observe(call, "error", "unavailable", 0.0)  # also probes whether the store is back
            raise refusal
        started = call.started_at
        try:
            result = await call_next(call)
        except HubToolError as exc:
            self.observe(call, "error", exc.body.code, now() - started)
            raise
        except anyio.get_cancelled_exc_class():
            self.observe(call, "cancelled", None, now() - started)
            raise
        self.observe_result(call, result, now() - started)
        return result

    def observe_result(self, call: ToolCall, result: ToolResult, seconds: float) -> None:
        """A call the server answered: `ok`, or `tool_error` with the code its result carries."""
        structured = result.structured_content
        code = structured.get("code") if result.is_error and isinstance(structured, dict) else None
        self.observe(call, "tool_error" if result.is_error else "ok", code, seconds)

    @property
    def store_ok(self) -> bool:
        """Auditing is off, or its store is healthy: no call is refused for the audit's sake."""
        return self.audit is None or self.audit.healthy

    def _refusal(self, call: ToolCall) -> HubToolError | None:
        """The error to refuse this call with while the audit store is down, per `on_failure`."""
        if self.audit is None or self.audit.healthy or self.settings.on_failure == "fail_open":
            return None
        if self.settings.on_failure == "fail_closed_writes" and call.route.read_only:
            logger.error("audit log unavailable; allowing read-only %s", call.route.exposed)
            return None
        return HubToolError(
            "unavailable",
            f"the hub's audit log is unavailable ({self.audit.last_error}), so {call.route.exposed} is refused "
            "until it recovers; read-only tools still work. Ask the hub's operator to check the data directory.",
        )

    def observe(self, call: ToolCall, outcome: str, code: str | None, seconds: float) -> None:
        tool, server = call.route.exposed, call.route.server
        self.metrics.record_call(tool, server, outcome, seconds)
        if code == "rate_limited" and outcome == "error":
            self.metrics.rate_limited.labels(tool).inc()
        self._write(call.attributes, tool, server, outcome, code, seconds, call.arguments)

    def denied(self, attributes: dict[str, Any], tool: str, arguments: dict[str, Any]) -> None:
        self.metrics.calls.labels(tool, "", "denied").inc()
        self._write(attributes, tool, None, "denied", "not_found", None, arguments)

    def _write(
        self,
        attributes: dict[str, Any],
        tool: str,
        server: str | None,
        outcome: str,
        code: str | None,
        seconds: float | None,
        arguments: dict[str, Any],
    ) -> None:
        request_id, principal = attributes["request_id"], attributes.get("principal", "local")
        latency_ms = round(seconds * 1000, 3) if seconds is not None else None
        if logger.isEnabledFor(logging.INFO):
            logger.info("call tool=%s server=%s principal=%s outcome=%s code=%s ms=%s request_id=%s",
                        tool, server, principal, outcome, code, latency_ms, request_id)
        if self.audit is None:
            return
        keep = self._kept.get(tool)
        if keep is None:
            keep = self._kept[tool] = frozenset(
                f for pattern, fields in self.settings.keep_fields.items() if fnmatch.fnmatchcase(tool, pattern) for f in fields)
        self.audit.record(AuditEvent(time.time(), request_id, principal, tool, server, outcome, code, latency_ms,
                                     dict(arguments), keep))


def with_request_id(result: ToolResult, request_id: str) -> ToolResult:
    return replace_meta(result, {**(result.meta or {}), REQUEST_ID_META: request_id})
