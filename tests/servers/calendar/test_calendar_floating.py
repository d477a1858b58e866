"""A series stored with floating times (DTSTART without TZID or Z, as RFC 5545 allows and other CalDAV clients
write): its occurrences are listed in the calendar's zone, and each must be reachable by the instance_start it is
listed with, or by the same instant with an offset (outside review r37 #6: every lookup read the zoneless time in the
*machine's* zone, so on a machine in UTC and a calendar in Europe/Berlin no occurrence could be read, changed,
answered or deleted). Once the hub writes such a series it is stored in the calendar's zone, where the listing
showed it (review r39b #3: a whole-series move read its times in the machine's zone and lost its last occurrence
west of UTC, writing a floating UNTIL beside a zoned DTSTART)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.calendar.test_calendar_series_matrix import backend

pytestmark = pytest.mark.anyio

FLOATING = "\r\n".join([
    "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//other client//EN", "BEGIN:VEVENT", "UID:float-1", "DTSTAMP:20260101T000000Z",
    "DTSTART:20260610T090000", "DTEND:20260610T100000", "RRULE:FREQ=DAILY;COUNT=5", "SUMMARY:F",
    "ORGANIZER:mailto:boss@x.test", "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{me}",
    "END:VEVENT", "END:VCALENDAR", ""])
JUNE = {"start": "2026-06-01T00:00:00Z", "end": "2026-07-01T00:00:00Z"}


@pytest.fixture
def machine_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process in a zone far from the calendar's (Europe/Berlin), whatever the machine's own is."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def _titles(cal) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(instance_start as a wall-clock time in the calendar's zone, title) of each occurrence in June."""
    page = await cal("list_events", **JUNE)
    return [(e["instance_start"][:19], e["title"]) for e in page["events"]]


@pytest.mark.parametrize("kind", ["embedded", "caldav"])
@pytest.mark.parametrize("form", ["as listed", "with the calendar's offset", "in UTC"])
async def test_each_occurrence_of_a_floating_series_is_reachable(kind: str, form: str, tmp_path: Path, machine_zone: None,
                                                                 monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        await cal.store._save(cal.cal, "float-1", FLOATING.format(me=cal.cal), None)  # its owner invited
        listed = await _titles(cal)
        assert [start for start, _ in listed] == [f"2026-06-{d}T09:00:00" for d in (10, 11, 12, 13, 14)], listed

        def named(day: int) -> str:
            return {"as listed": f"2026-06-{day}T09:00:00", "with the calendar's offset": f"2026-06-{day}T09:00:00+02:00",
                    "in UTC": f"2026-06-{day}T07:00:00Z"}[form]

        got = await cal("get_event", event_id="float-1", instance_start=named(12))
        assert "code" not in got and got["title"] == "F" and got["start"]["local"].startswith("2026-06-12T09:00"), got
        changed = await cal("update_event", event_id="float-1", scope="this", instance_start=named(12), title="F2")
        assert "code" not in changed and changed["title"] == "F2", changed
        answered = await cal("respond_to_event", event_id="float-1", instance_start=named(13), response="accepted")
        assert "code" not in answered, answered
        gone = await cal("delete_event", event_id="float-1", scope="this", instance_start=named(14), confirm=True)
        assert "code" not in gone, gone

        assert await _titles(cal) == [("2026-06-10T09:00:00", "F"), ("2026-06-11T09:00:00", "F"),
                                      ("2026-06-12T09:00:00", "F2"), ("2026-06-13T09:00:00", "F")]
        text = (await cal.store._own(cal.cal, "float-1"))[0]
        lines = text.replace("\r\n", "\n").replace("\n ", "").splitlines()
        # written back in the calendar's zone: the series, its override and its exclusion alike
        assert "DTSTART;TZID=Europe/Berlin:20260610T090000" in lines, lines
        assert "RECURRENCE-ID;TZID=Europe/Berlin:20260612T090000" in lines, lines
        assert "EXDATE;TZID=Europe/Berlin:20260614T090000" in lines, lines


@pytest.mark.parametrize("kind", ["embedded", "caldav"])
async def test_a_floating_series_split_at_an_occurrence_keeps_every_slot(kind: str, tmp_path: Path, machine_zone: None,
                                                                       monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        await cal.store._save(cal.cal, "float-1", FLOATING.format(me=cal.cal), None)
        split = await cal("update_event", event_id="float-1", scope="this_and_following",
                          instance_start="2026-06-12T07:00:00Z", title="G")
        assert "code" not in split, split
        assert await _titles(cal) == [("2026-06-10T09:00:00", "F"), ("2026-06-11T09:00:00", "F"), ("2026-06-12T09:00:00", "G"),
                                      ("2026-06-13T09:00:00", "G"), ("2026-06-14T09:00:00", "G")]


@pytest.mark.parametrize("kind", ["embedded", "caldav"])
async def test_a_floating_series_moved_whole_keeps_every_occurrence(kind: str, tmp_path: Path, machine_zone: None,
                                                                     monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    """Review r39b #3: an UNTIL series moved an hour later lost its last occurrence with the process west of UTC."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        text = FLOATING.format(me=cal.cal).replace("RRULE:FREQ=DAILY;COUNT=5", "RRULE:FREQ=DAILY;UNTIL=20260614T090000")
        await cal.store._save(cal.cal, "float-1", text, None)
        moved = await cal("update_event", event_id="float-1", start="2026-06-10T10:00:00", end="2026-06-10T11:00:00")
        assert "code" not in moved, moved
        assert await _titles(cal) == [(f"2026-06-{d}T10:00:00", "F") for d in (10, 11, 12, 13, 14)]
        stored = (await cal.store._own(cal.cal, "float-1"))[0].replace("\r\n", "\n").replace("\n ", "")
        assert "UNTIL=20260614T080000Z" in stored, stored  # 10:00 in Berlin, in UTC beside the zoned start
