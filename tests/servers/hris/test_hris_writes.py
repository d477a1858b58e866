"""HRIS: balances agree with what request_time_off grants (#16.13), leave reasons are health data
(#16.14), and sensitive employee fields need scope `hris:sensitive` on top of the allow-list (#17.8).

Every call goes through an in-process hub as an authenticated principal; the hub hands the caller
over to the HRIS server (`hub.auth.caller_channel`), which is what the server's rules see."""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.server import MCPServer

from hub.auth.principal import Principal
from hub.config import parse_config
from hub.hub import Hub
from servers.hris.privacy import PrivacyPolicy
from servers.hris.providers.bamboohr import BambooHris
from servers.hris.server import create_server
from servers.hris.store import EmbeddedHris
from tests.fakes.bamboohr import FakeBamboo

pytestmark = pytest.mark.anyio

READER = Principal("bob", ("hris:read",), "api_key")
WRITER = Principal("mia", ("hris:write",), "api_key")
ADMIN = Principal("ann", ("hris:admin",), "jwt")
HR = Principal("hr", ("hris:write", "hris:sensitive"), "api_key")
EVERYTHING_HRIS = Principal("ops", ("hris:*",), "api_key")
_MOUNTED: list[MCPServer] = []


def mounted() -> MCPServer:
    """The server a test built itself (a provider backend on a fake), for the hub to mount in-process."""
    return _MOUNTED[-1]


