"""HRIS lists page with signed keyset cursors bound to their query (issue #16 item 11, embedded
backend), and `fields` naming no field is refused — all through the MCP interface."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from hub.config import parse_config
from hub.hub import Hub
from servers.hris.privacy import PrivacyPolicy
from servers.hris.server import create_server
from servers.hris.store import EmbeddedHris

pytestmark = pytest.mark.anyio


def crafted(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


@pytest.fixture
async def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HRIS_SENSITIVE_ALLOW", "date_of_birth")
    await EmbeddedHris(tmp_path).seed_demo()  # e1 Hopper, e2 Lovelace, e3 Turing, e4 Johnson
    async with Hub(parse_config({"mcpServers": {"hris": {"builtin": "hris"}}})) as running:
        yield running


async def call(hub: Hub, tool: str, **args: Any) -> dict[str, Any]:
    result = await hub.route_call(f"hris__{tool}", args)
    assert result.structured_content is not None, result.content
    return result.structured_content


async def test_an_employee_walk_sees_each_person_once_while_others_are_added(hub: Hub, tmp_path: Path) -> None:
    backend = EmbeddedHris(tmp_path)  # the same database: a sync or an import adding people
    seen, cursor, added = [], None, 0
    while True:
        page = await call(hub, "search_employees", limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [e["id"] for e in page["employees"]]
        if (cursor := page["next_cursor"]) is None:
            break
        added += 1
        await backend.add_employee(id=f"n{added}", first_name="Aaron", last_name=f"Aardvark{added}",
                                   employment_status="active")
    assert len(seen) == len(set(seen)), f"someone came back twice: {seen}"
    assert {"e1", "e2", "e3", "e4"} <= set(seen)


async def test_a_time_off_walk_sees_each_request_once_while_others_request_earlier_days(hub: Hub) -> None:
    made = []
    for n, day in enumerate(("2026-06-01", "2026-06-08", "2026-06-15", "2026-06-22")):
        made.append((await call(hub, "request_time_off", employee_id=f"e{n + 1}", type="vacation", start=day, end=day))["request"]["id"])
    seen, cursor, page = [], None, 0
    while True:
        found = await call(hub, "list_time_off_requests", limit=1, **({"cursor": cursor} if cursor else {}))
        seen += [r["id"] for r in found["requests"]]
        if (cursor := found["next_cursor"]) is None:
            break
        page += 1
        await call(hub, "request_time_off", employee_id="e1", type="vacation", start=f"2026-05-0{page}", end=f"2026-05-0{page}")
        await call(hub, "decide_time_off", request_id=made[-1], decision="approve", confirm=True)
    assert len(seen) == len(set(seen)), f"a request came back twice: {seen}"
    assert set(made) <= set(seen)


async def test_cursors_only_work_for_their_own_query(hub: Hub) -> None:
    for day in ("2026-06-01", "2026-06-08"):
        await call(hub, "request_time_off", employee_id="e3", type="vacation", start=day, end=day)
    people = await call(hub, "search_employees", limit=1)
    elsewhere = await call(hub, "search_employees", limit=1, department="Engineering", cursor=people["next_cursor"])
    assert elsewhere["code"] == "invalid_argument" and "different query" in elsewhere["message"], elsewhere
    requests = await call(hub, "list_time_off_requests", employee_id="e3", limit=1)
    other = await call(hub, "list_time_off_requests", employee_id="e2", limit=1, cursor=requests["next_cursor"])
    assert other["code"] == "invalid_argument" and "different query" in other["message"], other
    changes = await call(hub, "list_changes", since="2020-01-01T00:00:00Z", limit=1)
    later = await call(hub, "list_changes", since="2021-01-01T00:00:00Z", limit=1, cursor=changes["next_cursor"])
    assert later["code"] == "invalid_argument" and "different query" in later["message"], later
    # The same instant written in another offset is the same query.
    same = await call(hub, "list_changes", since="2020-01-01T01:00:00+01:00", limit=10, cursor=changes["next_cursor"])
    # The feed holds 4 employees and the 2 time-off requests made above (embedded writes emit changes).
    assert len(same["changes"]) == 5 and same["next_cursor"] is None, same
    mixed = await call(hub, "list_time_off_requests", limit=1, cursor=people["next_cursor"])
    assert mixed["code"] == "invalid_argument", mixed


async def test_crafted_or_altered_cursors_are_refused(hub: Hub) -> None:
    real = (await call(hub, "search_employees", limit=1))["next_cursor"]
    body, _, mac = real.partition(".")
    state = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    state["after"][0] = 0
    moved = base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=") + "." + mac
    for tool, args in (("search_employees", {}), ("list_time_off_requests", {}),
                       ("list_changes", {"since": "2020-01-01T00:00:00Z"})):
        for forged in (crafted({"offset": 1}), moved, "garbage!", "x" * 5000):
            refused = await call(hub, tool, limit=1, cursor=forged, **args)
            assert refused["code"] == "invalid_argument", (tool, forged[:40], refused)
            assert "unchanged" in refused["message"] and "x" * 100 not in refused["message"]


async def test_unknown_employee_fields_are_refused_with_the_known_ones(hub: Hub) -> None:
    for tool, args in (("get_employee", {"ref": "e1"}), ("search_employees", {})):
        refused = await call(hub, tool, fields=["bogus_field"], **args)
        assert refused["code"] == "invalid_argument", refused
        assert "'bogus_field'" in refused["message"] and "national_id" in refused["message"]
        assert "hris:sensitive" in refused["message"] and "title" in refused["message"]
        details = refused["details"]
        assert details["field"] == "fields" and details["unknown"] == ["bogus_field"]
        assert "date_of_birth" in details["sensitive_fields"] and details["sensitive_scope"] == "hris:sensitive"
        assert "department" in details["standard_fields"]
    typo = await call(hub, "get_employee", ref="e1", fields=["date_of_brith", "date_of_birth"])
    assert typo["code"] == "invalid_argument" and typo["details"]["unknown"] == ["date_of_brith"]
    huge = await call(hub, "get_employee", ref="e1", fields=["y" * 150])
    assert huge["code"] == "invalid_argument" and "y" * 100 not in huge["message"]
    fine = await call(hub, "get_employee", ref="e1", fields=["title", "date_of_birth"])
    assert fine["sensitive"] == {"date_of_birth": "1906-12-09"}


# -- property: a walk under interleaved writes --------------------------------------------------

_op = st.tuples(st.sampled_from(["request", "request", "approve", "deny", "cancel"]), st.integers(0, 40), st.integers(0, 19))
WEEKDAYS = [d for d in range(1, 29) if d % 7 not in (6, 0)]  # June 2026 starts on a Monday: 20 working days


async def _walk_under_writes(days: list[int], limit: int, batches: list[list[tuple[str, int, int]]], folder: Path) -> None:
    backend = EmbeddedHris(folder)
    await backend.seed_demo()
    async with Client(create_server(backend, PrivacyPolicy(frozenset()))) as client:

        async def tool(tool_name: str, /, **args: Any) -> dict[str, Any]:
            result = (await client.call_tool(tool_name, args)).structured_content
            assert result is not None, (tool_name, args)
            return result

        async def request(day: int, who: int) -> str | None:
            start = f"2026-06-{WEEKDAYS[day % len(WEEKDAYS)]:02d}"
            made = await tool("request_time_off", employee_id=f"e{who % 4 + 1}", type="sick", start=start, end=start)
            return made["request"]["id"] if "request" in made and made["request"] else None  # overlaps/weekends refused

        made = [r for n, d in enumerate(days) if (r := await request(d, n))]
        initial = set(made)
        seen: list[str] = []
        cursor, page = None, 0
        while True:
            found = await tool("list_time_off_requests", limit=limit, **({"cursor": cursor} if cursor else {}))
            assert "requests" in found, found
            seen += [r["id"] for r in found["requests"]]
            if (cursor := found["next_cursor"]) is None:
                break
            for kind, index, day in batches[page] if page < len(batches) else []:
                if kind == "request" or not made:
                    if new := await request(day, index):
                        made.append(new)
                else:
                    await tool("decide_time_off", request_id=made[index % len(made)], decision=kind, confirm=True)
            page += 1
        assert len(seen) == len(set(seen)), f"returned twice: {seen}"
        assert initial <= set(seen), f"missed {initial - set(seen)}"
        assert set(seen) <= set(made)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    days=st.lists(st.integers(0, 19), min_size=1, max_size=8),
    limit=st.integers(1, 3),
    batches=st.lists(st.lists(_op, max_size=3), max_size=5),
)
def test_any_walk_under_interleaved_writes_returns_each_request_once(
    days: list[int], limit: int, batches: list[list[tuple[str, int, int]]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        anyio.run(_walk_under_writes, days, limit, batches, Path(folder))
