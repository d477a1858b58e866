"""Idempotency keys across hub replicas (`servers.kit.idempotency_pg`; outside review, cluster round
12): a domain whose data lives at a provider keeps its idempotency records in the hub's shared
PostgreSQL store, so a create retried on another replica answers the first result instead of writing
a second issue at GitHub. Two replicas here are two ticketing servers on the GitHub backend (a local
fake of its REST API), each with its own data dir, built as the hub builds an in-process server
(`hub.datadir.server_shared_store`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from pydantic import BaseModel

from hub.datadir import server_data_dir, server_shared_store
from servers.kit.idempotency import IdempotencyLedger
from servers.kit.idempotency_pg import PgIdempotencyLedger
from servers.ticketing.store import EmbeddedTicketing
from servers.ticketing.providers.github import GitHubTicketing
from servers.ticketing.server import create_server
from tests.cluster_support import PgServer
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.anyio


def replica(fake: FakeGitHub, data_dir: Path, url: str, scope: str = "ticketing") -> Any:
    with server_data_dir(data_dir), server_shared_store(url, scope):
        return create_server(GitHubTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))


async def create(server: Any, key: str, title: str = "Printer on fire") -> dict[str, Any]:
    async with Client(server) as client:
        result = await client.call_tool("create_ticket", {"project": fake_repo, "title": title, "idempotency_key": key})
    assert result.structured_content is not None, result.content
    return {"error": result.is_error, **result.structured_content}


fake_repo = FakeGitHub().repo


class Record(BaseModel):
    id: str
    title: str


async def test_a_keyed_create_retried_on_another_replica_writes_once(pg: PgServer, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeGitHub()
    monkeypatch.setenv("GITHUB_REPO", fake.repo)
    monkeypatch.setenv("GITHUB_TOKEN", fake.token)
    monkeypatch.setenv("GITHUB_API_URL", "http://github.test")
    url = pg.new_database()
    a, b = replica(fake, tmp_path / "a", url), replica(fake, tmp_path / "b", url)
    first = await create(a, "retry-me-0001")
    assert not first["error"]
    again = await create(b, "retry-me-0001")  # the retry the balancer sent to the other replica
    assert again == first and len(fake.issues) == 1
    refused = await create(b, "retry-me-0001", title="Scanner on fire")  # other arguments: a conflict there too
    assert refused["error"] and refused["code"] == "conflict" and len(fake.issues) == 1

    # One key claimed on both replicas at once: one write.
    both = await asyncio.gather(create(a, "at-once-0002"), create(b, "at-once-0002"))
    assert len(fake.issues) == 2
    assert sum(1 for answer in both if not answer["error"]) >= 1
    assert all(answer.get("code") == "conflict" for answer in both if answer["error"])  # "still running": retry

    # Another namespace (tenant) of the domain: its own keys.
    globex = replica(fake, tmp_path / "g", url, scope="globex")
    assert (await create(globex, "retry-me-0001"))["id"] != first["id"] and len(fake.issues) == 3


def test_the_shared_store_serves_providers_only(pg: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An embedded backend's records stay beside its data (a record another replica made is not here)."""
    fake = FakeGitHub()
    monkeypatch.setenv("GITHUB_REPO", fake.repo)
    monkeypatch.setenv("GITHUB_TOKEN", fake.token)
    monkeypatch.setenv("GITHUB_API_URL", "http://github.test")
    url = pg.new_database()
    assert isinstance(replica(fake, tmp_path / "a", url)._mcp_hub_idempotency, PgIdempotencyLedger)  # noqa: SLF001
    with server_data_dir(tmp_path / "e"), server_shared_store(url, "ticketing"):
        embedded = create_server(EmbeddedTicketing(tmp_path / "e"))
    assert isinstance(embedded._mcp_hub_idempotency, IdempotencyLedger)  # noqa: SLF001


async def test_a_write_whose_result_cannot_be_recorded_still_answers_and_never_writes_twice(tmp_path: Path) -> None:
    """Re-check of round 14: PostgreSQL went down while a keyed create was at the provider; the issue was
    created, but the caller was told `internal … failed` (so it would write again with a new key)."""
    from mcp.server import MCPServer

    from servers.kit.store import Store
    from servers.kit.tools import configure_domain, domain_tool

    class RecordingFails(IdempotencyLedger):
        async def complete(self, principal: str, tool: str, key: str, result: dict[str, Any]) -> None:
            raise OSError("the store went away")

    server = MCPServer("kit")
    configure_domain(server, open_world=True, idempotency=Store(tmp_path / "keys.sqlite", []))
    server._mcp_hub_idempotency = RecordingFails(Store(tmp_path / "keys.sqlite", []))  # noqa: SLF001
    writes: list[str] = []

    @domain_tool(server)
    async def make(title: str, idempotency_key: str | None = None) -> Record:
        """Make a record."""
        writes.append(title)
        return Record(id="r1", title=title)

    async with Client(server) as client:
        made = await client.call_tool("make", {"title": "Printer", "idempotency_key": "k-1"})
        assert not made.is_error and made.structured_content == {"id": "r1", "title": "Printer"}, made.content
        again = await client.call_tool("make", {"title": "Printer", "idempotency_key": "k-1"})
    assert again.is_error and again.structured_content["code"] == "conflict"  # type: ignore[index]
    assert writes == ["Printer"]
