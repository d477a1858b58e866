"""The PostgreSQL event log's schema (`log_pg`): one `webhook_events` table for every domain and namespace,
versioned migrations applied under an advisory lock before the first query of each process. Version 2
keys rows by namespace, 3 adds a delivery's alias and the retry keys, 4 the age index."""

MIGRATIONS = [
    """CREATE TABLE webhook_events (
        seq BIGSERIAL PRIMARY KEY, domain TEXT NOT NULL,
        provider TEXT NOT NULL, delivery_id TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL, state TEXT NOT NULL DEFAULT 'received',
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at DOUBLE PRECISION NOT NULL,
        last_error TEXT, processed_at DOUBLE PRECISION, headers TEXT NOT NULL DEFAULT '{}', payload BYTEA,
        duplicates INTEGER NOT NULL DEFAULT 0,
        UNIQUE (domain, provider, delivery_id));
    CREATE INDEX webhook_events_due ON webhook_events (domain, state, next_attempt_at)""",
    """ALTER TABLE webhook_events ADD COLUMN namespace TEXT;
    UPDATE webhook_events SET namespace = domain;
    ALTER TABLE webhook_events ALTER COLUMN namespace SET NOT NULL;
    ALTER TABLE webhook_events DROP CONSTRAINT IF EXISTS webhook_events_domain_provider_delivery_id_key;
    ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_delivery UNIQUE (domain, namespace, provider, delivery_id);
    DROP INDEX IF EXISTS webhook_events_due;
    CREATE INDEX webhook_events_due ON webhook_events (domain, namespace, state, next_attempt_at)""",
    # a delivery's second key, for providers that re-sign their retries (normalize.delivery_alias)
    # and the signed keys of the retries it matched, so a captured retry re-sent under a new id is one too
    """ALTER TABLE webhook_events ADD COLUMN alias TEXT;
    CREATE UNIQUE INDEX webhook_events_alias ON webhook_events (domain, namespace, provider, alias);
    CREATE TABLE webhook_retry_keys (domain TEXT NOT NULL, namespace TEXT NOT NULL, provider TEXT NOT NULL,
        delivery_id TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (domain, namespace, provider, delivery_id))""",
    # rows by age within their state: the stats and the trimming of processed rows read only the rows they
    # count or delete, never the history (outside review events round 18)
    """CREATE INDEX webhook_events_age ON webhook_events (domain, namespace, state, received_at);
    CREATE INDEX webhook_retry_keys_seq ON webhook_retry_keys (seq)""",
]
