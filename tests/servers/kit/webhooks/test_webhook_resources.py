"""Issue #24, subscribable change resources: `<domain>://changes` and per-record URIs, with
`notifications/resources/updated` reaching an SDK client subscribed through the hub after an embedded
write (in-process hub) or a provider webhook (HTTP hub process, real socket)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.resource_updates import Updates
from hub.config import parse_config
from hub.hub import Hub
from hub.frontends.server import build_server
from tests.webhook_support import SECRETS, http_hub, payload, signed

pytestmark = pytest.mark.anyio
LEGACY_TICKETING = {"ticketing": {"builtin": "ticketing", "protocol": "legacy"}}
FEED = "mcphub://ticketing/ticketing://changes"


@asynccontextmanager
async def ticketing_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Hub]:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    from servers.ticketing.store import EmbeddedTicketing

    await EmbeddedTicketing(tmp_path).create_project("OPS")
    async with Hub(parse_config({"mcpServers": LEGACY_TICKETING})) as hub:
        with anyio.fail_after(30):
            while hub.downstreams["ticketing"].state != "ready":
                await anyio.sleep(0.02)  # waiting for the state "ready"
        yield hub


async def test_embedded_write_updates_feed_and_record_subscribers_through_the_hub(tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    async with ticketing_hub(tmp_path, monkeypatch) as hub:
        updates = Updates()
        async with Client(build_server(hub), mode="legacy", message_handler=updates.handler) as client:
            listed = {str(r.uri) for r in (await client.list_resources()).resources}
            assert FEED in listed
            await client.subscribe_resource(FEED)
            created = await client.call_tool("ticketing__create_ticket", {"project": "OPS", "title": "Printer on fire"})
            key = created.structured_content["key"]  # type: ignore[index]
            await updates.wait_for(FEED, 30)
            record = f"mcphub://ticketing/ticketing://tickets/{key}"
            await client.subscribe_resource(record)
            count = len(updates.uris)
            await client.call_tool("ticketing__transition_ticket", {"id": key, "to": "in_progress"})
            await updates.wait_for(record, 30)
            assert sorted(updates.uris[count:]) == sorted([FEED, record]), "one update per subscribed URI per batch"

            read = await client.read_resource(record)
            body = json.loads(read.contents[0].text)  # type: ignore[union-attr]
            assert [(c["record_id"], c["action"]) for c in body["changes"]] == [(key, "created"), (key, "updated")]

            await client.unsubscribe_resource(FEED)
            await client.unsubscribe_resource(record)
            count = len(updates.uris)
            await client.call_tool("ticketing__create_ticket", {"project": "OPS", "title": "Another"})
            await client.subscribe_resource(record)  # a request after the call: any update would be in by now
            assert updates.uris[count:] == []


async def test_only_feed_and_record_uris_may_be_subscribed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with ticketing_hub(tmp_path, monkeypatch) as hub:
        async with Client(build_server(hub), mode="legacy") as client:
            with pytest.raises(MCPError) as refused:
                await client.subscribe_resource("mcphub://ticketing/ticketing://invoices/1")
            assert refused.value.error.code == types.INVALID_PARAMS
            assert "ticketing://changes" in refused.value.error.message


async def test_webhook_posted_to_the_http_hub_reaches_a_subscribed_sdk_client(tmp_path: Path) -> None:
    async with http_hub(tmp_path, LEGACY_TICKETING, {"GITHUB_WEBHOOK_SECRET": SECRETS["github"]}) as (url, http):
        updates = Updates()
        async with Client(url, mode="legacy", message_handler=updates.handler) as client:
            with anyio.fail_after(30):
                while True:
                    try:
                        await client.subscribe_resource(FEED)
                        break
                    except MCPError:
                        await anyio.sleep(0.05)  # waiting for the in-process domain to connect
            record = "mcphub://ticketing/ticketing://tickets/acme%2Fapp%2342"
            await client.subscribe_resource(record)
            body = payload("github", "42")
            answer = await http.post("/webhooks/ticketing/github", content=body, headers=signed("github", body))
            assert answer.status_code == 200, answer.text
            await updates.wait_for(FEED, 30)
            await updates.wait_for(record, 30)
            read = await client.read_resource(FEED)
            changes = json.loads(read.contents[0].text)["changes"]  # type: ignore[union-attr]
            assert [(c["record_id"], c["source"]) for c in changes] == [("acme/app#42", "github")]


async def test_clients_of_both_eras_get_webhook_updates_through_a_default_builtin(tmp_path: Path) -> None:
    """No `"protocol": "legacy"`: the builtin speaks 2026-07-28 to the hub, which holds a
    `subscriptions/listen` stream on it; a 2025-11-25 client `resources/subscribe`s, a 2026-07-28
    client lists the URI in its own `subscriptions/listen`."""
    secret = {"GITHUB_WEBHOOK_SECRET": SECRETS["github"]}
    async with http_hub(tmp_path, {"ticketing": {"builtin": "ticketing"}}, secret) as (url, http):
        record = "mcphub://ticketing/ticketing://tickets/acme%2Fapp%237"
        legacy_updates = Updates()
        async with Client(url, mode="legacy", message_handler=legacy_updates.handler) as legacy, Client(url) as modern:
            assert modern.protocol_version == "2026-07-28" and legacy.protocol_version != "2026-07-28"
            with anyio.fail_after(30):
                while True:
                    try:
                        await legacy.subscribe_resource(FEED)
                        break
                    except MCPError:
                        await anyio.sleep(0.05)  # waiting for the in-process domain to connect
            async with modern.listen(resource_subscriptions=[FEED, record, "mcphub://nowhere/x://y"]) as stream:
                assert stream.honored.resource_subscriptions == [FEED, record], "only what the hub can deliver"
                body = payload("github", "7")
                answer = await http.post("/webhooks/ticketing/github", content=body, headers=signed("github", body))
                assert answer.status_code == 200, answer.text
                seen: set[str] = set()
                with anyio.fail_after(30):
                    async for event in stream:
                        seen.add(event.uri)  # type: ignore[union-attr]
                        if seen >= {FEED, record}:
                            break
                await legacy_updates.wait_for(FEED, 30)
            assert record not in legacy_updates.uris, "the legacy client did not subscribe to the record"
            read = await modern.read_resource(record)
            assert json.loads(read.contents[0].text)["changes"][0]["source"] == "github"  # type: ignore[union-attr]