@asynccontextmanager
async def hris(data_dir: Path, allow: str, server: MCPServer | None = None) -> AsyncIterator[Hub]:
    """A hub serving the HRIS domain in-process — the built-in one on the embedded demo company,
    or `server` — with `HRIS_SENSITIVE_ALLOW=allow` read from the env."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MCP_HUB_DATA_DIR", str(data_dir))
        patch.setenv("HRIS_SENSITIVE_ALLOW", allow)
        if server is None:
            await EmbeddedHris(data_dir).seed_demo()
            entry = {"builtin": "hris"}
        else:
            _MOUNTED.append(server)
            entry = {"module": f"{__name__}:mounted"}
        async with Hub(parse_config({"mcpServers": {"hris": entry}})) as hub:
            yield hub


async def call(hub: Hub, tool: str, caller: Principal | None = None, **args: Any) -> dict[str, Any]:
    """One call through the hub as `caller` (None: the hub's local operator, who holds every scope)."""
    result = await hub.route_call(f"hris__{tool}", args, principal=caller)
    assert result.structured_content is not None, result.content
    return result.structured_content


def working_days_from(start: date, hours: float) -> date:
    """The end date of a request of `hours` starting on weekday `start` (no holidays in range)."""
    day, left = start, hours / 8 - 1
    while left > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            left -= 1
    return day


def vacation(balances: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in balances["balances"] if b["type"] == "vacation")


# -- #16.13: one available figure --------------------------------------------------------------


async def test_balance_counts_future_approved_and_pending_like_request_time_off(tmp_path: Path) -> None:
    async with hris(tmp_path, "leave_reason") as hub:  # the local operator may see the per-type figures
        # Alan (e3) has 200 h of vacation. Four future weeks approved (160 h) and one pending (40 h).
        approved = await call(hub, "request_time_off", employee_id="e3", type="vacation", start="2027-02-01", end="2027-02-26")
        await call(hub, "decide_time_off", request_id=approved["request"]["id"], decision="approve", confirm=True)
        pending = await call(hub, "request_time_off", employee_id="e3", type="vacation", start="2027-03-01", end="2027-03-05")

        shown = vacation(await call(hub, "get_time_off_balances", employee_id="e3", as_of="2026-12-01"))
        assert shown == {"type": "vacation", "entitlement_hours": 200.0, "booked_hours": 160.0, "taken_hours": 0.0,
                         "pending_hours": 40.0, "available_hours": 0.0}
        refused = await call(hub, "request_time_off", employee_id="e3", type="vacation", start="2027-04-05", end="2027-04-05")
        assert refused["code"] == "conflict" and "0h available" in refused["message"]
        assert refused["details"] == {"type": "vacation", "requested_hours": 8.0, "available_hours": 0.0,
                                      "entitlement_hours": 200.0, "booked_hours": 160.0, "pending_hours": 40.0}

        # Later in the leave, the part already taken moves from upcoming to taken; nothing else changes.
        mid = vacation(await call(hub, "get_time_off_balances", employee_id="e3", as_of="2027-02-10"))
        assert mid["taken_hours"] == 64.0 and mid["booked_hours"] == 160.0 and mid["available_hours"] == 0.0

        await call(hub, "decide_time_off", request_id=pending["request"]["id"], decision="cancel", confirm=True)
        freed = vacation(await call(hub, "get_time_off_balances", employee_id="e3"))
        assert freed["pending_hours"] == 0.0 and freed["available_hours"] == 40.0
        preview = await call(hub, "request_time_off", employee_id="e3", type="vacation", start="2027-04-05",
                             end="2027-04-09", dry_run=True)
        assert preview["balance_before"] == 40.0 and preview["balance_after"] == 0.0


request_plan = st.tuples(
    st.integers(min_value=0, max_value=30),                                   # week of 2027
    st.integers(min_value=1, max_value=5),                                    # working days
    st.sampled_from(["vacation", "sick"]),
    st.sampled_from(["requested", "approve", "deny", "cancel", "approve+cancel"]),
)


async def _balance_then_request(data_dir: Path, entitlement: int, plans: list[tuple[int, int, str, str]], as_of: date) -> None:
    async with hris(data_dir, "leave_reason") as hub:
        await EmbeddedHris(data_dir).store.run(
            lambda db: db.execute("UPDATE balances SET granted_hours = ? WHERE employee_id = 'e3' AND type = 'vacation'",
                                  (float(entitlement),)))
        booked = taken = pending = 0.0  # the vacation figures, kept here independently of the server
        for week, days, kind, fate in plans:
            start = date(2027, 1, 4) + timedelta(weeks=week)  # Mondays; no holidays in 2027
            made = await call(hub, "request_time_off", employee_id="e3", type=kind, start=start.isoformat(),
                              end=(start + timedelta(days=days - 1)).isoformat())
            if "request" not in made:
                assert made["code"] == "conflict" and made["details"]["requested_hours"] == days * 8  # over the balance
                continue
            for decision in [] if fate == "requested" else fate.split("+"):
                await call(hub, "decide_time_off", request_id=made["request"]["id"], decision=decision, confirm=True)
            if kind == "vacation" and fate == "requested":
                pending += days * 8
            elif kind == "vacation" and fate == "approve":
                booked += days * 8
                taken += 8 * min(days, max(0, (as_of - start).days + 1))

        shown = vacation(await call(hub, "get_time_off_balances", employee_id="e3", as_of=as_of.isoformat()))
        assert shown == {"type": "vacation", "entitlement_hours": entitlement, "booked_hours": booked, "taken_hours": taken,
                         "pending_hours": pending, "available_hours": entitlement - booked - pending}
        available = shown["available_hours"]

        start = date(2028, 1, 3)  # a Monday; nothing booked in 2028
        over = await call(hub, "request_time_off", employee_id="e3", type="vacation", start=start.isoformat(),
                          end=working_days_from(start, available + 8).isoformat())
        assert over["code"] == "conflict"
        assert over["details"]["available_hours"] == available
        assert over["details"]["booked_hours"] == shown["booked_hours"]
        assert over["details"]["pending_hours"] == shown["pending_hours"]
        assert f"{available:g}h available" in over["message"]
        if available:
            made = await call(hub, "request_time_off", employee_id="e3", type="vacation", start=start.isoformat(),
                              end=working_days_from(start, available).isoformat())
            assert made["hours"] == available and made["balance_before"] == available and made["balance_after"] == 0
            after = vacation(await call(hub, "get_time_off_balances", employee_id="e3", as_of=as_of.isoformat()))
            assert after["available_hours"] == 0 and after["pending_hours"] == shown["pending_hours"] + available


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entitlement=st.integers(min_value=0, max_value=15).map(lambda days: days * 8),
    plans=st.lists(request_plan, max_size=6, unique_by=lambda p: p[0]),
    as_of=st.dates(min_value=date(2026, 12, 1), max_value=date(2027, 12, 31)),
)
def test_any_history_the_balance_is_exactly_what_request_time_off_grants(
    entitlement: int, plans: list[tuple[int, int, str, str]], as_of: date
) -> None:
    """Whatever was requested, approved, denied or cancelled before: X available means X can be
    requested and X + one day is refused with the same figures."""
    with tempfile.TemporaryDirectory() as folder:
        anyio.run(_balance_then_request, Path(folder), entitlement, plans, as_of)


# -- #16.14: leave reasons are health data -------------------------------------------------------


async def _book_sick_leave(hub: Hub) -> str:
    made = await call(hub, "request_time_off", HR, employee_id="e3", type="sick", start="2027-01-11",
                      end="2027-01-12", note="chemotherapy appointment")
    request_id = made["request"]["id"]
    await call(hub, "decide_time_off", HR, request_id=request_id, decision="approve", confirm=True)
    return request_id


