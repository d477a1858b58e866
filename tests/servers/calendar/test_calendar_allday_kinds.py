"""All-day series on every backend, and occurrences that change kind. The Google fake had no all-day events, so
Google's all-day paths were never driven; on Graph, one occurrence of a timed series made all-day (an offsite day
in a weekly meeting) was listed with a date as its instance_start and could then be reached neither by that date
nor by its slot's time — read, changed, answered or deleted. An occurrence keeps the kind of name its series gives
its slots, whatever its own kind became."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers.calendar.test_calendar_series_matrix import BACKENDS, backend

pytestmark = pytest.mark.anyio

JUNE = {"start": "2026-06-01T00:00:00Z", "end": "2026-07-01T00:00:00Z", "limit": 100}


async def _shown(cal) -> list[tuple[str, str, str, str | None]]:  # type: ignore[no-untyped-def]
    page = await cal("list_events", **JUNE)
    assert "code" not in page, page
    return [(e["title"], e["start"]["date"] or e["start"]["local"][:16], e["end"]["date"] or e["end"]["local"][:16],
             e["instance_start"] and e["instance_start"][:16]) for e in page["events"]]


@pytest.mark.parametrize("kind", BACKENDS)
async def test_an_all_day_series_is_edited_like_a_timed_one(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        s = await cal("create_event", title="S", start="2026-06-20", end="2026-06-21", all_day=True, rrule="FREQ=DAILY;UNTIL=20260623")
        assert "code" not in s, s
        got = await cal("get_event", event_id=s["id"], instance_start="2026-06-21")
        assert "code" not in got and got["start"]["date"] == "2026-06-21", got
        for args in ({"instance_start": "2026-06-21", "title": "S2"},
                     {"instance_start": "2026-06-22", "start": "2026-06-25", "end": "2026-06-26"}):
            changed = await cal("update_event", event_id=s["id"], scope="this", **args)
            assert "code" not in changed, changed
        gone = await cal("delete_event", event_id=s["id"], scope="this", instance_start="2026-06-23", confirm=True)
        assert "code" not in gone, gone
        assert [row[:3] for row in await _shown(cal)] == [("S", "2026-06-20", "2026-06-21"), ("S2", "2026-06-21", "2026-06-22"),
                                                          ("S", "2026-06-25", "2026-06-26")]
        renamed = await cal("update_event", event_id=s["id"], title="SS")
        assert "code" not in renamed, renamed
        moved = await cal("update_event", event_id=s["id"], start="2026-06-19", end="2026-06-20")
        assert "code" not in moved, moved
        assert [row[:3] for row in await _shown(cal)] == [("SS", "2026-06-19", "2026-06-20"), ("S2", "2026-06-20", "2026-06-21"),
                                                          ("SS", "2026-06-25", "2026-06-26")]
        split = await cal("update_event", event_id=s["id"], scope="this_and_following", instance_start="2026-06-20", title="T")
        assert "code" not in split, split
        assert [row[:3] for row in await _shown(cal)] == [("SS", "2026-06-19", "2026-06-20"), ("T", "2026-06-20", "2026-06-21"),
                                                          ("T", "2026-06-25", "2026-06-26")]


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize("hour", ["09", "00"])  # a series at midnight: its slots are days' starts (review r39b #6)
async def test_an_occurrence_made_all_day_keeps_its_slot_name(kind: str, hour: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    rule = "FREQ=DAILY;COUNT=3"
    slot, later = f"2026-06-11T{hour}:00:00+02:00", f"{int(hour) + 1:02d}"
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        m = await cal("create_event", title="M", start=f"2026-06-10T{hour}:00:00", end=f"2026-06-10T{later}:00:00", rrule=rule)
        day = await cal("update_event", event_id=m["id"], scope="this", instance_start=slot, start="2026-06-11", end="2026-06-12")
        assert "code" not in day and day["all_day"] and day["instance_start"][:16] == f"2026-06-11T{hour}:00", day
        assert await _shown(cal) == [("M", f"2026-06-10T{hour}:00", f"2026-06-10T{later}:00", f"2026-06-10T{hour}:00"),
                                     ("M", "2026-06-11", "2026-06-12", f"2026-06-11T{hour}:00"),
                                     ("M", f"2026-06-12T{hour}:00", f"2026-06-12T{later}:00", f"2026-06-12T{hour}:00")]
        got = await cal("get_event", event_id=m["id"], instance_start=slot)
        assert "code" not in got and got["start"]["date"] == "2026-06-11", got
        renamed = await cal("update_event", event_id=m["id"], scope="this", instance_start=slot, title="Offsite")
        assert "code" not in renamed and renamed["title"] == "Offsite", renamed
        refused = await cal("get_event", event_id=m["id"], instance_start="2026-06-11")  # a date names no slot of a timed series
        assert refused.get("code") == "not_found", refused
        gone = await cal("delete_event", event_id=m["id"], scope="this", instance_start=slot, confirm=True)
        assert "code" not in gone, gone
        assert [row[0] for row in await _shown(cal)] == ["M", "M"]


@pytest.mark.parametrize("kind", BACKENDS)
async def test_an_occurrence_of_an_all_day_series_made_timed_keeps_its_day_name(kind: str, tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        s = await cal("create_event", title="D", start="2026-06-10", end="2026-06-11", all_day=True, rrule="FREQ=DAILY;UNTIL=20260612")
        timed = await cal("update_event", event_id=s["id"], scope="this", instance_start="2026-06-11",
                          start="2026-06-11T10:00:00", end="2026-06-11T11:00:00")
        assert "code" not in timed and not timed["all_day"], timed
        shown = await _shown(cal)
        assert [(row[0], row[3]) for row in shown] == [("D", "2026-06-10"), ("D", "2026-06-11"), ("D", "2026-06-12")], shown
        renamed = await cal("update_event", event_id=s["id"], scope="this", instance_start="2026-06-11", title="Call")
        assert "code" not in renamed and renamed["title"] == "Call" and renamed["start"]["local"].startswith("2026-06-11T10:00"), renamed
