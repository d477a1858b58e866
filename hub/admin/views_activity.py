"""Activity (the audit log, filtered, with a live SSE view and a detail panel) and Charts (calls/s,
error rate and latency per server over the last hour, drawn from the same audit rows).

Arguments shown are the audit log's redacted text: the console never sees more than the audit
database holds. The live view polls the audit database once a second for rows newer than the
last one sent and pushes them as `row` events carrying pre-rendered table rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from urllib.parse import urlencode

import anyio
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response

from hub.admin import audit_reads
from hub.admin.charts import line_chart
from hub.admin.console import Console, StoreUnavailable
from hub.admin.session import AdminSession

OUTCOMES = ("ok", "tool_error", "error", "denied")
PERIODS = {"": None, "15m": 900, "1h": 3600, "24h": 86400, "7d": 604800}
PAGE = 100
"""Rows per Activity page (and at most per live-stream poll)."""
FILTERS = ("principal", "tool", "outcome", "since", "from", "to")


def _when(text: str) -> float | None:
    """A `datetime-local` value (`2026-12-03T14:05`, seconds optional) in the hub's local time, else None."""
    try:
        return datetime.fromisoformat(text.strip()[:32]).timestamp() if text.strip() else None
    except (ValueError, OverflowError, OSError):  # not a time, or one the platform cannot convert
        return None


def _filter(request: Request) -> audit_reads.ActivityFilter:
    q = request.query_params
    outcome = q.get("outcome", "")
    return audit_reads.ActivityFilter(
        principal=q.get("principal", "").strip()[:128] or None, tool=q.get("tool", "").strip()[:128] or None,
        outcome=outcome if outcome in OUTCOMES else None, since_s=PERIODS.get(q.get("since", ""), None),
        start=_when(q.get("from", "")), end=_when(q.get("to", "")))


def _before(request: Request) -> int | None:
    raw = request.query_params.get("before", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


async def activity(console: Console, request: Request, session: AdminSession) -> Response:
    flt = _filter(request)
    before = _before(request)
    error = None
    try:
        rows = await audit_reads.recent(console.hub, flt, limit=PAGE + 1, before_id=before)
    except Exception as exc:  # boundary: show the failure on the page, not a 500
        rows, error = [], f"Cannot read the audit log: {type(exc).__name__}."
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    kept = {k: request.query_params[k][:128] for k in FILTERS if request.query_params.get(k)}
    older = f"/admin/activity?{urlencode({**kept, 'before': rows[-1]['id']})}" if more else None
    newest = f"/admin/activity?{urlencode(kept)}" if before is not None else None
    detail = None
    picked = request.query_params.get("id", "")
    if picked.isascii() and picked.isdigit() and len(picked) <= 18:
        detail = await audit_reads.one(console.hub, int(picked))
        if detail is not None:
            detail["args_pretty"] = _pretty(detail["args"])
    q = request.query_params
    return console.render(request, "activity.html", session, page="activity", rows=rows, flt=flt, error=error,
                          outcomes=OUTCOMES, periods=PERIODS, since=q.get("since", ""), start=q.get("from", "")[:32],
                          end=q.get("to", "")[:32], detail=detail, picked=picked,
                          audit_on=console.hub.audit_log is not None, last_id=max((r["id"] for r in rows), default=0),
                          older=older, newest=newest, page_size=PAGE,
                          detail_qs=urlencode({**kept, **({"before": before} if before is not None else {})}),
                          live=before is None and (flt.end is None or flt.end > time.time()))


LIVE_ROWS = 500
"""Rows one tick of the live view sends at most: what the page's table keeps (admin.js). A burst of
more is announced (`gap`); before, a tick sent the newest 100 and skipped the rest (re-check 16)."""


async def stream(console: Console, request: Request, session: AdminSession) -> Response:
    """`row` events, each one `<tr>` of the activity table, for rows after `after` that match the
    filters, oldest first; a `gap` event when a tick had more than `LIVE_ROWS`."""
    flt = _filter(request)
    raw_after = request.query_params.get("after", "")
    after = int(raw_after) if raw_after.isascii() and raw_after.isdigit() and len(raw_after) <= 18 else 0
    row_template = console.templates.get_template("activity_row.html")

    async def events() -> AsyncIterator[dict[str, str]]:
        nonlocal after
        while True:
            try:  # every tick, as every request: the session alive and its key still valid (not activity)
                alive = await console.live_session(request, touch=False) is not None
            except StoreUnavailable:
                alive = False  # the key cannot be checked: stop (the browser reconnects through the gate)
            if not alive:
                yield {"event": "end", "data": "session ended"}
                return
            rows = await audit_reads.recent(console.hub, flt, after_id=after, limit=LIVE_ROWS + 1)
            if len(rows) > LIVE_ROWS:  # more arrived in one tick than the table keeps: say so, never skip silently
                yield {"event": "gap", "data": f"more than {LIVE_ROWS} calls in a second"}
            for row in reversed(rows[:LIVE_ROWS]):
                after = max(after, row["id"])
                yield {"event": "row", "id": str(row["id"]), "data": row_template.render(r=row, picked="").replace("\n", " ")}
            await anyio.sleep(1.0)

    return EventSourceResponse(events(), ping=15, headers={"Cache-Control": "no-store"})


async def charts(console: Console, request: Request, session: AdminSession) -> Response:
    series = await audit_reads.last_hour(console.hub)
    panels = []
    for s in series:
        rate = [c / 60 for c in s.calls]
        errors = [(e / c * 100) if c else None for c, e in zip(s.calls, s.errors, strict=True)]
        panels.append({
            "server": s.server, "total": sum(s.calls), "errors": sum(s.errors),
            "calls": line_chart(rate, f"{s.server}: calls per second", "calls/s"),
            "error_rate": line_chart(errors, f"{s.server}: error rate", "%", fixed_max=100),
            "latency": line_chart(s.latency_ms, f"{s.server}: mean latency", "ms"),
        })
    return console.render(request, "charts.html", session, page="charts", panels=panels,
                          audit_on=console.hub.audit_log is not None)


def _pretty(args: str | None) -> str:
    if not args:
        return "(no arguments)"
    try:
        return json.dumps(json.loads(args), indent=2, sort_keys=True)
    except ValueError:
        return args
