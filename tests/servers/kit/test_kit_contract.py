"""The domain kit's contract for every tool: idempotency keys bound to their arguments, unknown
arguments refused, argument errors that list what is accepted without echoing huge values, and
`openWorldHint` false on embedded backends — checked through the hub and on the server alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from hub.config import parse_config
from hub.hub import Hub
from servers.kit import idempotency
from servers.kit.caller import Caller, bind_caller
from tests.fixtures.kit_server import make_server

pytestmark = pytest.mark.anyio


@pytest.fixture
async def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    config = parse_config({"mcpServers": {"notes": {"module": "tests.fixtures.kit_server:make_server"}}})
    async with Hub(config) as running:
        yield running


async def call(hub: Hub, tool: str, **args: Any) -> tuple[bool, dict[str, Any]]:
    result = await hub.route_call(f"notes__{tool}", args)
    assert result.structured_content is not None, result.content
    return bool(result.is_error), result.structured_content


async def notes(hub: Hub) -> list[dict[str, Any]]:
    return (await call(hub, "list_notes"))[1]["notes"]


async def test_same_key_same_arguments_answers_the_first_result(hub: Hub) -> None:
    failed, first = await call(hub, "create_note", title="Plan", body="x", idempotency_key="k1")
    assert not failed
    failed, again = await call(hub, "create_note", title="Plan", body="x", idempotency_key="k1")
    assert not failed and again == first
    assert [n["id"] for n in await notes(hub)] == [first["id"]]


async def test_same_key_other_arguments_is_a_conflict_and_writes_nothing(hub: Hub) -> None:
    _, first = await call(hub, "create_note", title="Plan", idempotency_key="k1")
    failed, error = await call(hub, "create_note", title="Another plan", idempotency_key="k1")
    assert failed and error["code"] == "conflict" and "k1" in error["message"]
    assert error["details"]["idempotency_key"] == "k1"
    assert [n["title"] for n in await notes(hub)] == ["Plan"]
    # the original arguments still answer the original result
    assert (await call(hub, "create_note", title="Plan", idempotency_key="k1"))[1] == first


async def test_a_failed_call_leaves_the_key_free(hub: Hub) -> None:
    failed, _ = await call(hub, "create_note", title="Plan", fail=True, idempotency_key="k2")
    assert failed
    failed, created = await call(hub, "create_note", title="Plan", idempotency_key="k2")
    assert not failed, "the failed call wrote nothing and recorded nothing"
    assert [n["id"] for n in await notes(hub)] == [created["id"]]


async def test_a_dry_run_does_not_spend_the_key(hub: Hub) -> None:
    _, preview = await call(hub, "create_note", title="Plan", dry_run=True, idempotency_key="k5")
    failed, created = await call(hub, "create_note", title="Plan", idempotency_key="k5")
    assert not failed and created["id"] != preview["id"]
    assert len(await notes(hub)) == 1


async def test_a_deleted_record_never_answers_for_its_key(hub: Hub) -> None:
    _, created = await call(hub, "create_note", title="Plan", idempotency_key="k6")
    await call(hub, "delete_note", id=created["id"])
    failed, error = await call(hub, "create_note", title="Plan", idempotency_key="k6")
    assert failed and error["code"] == "not_found" and created["id"] in error["message"]
    assert await notes(hub) == []


async def test_keys_expire_after_the_window(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    _, first = await call(hub, "create_note", title="Plan", idempotency_key="k7")
    later = idempotency.time.time() + idempotency.IDEMPOTENCY_TTL_S + 1
    monkeypatch.setattr(idempotency.time, "time", lambda: later)
    failed, second = await call(hub, "create_note", title="Other", idempotency_key="k7")
    assert not failed and second["id"] != first["id"]


async def test_keys_belong_to_one_caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    server = make_server()
    with bind_caller(Caller("alice", frozenset({"notes:write"}))):
        alice = (await server.call_tool("create_note", {"title": "A", "idempotency_key": "same"})).structured_content
    with bind_caller(Caller("bob", frozenset({"notes:write"}))):
        bob = (await server.call_tool("create_note", {"title": "B", "idempotency_key": "same"})).structured_content
    assert alice["title"] == "A" and bob["title"] == "B" and alice["id"] != bob["id"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=st.fixed_dictionaries({"title": st.text(min_size=1, max_size=8), "body": st.text(max_size=8),
                                 "colour": st.sampled_from([None, "red", "green", "blue"])}),
    second=st.fixed_dictionaries({"title": st.text(min_size=1, max_size=8), "body": st.text(max_size=8),
                                  "colour": st.sampled_from([None, "red", "green", "blue"])}),
)
async def test_a_key_never_answers_for_other_arguments(tmp_path: Path, first: dict[str, Any], second: dict[str, Any]) -> None:
    server = make_server()
    done = (await server.call_tool("create_note", {**first, "idempotency_key": "p"})).structured_content
    answer = await server.call_tool("create_note", {**second, "idempotency_key": "p"})
    if first == second:
        assert not answer.is_error and answer.structured_content == done
    else:
        assert answer.is_error and answer.structured_content["code"] == "conflict"
    listed = (await server.call_tool("list_notes", {})).structured_content["notes"]
    assert [n["id"] for n in listed] == [done["id"]]


async def test_unknown_arguments_are_refused_with_the_accepted_names(hub: Hub) -> None:
    failed, error = await call(hub, "create_note", title="Plan", status="open")
    assert failed and error["code"] == "invalid_argument"
    assert "status" in error["message"] and "title" in error["message"] and "idempotency_key" in error["message"]
    assert await notes(hub) == []


async def test_tool_schemas_are_closed_and_not_open_world(hub: Hub) -> None:
    for tool in hub.visible_tools(hub.access.local):
        assert tool.input_schema.get("additionalProperties") is False, tool.name
        assert tool.annotations is not None and tool.annotations.open_world_hint is False, tool.name


async def test_enum_errors_list_the_allowed_values(hub: Hub) -> None:
    failed, error = await call(hub, "create_note", title="Plan", colour="purple")
    assert failed and error["code"] == "invalid_argument"
    for allowed in ("red", "green", "blue"):
        assert allowed in error["message"]


async def test_a_huge_value_is_not_echoed_back(hub: Hub) -> None:
    failed, error = await call(hub, "create_note", title="x" * 200_000)
    assert failed and error["code"] == "invalid_argument" and "255" in error["message"]
    assert len(json.dumps(error)) < 2_000


@pytest.mark.parametrize("arguments", [
    {"title": "Plan", "status": "open"},
    {"title": "Plan", "colour": "purple"},
    {"title": "y" * 200_000},
])
async def test_the_server_alone_answers_like_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     hub: Hub, arguments: dict[str, Any]) -> None:
    """Without the hub in front (its own argument check), the server refuses in the same shape."""
    async with Client(make_server()) as client:
        alone = await client.call_tool("create_note", arguments)
    via_hub = await hub.route_call("notes__create_note", arguments)
    assert alone.is_error and alone.structured_content is not None
    assert alone.structured_content["code"] == "invalid_argument"
    assert alone.structured_content["details"]["errors"][0]["problem"] == \
        via_hub.structured_content["details"]["errors"][0]["problem"]
    assert len(alone.content[0].text) < 2_000


async def test_unknown_keys_inside_nested_objects_are_refused_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelled key inside an invoice line (or a memory scope) must not vanish: the agent meant it."""
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    config = parse_config({"mcpServers": {"accounting": {"builtin": "accounting"}}})
    async with Hub(config) as running:
        line = {"description": "Work", "unit_price": "100.00", "qty": "3", "account_code": "4000"}
        result = await running.route_call("accounting__create_invoice", {"contact_id": "C-x", "lines": [line], "dry_run": True})
        assert result.is_error and result.structured_content["code"] == "invalid_argument"
        problem = result.structured_content["details"]["errors"][0]
        assert problem["field"] == "lines[0]" and "'qty'" in problem["problem"] and "quantity" in problem["problem"]
        schema = next(t for t in running.visible_tools(running.access.local) if t.name == "accounting__create_invoice").input_schema
        assert '"additionalProperties": false' in json.dumps(schema["$defs"]) or schema["properties"]["lines"]["items"].get("additionalProperties") is False


@pytest.mark.parametrize(("server", "tool", "arguments"), [
    ("ticketing", "search_tickets", {"text": "a" * 60_000}),
    ("accounting", "search_contacts", {"query": "Q" * 60_000}),
])
async def test_search_text_has_a_stated_limit_not_an_internal_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   server: str, tool: str, arguments: dict[str, Any]) -> None:
    """SQLite refuses a LIKE pattern past ~50,000 characters: the schema bounds the text first."""
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    async with Hub(parse_config({"mcpServers": {server: {"builtin": server}}})) as running:
        result = await running.route_call(f"{server}__{tool}", arguments)
    assert result.is_error and result.structured_content["code"] == "invalid_argument", result.structured_content
