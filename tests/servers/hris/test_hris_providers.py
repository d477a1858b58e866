"""HRIS connectors against local fakes: BambooHR (API-key Basic auth, custom reports, time off)
and Workday (OAuth refresh-token grant with rotation, limit/offset paging, strict types)."""

from __future__ import annotations

import base64
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


async def tool(server: Any, name: str, **args: Any) -> dict[str, Any]:
    async with Client(server) as client:
        return (await client.call_tool(name, args)).structured_content


@pytest.fixture
def bamboo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[FakeBamboo, Any]:
    fake = FakeBamboo()
    monkeypatch.setenv("BAMBOOHR_COMPANY", fake.company)
    monkeypatch.setenv("BAMBOOHR_API_KEY", fake.key)
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    backend = BambooHris.from_env(transport=httpx.ASGITransport(app=fake.app()))
    return fake, create_server(backend, PrivacyPolicy(frozenset({"date_of_birth", "leave_reason"})))  # balances shown


async def test_bamboohr_people(bamboo: tuple[FakeBamboo, Any]) -> None:
    fake, server = bamboo
    found = await tool(server, "search_employees", department="Engineering")
    assert [e["display_name"] for e in found["employees"]] == ["Ada Lovelace", "Alan Turing"]
    assert found["employees"][0]["employment_type"] == "part_time" and found["employees"][1]["employment_status"] == "inactive"
    report = fake.requests[-1]
    assert report["method"] == "POST" and report["path"] == "/api/gateway.php/acme/v1/reports/custom"
    assert report["headers"]["authorization"] == "Basic " + base64.b64encode(b"bamboo-key-123:x").decode()
    assert report["headers"]["accept"] == "application/json"
    assert "dateOfBirth" not in report["json"]["fields"] and "ssn" not in report["json"]["fields"]

    with_dob = await tool(server, "get_employee", ref="40", fields=["date_of_birth"])
    assert with_dob["sensitive"] == {"date_of_birth": "1906-12-09"}
    assert "dateOfBirth" in fake.requests[-1]["params"]["fields"] and "ssn" not in fake.requests[-1]["params"]["fields"]
    before = len(fake.requests)
    refused = await tool(server, "get_employee", ref="40", fields=["national_id"])
    assert refused["code"] == "forbidden" and len(fake.requests) == before, "decided before any provider call"

    assert (await tool(server, "get_employee", ref="ada@acme.test"))["id"] == "41"
    chart = await tool(server, "get_org_chart", ref="40")
    assert chart["reports"][0]["employee"]["id"] == "41" and chart["reports"][0]["reports"][0]["employee"]["id"] == "42"
    chain = await tool(server, "get_org_chart", ref="42", direction="chain")
    assert [e["id"] for e in chain["chain"]] == ["41", "40"]
    assert (await tool(server, "list_departments"))["departments"] == [
        {"name": "Engineering", "headcount": 1}, {"name": "Leadership", "headcount": 1}]
    # list_changes reads the domain's feed (BambooHR webhooks, docs/events.md), not /employees/changed.
    before = len(fake.requests)
    changes = await tool(server, "list_changes", since="2026-10-01T00:00:00Z")
    assert changes == {"changes": [], "next_cursor": None} and len(fake.requests) == before
    paged = await tool(server, "search_employees", limit=2)
    assert len(paged["employees"]) == 2 and paged["next_cursor"]
    assert len((await tool(server, "search_employees", limit=2, cursor=paged["next_cursor"]))["employees"]) == 1


