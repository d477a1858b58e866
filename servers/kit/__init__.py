"""What every domain server shares: errors, tool registration, cursors, SQLite store, idempotency,
the provider HTTP client and the runner."""
