"""The store protocol: the two tables every replica must share (API keys, audit rows).

Two backends implement it: SQLite files in the data dir (`hub.store.sqlite`, the default for one
machine) and PostgreSQL (`hub.store.postgres`, selected by `hub.store.url`, shared by replicas).
A backend that cannot answer raises `StoreUnavailable`; callers decide what that means (keys:
the request is answered 503; audit: `hub.audit.on_failure`).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

AUDIT_COLUMNS = ("ts", "request_id", "principal", "tool", "server", "outcome", "error_code", "latency_ms",
                 "args_digest", "args", "auth_kind", "credential")


class StoreUnavailable(Exception):
    """The shared store did not answer; the message names the store (never its password) and why."""


class KeyRow(NamedTuple):
    """One `api_keys` row; `salt` and `digest` never leave the hub."""

    key_id: str
    principal: str
    scopes: str
    salt: bytes
    digest: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None


class AuditFilter(NamedTuple):
    principal: str | None = None
    tool: str | None = None
    since: float | None = None
    outcome: str | None = None
    limit: int = 100
    until: float | None = None
    """Only rows before this time (`ts < until`)."""
    before_id: int | None = None
    """Keyset paging: only rows with a smaller id (the Activity page's "older rows")."""
    request_id: str | None = None
    """Only the row of this request id (as the client got it in `_meta`, and the log has it)."""


class KeyTable(Protocol):
    remote: bool
    """True when a lookup leaves the process (run it off the event loop, cache it briefly)."""

    def key_insert(self, row: KeyRow) -> None: ...
    def key_get(self, key_id: str) -> KeyRow | None: ...
    def key_list(self) -> list[KeyRow]: ...
    def key_revoke(self, key_id: str, at: float) -> bool: ...


class AuditTable(Protocol):
    remote: bool

    def audit_insert(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert rows (values in `AUDIT_COLUMNS` order) in one transaction."""
        ...

    def audit_query(self, flt: AuditFilter) -> list[dict[str, Any]]:
        """Newest-last rows matching the filter."""
        ...

    def digest_key(self) -> bytes:
        """The installation's key for argument digests (shared by every replica of one store)."""
        ...

    def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers now."""
        ...

    def health(self) -> dict[str, Any]:
        """`{"backend", "state": "ok" | "unreachable", ...}` for `/healthz`."""
        ...


def where_clause(flt: AuditFilter, placeholder: str) -> tuple[str, list[Any]]:
    """`WHERE …` and its parameters for an audit filter (`placeholder`: `?` or `%s`)."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("principal", flt.principal), ("tool", flt.tool), ("outcome", flt.outcome),
                          ("request_id", flt.request_id)):
        if value is not None:
            clauses.append(f"{column} = {placeholder}")
            params.append(value)
    if flt.since is not None:
        clauses.append(f"ts >= {placeholder}")
        params.append(flt.since)
    if flt.until is not None:
        clauses.append(f"ts < {placeholder}")
        params.append(flt.until)
    if flt.before_id is not None:
        clauses.append(f"id < {placeholder}")
        params.append(flt.before_id)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


ACTIVITY_COLUMNS = ("id", "ts", "request_id", "principal", "tool", "server", "outcome", "error_code", "latency_ms",
                    "args", "auth_kind", "credential")
"""What the admin console's Activity page reads (`AuditReads`)."""


class AuditReads(Protocol):
    """The admin console's reads (`hub.admin.audit_reads`), on SQLite and PostgreSQL alike."""

    def audit_after(self, flt: AuditFilter, after_id: int) -> list[dict[str, Any]]:
        """Newest-first rows matching `flt` with an id above `after_id` (at most `flt.limit`)."""
        ...

    def audit_row(self, row_id: int) -> dict[str, Any] | None: ...

    def audit_minutes(self, start: float) -> list[tuple[str, int, int, int, float | None]]:
        """(server, minute since `start`, calls, errors, mean latency) of tool calls since `start`."""
        ...


def activity_sql(flt: AuditFilter, after_id: int, placeholder: str) -> tuple[str, list[Any]]:
    """The Activity page's query: `where_clause` plus `id > after_id`, newest first."""
    where, params = where_clause(flt, placeholder)
    where = f"{where} AND id > {placeholder}" if where else f"WHERE id > {placeholder}"
    return (f"SELECT {', '.join(ACTIVITY_COLUMNS)} FROM audit {where} ORDER BY id DESC LIMIT {placeholder}",
            [*params, after_id, flt.limit])


def minutes_sql(placeholder: str, minute: str) -> str:
    """Per server and minute since a start; parameters: start, start, `NOT_ADMIN`. `minute`: the
    backend's floor expression (one placeholder). The LIKE pattern is a parameter: psycopg reads `%`."""
    return (f"SELECT server, {minute} AS minute, COUNT(*), SUM(CASE WHEN outcome <> 'ok' THEN 1 ELSE 0 END), "
            f"AVG(latency_ms) FROM audit WHERE ts >= {placeholder} AND server IS NOT NULL "
            f"AND tool NOT LIKE {placeholder} GROUP BY server, minute")


NOT_ADMIN = "admin:%"
"""Console actions are audited as `admin:<action>`; the charts count tool calls only."""