async def test_bamboohr_time_off_and_failures(bamboo: tuple[FakeBamboo, Any]) -> None:
    fake, server = bamboo
    # Ada is part-time and BambooHR records no daily schedule: the hours a day off takes must be given
    unknown = await tool(server, "request_time_off", employee_id="41", type="vacation", start="2026-12-21", end="2026-12-25")
    assert unknown["code"] == "invalid_argument" and unknown["details"] == {"field": "hours_per_day"}, unknown
    whole_day = await tool(server, "request_time_off", employee_id="41", type="vacation", start="2026-12-21",
                           end="2026-12-21", hours_per_day=24)  # no longer than a full-time day (re-check 6)
    assert whole_day["code"] == "invalid_argument" and whole_day["details"]["scheduled_hours_per_day"] == 8.0, whole_day
    ada = {"hours_per_day": 8}
    preview = await tool(server, "request_time_off", employee_id="41", type="vacation", start="2026-12-21", end="2026-12-25",
                         dry_run=True, **ada)
    assert preview["hours"] == 32 and preview["balance_before"] == 120 and preview["balance_after"] == 88
    assert not any(r["method"] == "PUT" for r in fake.requests)
    made = await tool(server, "request_time_off", employee_id="41", type="Vacation", start="2026-12-21", end="2026-12-25",
                      note="family", idempotency_key="once", **ada)
    again = await tool(server, "request_time_off", employee_id="41", type="Vacation", start="2026-12-21", end="2026-12-25",
                       note="family", idempotency_key="once", **ada)
    assert made["request"]["id"] == again["request"]["id"] and len(fake.time_off) == 1
    sent = next(r for r in fake.requests if r["method"] == "PUT" and r["path"].endswith("/time_off/request"))
    assert sent["json"] == {"status": "requested", "start": "2026-12-21", "end": "2026-12-25", "timeOffTypeId": "78",
                            "amount": 32.0, "notes": [{"from": "employee", "note": "family"}]}
    overlap = await tool(server, "request_time_off", employee_id="41", type="vacation", start="2026-12-22", end="2026-12-22", **ada)
    assert overlap["code"] == "conflict"
    dry = await tool(server, "request_time_off", employee_id="41", type="vacation", start="2026-12-22", end="2026-12-22",
                     dry_run=True, **ada)
    assert dry == overlap, "a dry run answers what the real call would"
    decided = await tool(server, "decide_time_off", request_id=made["request"]["id"], decision="approve", confirm=True)
    assert decided["status"] == "approved"
    status_put = [r for r in fake.requests if r["path"].endswith("/status")][-1]
    assert status_put["json"]["status"] == "approved"
    out = await tool(server, "whos_out", start="2026-12-24", end="2026-12-26")
    assert sorted(a["kind"] for a in out["absences"]) == ["holiday", "time_off"]
    balances = await tool(server, "get_time_off_balances", employee_id="41", as_of="2027-01-01")
    assert {"type": "vacation", "entitlement_hours": None, "booked_hours": 32.0, "taken_hours": 32.0, "pending_hours": 0.0,
            "available_hours": 88.0} in balances["balances"]
    assert {"type": "sick", "entitlement_hours": None, "booked_hours": 8.0, "taken_hours": 8.0, "pending_hours": 0.0,
            "available_hours": 40.0} in balances["balances"]
    listed = await tool(server, "list_time_off_requests", employee_id="41", status="approved")
    assert [r["id"] for r in listed["requests"]] == [made["request"]["id"]]
    assert (await tool(server, "request_time_off", employee_id="41", type="sabbatical", start="2027-01-04", end="2027-01-04"))["code"] == "invalid_argument"

    fake.fail_next.append((503, {"Retry-After": "0.1"}, "{}"))  # answered at once; the hub retries (servers/kit/http.py)
    busy = await tool(server, "whos_out", start="2026-12-24", end="2026-12-26")
    assert (busy["code"], busy["retryable"], busy["retry_after_s"]) == ("unavailable", True, 0.1)
    assert (await tool(server, "whos_out", start="2026-12-24", end="2026-12-26"))["absences"]
    fake.fail_next.extend([(429, {"Retry-After": "90"}, "{}")])
    limited = await tool(server, "list_departments")
    assert limited["code"] == "rate_limited" and limited["retry_after_s"] == 90
    fake.fail_next.append((200, {}, "[{broken"))
    assert (await tool(server, "whos_out", start="2026-12-24", end="2026-12-26"))["code"] == "upstream_error"
    assert (await tool(server, "get_employee", ref="999"))["code"] == "not_found"


