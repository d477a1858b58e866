"""Workday refuses time off on days a submitted or approved request already holds, as BambooHR and the
embedded backend do (outside review writes17 #4)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.workday import FakeWorkday
from tests.servers.hris.test_hris_providers import tool, workday  # noqa: F401 — the fixture

pytestmark = pytest.mark.anyio

RANGE = {"employee_id": "w001", "type": "Vacation", "start": "2027-03-01", "end": "2027-03-03"}


async def test_workday_refuses_an_overlapping_request(workday: tuple[FakeWorkday, Any, Any]) -> None:  # noqa: F811
    fake, _, server = workday
    first = await tool(server, "request_time_off", **RANGE)
    assert first["request"]["id"] == "tor0"
    dry = await tool(server, "request_time_off", dry_run=True, **RANGE)
    assert dry["code"] == "conflict" and dry["details"]["overlaps"] == ["tor0"], "a dry run answers what the call would"
    again = await tool(server, "request_time_off", **dict(RANGE, start="2027-03-03", end="2027-03-05"))
    assert again["code"] == "conflict" and "tor0" in again["message"]
    assert len(fake.details) == 1, "one request holds those days"
    asked = [r["params"] for r in fake.requests if r["path"].endswith("/timeOffDetails")]
    assert {"fromDate": "2027-03-03", "toDate": "2027-03-05", "limit": "100", "offset": "0"} in asked, "the range itself is read"
    balances = await tool(server, "get_time_off_balances", employee_id="w001", as_of="2027-02-01")
    assert next(b for b in balances["balances"] if b["type"] == "vacation")["pending_hours"] == 24.0


async def test_workday_books_next_to_or_over_a_denied_request(workday: tuple[FakeWorkday, Any, Any]) -> None:  # noqa: F811
    fake, _, server = workday
    await tool(server, "request_time_off", **RANGE)
    after = await tool(server, "request_time_off", **dict(RANGE, start="2027-03-04", end="2027-03-05"))
    assert after["request"]["id"] == "tor1", "the next days are free"
    fake.details[0]["status"] = {"descriptor": "Denied"}
    over = await tool(server, "request_time_off", **RANGE)
    assert over["request"]["id"] == "tor2", "a denied request holds no days"


async def test_workday_request_by_email_uses_the_worker_id(workday: tuple[FakeWorkday, Any, Any]) -> None:  # noqa: F811
    fake, _, server = workday
    made = await tool(server, "request_time_off", **dict(RANGE, employee_id="p1@acme.test"))
    assert made["request"]["employee_id"] == "w001" and fake.details[0]["worker"] == "w001"
    refused = await tool(server, "request_time_off", **RANGE)
    assert refused["code"] == "conflict", "the same worker's days, however named"
