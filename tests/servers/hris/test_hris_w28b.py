"""Outside review w28b #1 (HRIS, embedded): a part-time employee without a recorded schedule cannot have the same
day booked twice — a retried whole day, a whole week asked twice, or a day inside a week already asked for — while
part days on one date still add up to the day their hours give (`balances.most_in_a_day`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from servers.hris.privacy import PrivacyPolicy
from servers.hris.server import create_server
from servers.hris.store import EmbeddedHris

pytestmark = pytest.mark.anyio


async def _server(tmp_path: Path, employment_type: str = "part_time", hours_per_day: float | None = None) -> Any:
    store = EmbeddedHris(tmp_path)
    await store.add_employee(id="p1", employee_number="9001", first_name="Pat", last_name="Part", work_email="pat@example.com",
                             title="Analyst", department="Finance", location="Remote", manager_id=None,
                             employment_type=employment_type, employment_status="active", start_date="2024-01-08",
                             hours_per_day=hours_per_day)
    await store.store.run(lambda db: db.execute("INSERT INTO balances VALUES ('p1', 'vacation', 200.0)"))
    return create_server(store, PrivacyPolicy(frozenset()))


async def _request(client: Client, start: str, end: str, hours: float | None, **more: Any) -> dict[str, Any]:
    args = {"employee_id": "p1", "type": "vacation", "start": start, "end": end, **more}
    if hours is not None:
        args["hours_per_day"] = hours
    result = await client.call_tool("request_time_off", args)
    return result.structured_content or {"code": "?", "message": " ".join(getattr(c, "text", "") for c in result.content)}


@pytest.mark.parametrize("first, second", [
    (("2027-03-02", "2027-03-02"), ("2027-03-02", "2027-03-02")),  # a retried whole day
    (("2027-04-05", "2027-04-09"), ("2027-04-05", "2027-04-09")),  # a whole week twice
    (("2027-04-05", "2027-04-09"), ("2027-04-07", "2027-04-07")),  # a day inside the week already asked for
    (("2027-04-07", "2027-04-07"), ("2027-04-05", "2027-04-09")),  # a week over a day already asked for
], ids=["day_twice", "week_twice", "day_in_week", "week_over_day"])
async def test_the_same_hours_twice_on_a_date_are_a_conflict(tmp_path: Path, first: tuple[str, str],
                                                              second: tuple[str, str]) -> None:
    async with Client(await _server(tmp_path)) as client:
        made = await _request(client, *first, 4)
        assert made.get("request"), made
        again = await _request(client, *second, 4)
        assert again.get("code") == "conflict", again
        assert "the same day asked twice" in again["message"] and "Nothing was booked" in again["message"], again
        assert "the 4h day the requests' hours_per_day give" in again["message"] and again["details"]["day_hours"] == 4
        assert again["details"]["overlaps"] == [made["request"]["id"]]
        listed = (await client.call_tool("list_time_off_requests", {"employee_id": "p1"})).structured_content
        assert [r["id"] for r in listed["requests"]] == [made["request"]["id"]], "only the first was booked"


async def test_a_dry_run_of_the_repeat_is_the_same_conflict(tmp_path: Path) -> None:
    async with Client(await _server(tmp_path)) as client:
        assert (await _request(client, "2027-03-02", "2027-03-02", 4)).get("request")
        preview = await _request(client, "2027-03-02", "2027-03-02", 4, dry_run=True)
        assert preview.get("code") == "conflict", preview


async def test_part_days_add_up_to_the_day_they_give_and_a_cancelled_request_frees_its_hours(tmp_path: Path) -> None:
    async with Client(await _server(tmp_path)) as client:
        a = await _request(client, "2027-03-02", "2027-03-02", 3)  # half of a 6 h day (a part-time day is under 8 h)
        b = await _request(client, "2027-03-02", "2027-03-02", 1)
        c = await _request(client, "2027-03-02", "2027-03-02", 2)
        assert a.get("request") and b.get("request") and c.get("request"), (a, b, c)
        full = await _request(client, "2027-03-02", "2027-03-02", 0.25)
        assert full.get("code") == "conflict" and full["details"]["day_hours"] == 6, full
        await client.call_tool("decide_time_off", {"request_id": a["request"]["id"], "decision": "cancel", "confirm": True})
        assert (await _request(client, "2027-03-02", "2027-03-02", 3)).get("request"), "the cancelled 3 h are free again"


async def test_two_half_days_of_a_part_time_day_are_fine_and_a_third_is_not(tmp_path: Path) -> None:
    async with Client(await _server(tmp_path)) as client:
        assert (await _request(client, "2027-03-02", "2027-03-02", 2)).get("request")
        assert (await _request(client, "2027-03-02", "2027-03-02", 2)).get("request"), "morning and afternoon of a 4 h day"
        third = await _request(client, "2027-03-02", "2027-03-02", 2)
        assert third.get("code") == "conflict" and third["details"]["day_hours"] == 4, third


@pytest.mark.parametrize("employment_type, schedule", [("full_time", None), ("part_time", 6.0)])
async def test_equal_part_days_fit_a_known_day(tmp_path: Path, employment_type: str, schedule: float | None) -> None:
    """With a schedule (or the full-time 8 h day) the day is known: equal part days add up to it."""
    async with Client(await _server(tmp_path, employment_type, schedule)) as client:
        hours = 2 if schedule is None else 3
        assert (await _request(client, "2027-03-02", "2027-03-02", hours)).get("request")
        assert (await _request(client, "2027-03-02", "2027-03-02", hours)).get("request")
