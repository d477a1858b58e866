"""Outside review writes28 #1 (HRIS, embedded): part days on one date are checked against the employee's day —
their schedule, else (w28b #1) the day the requests' own hours_per_day give — never the new request's hours alone.
A part-time employee without a recorded schedule can book a morning and an afternoon on the same date."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from servers.hris.privacy import PrivacyPolicy
from servers.hris.server import create_server
from servers.hris.store import EmbeddedHris

pytestmark = pytest.mark.anyio
DAY = "2027-03-02"  # a Tuesday


async def _server(tmp_path: Path, hours_per_day: float | None) -> Any:
    store = EmbeddedHris(tmp_path)
    await store.add_employee(id="p1", employee_number="9001", first_name="Pat", last_name="Part", work_email="pat@example.com",
                             title="Analyst", department="Finance", location="Remote", manager_id=None,
                             employment_type="part_time", employment_status="active", start_date="2024-01-08",
                             hours_per_day=hours_per_day)
    await store.store.run(lambda db: db.execute("INSERT INTO balances VALUES ('p1', 'vacation', 200.0)"))
    return create_server(store, PrivacyPolicy(frozenset()))


async def _request(client: Client, hours: float) -> dict[str, Any]:
    result = await client.call_tool("request_time_off", {"employee_id": "p1", "type": "vacation", "start": DAY, "end": DAY,
                                                         "hours_per_day": hours})
    return result.structured_content or {"code": "?", "message": " ".join(getattr(c, "text", "") for c in result.content)}


async def test_part_time_without_a_schedule_books_two_part_days_on_one_date(tmp_path: Path) -> None:
    async with Client(await _server(tmp_path, None)) as client:
        morning, afternoon = await _request(client, 2), await _request(client, 2)
        assert morning.get("request") and afternoon.get("request"), (morning, afternoon)
        assert (morning["request"]["hours"], afternoon["request"]["hours"]) == (2, 2)
        evening = await _request(client, 4.5)  # 2 + 2 + 4.5 > the 4.5 h day it gives (w28b #1: balances.most_in_a_day)
        assert evening.get("code") == "conflict", evening
        assert "the 4.5h day the requests' hours_per_day give" in evening["message"] and "no daily schedule" in evening["message"], evening
        assert "2h working day" not in evening["message"]
        assert (await _request(client, 4)).get("code") == "conflict", "two half days of a 4 h day, then the whole day again"
        assert (await _request(client, 1)).get("code") == "conflict", "2 + 2 fill the 4 h day two half days give"


async def test_a_recorded_schedule_is_the_day_part_days_add_up_to(tmp_path: Path) -> None:
    async with Client(await _server(tmp_path, 6)) as client:
        assert (await _request(client, 3)).get("request") and (await _request(client, 3)).get("request")
        over = await _request(client, 1)
        assert over.get("code") == "conflict" and "p1's 6h working day" in over["message"], over