@pytest.fixture
def workday(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[FakeWorkday, WorkdayHris, Any]:
    fake = FakeWorkday()
    for name, value in {"WORKDAY_HOST": "http://wd.test", "WORKDAY_TENANT": fake.tenant, "WORKDAY_CLIENT_ID": fake.client_id,
                        "WORKDAY_CLIENT_SECRET": fake.client_secret, "WORKDAY_REFRESH_TOKEN": fake.refresh_token,
                        "MCP_HUB_SECRET_KEY": Fernet.generate_key().decode(), "MCP_HUB_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    backend = workday_backend(fake, tmp_path)
    return fake, backend, create_server(backend, PrivacyPolicy(frozenset({"leave_reason"})))  # balances shown


def workday_backend(fake: FakeWorkday, data_dir: Path) -> WorkdayHris:
    app = fake.app()
    return WorkdayHris.from_env(data_dir, transport=httpx.ASGITransport(app=app), token_transport=httpx2.ASGITransport(app=app))


async def test_workday_refresh_token_grant_paging_and_rotation(workday: tuple[FakeWorkday, WorkdayHris, Any], tmp_path: Path) -> None:
    fake, backend, server = workday
    first = await tool(server, "search_employees", limit=100)
    assert len(first["employees"]) == 100 and first["next_cursor"]
    assert fake.token_requests[0]["grant_type"] == "refresh_token" and fake.token_requests[0]["refresh_token"] == "refresh-0"
    assert fake.requests[-1]["headers"]["authorization"] == f"Bearer {fake.access_token}"
    assert fake.requests[-1]["params"] == {"limit": "100", "offset": "0"}
    second = await tool(server, "search_employees", limit=100, cursor=first["next_cursor"])
    assert len(second["employees"]) == 30 and second["next_cursor"] is None
    assert fake.requests[-1]["params"]["offset"] == "100"
    assert len(fake.token_requests) == 1, "the token is reused until it nears expiry"

    stored = (tmp_path / "tokens" / "workday-acme.bin").read_bytes()
    assert fake.refresh_token.encode() not in stored and fake.access_token.encode() not in stored, "encrypted at rest"

    fake.expire()  # the access token is revoked early: a 401, one refresh, one retry
    worker = await tool(server, "get_employee", ref="w001")
    assert worker["display_name"] == "Person001 Example" and len(fake.token_requests) == 2
    assert fake.token_requests[1]["refresh_token"] != "refresh-0", "the rotated refresh token was used"

    chart = await tool(server, "get_org_chart", ref="w000", depth=1)
    assert len(chart["reports"]) == 100  # directReports, first page
    assert (await tool(server, "get_employee", ref="p5@acme.test"))["id"] == "w005"
    assert (await tool(server, "list_departments"))["departments"] == [{"name": "Engineering", "headcount": 130}]

    preview = await tool(server, "request_time_off", employee_id="w001", type="vacation", start="2027-01-04", end="2027-01-08", dry_run=True)
    assert preview["hours"] == 40 and preview["balance_before"] == 96
    made = await tool(server, "request_time_off", employee_id="w001", type="vacation", start="2027-01-04", end="2027-01-08")
    assert made["request"]["status"] == "requested" and len(fake.requests[-1]["json"]["days"]) == 5
    listed = await tool(server, "list_time_off_requests", employee_id="w001")
    assert listed["requests"][0]["hours"] == 40
    for name, args in (("whos_out", {"start": "2027-01-01", "end": "2027-01-02"}),
                       ("decide_time_off", {"request_id": "tor0", "decision": "approve", "confirm": True}),
                       ("list_time_off_requests", {})):
        refused = await tool(server, name, **args)
        assert refused["code"] == "invalid_argument", name
    balances = await tool(server, "get_time_off_balances", employee_id="w001")
    assert balances["balances"][0] == {"type": "vacation", "entitlement_hours": None, "booked_hours": 24.0, "taken_hours": 24.0,
                                       "pending_hours": 40.0, "available_hours": 56.0}, "the submitted request is pending"


async def test_bamboohr_asks_in_the_types_unit_and_takes_part_days(bamboo: tuple[FakeBamboo, Any]) -> None:
    """A type BambooHR counts in days was sent 8 per day (`amount` is in the type's unit: 8 days a day off)."""
    fake, server = bamboo
    sick = await tool(server, "request_time_off", employee_id="40", type="sick", start="2027-01-05", end="2027-01-06")
    assert sick["hours"] == 16 and sick["hours_per_day"] == 8, sick
    assert fake.requests[-1]["json"]["amount"] == 2.0 and fake.time_off[-1]["amount"] == {"unit": "days", "amount": "2.0"}
    listed = await tool(server, "list_time_off_requests", employee_id="40", status="requested")
    assert [r["hours"] for r in listed["requests"]] == [16.0], "read back as it was asked"
    half = await tool(server, "request_time_off", employee_id="40", type="sick", start="2027-01-08", end="2027-01-08",
                      hours_per_day=4)
    assert half["hours"] == 4 and fake.requests[-1]["json"]["amount"] == 0.5
    hours = await tool(server, "request_time_off", employee_id="40", type="vacation", start="2027-01-11", end="2027-01-12",
                       hours_per_day=4)
    assert hours["hours"] == 8 and fake.requests[-1]["json"]["amount"] == 8.0, "a type in hours: 4 h on each of two days"


async def test_workday_asks_in_the_plans_unit_and_takes_part_days(workday: tuple[FakeWorkday, WorkdayHris, Any]) -> None:
    fake, _, server = workday
    sick = await tool(server, "request_time_off", employee_id="w001", type="sick", start="2027-01-04", end="2027-01-05")
    assert sick["hours"] == 16, sick
    assert [d["dailyQuantity"] for d in fake.requests[-1]["json"]["days"]] == [1.0, 1.0], "Days, not 8 a day"
    half = await tool(server, "request_time_off", employee_id="w001", type="vacation", start="2027-01-07", end="2027-01-08",
                      hours_per_day=4)
    assert half["hours"] == 8 and [d["dailyQuantity"] for d in fake.requests[-1]["json"]["days"]] == [4.0, 4.0]
    listed = await tool(server, "list_time_off_requests", employee_id="w001")
    assert sorted(r["hours"] for r in listed["requests"]) == [8.0, 16.0], "read back in hours (types are withheld here)"
    balances = await tool(server, "get_time_off_balances", employee_id="w001")
    assert {"type": "sick", "entitlement_hours": None, "booked_hours": 8.0, "taken_hours": 8.0, "pending_hours": 16.0,
            "available_hours": 64.0} in balances["balances"]


async def test_workday_refresh_failure_and_bad_types(workday: tuple[FakeWorkday, WorkdayHris, Any]) -> None:
    fake, backend, server = workday
    fake.fail_refresh = True
    denied = await tool(server, "search_employees")
    assert denied["code"] == "unauthorized" and "WORKDAY_REFRESH_TOKEN" in denied["message"]
    assert fake.client_secret not in str(denied) and "refresh-0" not in str(denied)
    fake.fail_refresh = False
    assert len((await tool(server, "search_employees", limit=5))["employees"]) == 5
    original = fake.orgs

    async def bad_orgs(request: Any) -> Any:
        from starlette.responses import JSONResponse

        await fake._begin(request)
        return JSONResponse({"total": 1, "data": [{"descriptor": "Engineering", "workerCount": "many"}]})

    fake.orgs = bad_orgs  # type: ignore[method-assign]
    rebuilt = create_server(workday_backend(fake, backend.tokens.vault.path.parent.parent), PrivacyPolicy(frozenset()))
    garbled = await tool(rebuilt, "list_departments")
    assert garbled["code"] == "upstream_error" and "not a number" in garbled["message"]
    fake.orgs = original  # type: ignore[method-assign]
