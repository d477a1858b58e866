"""What the event log's two stores (SQLite `log`, PostgreSQL `log_pg`) share: the delivery states, the
claim lease, the namespace meaning "all of them", the retention defaults and limits, and the row the CLI
shows. Its own module so neither store imports the other."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel

from servers.kit.webhooks.retention import retention_limits

State = Literal["received", "processed", "failed", "dead"]
LEASE_S = 120.0
ALL = "*"
"""`namespace` for a log that reads every namespace of its file (`mcp-hub events`); it takes no deliveries."""
KEEP_DAYS = 90.0
KEEP_ROWS = 1_000_000
TRIM_BATCH = 5000
"""Rows deleted per transaction when trimming, so a first trim of a long history never holds the writer long."""


def keep_limits(domain: str, environ: Mapping[str, str] | None = None) -> tuple[float, int]:
    """How long and how many processed rows a namespace of `domain` keeps: (seconds, rows), from
    `<DOMAIN>_EVENTS_KEEP_DAYS` (default 90) and `<DOMAIN>_EVENTS_KEEP_ROWS` (default 1,000,000)."""
    return retention_limits(domain, "EVENTS", KEEP_DAYS, KEEP_ROWS, "rows", environ)


class EventRow(BaseModel):
    """One logged delivery as the CLI shows it (no payload)."""

    seq: int
    namespace: str = ""
    provider: str
    delivery_id: str
    state: State
    attempts: int
    received_at: float
    next_attempt_at: float
    processed_at: float | None = None
    last_error: str | None = None
    duplicates: int = 0
    purged: bool = False
