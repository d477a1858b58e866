"""Idempotency records in the hub's shared PostgreSQL store, for replicas (`hub.store.url`).

The records of a domain whose data lives at a provider (GitHub, Jira, QuickBooks, ...) kept in each
replica's data dir made a key hold on one replica only: a create retried after a lost answer, and
balanced to another replica, wrote a second issue at the provider (outside review, cluster round 12).
Here every replica sees one record per (scope, caller, tool, key), with the same rules as
`servers.kit.idempotency.IdempotencyLedger` (which this class answers for, method by method): the claim
is one `INSERT … ON CONFLICT DO NOTHING`, so two replicas claiming a key at once never both run it.
`scope` keeps two namespaces (tenants) of one domain apart (`acme__create_ticket` and
`globex__create_ticket` are one tool name to their servers). An embedded backend's records stay with
its data, in the replica's own SQLite file: a record created on another replica is not here anyway.

PostgreSQL out of reach is an outage, not a bug: each method raises `LedgerUnreachable`, a retryable
`unavailable` naming the store (`PostgreSQL host:port/db`, never the URL), and waits for a connection
`RECORD_WAIT_S`, or `DOWN_WAIT_S` while the store has just failed. Before, a claim waited the pool's
5 s and its `PoolTimeout` reached the agent as `internal … failed unexpectedly`, not retryable, with
a traceback logged as for a bug (outside review, cluster round 18). What `servers.kit.tools` does when
a release or a record cannot be written is decided there (`settle_later`).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import anyio
import psycopg

from hub.errors import HubToolError
from hub.store.postgres import describe
from servers.kit.idempotency import IDEMPOTENCY_TTL_S, Claimed, judge_claim
from servers.kit.webhooks.log_pg import _UNREACHABLE, DOWN_WAIT_S, RECORD_WAIT_S, Migrations, is_down, run_sync

logger = logging.getLogger("servers")
EXPIRED_BATCH = 100
"""Expired keys one claim deletes at most (more keyed writes than this a day are cleared over several)."""

MIGRATIONS: Migrations = ([
    """CREATE TABLE idempotency_keys (
        scope TEXT NOT NULL, principal TEXT NOT NULL, tool TEXT NOT NULL, key TEXT NOT NULL,
        fingerprint TEXT NOT NULL, result TEXT, record_id TEXT, deleted BOOLEAN NOT NULL DEFAULT FALSE,
        started_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (scope, principal, tool, key));
    CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
    CREATE INDEX idempotency_keys_record ON idempotency_keys (scope, record_id);
    CREATE TABLE idempotency_deleted (
        scope TEXT NOT NULL, record_id TEXT NOT NULL, deleted_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (scope, record_id))""",
    "CREATE INDEX IF NOT EXISTS idempotency_deleted_at ON idempotency_deleted (deleted_at)",
], "mcp_hub_idempotency_migrations", 0x6D63_7068_6964)  # "mcphid"


class LedgerUnreachable(HubToolError):
    """The idempotency records' store cannot be reached: `unavailable`, retryable (nothing was run)."""

    def __init__(self, store: str, cause: BaseException) -> None:
        super().__init__("unavailable", f"the idempotency records in {store} cannot be reached "
                         f"({type(cause).__name__}), so the call was not run and nothing was written; "
                         "send it again with the same idempotency_key in a few seconds",
                         retry_after_s=2.0, details={"store": store})


