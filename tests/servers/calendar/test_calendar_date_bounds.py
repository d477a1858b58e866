"""Dates at the ends of the calendar (outside review user34 #1, #2, #8): an event ending in 9999 was accepted and then
made every read of its calendar answer `internal`; times near year 1 or 9999 answered `internal`; a daily series begun
in year 2 cost seconds on every query of its calendar. Now times are read in the years 1900-2199, one event lasts at
most ten years, and an object whose times cannot be expanded (stored before, or by another client) is reported and
counted busy rather than failing the whole read."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers.calendar.test_calendar_series_matrix import backend

pytestmark = pytest.mark.anyio

WEEK = {"start": "2026-06-08T00:00:00Z", "end": "2026-06-15T00:00:00Z"}


async def across(cal, tool: str, **args: object) -> dict:  # type: ignore[no-untyped-def]
    """A tool that takes participants, not one calendar_id (free/busy, slots)."""
    answer = await cal.client.call_tool(tool, {"participants": [cal.cal], **args})
    if answer.is_error:
        return {"code": (answer.structured_content or {}).get("code", "error"),
                "message": " ".join(getattr(c, "text", "") for c in answer.content)}
    return answer.structured_content


@pytest.mark.parametrize(("args", "field"), [
    ({"start": "2027-01-01T09:00:00", "end": "9999-12-31T23:00:00"}, "end"),
    ({"start": "0001-01-01T00:00:00", "end": "0001-01-01T01:00:00"}, "start"),
    ({"start": "2027-01-01", "end": "9999-12-31", "all_day": True}, "end"),
    ({"start": "2027-01-01T00:00:00Z", "end": "2041-01-01T00:00:00Z"}, "end"),  # 14 years: not one event
    ({"start": "0002-01-01T10:00:00", "end": "0002-01-01T11:00:00", "rrule": "FREQ=DAILY"}, "start"),
])
async def test_an_event_outside_the_years_or_longer_than_ten_years_is_refused(args: dict, field: str, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend("embedded", tmp_path, monkeypatch, procs) as cal:
        refused = await cal("create_event", title="X", **args)
        assert refused.get("code") == "invalid_argument" and field in refused["message"], refused
        listed = await cal("list_events", **WEEK)
        assert listed["events"] == [], listed  # nothing was written


@pytest.mark.parametrize(("tool", "args"), [
    ("list_events", {"start": "0001-01-01T00:00:00Z", "end": "0001-02-01T00:00:00Z"}),
    ("find_available_slots", {"window_start": "9999-12-28T00:00:00Z", "window_end": "9999-12-31T00:00:00Z", "duration_minutes": 30}),
    ("get_free_busy", {"start": "9999-12-30T00:00:00Z", "end": "9999-12-31T00:00:00Z"}),
])
async def test_a_range_at_the_ends_of_the_calendar_is_a_clear_refusal(tool: str, args: dict, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend("embedded", tmp_path, monkeypatch, procs) as cal:
        refused = await (cal(tool, **args) if tool == "list_events" else across(cal, tool, **args))
        assert refused.get("code") == "invalid_argument" and "1900" in refused["message"], refused


async def test_an_event_stored_with_times_that_cannot_be_expanded_does_not_break_its_calendar(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend("embedded", tmp_path, monkeypatch, procs) as cal:
        kept = await cal("create_event", title="Standup", start="2026-06-10T09:00:00", end="2026-06-10T09:15:00")
        assert "code" not in kept, kept
        # as written before dates were bounded, or by another client: ends in 9999
        await cal.store._save(cal.cal, "far@x.test", "\r\n".join([
            "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VEVENT", "UID:far@x.test", "DTSTAMP:20260101T000000Z",
            "DTSTART:00020101T000000Z", "DTEND:99991231T230000Z", "SUMMARY:Forever", "END:VEVENT", "END:VCALENDAR", ""]), None)
        listed = await cal("list_events", **WEEK)
        assert "code" not in listed, listed  # was `internal`, for every range
        assert [e["title"] for e in listed["events"]] == ["Standup"] and listed["truncated"] is True, listed
        assert any("cannot be expanded" in note for note in listed.get("notes", [])), listed
        busy = await across(cal, "get_free_busy", **WEEK)
        assert "code" not in busy, busy
        slots = await across(cal, "find_available_slots", window_start=WEEK["start"], window_end=WEEK["end"], duration_minutes=30)
        assert "code" not in slots and slots["slots"] == [], slots  # never offered as free: it may be busy throughout


async def test_a_series_ending_in_9999_is_refused_and_one_stored_so_moves_with_a_clear_answer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    """Outside review r35 #1: UNTIL was not bounded, and moving such a series later answered `internal` (an overflow)."""
    async with backend("embedded", tmp_path, monkeypatch, procs) as cal:
        refused = await cal("create_event", title="D", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                            rrule="FREQ=DAILY;UNTIL=99991231T000000Z")
        assert refused.get("code") == "invalid_argument" and "rrule" in refused["message"] and "9999" in refused["message"], refused
        await cal.store._save(cal.cal, "old@x.test", "\r\n".join([
            "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VEVENT", "UID:old@x.test", "DTSTAMP:20260101T000000Z",
            "DTSTART:20260610T070000Z", "DTEND:20260610T080000Z", "RRULE:FREQ=DAILY;UNTIL=99991231T000000Z", "SUMMARY:Old",
            "END:VEVENT", "END:VCALENDAR", ""]), None)
        moved = await cal("update_event", event_id="old@x.test", start="2026-06-11T09:00:00", end="2026-06-11T10:00:00")
        assert moved.get("code") == "invalid_argument" and "rrule" in moved["message"], moved  # was: internal
        fixed = await cal("update_event", event_id="old@x.test", start="2026-06-11T09:00:00", end="2026-06-11T10:00:00",
                          rrule="FREQ=DAILY;UNTIL=20270101T000000Z")
        assert "code" not in fixed, fixed


async def test_a_series_ending_in_2199_moved_later_reads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              procs: list) -> None:
    """Outside review r36 #4: a move carried its UNTIL into 2200, and the rule sent back as shown was refused."""
    async with backend("embedded", tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="L", start="2199-12-29T09:00:00", end="2199-12-29T10:00:00",
                      rrule="FREQ=DAILY;UNTIL=21991231T235959Z")
        assert "code" not in t, t
        moved = await cal("update_event", event_id=t["id"], start="2199-12-30T09:00:00", end="2199-12-30T10:00:00")
        assert "code" not in moved, moved
        rule = next(line for line in moved["recurrence"] if line.startswith("RRULE:"))
        again = await cal("update_event", event_id=t["id"], rrule=rule, title="L2")
        assert "code" not in again, again
        # r37 #1: a series ending 300 years after its start, moved later, reads back too (the bound is on the span)
        far = await cal("create_event", title="F", start="2199-12-29T09:00:00", end="2199-12-29T10:00:00",
                        rrule="FREQ=YEARLY;UNTIL=24991230T000000Z")  # moved 2 days later: 2500
        assert "code" not in far, far
        later = await cal("update_event", event_id=far["id"], start="2199-12-31T09:00:00", end="2199-12-31T10:00:00")
        assert "code" not in later, later
        back = await cal("update_event", event_id=far["id"], title="F2",
                         rrule=next(line for line in later["recurrence"] if line.startswith("RRULE:")))
        assert "code" not in back, back
