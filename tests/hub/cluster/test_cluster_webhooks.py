"""A provider webhook processed on one replica reaches resource subscribers on another, once (outside
review cluster round 7: the processing replica had no subscriber of its own, so it announced
nothing and nothing went through Redis). Two `mcp-hub serve` processes share one config with
`hub.cluster.redis_url` and a built-in ticketing domain; each has its own data dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.haproxy_cluster import redis_replicas
from tests.resource_updates import Updates
from tests.webhook_support import SECRETS, deliver, payload, signed

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
FEED = "mcphub://ticketing/ticketing://changes"


def record(number: int) -> str:
    return f"mcphub://ticketing/ticketing://tickets/acme%2Fapp%23{number}"


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[str]]:
    with redis_replicas(tmp_path, {"ticketing": {"builtin": "ticketing"}}, {"GITHUB_WEBHOOK_SECRET": SECRETS["github"]}) as urls:
        yield urls


async def subscribe(client: Client, *uris: str) -> None:
    with anyio.fail_after(30):
        while True:
            try:
                for uri in uris:
                    await client.subscribe_resource(uri)
                return
            except MCPError:
                await anyio.sleep(0.05)  # waiting for the in-process domain to connect


async def post(base: str, number: int) -> None:
    body = payload("github", str(number))
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        answer = await deliver(http, "/webhooks/ticketing/github", body, signed("github", body))
    assert answer.status_code == 200, answer.text


async def published(base: str) -> int:
    """What the replica at `base` has published to the others so far (`/healthz`)."""
    async with httpx.AsyncClient(timeout=10) as http:
        return int((await http.get(f"{base}/healthz")).json()["notifications"]["published"])


async def test_a_webhook_processed_on_another_replica_reaches_a_subscriber_once(replicas: list[str]) -> None:
    url_a, url_b = replicas
    base_b = url_b.rsplit("/mcp", 1)[0]
    on_a, on_b = Updates(), Updates()
    async with Client(url_a, mode="legacy", message_handler=on_a.handler) as client_a:
        await subscribe(client_a, FEED, record(1), record(2), record(3))
        before = await published(base_b)

        await post(base_b, 1)  # replica B has no subscriber: it processes the delivery all the same
        await on_a.wait_for(record(1), 30)
        await on_a.wait_for(FEED, 30)

        async with Client(url_b, mode="legacy", message_handler=on_b.handler) as client_b:
            await subscribe(client_b, FEED)  # now B's own clients hear of its changes too
            await post(base_b, 2)
            await on_b.wait_for(FEED, 30)
            await post(base_b, 3)  # a marker: anything published twice for 1 or 2 went out before it
            await on_a.wait_for(record(3), 30)

    assert on_a.uris.count(FEED) == 3, on_a.uris
    assert [on_a.uris.count(record(n)) for n in (1, 2, 3)] == [1, 1, 1], on_a.uris
    with anyio.fail_after(30):
        while (sent := await published(base_b) - before) < 6:
            await anyio.sleep(0.05)  # waiting for the state "B counted what it published"
    assert sent == 6, "each delivery: its feed and its ticket, published once"
