"""A PostgreSQL server of a test module's own, for the event-log tests that stop, fill or inspect it
(imported as the module's `pg` fixture; the session-wide one in `tests/conftest.py` is shared)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servers.kit.webhooks.log_pg import close_pools
from tests.cluster_support import PgServer


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    """One server for the module; the event log's pools to it are closed before it stops."""
    server = PgServer()
    yield server
    close_pools()
    server.close()