class PgIdempotencyLedger:
    """One scope's idempotency records in the shared PostgreSQL store (see the module docstring)."""

    def __init__(self, url: str, scope: str) -> None:
        self.url, self.scope = url, scope
        self.store = describe(url)
        self._failing = False
        """Whether the last query failed for want of the store (its first failure is logged, once)."""

    async def _run(self, work: Any) -> Any:
        wait = DOWN_WAIT_S if is_down(self.url) else RECORD_WAIT_S
        try:
            result = await anyio.to_thread.run_sync(run_sync, self.url, MIGRATIONS, work, wait)
        except _UNREACHABLE as exc:
            if not self._failing:
                self._failing = True
                logger.warning("idempotency records of %s: %s cannot be reached (%s); keyed writes are refused "
                               "with `unavailable` until it answers", self.scope, self.store, type(exc).__name__)
            raise LedgerUnreachable(self.store, exc) from exc
        if self._failing:
            self._failing = False
            logger.info("idempotency records of %s: %s answers again", self.scope, self.store)
        return result

    async def claim(self, principal: str, tool: str, key: str, print_: str) -> dict[str, Any] | None:
        def claim(conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
            now = time.time()
            conn.execute("DELETE FROM idempotency_keys WHERE scope = %s AND principal = %s AND tool = %s AND key = %s"
                         " AND expires_at <= %s", (self.scope, principal, tool, key, now))
            # Expired keys of every caller, scope and tool, a bounded batch per claim by the expiry index (before,
            # only the claimed key's expired row went, and the table grew for ever: events round 28); rows
            # another replica is deleting are skipped, never waited for.
            conn.execute("DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_keys"
                         " WHERE expires_at <= %s LIMIT %s FOR UPDATE SKIP LOCKED))", (now, EXPIRED_BATCH))
            inserted = conn.execute(
                "INSERT INTO idempotency_keys (scope, principal, tool, key, fingerprint, started_at, expires_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING key",
                (self.scope, principal, tool, key, print_, now, now + IDEMPOTENCY_TTL_S)).fetchone()
            if inserted is not None:
                return None
            row = conn.execute("SELECT fingerprint, result, record_id, deleted, started_at FROM idempotency_keys"
                               " WHERE scope = %s AND principal = %s AND tool = %s AND key = %s",
                               (self.scope, principal, tool, key)).fetchone()
            if row is None:  # released between the two statements: the caller may try again
                return judge_claim(None, tool, key, print_, now)
            return judge_claim(Claimed(row["fingerprint"], row["result"], row["record_id"], bool(row["deleted"]),
                                       row["started_at"]), tool, key, print_, now)

        return await self._run(claim)  # type: ignore[no-any-return]

    async def complete(self, principal: str, tool: str, key: str, result: dict[str, Any]) -> None:
        record_id = result.get("id") if isinstance(result.get("id"), str) else None
        await self._run(lambda conn: conn.execute(
            "UPDATE idempotency_keys SET result = %s, record_id = %s WHERE scope = %s AND principal = %s AND tool = %s"
            " AND key = %s", (json.dumps(result), record_id, self.scope, principal, tool, key)))

    async def release(self, principal: str, tool: str, key: str) -> None:
        await self._run(lambda conn: conn.execute(
            "DELETE FROM idempotency_keys WHERE scope = %s AND principal = %s AND tool = %s AND key = %s AND result IS NULL",
            (self.scope, principal, tool, key)))

    async def record_deleted(self, record_id: str) -> None:
        def mark(conn: psycopg.Connection[Any]) -> None:
            moment = time.time()
            conn.execute("UPDATE idempotency_keys SET deleted = TRUE WHERE scope = %s AND record_id = %s",
                         (self.scope, record_id))
            conn.execute("INSERT INTO idempotency_deleted VALUES (%s, %s, %s) ON CONFLICT (scope, record_id)"
                         " DO UPDATE SET deleted_at = EXCLUDED.deleted_at", (self.scope, record_id, moment))
            conn.execute("DELETE FROM idempotency_deleted WHERE deleted_at < %s", (moment - IDEMPOTENCY_TTL_S,))

        await self._run(mark)

    async def was_deleted(self, record_id: str) -> bool:
        def look(conn: psycopg.Connection[Any]) -> bool:
            row = conn.execute("SELECT deleted_at FROM idempotency_deleted WHERE scope = %s AND record_id = %s",
                               (self.scope, record_id)).fetchone()
            return row is not None and row["deleted_at"] >= time.time() - IDEMPOTENCY_TTL_S

        return await self._run(look)  # type: ignore[no-any-return]
