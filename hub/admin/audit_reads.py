"""Read-only queries over the audit database for the Activity and Charts pages.

Each query opens its own read-only connection (the audit writer thread owns the writable one)
and runs in a worker thread, so a slow disk never blocks the event loop.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

_FIELDS = ("id", "ts", "request_id", "principal", "tool", "server", "outcome", "error_code", "latency_ms", "args",
           "auth_kind", "credential")


@dataclass(frozen=True)
class ActivityFilter:
    principal: str | None = None
    tool: str | None = None
    outcome: str | None = None
    since_s: float | None = None
    """Only rows from the last `since_s` seconds."""


def _connect(data_dir: Path) -> sqlite3.Connection | None:
    path = data_dir / "audit.sqlite"
    if not path.exists():
        return None
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _rows(data_dir: Path, flt: ActivityFilter, after_id: int, limit: int) -> list[dict[str, Any]]:
    conn = _connect(data_dir)
    if conn is None:
        return []
    clauses, params = ["id > ?"], [after_id]
    for column, value in (("principal", flt.principal), ("tool", flt.tool), ("outcome", flt.outcome)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if flt.since_s:
        clauses.append("ts >= ?")
        params.append(time.time() - flt.since_s)
    with closing(conn):
        found = conn.execute(f"SELECT {', '.join(_FIELDS)} FROM audit WHERE {' AND '.join(clauses)} "
                             "ORDER BY id DESC LIMIT ?", [*params, limit]).fetchall()
    return [dict(zip(_FIELDS, row, strict=True)) for row in found]


async def recent(data_dir: Path, flt: ActivityFilter, after_id: int = 0, limit: int = 200) -> list[dict[str, Any]]:
    """Newest-first rows matching `flt` with an id above `after_id`."""
    return await anyio.to_thread.run_sync(_rows, data_dir, flt, after_id, limit)


def _one(data_dir: Path, row_id: int) -> dict[str, Any] | None:
    conn = _connect(data_dir)
    if conn is None:
        return None
    with closing(conn):
        row = conn.execute(f"SELECT {', '.join(_FIELDS)} FROM audit WHERE id = ?", (row_id,)).fetchone()
    return dict(zip(_FIELDS, row, strict=True)) if row else None


async def one(data_dir: Path, row_id: int) -> dict[str, Any] | None:
    return await anyio.to_thread.run_sync(_one, data_dir, row_id)


@dataclass
class Series:
    """Per-minute points of one server over the last hour (index 0 = 60 minutes ago)."""

    server: str
    calls: list[int]
    errors: list[int]
    latency_ms: list[float | None]
    """Mean latency of the minute's calls."""


def _series(data_dir: Path, now: float) -> list[Series]:
    conn = _connect(data_dir)
    if conn is None:
        return []
    start = (int(now) // 60 - 59) * 60
    with closing(conn):
        rows = conn.execute(
            "SELECT server, CAST((ts - ?) / 60 AS INTEGER) AS minute, COUNT(*), "
            "SUM(outcome != 'ok'), AVG(latency_ms) FROM audit "
            "WHERE ts >= ? AND server IS NOT NULL AND tool NOT LIKE 'admin:%' GROUP BY server, minute",
            (start, start),
        ).fetchall()
    out: dict[str, Series] = {}
    for server, minute, calls, errors, latency in rows:
        if not 0 <= minute < 60:
            continue
        series = out.setdefault(server, Series(server, [0] * 60, [0] * 60, [None] * 60))
        series.calls[minute], series.errors[minute] = calls, errors or 0
        series.latency_ms[minute] = round(latency, 2) if latency is not None else None
    return [out[name] for name in sorted(out)]


async def last_hour(data_dir: Path) -> list[Series]:
    """Calls, errors and mean latency per server and minute over the last hour, from audit rows."""
    return await anyio.to_thread.run_sync(_series, data_dir, time.time())