@pytest.mark.parametrize("allow", ["leave_reason", ""])
@pytest.mark.parametrize("caller", [READER, WRITER, ADMIN], ids=["read", "write", "admin"])
async def test_readers_see_who_is_out_but_not_why(tmp_path: Path, caller: Principal, allow: str) -> None:
    async with hris(tmp_path, allow) as hub:
        request_id = await _book_sick_leave(hub)
        out = await call(hub, "whos_out", caller, start="2027-01-11", end="2027-01-15")
        assert out["absences"] == [{"kind": "time_off", "employee_id": "e3", "name": "Alan Turing", "start": "2027-01-11",
                                    "end": "2027-01-12", "type": None, "reason_hidden": True}]
        listed = await call(hub, "list_time_off_requests", caller, employee_id="e3")
        (request,) = listed["requests"]
        assert request["id"] == request_id and request["status"] == "approved" and request["hours"] == 16
        assert request["type"] is None and request["note"] is None and request["reason_hidden"] is True
        for answer in (out, listed):
            text = json.dumps(answer)
            assert "sick" not in text and "chemotherapy" not in text
        if caller is not READER:
            cancelled = await call(hub, "decide_time_off", caller, request_id=request_id, decision="cancel", confirm=True)
            assert cancelled["status"] == "cancelled" and cancelled["type"] is None and cancelled["note"] is None


@pytest.mark.parametrize("caller", [HR, EVERYTHING_HRIS, None], ids=["hris:sensitive", "hris:*", "local-operator"])
async def test_callers_holding_hris_sensitive_see_the_reason(tmp_path: Path, caller: Principal | None) -> None:
    async with hris(tmp_path, "leave_reason") as hub:
        await _book_sick_leave(hub)
        out = await call(hub, "whos_out", caller, start="2027-01-11", end="2027-01-15")
        assert [(a["type"], a["reason_hidden"]) for a in out["absences"]] == [("sick", False)]
        (request,) = (await call(hub, "list_time_off_requests", caller, employee_id="e3"))["requests"]
        assert request["type"] == "sick" and request["note"] == "chemotherapy appointment" and request["reason_hidden"] is False


async def test_leave_reasons_stay_hidden_unless_the_allow_list_names_them(tmp_path: Path) -> None:
    async with hris(tmp_path, "date_of_birth") as hub:
        await _book_sick_leave(hub)
        for caller in (HR, None):
            out = await call(hub, "whos_out", caller, start="2027-01-11", end="2027-01-15")
            assert [(a["type"], a["reason_hidden"]) for a in out["absences"]] == [(None, True)]
            (request,) = (await call(hub, "list_time_off_requests", caller))["requests"]
            assert request["type"] is None and request["note"] is None


@pytest.mark.parametrize("allow", ["leave_reason", ""])
@pytest.mark.parametrize("caller", [READER, WRITER, ADMIN], ids=["read", "write", "admin"])
async def test_balances_and_previews_do_not_give_the_hidden_reason_away(tmp_path: Path, caller: Principal, allow: str) -> None:
    """Outside review 8: a reader shown Alan's absence without its type read "sick: 16 h booked" from
    his balances, and a writer the same from a dry run's balance_before. Every type's booking figures
    are withheld (showing vacation's alone would tell by elimination); entitlements and totals stay."""
    async with hris(tmp_path, allow) as hub:
        await _book_sick_leave(hub)
        shown = await call(hub, "get_time_off_balances", caller, employee_id="e3", as_of="2026-12-01")
        hidden = {"booked_hours": None, "taken_hours": None, "pending_hours": None, "available_hours": None}
        assert shown["reason_hidden"] is True and shown["balances"] == [
            {"type": "sick", "entitlement_hours": 80.0, **hidden}, {"type": "vacation", "entitlement_hours": 200.0, **hidden}]
        assert shown["total"] == {"type": "all", "entitlement_hours": 280.0, "booked_hours": 16.0, "taken_hours": 0.0,
                                  "pending_hours": 0.0, "available_hours": 264.0}, "who is out and how long is not hidden"
        if caller is not READER:
            preview = await call(hub, "request_time_off", caller, employee_id="e3", type="sick", start="2027-03-01",
                                 end="2027-03-01", dry_run=True)
            assert preview["hours"] == 8.0 and preview["reason_hidden"] is True
            assert preview["balance_before"] is None and preview["balance_after"] is None
            booked = await call(hub, "request_time_off", caller, employee_id="e3", type="sick", start="2027-03-01",
                                end="2027-03-12")  # 80 h asked, 64 h left: no refusal to tell (test_hris_leave_oracle.py)
            assert booked["request"]["status"] == "requested" and booked["balance_before"] is None
            await call(hub, "decide_time_off", caller, request_id=booked["request"]["id"], decision="cancel", confirm=True)
        if allow:  # who may see the reason sees the figures
            full = await call(hub, "get_time_off_balances", HR, employee_id="e3", as_of="2026-12-01")
            assert full["reason_hidden"] is False and full["total"] is None
            assert full["balances"][0] == {"type": "sick", "entitlement_hours": 80.0, "booked_hours": 16.0, "taken_hours": 0.0,
                                           "pending_hours": 0.0, "available_hours": 64.0}
            preview = await call(hub, "request_time_off", HR, employee_id="e3", type="sick", start="2027-03-01",
                                 end="2027-03-01", dry_run=True)
            assert preview["balance_before"] == 64.0 and preview["reason_hidden"] is False


