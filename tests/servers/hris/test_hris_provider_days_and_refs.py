"""HRIS connectors (outside review 18): BambooHR holidays that span days, employee refs by number or email
in any case (and resolved to the id before they reach a provider path), the leave type in Who's Out,
cancelling leave that has begun; Workday dates sent as date-times."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from cryptography.fernet import Fernet
from mcp import Client

from servers.hris.privacy import PrivacyPolicy
from servers.hris.providers.bamboohr import BambooHris
from servers.hris.providers.workday import WorkdayHris
from servers.hris.server import create_server
from tests.fakes.bamboohr import FakeBamboo
from tests.fakes.workday import FakeWorkday

pytestmark = pytest.mark.anyio
SHUTDOWN = [{"id": 31, "type": "holiday", "name": "Year-end shutdown", "start": "2026-12-29", "end": "2026-12-31"},
            {"id": 32, "type": "holiday", "name": "New Year's Day", "start": "2027-01-01", "end": "2027-01-01"}]


async def tool(server: Any, name: str, **args: Any) -> dict[str, Any]:
    async with Client(server) as client:
        return (await client.call_tool(name, args)).structured_content


def bamboo_server(fake: FakeBamboo, allow: frozenset[str] = frozenset({"leave_reason"})) -> Any:
    return create_server(BambooHris.from_env(transport=httpx.ASGITransport(app=fake.app())), PrivacyPolicy(allow))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeBamboo:
    made = FakeBamboo()
    monkeypatch.setenv("BAMBOOHR_COMPANY", made.company)
    monkeypatch.setenv("BAMBOOHR_API_KEY", made.key)
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    return made


def puts(fake: FakeBamboo) -> list[dict[str, Any]]:
    return [r for r in fake.requests if r["method"] == "PUT"]


async def test_bamboohr_multiday_holiday_is_not_charged(fake: FakeBamboo) -> None:
    """Every day of a holiday with a start and an end is off, also when it began before the range."""
    fake.holidays = SHUTDOWN
    server = bamboo_server(fake)
    week = await tool(server, "request_time_off", employee_id="40", type="vacation", start="2026-12-28", end="2027-01-01")
    assert week.get("hours") == 8, f"Dec 28 - Jan 1 around a Dec 29-31 shutdown is one working day: {week}"
    assert [p["json"]["amount"] for p in puts(fake)] == [8.0]
    inside = await tool(server, "request_time_off", employee_id="40", type="vacation", start="2026-12-30", end="2026-12-31")
    assert inside.get("code") == "invalid_argument" and "no working days" in inside["message"], \
        f"a range inside a shutdown that began before it has no working days: {inside}"
    assert len(puts(fake)) == 1, "nothing was booked for it"


async def test_bamboohr_refs_by_number_and_email_find_the_employee(fake: FakeBamboo) -> None:
    server = bamboo_server(fake)
    assert (await tool(server, "get_employee", ref="40"))["id"] == "40"
    by_number = await tool(server, "get_employee", ref="1001")
    assert by_number.get("id") == "40", f"employee number 1001 is Grace (id 40): {by_number}"
    by_email = await tool(server, "get_employee", ref="Grace@ACME.test")
    assert by_email.get("id") == "40", f"a work email in another case: {by_email}"
    assert (await tool(server, "get_employee", ref="7777"))["code"] == "not_found"


async def test_bamboohr_time_off_by_email_or_number_uses_the_id_in_paths(fake: FakeBamboo) -> None:
    server = bamboo_server(fake)
    start = len(fake.requests)
    preview = await tool(server, "request_time_off", employee_id="grace@acme.test", type="vacation",
                         start="2027-02-01", end="2027-02-01", dry_run=True)
    assert preview.get("hours") == 8, preview
    balances = await tool(server, "get_time_off_balances", employee_id="1001", as_of="2027-01-01")
    assert balances.get("employee_id") == "40", balances
    made = await tool(server, "request_time_off", employee_id="GRACE@acme.test", type="vacation",
                      start="2027-02-02", end="2027-02-02")
    assert made["request"]["employee_id"] == "40", made
    listed = await tool(server, "list_time_off_requests", employee_id="grace@acme.test")
    assert [r["id"] for r in listed["requests"]] == [made["request"]["id"]], listed
    sent = fake.requests[start:]
    assert not [r["path"] for r in sent if "/time_off" in r["path"] and "/employees/40/" not in r["path"]
                and "/employees/" in r["path"]], "a reference is resolved to the numeric id before it becomes a BambooHR path"
    assert all(r["params"].get("employeeId") in (None, "40") for r in sent)


async def test_bamboohr_whos_out_shows_the_leave_type_to_whom_may_see_it(fake: FakeBamboo) -> None:
    server = bamboo_server(fake)
    made = await tool(server, "request_time_off", employee_id="40", type="sick", start="2027-01-05", end="2027-01-05")
    await tool(server, "decide_time_off", request_id=made["request"]["id"], decision="approve", confirm=True)
    out = await tool(server, "whos_out", start="2027-01-04", end="2027-01-08")
    leave = [a for a in out["absences"] if a["kind"] == "time_off"]
    assert [(a["employee_id"], a["type"], a["reason_hidden"]) for a in leave] == [("40", "sick", False)], out
    hidden = await tool(bamboo_server(fake, frozenset()), "whos_out", start="2027-01-04", end="2027-01-08")
    assert [(a["type"], a["reason_hidden"]) for a in hidden["absences"] if a["kind"] == "time_off"] == [(None, True)]


async def test_bamboohr_approved_leave_that_began_is_not_cancelled(fake: FakeBamboo) -> None:
    today = date.today()
    for rid, first, last in (("700", today - timedelta(days=2), today + timedelta(days=2)),
                             ("701", today + timedelta(days=30), today + timedelta(days=31))):
        fake.time_off.append({"id": rid, "employeeId": "40", "name": "Grace Hopper", "status": {"status": "approved"},
                              "start": first.isoformat(), "end": last.isoformat(), "created": "2026-11-23",
                              "type": {"id": "78", "name": "Vacation"}, "amount": {"unit": "hours", "amount": "40"},
                              "notes": {}})
    server = bamboo_server(fake)
    begun = await tool(server, "decide_time_off", request_id="700", decision="cancel", confirm=True)
    assert begun.get("code") == "conflict" and "began" in begun["message"], begun
    assert not puts(fake) and fake.time_off[0]["status"]["status"] == "approved", "nothing was sent to BambooHR"
    later = await tool(server, "decide_time_off", request_id="701", decision="cancel", confirm=True)
    assert later["status"] == "cancelled", later
    assert (await tool(server, "decide_time_off", request_id="999", decision="approve", confirm=True))["code"] == "not_found"


def workday_server(fake: FakeWorkday, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    for name, value in {"WORKDAY_HOST": "http://wd.test", "WORKDAY_TENANT": fake.tenant, "WORKDAY_CLIENT_ID": fake.client_id,
                        "WORKDAY_CLIENT_SECRET": fake.client_secret, "WORKDAY_REFRESH_TOKEN": fake.refresh_token,
                        "MCP_HUB_SECRET_KEY": Fernet.generate_key().decode(), "MCP_HUB_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    app = fake.app()
    backend = WorkdayHris.from_env(tmp_path, transport=httpx.ASGITransport(app=app), token_transport=httpx2.ASGITransport(app=app))
    return create_server(backend, PrivacyPolicy(frozenset({"leave_reason"})))


@pytest.mark.parametrize(("zone", "configured"), [("America/Los_Angeles", False), ("Europe/Berlin", False),
                                                   ("Asia/Tokyo", False), ("Pacific/Auckland", True)])
async def test_workday_dates_sent_as_date_times_read_as_the_tenants_day(
    zone: str, configured: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """"2022-02-01T08:00:00.000Z" is Feb 1 in Los Angeles, "2022-01-31T23:00:00.000Z" Feb 1 in Berlin; a tenant
    ahead of UTC+12 (Auckland in summer) is read in WORKDAY_TIMEZONE."""
    if configured:
        monkeypatch.setenv("WORKDAY_TIMEZONE", zone)
    fake = FakeWorkday(date_zone=zone)
    server = workday_server(fake, monkeypatch, tmp_path)
    worker = await tool(server, "get_employee", ref="w001")
    assert worker.get("start_date") == "2022-02-01", f"hireDate {fake._date('2022-02-01')} in {zone}: {worker}"
    assert len((await tool(server, "search_employees", limit=5))["employees"]) == 5
    made = await tool(server, "request_time_off", employee_id="w001", type="vacation", start="2027-01-04", end="2027-01-05")
    assert made.get("request"), made
    listed = await tool(server, "list_time_off_requests", employee_id="w001")
    assert [(r["start"], r["end"]) for r in listed["requests"]] == [("2027-01-04", "2027-01-05")], listed
    again = await tool(server, "request_time_off", employee_id="w001", type="vacation", start="2027-01-05", end="2027-01-05")
    assert again.get("code") == "conflict", "the overlap is found on the tenant's days"


async def test_workday_garbled_date_is_an_upstream_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = FakeWorkday()
    server = workday_server(fake, monkeypatch, tmp_path)
    fake.details.append({"id": "tor9", "worker": "w001", "date": "2027-01-04", "endDate": "2027-01-04", "quantity": "8",
                         "unit": {"descriptor": "Hours"}, "timeOffType": {"descriptor": "Vacation"},
                         "status": {"descriptor": "Submitted"}, "createdOn": "2026-11-23T10:00:00Z"})
    fake.details[-1]["date"] = fake.details[-1]["endDate"] = "04/01/2027"
    garbled = await tool(server, "list_time_off_requests", employee_id="w001", start="0001-01-01")
    assert garbled.get("code") == "upstream_error" and "not a date" in garbled["message"], garbled


async def test_workday_refs_by_email_in_any_case_and_number_reach_paths_as_the_id(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakeWorkday()
    server = workday_server(fake, monkeypatch, tmp_path)
    by_email = await tool(server, "get_employee", ref="P5@Acme.TEST")
    assert by_email.get("id") == "w005", f"a work email in another case: {by_email}"
    assert (await tool(server, "get_employee", ref="2007"))["id"] == "w007"
    start = len(fake.requests)
    balances = await tool(server, "get_time_off_balances", employee_id="p1@acme.test")
    assert balances.get("employee_id") == "w001", balances
    listed = await tool(server, "list_time_off_requests", employee_id="2001")
    assert listed.get("requests") == [], listed
    sent = fake.requests[start:]
    assert {r["params"]["worker"] for r in sent if r["path"].endswith("/balances")} == {"w001"}
    assert {r["path"] for r in sent if "timeOffDetails" in r["path"]} == {
        "/ccx/api/absenceManagement/v1/acme/workers/w001/timeOffDetails"}


async def test_bamboohr_part_timer_without_a_schedule_on_a_day_type_books_whole_days_and_no_guessed_part(
        fake: FakeBamboo) -> None:
    """Outside review r38b #4: a part-time employee (Ada, 41) with no schedule on Sick (counted in days) was refused
    with "pass hours_per_day (…; half of it for half days)", and following that booked a whole day (amount 1.0,
    answered 8 h) for the half asked. Now whole days need no hours, and hours that cannot say a part are refused."""
    day = date(2027, 3, 2)  # a Tuesday
    server = bamboo_server(fake)
    whole = await tool(server, "request_time_off", employee_id="41", type="sick", start=day.isoformat(), end=day.isoformat())
    assert "code" not in whole and whole["hours"] == 8.0, whole  # one day, shown as a day's 8 hours like balances
    assert [r["json"]["amount"] for r in puts(fake)] == [1.0]
    nxt = (day + timedelta(days=1)).isoformat()
    half = await tool(server, "request_time_off", employee_id="41", type="sick", start=nxt, end=nxt, hours_per_day=2)
    assert half.get("code") == "invalid_argument" and "nothing was booked" in half["message"], half
    assert "hours_per_day out" in half["message"] and len(puts(fake)) == 1  # nothing more was sent
