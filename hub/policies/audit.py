"""The outermost policy: every call (allowed, denied, failed) leaves an audit row, a metric and a
log line, all tagged with the request id the caller gets back in `_meta`."""

from __future__ import annotations

import fnmatch
import itertools
import logging
import secrets
import time
from typing import Any

from hub.audit.log import AuditEvent, AuditLog
from hub.auth.principal import Principal
from hub.catalog.catalog import ToolRoute
from hub.errors import HubToolError
from hub.metrics import HubMetrics
from hub.policies.base import GRANTED, Admission, Outcome, Permit, Phase, ToolCall, now
from hub.redact import Premasked, bounded_name, mask_short
from hub.settings import AuditSettings
from hub.wire import ToolResult, replace_meta

logger = logging.getLogger("hub.calls")
CALL_LINE = Premasked("call tool=%s server=%s principal=%s outcome=%s code=%s ms=%s request_id=%s")
"""One line per call: at INFO for a call that did not succeed (tool error, hub or server error,
denied, cancelled), at DEBUG for one that did — the audit log keeps every call, and at INFO the
line was a fifth of the hub's CPU per call (docs/performance.md). Its names are masked one by one
(`mask_short`), the rest is the hub's own."""
REQUEST_ID_META = "mcp-hub/request_id"
_REQUEST_IDS = itertools.count(1)
_PROCESS_TAG = f"{secrets.randbits(64):016x}"
REFUSED_TOOL_LABEL = "_unknown"
"""The metrics label of every call to a name that is no tool (labels must stay a bounded set)."""


def new_request_id() -> str:
    """32 hex digits, unique per call: a random tag for this process and a counter (no syscall
    per call, unlike `uuid4`; ids are labels for correlating logs, not secrets)."""
    return f"{_PROCESS_TAG}{next(_REQUEST_IDS):016x}"


class AuditPolicy:
    """Per call: refuses while the audit store is down (per `on_failure`); settles every call into its row."""

    phase: Phase = "call"

    def __init__(self, audit: AuditLog | None, settings: AuditSettings, metrics: HubMetrics) -> None:
        self.audit = audit
        self.settings = settings
        self.metrics = metrics
        self._kept: dict[str, frozenset[str]] = {}

    def admit(self, call: ToolCall) -> Admission:
        """Refused (and audited as such) while the audit store is down, per `on_failure`."""
        refusal = self._refusal(call)
        if refusal is not None:
            self.observe(call, "error", "unavailable", 0.0)  # also probes whether the store is back
            return refusal
        return GRANTED

    async def wait(self, call: ToolCall) -> Permit | HubToolError:
        raise AssertionError("the audit never waits")

    def settle(self, call: ToolCall, permit: Permit, outcome: Outcome) -> None:
        """The call's audit row, metric and log line: `ok`, `tool_error`, `error` or `cancelled`, and its code."""
        self.observe(call, outcome.kind, outcome.code, now() - call.started_at)

    @property
    def store_ok(self) -> bool:
        """Auditing is off, or its store is healthy: no call is refused for the audit's sake."""
        return self.audit is None or self.audit.healthy

    def _refusal(self, call: ToolCall) -> HubToolError | None:
        return self.refusal_for(call.route.exposed, call.route.read_only)

    def refusal_for(self, tool: str, read_only: bool) -> HubToolError | None:
        """The error to refuse a call of `tool` with while the audit store is down, per `on_failure`."""
        if self.audit is None or self.audit.healthy or self.settings.on_failure == "fail_open":
            return None
        if self.settings.on_failure == "fail_closed_writes" and read_only:
            logger.error("audit log unavailable; allowing read-only %s", tool)
            return None
        return HubToolError(
            "unavailable",
            f"the hub's audit log is unavailable ({self.audit.last_error}), so {tool} is refused "
            "until it recovers; read-only tools still work. Ask the hub's operator to check the audit store "
            "(the data directory, or hub.store.url; /healthz shows its state).",
        )

    def observe(self, call: ToolCall, outcome: str, code: str | None, seconds: float) -> None:
        tool, server = call.route.exposed, call.route.server
        self.metrics.record_call(tool, server, outcome, seconds)
        if code == "rate_limited" and outcome == "error":
            self.metrics.rate_limited.labels(tool).inc()
        self._write(call.attributes, tool, server, outcome, code, seconds, call.arguments)

    def hub_tool(self, attributes: dict[str, Any], tool: str, outcome: str, code: str | None, seconds: float,
                 arguments: dict[str, Any]) -> None:
        """A call of a tool the hub answers itself (`hub.calls.hub_tools`: search mode's meta-tools): its
        row (no server; arguments kept as any call's, values redacted unless `keep_fields` names them),
        metric and log line. `tool` is one of the hub's own names, so labels stay a bounded set."""
        self.metrics.calls.labels(tool, "", outcome).inc()
        if code == "rate_limited" and outcome == "error":
            self.metrics.rate_limited.labels(tool).inc()
        self._write(attributes, tool, None, outcome, code, seconds, arguments)

    def denied(self, attributes: dict[str, Any], name: str, arguments: dict[str, Any], route: ToolRoute | None = None,
               refusal: HubToolError | None = None) -> None:
        """A call refused before routing: `name` is no tool (`route` None) or one the caller may not
        use. Metrics label it with the route's name or `_unknown` (labels stay a bounded set); the
        audit row and log line carry the name cut and masked (`bounded_name`); no argument value
        is kept. `refusal`: what the caller got instead (the rate limit's answer, or `unavailable`
        for a tool of a server still starting or down, whose server the row then names)."""
        label = route.exposed if route is not None else REFUSED_TOOL_LABEL
        code = refusal.body.code if refusal is not None else "not_found"
        self.metrics.calls.labels(label, "", "denied").inc()
        if code == "rate_limited":
            self.metrics.rate_limited.labels(label).inc()
        shown = route.exposed if route is not None else bounded_name(name)
        server = (refusal.body.details or {}).get("server") if refusal is not None else None
        self._write(attributes, shown, server, "denied", code, None, arguments, keep=frozenset())

    def _write(
        self,
        attributes: dict[str, Any],
        tool: str,
        server: str | None,
        outcome: str,
        code: str | None,
        seconds: float | None,
        arguments: dict[str, Any],
        keep: frozenset[str] | None = None,
    ) -> None:
        request_id, principal = attributes["request_id"], attributes.get("principal", "local")
        latency_ms = round(seconds * 1000, 3) if seconds is not None else None
        level = logging.DEBUG if outcome == "ok" else logging.INFO
        if logger.isEnabledFor(level):
            logger.log(level, CALL_LINE, mask_short(tool), mask_short(server), mask_short(principal), outcome, code,
                        latency_ms, request_id)
        if self.audit is None:
            return
        if keep is None:  # `tool` is a catalog name here: the cache stays as small as the catalog
            keep = self._kept.get(tool)
            if keep is None:
                keep = self._kept[tool] = frozenset(
                    f for pattern, fields in self.settings.keep_fields.items() if fnmatch.fnmatchcase(tool, pattern) for f in fields)
        caller = attributes.get("caller")
        kind, credential = (caller.kind, caller.credential) if isinstance(caller, Principal) else ("local", "")
        self.audit.record(AuditEvent(time.time(), request_id, principal, tool, server, outcome, code, latency_ms,
                                     dict(arguments), keep, kind, credential))


def with_request_id(result: ToolResult, request_id: str) -> ToolResult:
    return replace_meta(result, {**(result.meta or {}), REQUEST_ID_META: request_id})
