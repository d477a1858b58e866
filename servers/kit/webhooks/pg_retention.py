"""The PostgreSQL event log's retention (`log_pg.PgEventLog.purge` / `trim`), as plain functions on a
connection: the same rules as the SQLite log (`log.EventLog.purge`). The age limits apply to every
namespace of the domain (one removed from the config too, whose rows nobody else would purge), the row
limit to the log's own namespace (every one for `log.ALL`); pending, failed and dead rows are never
deleted. Each delete is one transaction of at most `TRIM_BATCH` rows. The namespaces are found by index seeks
(`NAMESPACES`), as the SQLite log reads its small counts table: retention never reads the history."""

from __future__ import annotations

from typing import Any

import psycopg

from servers.kit.webhooks.log_rules import ALL, TRIM_BATCH


NAMESPACES = """WITH RECURSIVE found AS (
    (SELECT namespace FROM webhook_events WHERE domain = %(domain)s ORDER BY namespace LIMIT 1)
    UNION ALL
    SELECT (SELECT e.namespace FROM webhook_events e WHERE e.domain = %(domain)s AND e.namespace > found.namespace
            ORDER BY e.namespace LIMIT 1) FROM found WHERE found.namespace IS NOT NULL)
SELECT namespace FROM found WHERE namespace IS NOT NULL AND EXISTS (SELECT 1 FROM webhook_events e
    WHERE e.domain = %(domain)s AND e.namespace = found.namespace AND e.state = ANY(%(states)s))"""
"""A loose index scan of `webhook_events_age` (domain, namespace, state, received_at): one index seek per
namespace and one per (namespace, state) probe, never the history (outside review s28 #4: a `SELECT DISTINCT`
read every processed row, twice per purge)."""


def namespaces(conn: psycopg.Connection[Any], domain: str, states: tuple[str, ...]) -> list[str]:
    """The namespaces of `domain` with rows in `states` (`NAMESPACES`: index seeks, not a scan)."""
    return [r["namespace"] for r in conn.execute(  # type: ignore[call-overload]
        NAMESPACES, {"domain": domain, "states": list(states)}).fetchall()]


def purge_payloads(conn: psycopg.Connection[Any], *, domain: str, older_than: float) -> int:
    """Drop the payload and headers of settled rows of `domain` received before `older_than`; how many."""
    purged = 0
    for namespace in namespaces(conn, domain, ("processed", "dead")):
        purged += conn.execute("UPDATE webhook_events SET payload = NULL, headers = '{}' WHERE domain = %s"
                               " AND namespace = %s AND received_at < %s AND state IN ('processed', 'dead')"
                               " AND payload IS NOT NULL", (domain, namespace, older_than)).rowcount
    return purged


def trim_processed(conn: psycopg.Connection[Any], *, domain: str, namespace: str, keep_rows: int, older_than: float) -> int:
    """Delete processed rows of `domain` received before `older_than`, and those of `namespace` (each, for
    `ALL`) beyond its newest `keep_rows`, with their retry keys; how many."""
    deleted = 0
    for each in namespaces(conn, domain, ("processed",)):
        key = (domain, each)
        newest_gone = conn.execute(  # the newest row beyond the newest keep_rows (one index walk)
            "SELECT received_at FROM webhook_events WHERE domain = %s AND namespace = %s AND state = 'processed'"
            " ORDER BY received_at DESC OFFSET %s LIMIT 1", (*key, keep_rows)).fetchone() \
            if namespace in (ALL, each) else None  # another namespace's row limit: its own log's
        cut, upto = (older_than, "<") if newest_gone is None or newest_gone["received_at"] < older_than \
            else (newest_gone["received_at"], "<=")
        while True:
            doomed = [r["seq"] for r in conn.execute(  # type: ignore[call-overload]
                "SELECT seq FROM webhook_events WHERE domain = %s AND namespace = %s AND state = 'processed'"
                f" AND received_at {upto} %s ORDER BY received_at LIMIT %s", (*key, cut, TRIM_BATCH)).fetchall()]
            if not doomed:
                break
            with conn.transaction():
                conn.execute("DELETE FROM webhook_retry_keys WHERE seq = ANY(%s)", (doomed,))
                deleted += conn.execute("DELETE FROM webhook_events WHERE seq = ANY(%s) AND state = 'processed'",
                                        (doomed,)).rowcount
    return deleted
