"""Occurrence-addressed writes at the edges of a series, held to one answer on every backend (outside review
cal29 of the off-slot fix): a cut at a slot deleted earlier that the series already ends before changes
nothing (embedded and CalDAV moved the end later and brought deleted occurrences back); a cut past the end of
a COUNT series succeeds (Graph: not_found); a date for a timed series, or a time for an all-day one, is no slot
— `not_found` everywhere, past the end too (Graph found and wrote an all-day occurrence at local midnight); a
split at a time that is no slot is `not_found` before any split refusal; a split's change reaches the
edited occurrences after it, the addressed one too (embedded and CalDAV left them as they were); a time
just after the last occurrence is past the end, as a week later is; a "this" delete past the end is
`not_found` everywhere, also of an occurrence deleted before a later cut (embedded answered success); the occurrence in a
spring-forward gap can be read, edited and deleted (the Google and Graph fakes made it zero-length). Reuses `test_calendar_series_matrix`'s
backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.servers.calendar.test_calendar_series_matrix import BACKENDS, SPAN, backend
from tests.servers.calendar.test_calendar_series_matrix_moves import _until

pytestmark = pytest.mark.anyio


# cal29 #1: a cut at a deleted slot the series already ends before brought deleted occurrences back (embedded, CalDAV)
@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_cut_at_a_deleted_slot_past_the_series_end_changes_nothing(kind: str, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260615"))
        gone = await cal("delete_event", event_id=t["id"], scope="this", instance_start="2026-06-14T09:00:00+02:00", confirm=True)
        assert "code" not in gone, gone
        cut = await cal("delete_event", event_id=t["id"], scope="this_and_following", instance_start="2026-06-12T09:00:00+02:00",
                        confirm=True)
        assert "code" not in cut, cut
        assert await cal.shown() == [("T", "2026-06-10T07:00"), ("T", "2026-06-11T07:00")]
        again = await cal("delete_event", event_id=t["id"], scope="this_and_following", instance_start="2026-06-14T09:00:00+02:00",
                          confirm=True)
        assert "code" not in again, again
        assert await cal.shown() == [("T", "2026-06-10T07:00"), ("T", "2026-06-11T07:00")], "a delete brought 06-12/06-13 back"


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_retried_cut_arriving_after_an_earlier_cut_changes_nothing(kind: str, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    """COUNT series: delete the last occurrence, cut there, cut earlier; then the first cut is sent again (its
    answer was lost) — the occurrence the earlier cut removed comes back on embedded/CalDAV."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00", rrule="FREQ=DAILY;COUNT=4")
        last = "2026-06-13T09:00:00+02:00"
        assert "code" not in await cal("delete_event", event_id=t["id"], scope="this", instance_start=last, confirm=True)
        assert "code" not in await cal("delete_event", event_id=t["id"], scope="this_and_following", instance_start=last, confirm=True)
        assert "code" not in await cal("delete_event", event_id=t["id"], scope="this_and_following",
                                       instance_start="2026-06-12T09:00:00+02:00", confirm=True)
        assert await cal.shown() == [("T", "2026-06-10T07:00"), ("T", "2026-06-11T07:00")]
        retry = await cal("delete_event", event_id=t["id"], scope="this_and_following", instance_start=last, confirm=True)
        assert "code" not in retry, retry
        assert await cal.shown() == [("T", "2026-06-10T07:00"), ("T", "2026-06-11T07:00")], "the retry brought 06-12 back"