# -- #17.8: sensitive employee fields need hris:sensitive ----------------------------------------


async def test_sensitive_fields_need_the_scope_on_top_of_the_allow_list(tmp_path: Path) -> None:
    async with hris(tmp_path, "compensation,national_id") as hub:
        for caller in (READER, WRITER, ADMIN):
            refused = await call(hub, "get_employee", caller, ref="e1", fields=["national_id"])
            assert refused["code"] == "forbidden" and "hris:sensitive" in refused["message"]
            assert refused["details"] == {"required_scope": "hris:sensitive", "refused": ["national_id"]}
            assert "QQ123456C" not in json.dumps(refused)
            searched = await call(hub, "search_employees", caller, query="Grace", fields=["national_id"])
            assert searched["code"] == "forbidden"
            plain = await call(hub, "get_employee", caller, ref="e1", fields=["title"])
            assert plain["sensitive"] is None and plain["title"] == "CEO"

        for caller in (HR, EVERYTHING_HRIS, None):
            granted = await call(hub, "get_employee", caller, ref="e1", fields=["national_id"])
            assert granted["sensitive"] == {"national_id": "QQ123456C"}
            found = await call(hub, "search_employees", caller, query="Grace", fields=["national_id"])
            assert found["employees"][0]["sensitive"] == {"national_id": "QQ123456C"}
            beyond = await call(hub, "get_employee", caller, ref="e1", fields=["date_of_birth"])
            assert beyond["code"] == "forbidden" and beyond["details"]["refused"] == ["date_of_birth"], "the allow-list still applies"


async def test_tool_descriptions_say_what_needs_hris_sensitive(tmp_path: Path) -> None:
    async with hris(tmp_path, "") as hub:
        tools = {t.name: t for t in hub.catalog.tools()}
    for name in ("search_employees", "get_employee"):
        assert "hris:sensitive" in tools[f"hris__{name}"].input_schema["properties"]["fields"]["description"]
    for name in ("whos_out", "list_time_off_requests", "decide_time_off"):
        assert "hris:sensitive" in (tools[f"hris__{name}"].description or ""), name


# -- the same rules on a provider backend --------------------------------------------------------


async def test_bamboohr_balance_subtracts_pending_requests_like_the_preview(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeBamboo()
    monkeypatch.setenv("BAMBOOHR_COMPANY", fake.company)
    monkeypatch.setenv("BAMBOOHR_API_KEY", fake.key)
    backend = BambooHris.from_env(transport=httpx.ASGITransport(app=fake.app()))
    async with hris(tmp_path, "", create_server(backend, PrivacyPolicy(frozenset({"leave_reason"})))) as hub:
        made = await call(hub, "request_time_off", HR, employee_id="41", type="vacation", start="2027-01-11", end="2027-01-15",
                          note="surgery recovery", hours_per_day=8)  # Ada is part-time with no recorded schedule
        assert made["request"]["status"] == "requested"
        shown = vacation(await call(hub, "get_time_off_balances", HR, employee_id="41", as_of="2026-12-01"))
        assert shown == {"type": "vacation", "entitlement_hours": None, "booked_hours": 0.0, "taken_hours": 0.0,
                         "pending_hours": 40.0, "available_hours": 80.0}, "BambooHR's 120 h minus the pending 40 h"
        preview = await call(hub, "request_time_off", HR, employee_id="41", type="vacation", start="2027-02-01",
                             end="2027-02-01", dry_run=True, hours_per_day=8)
        assert preview["balance_before"] == shown["available_hours"]
        (hidden,) = (await call(hub, "list_time_off_requests", READER, employee_id="41"))["requests"]
        assert hidden["type"] is None and hidden["note"] is None and hidden["reason_hidden"] is True
        (shown_to_hr,) = (await call(hub, "list_time_off_requests", HR, employee_id="41"))["requests"]
        assert shown_to_hr["type"] == "vacation" and shown_to_hr["note"] == "surgery recovery"
