"""Issue #24 for HRIS: `list_changes` reads the domain's feed like every other domain — a verified
BambooHR webhook posted to the HTTP hub shows in `hris__list_changes` and in the `hris://changes`
resource; the embedded backend's own writes (employees, time-off requests) emit the same changes;
employees of a database made before the feed enter it once at upgrade."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from mcp import Client

from hub.config import parse_config
from hub.hub import Hub
from tests.webhook_support import SECRETS, deliver, http_hub, payload, signed

pytestmark = pytest.mark.anyio


async def test_bamboohr_webhook_reaches_hris_list_changes_and_its_feed_resource(tmp_path: Path) -> None:
    async with http_hub(tmp_path, {"hris": {"builtin": "hris"}}, {"BAMBOOHR_WEBHOOK_SECRET": SECRETS["bamboohr"]}) as (url, http):
        body = payload("bamboohr", "77")
        answer = await deliver(http, "/webhooks/hris/bamboohr", body, signed("bamboohr", body))
        assert answer.status_code == 200, answer.text
        forged = await http.post("/webhooks/hris/bamboohr", content=body, headers=signed("bamboohr", body, "wrong"))
        assert forged.status_code == 401
        async with Client(url) as client:
            with anyio.fail_after(30):
                while True:
                    result = await client.call_tool("hris__list_changes", {"kinds": ["employee"]})
                    changes = [c for c in result.structured_content["changes"] if c["source"] == "bamboohr"]
                    if changes:
                        break
                    await anyio.sleep(0.05)  # waiting for the state "processed"
            assert [(c["kind"], c["record_id"], c["action"]) for c in changes] == [("employee", "77", "updated")]
            read = await client.read_resource("mcphub://hris/hris://changes")
            feed = json.loads(read.contents[0].text)["changes"]  # type: ignore[union-attr]
            assert ("77", "bamboohr") in [(c["record_id"], c["source"]) for c in feed]
            record = await client.read_resource("mcphub://hris/hris://employees/77")
            assert json.loads(record.contents[0].text)["changes"][0]["source"] == "bamboohr"  # type: ignore[union-attr]


async def test_embedded_hris_writes_emit_feed_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    from servers.hris.store import EmbeddedHris

    await EmbeddedHris(tmp_path).seed_demo()
    async with Hub(parse_config({"mcpServers": {"hris": {"builtin": "hris"}}})) as hub:
        made = (await hub.route_call("hris__request_time_off", {"employee_id": "e3", "type": "vacation",
                                                                "start": "2026-06-01", "end": "2026-06-01"})).structured_content
        request_id = made["request"]["id"]
        await hub.route_call("hris__decide_time_off", {"request_id": request_id, "decision": "approve", "confirm": True})
        page = (await hub.route_call("hris__list_changes", {})).structured_content
        requests = (await hub.route_call("hris__list_changes", {"kinds": ["time_off_request"]})).structured_content
    assert [(c["kind"], c["record_id"], c["action"]) for c in page["changes"]] == [
        ("employee", "e1", "created"), ("employee", "e2", "created"), ("employee", "e3", "created"),
        ("employee", "e4", "created"), ("time_off_request", request_id, "created"), ("time_off_request", request_id, "updated")]
    assert {c["source"] for c in page["changes"]} == {"embedded"}
    assert [c["action"] for c in requests["changes"]] == ["created", "updated"], "kinds filters"


async def test_employees_from_before_the_feed_enter_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HRIS_CHANGES_KEEP_DAYS", "36500")  # the backfill's 2025 stamps, kept (every process trims: events 28)
    from servers.hris import store as hris_store
    from servers.kit.store import Store

    old = Store(tmp_path / "hris.sqlite", hris_store._MIGRATIONS[:1])  # the schema before the feed
    await old.run(lambda db: db.executemany(
        "INSERT INTO employees (id, first_name, last_name, employment_status, updated_at) VALUES (?, ?, ?, 'active', ?)",
        [("b", "Bo", "B", "2025-03-01T10:00:00+00:00"), ("a", "Al", "A", "2025-01-01T10:00:00+00:00")]))
    old._db.close()  # noqa: SLF001 — the old process ended
    for _ in range(2):  # upgrading, then opening again: each employee once
        async with Hub(parse_config({"mcpServers": {"hris": {"builtin": "hris"}}})) as hub:
            page = (await hub.route_call("hris__list_changes", {"since": "2025-02-01T00:00:00Z"})).structured_content
            every = (await hub.route_call("hris__list_changes", {})).structured_content
        assert [c["record_id"] for c in page["changes"]] == ["b"]
        assert [(c["record_id"], c["changed_at"]) for c in every["changes"]] == [
            ("a", "2025-01-01T10:00:00Z"), ("b", "2025-03-01T10:00:00Z")]
