"""The idempotency records' store out of reach (outside review, cluster round 18 #4).

With PostgreSQL down a keyed write on a provider-backed domain answered `internal … failed
unexpectedly`, not retryable, with a traceback logged as for a bug: its claim's `PoolTimeout` was
taken for one. It is an outage: a retryable `unavailable` naming the store, nothing written. Its
siblings: a release or a record the store refuses when a call ends keeps the call's own answer and
is retried in the background (`servers.kit.tools.settle_later`), and a pool retired by another
thread just as a call took it is not an outage (`servers.kit.webhooks.log_pg.run_sync`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.server import MCPServer
from pydantic import BaseModel

from hub.datadir import server_data_dir, server_shared_store
from servers.kit import tools
from servers.kit.errors import DomainError
from servers.kit.idempotency import IdempotencyLedger
from servers.kit.store import Store
from servers.kit.tools import configure_domain, domain_tool
from servers.ticketing.providers.github import GitHubTicketing
from servers.ticketing.server import create_server
from tests.cluster_support import PgServer
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.anyio


class Record(BaseModel):
    id: str
    title: str


async def wait_for(check: Any, what: str, within: float = 20.0) -> None:
    with anyio.fail_after(within):
        while not await check():
            await anyio.sleep(0.05)


async def test_a_keyed_write_with_the_store_down_is_a_retryable_unavailable_naming_it(
        pg: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeGitHub()
    monkeypatch.setenv("GITHUB_REPO", fake.repo)
    monkeypatch.setenv("GITHUB_TOKEN", fake.token)
    monkeypatch.setenv("GITHUB_API_URL", "http://github.test")
    url = pg.new_database()
    with server_data_dir(tmp_path / "a"), server_shared_store(url, "ticketing"):
        server = create_server(GitHubTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))
    args = {"project": fake.repo, "title": "Printer on fire"}
    async with Client(server) as client:
        warm = await client.call_tool("create_ticket", {**args, "idempotency_key": "warm-0001"})
        assert not warm.is_error, warm.content
        pg.stop()
        try:
            caplog.clear()
            with caplog.at_level(logging.WARNING):
                down = await client.call_tool("create_ticket", {**args, "idempotency_key": "down-0002"})
        finally:
            pg.start()
        assert down.is_error and down.structured_content is not None
        body = down.structured_content
        assert body["code"] == "unavailable" and body["retryable"] is True, body
        assert f"PostgreSQL 127.0.0.1:{pg.port}/" in body["message"] and "not run" in body["message"], body
        assert "hub@" not in body["message"]  # the URL's user (and any password) is never shown
        assert len(fake.issues) == 1  # nothing written
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
        # Once it answers again (a call looks about once a second), the same key runs the write, once.
        async def written() -> bool:
            again = await client.call_tool("create_ticket", {**args, "idempotency_key": "down-0002"})
            assert not again.is_error or (again.structured_content or {}).get("code") == "unavailable", again.content
            return not again.is_error

        await wait_for(written, "the write once the store answers")
        assert len(fake.issues) == 2


def flaky_server(tmp_path: Path, ledger: IdempotencyLedger) -> tuple[MCPServer, list[str]]:
    server = MCPServer("kit")
    configure_domain(server, open_world=True, idempotency=Store(tmp_path / "keys.sqlite", []))
    server._mcp_hub_idempotency = ledger  # noqa: SLF001
    writes: list[str] = []

    @domain_tool(server)
    async def make(title: str, idempotency_key: str | None = None) -> Record:
        """Make a record; a title of "fail" is refused by the provider."""
        writes.append(title)
        if title == "fail":
            raise DomainError("upstream_error", "the provider refused the record (HTTP 502); try again later")
        return Record(id=f"r{len(writes)}", title=title)

    return server, writes


class Outage(IdempotencyLedger):
    """The SQLite ledger whose releases and records fail while `down`."""

    down = True

    async def release(self, principal: str, tool: str, key: str) -> None:
        if self.down:
            raise OSError("the store went away")
        await super().release(principal, tool, key)

    async def complete(self, principal: str, tool: str, key: str, result: dict[str, Any]) -> None:
        if self.down:
            raise OSError("the store went away")
        await super().complete(principal, tool, key, result)


async def test_a_failed_write_whose_key_cannot_be_freed_keeps_its_own_error_and_frees_it_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "SETTLE_EVERY_S", 0.05, raising=False)
    ledger = Outage(Store(tmp_path / "keys.sqlite", []))
    server, writes = flaky_server(tmp_path, ledger)
    async with Client(server) as client:
        failed = await client.call_tool("make", {"title": "fail", "idempotency_key": "k-1"})
        body = failed.structured_content or {}
        assert failed.is_error and body["code"] == "upstream_error", body  # the provider's own error, not `internal`
        assert "HTTP 502" in body["message"] and "still running" in body["message"], body
        assert body["details"]["idempotency_key_held"] is True
        held = await client.call_tool("make", {"title": "fail", "idempotency_key": "k-1"})
        assert (held.structured_content or {}).get("code") == "conflict" and writes == ["fail"]
        ledger.down = False

        async def freed() -> bool:
            answer = await client.call_tool("make", {"title": "fail", "idempotency_key": "k-1"})
            return "still running" not in str((answer.structured_content or {}).get("message"))

        await wait_for(freed, "the key freed once the store answers")
        assert writes[-1] == "fail" and len(writes) >= 2  # the key ran again: the first call wrote nothing


async def test_a_write_whose_record_failed_answers_its_retry_once_the_store_is_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "SETTLE_EVERY_S", 0.05, raising=False)
    ledger = Outage(Store(tmp_path / "keys.sqlite", []))
    server, writes = flaky_server(tmp_path, ledger)
    async with Client(server) as client:
        made = await client.call_tool("make", {"title": "Printer", "idempotency_key": "k-2"})
        assert not made.is_error and made.structured_content == {"id": "r1", "title": "Printer"}
        ledger.down = False

        async def replayed() -> bool:
            again = await client.call_tool("make", {"title": "Printer", "idempotency_key": "k-2"})
            return again.structured_content == {"id": "r1", "title": "Printer"}

        await wait_for(replayed, "the first result recorded once the store answers")
    assert writes == ["Printer"]


def test_a_pool_retired_by_another_thread_as_a_call_took_it_serves_the_call(pg: PgServer) -> None:
    """After a recovery, one thread swaps a fresh pool in and retires the old one another thread had
    just taken: that call used to fail with `PoolClosed` (a webhook processor logged it as an outage)."""
    from servers.kit.webhooks import log_pg

    url = pg.new_database()
    real = log_pg._pool  # noqa: SLF001
    taken = real(url)
    real(url, fresh=True)  # the swap (the old pool is closed aside)
    taken.close()
    handed = [taken]

    def pool(url: str, fresh: bool = False) -> Any:
        return handed.pop() if handed else real(url, fresh)

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(log_pg, "_pool", pool)
            answer = log_pg.run_sync(url, log_pg.EVENT_MIGRATIONS, lambda conn: conn.execute("SELECT 7 AS n").fetchone())
        assert answer == {"n": 7}
        assert not log_pg.is_down(url)
    finally:
        log_pg.close_pools()
