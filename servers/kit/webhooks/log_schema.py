"""The SQLite event log's schema (`log.EventLog`): versioned migrations, run at open. Version 2 keys rows
by namespace, 3 adds a delivery's second key (its alias) and the retry keys, 4 the per-state counts kept
by triggers and the age index (outside review events round 18)."""

from __future__ import annotations

import re

COLUMNS = "seq, provider, delivery_id, received_at, state, attempts, next_attempt_at, last_error, processed_at, headers, " \
           "payload, duplicates"
"""The columns a version-1 row carries over to version 2."""


def _migrations(domain: str) -> list[str]:
    """The schema; version 2 keys rows by namespace, giving the rows from before it their domain's
    name (the namespace of a domain server on its own, and of the hub's default config)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", domain):
        raise ValueError(f"{domain!r} is not a domain name")
    return [
        """CREATE TABLE webhook_events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            provider TEXT NOT NULL, delivery_id TEXT NOT NULL,
            received_at REAL NOT NULL, state TEXT NOT NULL DEFAULT 'received',
            attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL,
            last_error TEXT, processed_at REAL, headers TEXT NOT NULL DEFAULT '{}', payload BLOB,
            duplicates INTEGER NOT NULL DEFAULT 0,
            UNIQUE (provider, delivery_id));
        CREATE INDEX webhook_events_due ON webhook_events (state, next_attempt_at)""",
        f"""CREATE TABLE webhook_events_v2 (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL,
            provider TEXT NOT NULL, delivery_id TEXT NOT NULL,
            received_at REAL NOT NULL, state TEXT NOT NULL DEFAULT 'received',
            attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL,
            last_error TEXT, processed_at REAL, headers TEXT NOT NULL DEFAULT '{{}}', payload BLOB,
            duplicates INTEGER NOT NULL DEFAULT 0,
            UNIQUE (namespace, provider, delivery_id));
        INSERT INTO webhook_events_v2 (namespace, {COLUMNS}) SELECT '{domain}', {COLUMNS} FROM webhook_events;
        DROP TABLE webhook_events;
        ALTER TABLE webhook_events_v2 RENAME TO webhook_events;
        CREATE INDEX webhook_events_due ON webhook_events (namespace, state, next_attempt_at)""",
        # version 3: a delivery's second key, for providers that re-sign their retries (normalize.delivery_alias)
        # and the signed keys of the retries it matched, so a captured retry re-sent under a new id is one too
        """ALTER TABLE webhook_events ADD COLUMN alias TEXT;
        CREATE UNIQUE INDEX webhook_events_alias ON webhook_events (namespace, provider, alias);
        CREATE TABLE webhook_retry_keys (namespace TEXT NOT NULL, provider TEXT NOT NULL, delivery_id TEXT NOT NULL,
            seq INTEGER NOT NULL, PRIMARY KEY (namespace, provider, delivery_id))""",
        # version 4: counts per (namespace, provider, state) kept by triggers, and an index by age, so a
        # metrics scrape and the trimming of old rows never scan the history (outside review events round 18)
        """CREATE TABLE webhook_counts (namespace TEXT NOT NULL, provider TEXT NOT NULL, state TEXT NOT NULL,
            n INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (namespace, provider, state));
        INSERT INTO webhook_counts SELECT namespace, provider, state, COUNT(*), SUM(duplicates) FROM webhook_events
            GROUP BY namespace, provider, state;
        CREATE TRIGGER webhook_counts_added AFTER INSERT ON webhook_events BEGIN
            INSERT INTO webhook_counts VALUES (NEW.namespace, NEW.provider, NEW.state, 1, NEW.duplicates)
            ON CONFLICT (namespace, provider, state) DO UPDATE SET n = n + 1, duplicates = duplicates + excluded.duplicates;
        END;
        CREATE TRIGGER webhook_counts_changed AFTER UPDATE OF state, duplicates ON webhook_events BEGIN
            UPDATE webhook_counts SET n = n - 1, duplicates = duplicates - OLD.duplicates
            WHERE namespace = OLD.namespace AND provider = OLD.provider AND state = OLD.state;
            INSERT INTO webhook_counts VALUES (NEW.namespace, NEW.provider, NEW.state, 1, NEW.duplicates)
            ON CONFLICT (namespace, provider, state) DO UPDATE SET n = n + 1, duplicates = duplicates + excluded.duplicates;
        END;
        CREATE TRIGGER webhook_counts_removed AFTER DELETE ON webhook_events BEGIN
            UPDATE webhook_counts SET n = n - 1, duplicates = duplicates - OLD.duplicates
            WHERE namespace = OLD.namespace AND provider = OLD.provider AND state = OLD.state;
            DELETE FROM webhook_retry_keys WHERE seq = OLD.seq;
        END;
        CREATE INDEX webhook_events_age ON webhook_events (namespace, state, received_at);
        CREATE INDEX webhook_retry_keys_seq ON webhook_retry_keys (seq)""",
    ]
