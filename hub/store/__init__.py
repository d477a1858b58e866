"""Where API keys and the audit log live: SQLite files in the data dir (one machine, the default)
or one PostgreSQL database shared by every replica (`hub.store.url = "postgresql://…"`)."""

from __future__ import annotations

import os

from hub.settings import StoreSettings
from hub.store.base import AuditFilter, AuditTable, KeyRow, KeyTable, StoreUnavailable

__all__ = ["AuditFilter", "AuditTable", "KeyRow", "KeyTable", "StoreUnavailable", "open_shared_store", "store_url"]

STORE_URL_ENV = "MCP_HUB_STORE_URL"


def store_url(settings: StoreSettings) -> str | None:
    """The configured PostgreSQL URL (`hub.store.url`, else `$MCP_HUB_STORE_URL`), or None for SQLite."""
    url = settings.url.get_secret_value() if settings.url is not None else os.environ.get(STORE_URL_ENV) or None
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"{STORE_URL_ENV} must be a postgresql:// URL (or unset for SQLite in the data dir)")
    return url


def open_shared_store(settings: StoreSettings):  # -> PostgresStore | None
    """A PostgreSQL store when one is configured (psycopg is imported only then), else None."""
    url = store_url(settings)
    if url is None:
        return None
    from hub.store.postgres import PostgresStore

    return PostgresStore(url, settings.pool_size, settings.timeout_s)