# cal29 #2: a cut past the end of a COUNT series answered not_found on Graph
@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_cut_past_the_end_of_a_count_series_succeeds_and_changes_nothing(kind: str, tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00", rrule="FREQ=DAILY;COUNT=3")
        before = await cal.shown()
        answer = await cal("delete_event", event_id=t["id"], scope="this_and_following", instance_start="2026-06-20T09:00:00+02:00",
                           confirm=True)
        assert answer.get("scope") == "this_and_following", answer
        assert await cal.shown() == before


# cal29 #3: a date past the end of a timed series: not_found on Google, success elsewhere
@pytest.mark.parametrize("day", ["2026-06-13", "2026-06-20"])
@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_date_past_the_end_of_a_timed_series_is_not_found_on_every_backend(kind: str, day: str, tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260612"))
        before = await cal.shown()
        answer = await cal("delete_event", event_id=t["id"], scope="this_and_following", instance_start=day, confirm=True)
        assert answer.get("code") == "not_found", answer
        assert await cal.shown() == before


# cal29 #4: Graph found and wrote an all-day occurrence addressed by a date-time (local midnight)
CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "get": ("get_event", {}),
    "update this": ("update_event", {"scope": "this", "title": "X"}),
    "delete this": ("delete_event", {"scope": "this", "confirm": True}),
    "delete this_and_following": ("delete_event", {"scope": "this_and_following", "confirm": True}),
}


@pytest.mark.parametrize("at", ["2026-06-12T00:00:00", "2026-06-11T22:00:00Z"])
@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("kind", ["embedded", "caldav", "graph"])
async def test_a_date_time_for_an_all_day_series_is_not_found(kind: str, call: str, at: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        d = await cal("create_event", title="D", start="2026-06-10", end="2026-06-11", all_day=True, rrule="FREQ=DAILY;UNTIL=20260615")
        before = await cal.shown()
        assert len(before) == 6, before
        tool, args = CALLS[call]
        answer = await cal(tool, event_id=d["id"], instance_start=at, **args)
        assert answer.get("code") == "not_found", answer
        assert await cal.shown() == before


# cal29 #6: a split at a time that is no slot answered invalid_argument (COUNT, first occurrence) on Google, Graph
CASES = {
    "COUNT series, half an hour late": ("FREQ=DAILY;COUNT=6", "2026-06-12T09:30:00+02:00"),
    "COUNT series, a bare date": ("FREQ=DAILY;COUNT=6", "2026-06-12"),
    "first day, half an hour late": ("FREQ=DAILY;UNTIL", "2026-06-10T09:30:00+02:00"),
    "the day before the series": ("FREQ=DAILY;UNTIL", "2026-06-09T09:00:00+02:00"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_split_at_a_time_that_is_no_slot_is_not_found(kind: str, case: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    rule, at = CASES[case]
    if rule.endswith("UNTIL"):
        rule = "FREQ=DAILY;" + _until(kind, "20260615")
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00", rrule=rule)
        before = await cal.shown()
        answer = await cal("update_event", event_id=t["id"], scope="this_and_following", instance_start=at, title="X")
        assert answer.get("code") == "not_found", answer
        assert await cal.shown() == before


# cal29 #8: a split left the edited occurrences it carried as they were, even the addressed one (embedded, CalDAV)
async def _rows(cal) -> list[tuple[str, str, str | None]]:  # type: ignore[no-untyped-def]
    page = await cal("list_events", limit=100, **SPAN)
    assert "code" not in page, page
    return [(e["title"], e["start"]["utc"][:16], e.get("location")) for e in page["events"]]


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_split_at_a_moved_occurrence_changes_that_occurrence(kind: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260615"))
        moved = await cal("update_event", event_id=t["id"], scope="this", instance_start="2026-06-13T09:00:00+02:00",
                          start="2026-06-11T06:00:00", end="2026-06-11T07:00:00", title="M")
        assert "code" not in moved, moved
        split = await cal("update_event", event_id=t["id"], scope="this_and_following", instance_start="2026-06-13T09:00:00+02:00",
                          location="Room")
        assert "code" not in split, split
        assert await _rows(cal) == [("T", "2026-06-10T07:00", None), ("M", "2026-06-11T04:00", "Room"), ("T", "2026-06-11T07:00", None),
                                    ("T", "2026-06-12T07:00", None), ("T", "2026-06-14T07:00", "Room"), ("T", "2026-06-15T07:00", "Room")]


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_split_changes_the_edited_occurrences_after_it(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260615"))
        await cal("update_event", event_id=t["id"], scope="this", instance_start="2026-06-14T09:00:00+02:00", title="E")
        await cal("update_event", event_id=t["id"], scope="this", instance_start="2026-06-13T09:00:00+02:00",
                  start="2026-06-13T11:00:00", end="2026-06-13T12:00:00")
        split = await cal("update_event", event_id=t["id"], scope="this_and_following", instance_start="2026-06-12T09:00:00+02:00",
                          location="Room")
        assert "code" not in split, split
        assert await _rows(cal) == [("T", "2026-06-10T07:00", None), ("T", "2026-06-11T07:00", None), ("T", "2026-06-12T07:00", "Room"),
                                    ("T", "2026-06-13T09:00", "Room"), ("E", "2026-06-14T07:00", "Room"),
                                    ("T", "2026-06-15T07:00", "Room")]


# cal29 #9: a time just after the last occurrence answered success or not_found by backend
def _outcome(answer: dict) -> str:  # type: ignore[type-arg]
    return str(answer.get("code") or answer.get("scope"))


@pytest.mark.parametrize("at", ["2026-06-12T09:30:00+02:00", "2026-06-12T09:00:00.500000+02:00", "2026-06-12T23:00:00+02:00"])
@pytest.mark.parametrize("kind", BACKENDS)
async def test_an_off_slot_time_after_the_last_occurrence_is_answered_as_one_past_the_end(kind: str, at: str, tmp_path: Path,
                                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                                         procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260612"))
        before = await cal.shown()
        far = await cal("delete_event", event_id=t["id"], scope="this_and_following", instance_start="2026-06-20T09:30:00+02:00",
                        confirm=True)
        near = await cal("delete_event", event_id=t["id"], scope="this_and_following", instance_start=at, confirm=True)
        assert await cal.shown() == before
        assert _outcome(near) == _outcome(far), (near, far)  # today `far` is success on all four


# cal29 #7: a retried "this" delete after a later cut: success on embedded/CalDAV, not_found on Google/Graph
@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_retried_this_delete_after_a_later_cut_is_not_found_on_every_backend(kind: str, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260615"))
        at = "2026-06-14T09:00:00+02:00"
        first = await cal("delete_event", event_id=t["id"], scope="this", instance_start=at, confirm=True)
        assert first.get("scope") == "this", first
        cut = await cal("delete_event", event_id=t["id"], scope="this_and_following", instance_start="2026-06-12T09:00:00+02:00",
                        confirm=True)
        assert "code" not in cut, cut
        retry = await cal("delete_event", event_id=t["id"], scope="this", instance_start=at, confirm=True)
        assert retry.get("code") == "not_found" and "ends before" in retry["message"], retry  # past the end now
        assert await cal.shown() == [("T", "2026-06-10T07:00"), ("T", "2026-06-11T07:00")]


# cal29 #5: the spring-forward occurrence answered 404 on the Google and Graph fakes (zero-length there)
@pytest.mark.parametrize("at", ["2026-03-29T02:30:00", "2026-03-29T01:30:00Z"])
@pytest.mark.parametrize("kind", BACKENDS)
async def test_the_spring_forward_occurrence_can_be_edited_and_deleted(kind: str, at: str, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        s = await cal("create_event", title="S", start="2026-03-27T02:30:00", end="2026-03-27T03:30:00", rrule="FREQ=DAILY;COUNT=5")
        assert ("S", "2026-03-29T01:30") in await cal.shown()
        got = await cal("get_event", event_id=s["id"], instance_start=at)
        assert "code" not in got, got
        renamed = await cal("update_event", event_id=s["id"], scope="this", instance_start=at, title="G")
        assert "code" not in renamed, renamed
        assert ("G", "2026-03-29T01:30") in await cal.shown()
        gone = await cal("delete_event", event_id=s["id"], scope="this", instance_start=at, confirm=True)
        assert gone.get("scope") == "this", gone
        assert [when for _, when in await cal.shown()] == ["2026-03-27T01:30", "2026-03-28T01:30", "2026-03-30T00:30",
                                                            "2026-03-31T00:30"]
