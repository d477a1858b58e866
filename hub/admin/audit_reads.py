"""Read-only queries over the audit log for the Activity and Charts pages.

They go through the store protocol (`hub.store.base.AuditReads`): the shared PostgreSQL store when
`hub.store.url` is set (so every replica's console shows the whole cluster's calls), else the
`audit.sqlite` file of the data dir, opened read-only (the audit writer thread owns the writable
connection). Each query runs in a worker thread, so a slow disk or database never blocks the
event loop; a store that does not answer raises `StoreUnavailable`, which the page shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from hub.store.base import AuditFilter, AuditReads
from hub.store.sqlite import SqliteAuditReads

if TYPE_CHECKING:
    from hub.hub import Hub


@dataclass(frozen=True)
class ActivityFilter:
    principal: str | None = None
    tool: str | None = None
    outcome: str | None = None
    since_s: float | None = None
    """Only rows from the last `since_s` seconds."""
    start: float | None = None
    """Only rows at or after this time (the range's start)."""
    end: float | None = None
    """Only rows before this time (the range's end)."""


def source(hub: Hub) -> AuditReads:
    """Where the console reads the audit: the shared store, else this data dir's file."""
    shared = hub.shared_store
    return shared if shared is not None else SqliteAuditReads(hub.data_dir / "audit.sqlite")


def _store_filter(flt: ActivityFilter, limit: int, before_id: int | None = None) -> AuditFilter:
    starts = [t for t in (time.time() - flt.since_s if flt.since_s else None, flt.start) if t is not None]
    return AuditFilter(principal=flt.principal or None, tool=flt.tool or None, outcome=flt.outcome or None,
                       since=max(starts) if starts else None, limit=limit, until=flt.end, before_id=before_id)


async def recent(hub: Hub, flt: ActivityFilter, after_id: int = 0, limit: int = 200,
                 before_id: int | None = None) -> list[dict[str, Any]]:
    """Newest-first rows matching `flt` with an id above `after_id` (and below `before_id`: a page
    further back), at most `limit`."""
    return await anyio.to_thread.run_sync(source(hub).audit_after, _store_filter(flt, limit, before_id), after_id)


async def one(hub: Hub, row_id: int) -> dict[str, Any] | None:
    return await anyio.to_thread.run_sync(source(hub).audit_row, row_id)


@dataclass
class Series:
    """Per-minute points of one server over the last hour (index 0 = 60 minutes ago)."""

    server: str
    calls: list[int]
    errors: list[int]
    latency_ms: list[float | None]
    """Mean latency of the minute's calls."""


def _series(reads: AuditReads, now: float) -> list[Series]:
    start = (int(now) // 60 - 59) * 60
    out: dict[str, Series] = {}
    for server, minute, calls, errors, latency in reads.audit_minutes(start):
        if not 0 <= minute < 60:
            continue
        series = out.setdefault(server, Series(server, [0] * 60, [0] * 60, [None] * 60))
        series.calls[minute], series.errors[minute] = calls, errors or 0
        series.latency_ms[minute] = round(latency, 2) if latency is not None else None
    return [out[name] for name in sorted(out)]


async def last_hour(hub: Hub) -> list[Series]:
    """Calls, errors and mean latency per server and minute over the last hour, from audit rows."""
    return await anyio.to_thread.run_sync(_series, source(hub), time.time())
