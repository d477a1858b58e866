"""More whole-series scenarios held to one behaviour on every backend (outside review cal28): embedded, CalDAV
(a real Radicale), Google and Graph (their fakes). It reuses `test_calendar_series_matrix`'s backends; kept apart
so neither file grows past a readable size. Times read back are UTC (Europe/Berlin is UTC+2 in April/May)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers.calendar.test_calendar_series_matrix import BACKENDS, backend

pytestmark = pytest.mark.anyio


def _until(kind: str, day: str) -> str:
    """An UNTIL in the form each provider keeps (Graph: a date)."""
    return f"UNTIL={day}" if kind == "graph" else f"UNTIL={day}T235959Z"


@pytest.mark.parametrize("kind", BACKENDS)
async def test_deleting_the_rule_slots_keeps_an_occurrence_moved_outside_them(kind: str, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    """cal28 #1: an occurrence moved past the series' end (or before its start) still exists; the series stays."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        a = await cal("create_event", title="A", start="2026-04-06T09:00:00", end="2026-04-06T10:00:00",
                      rrule="FREQ=WEEKLY;BYDAY=MO;" + _until(kind, "20260413"))
        moved = await cal("update_event", event_id=a["id"], scope="this", instance_start="2026-04-13T09:00:00+02:00",
                          start="2026-04-21T09:00:00", end="2026-04-21T10:00:00", title="A-moved")
        assert "code" not in moved, moved
        gone = await cal("delete_event", event_id=a["id"], scope="this", instance_start="2026-04-06T09:00:00+02:00", confirm=True)
        assert gone.get("scope") == "this", gone
        n = await cal("create_event", title="N", start="2026-04-10T09:00:00", end="2026-04-10T10:00:00", rrule="FREQ=DAILY;COUNT=2")
        early = await cal("update_event", event_id=n["id"], scope="this", instance_start="2026-04-10T09:00:00+02:00",
                          start="2026-04-07T09:00:00", end="2026-04-07T10:00:00")
        assert "code" not in early, early
        gone = await cal("delete_event", event_id=n["id"], scope="this", instance_start="2026-04-11T09:00:00+02:00", confirm=True)
        assert gone.get("scope") == "this", gone
        assert await cal.shown() == [("N", "2026-04-07T07:00"), ("A-moved", "2026-04-21T07:00")]


@pytest.mark.parametrize("kind", BACKENDS)
async def test_stopping_a_series_whose_first_occurrence_moved_earlier_keeps_it(kind: str, tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    """cal28 #2: `rrule=""` makes the event the first occurrence as shown, even one moved before the series' start."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        b = await cal("create_event", title="B", start="2026-05-06T09:00:00", end="2026-05-06T10:00:00", rrule="FREQ=DAILY;COUNT=3")
        await cal("update_event", event_id=b["id"], scope="this", instance_start="2026-05-06T09:00:00+02:00",
                  start="2026-05-04T15:00:00", end="2026-05-04T16:00:00", title="B-first-moved")
        stopped = await cal("update_event", event_id=b["id"], rrule="")
        assert "code" not in stopped, stopped
        assert await cal.shown() == [("B-first-moved", "2026-05-04T13:00")]


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize(("at", "where"), [("09:00", "Pacific/Kiritimati"), ("20:00", "America/Los_Angeles")])
async def test_a_date_ended_series_moved_to_a_zone_of_another_date_keeps_every_occurrence(
        kind: str, at: str, where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    """cal28 #3: Graph reads the range's dates in the series' (new) zone."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        end = f"{int(at[:2]) + 1:02d}:00:00"
        e = await cal("create_event", title="E", start=f"2026-04-06T{at}:00", end=f"2026-04-06T{end}",
                      rrule="FREQ=WEEKLY;BYDAY=MO;" + _until(kind, "20260427"))
        moved = await cal("update_event", event_id=e["id"], zone=where)
        assert "code" not in moved, moved
        assert len(await cal.shown()) == 4, await cal.shown()
        s = await cal("create_event", title="S", start="2026-06-01T09:00:00", end="2026-06-01T10:00:00",
                      rrule="FREQ=WEEKLY;BYDAY=MO;" + _until(kind, "20260629"))
        tail = await cal("update_event", event_id=s["id"], scope="this_and_following", instance_start="2026-06-15T09:00:00+02:00",
                         zone=where)
        assert "code" not in tail, tail
        assert len([t for t, _ in await cal.shown() if t == "S"]) == 5, await cal.shown()


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_whole_series_switches_between_timed_and_all_day(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 procs: list) -> None:
    """cal28 #8: it converts (no edited or deleted occurrences), never `internal`; the UNTIL takes the start's type."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        x = await cal("create_event", title="X", start="2026-04-06T09:00:00", end="2026-04-06T10:00:00",
                      rrule="FREQ=WEEKLY;BYDAY=MO;" + _until(kind, "20260427"))
        made = await cal("update_event", event_id=x["id"], start="2026-04-06", end="2026-04-07")
        assert "code" not in made, made
        assert all("T" not in part.partition("UNTIL=")[2] for part in made["recurrence"]), made["recurrence"]
        if kind == "google":  # the Google fake lists no all-day events
            return
        assert await cal.shown() == [("X", d) for d in ("2026-04-06", "2026-04-13", "2026-04-20", "2026-04-27")]
        a = await cal("create_event", title="A", start="2026-06-01", end="2026-06-02", all_day=True,
                      rrule="FREQ=WEEKLY;BYDAY=MO;UNTIL=20260622")
        timed = await cal("update_event", event_id=a["id"], start="2026-06-01T09:00:00", end="2026-06-01T10:00:00")
        assert "code" not in timed, timed
        assert [w for t, w in await cal.shown() if t == "A"] == [f"2026-06-{d}T07:00" for d in ("01", "08", "15", "22")]


@pytest.mark.parametrize("kind", BACKENDS)
async def test_moving_a_series_keeps_an_occurrence_moved_outside_its_span(kind: str, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    """cal28 #9: an edited occurrence moved after the series' end is carried, not replaced by a plain one."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        v = await cal("create_event", title="V", start="2026-04-06T09:00:00", end="2026-04-06T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260410"))
        await cal("update_event", event_id=v["id"], scope="this", instance_start="2026-04-08T09:00:00+02:00",
                  start="2026-04-14T16:00:00", end="2026-04-14T17:00:00", title="V-late")
        moved = await cal("update_event", event_id=v["id"], start="2026-04-06T07:30:00", end="2026-04-06T08:30:00")
        assert "code" not in moved, moved
        assert await cal.shown() == [("V", "2026-04-06T05:30"), ("V", "2026-04-07T05:30"), ("V", "2026-04-09T05:30"),
                                     ("V", "2026-04-10T05:30"), ("V-late", "2026-04-14T14:00")]
        await cal("delete_event", event_id=v["id"], confirm=True)
        w = await cal("create_event", title="W", start="2026-04-06T09:00:00", end="2026-04-06T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260410"))
        await cal("update_event", event_id=w["id"], scope="this", instance_start="2026-04-09T09:00:00+02:00",
                  start="2026-04-14T16:00:00", end="2026-04-14T17:00:00", title="W-late")
        split = await cal("update_event", event_id=w["id"], scope="this_and_following", instance_start="2026-04-08T09:00:00+02:00",
                          start="2026-04-08T11:00:00", end="2026-04-08T12:00:00")
        assert "code" not in split, split
        assert await cal.shown() == [("W", "2026-04-06T07:00"), ("W", "2026-04-07T07:00"), ("W", "2026-04-08T09:00"),
                                     ("W", "2026-04-10T09:00"), ("W-late", "2026-04-14T14:00")]


@pytest.mark.parametrize("kind", BACKENDS)
async def test_moving_a_series_by_its_period_keeps_each_exception_once(kind: str, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    """cal28 #4: a new slot on an old exception's original start is neither hidden nor re-titled by it."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        d = await cal("create_event", title="D", start="2026-04-06T09:00:00", end="2026-04-06T10:00:00", rrule="FREQ=DAILY;COUNT=3")
        await cal("delete_event", event_id=d["id"], scope="this", instance_start="2026-04-07T09:00:00+02:00", confirm=True)
        moved = await cal("update_event", event_id=d["id"], start="2026-04-07T09:00:00", end="2026-04-07T10:00:00")
        assert "code" not in moved, moved
        assert await cal.shown() == [("D", "2026-04-07T07:00"), ("D", "2026-04-09T07:00")]
        w = await cal("create_event", title="W", start="2026-05-04T09:00:00", end="2026-05-04T10:00:00",
                      rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=4")
        await cal("update_event", event_id=w["id"], scope="this", instance_start="2026-05-11T09:00:00+02:00", title="W-edited")
        moved = await cal("update_event", event_id=w["id"], start="2026-05-11T09:00:00", end="2026-05-11T10:00:00")
        assert "code" not in moved, moved
        assert [s for s in await cal.shown() if s[0] != "D"] == [
            ("W", "2026-05-11T07:00"), ("W-edited", "2026-05-18T07:00"), ("W", "2026-05-25T07:00"), ("W", "2026-06-01T07:00")]


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_new_rule_or_length_keeps_the_deleted_and_edited_occurrences(kind: str, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    """cal28 #7: Exchange drops a series' exceptions when its rule or times change; the connector puts them back."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        g = await cal("create_event", title="G", start="2026-04-06T09:00:00", end="2026-04-06T10:00:00", rrule="FREQ=DAILY;COUNT=4")
        await cal("delete_event", event_id=g["id"], scope="this", instance_start="2026-04-07T09:00:00+02:00", confirm=True)
        await cal("update_event", event_id=g["id"], scope="this", instance_start="2026-04-08T09:00:00+02:00", title="G-edited")
        longer = await cal("update_event", event_id=g["id"], rrule="FREQ=DAILY;" + _until(kind, "20260411"))
        assert "code" not in longer, longer
        assert await cal.shown() == [("G", "2026-04-06T07:00"), ("G-edited", "2026-04-08T07:00"), ("G", "2026-04-09T07:00"),
                                     ("G", "2026-04-10T07:00"), ("G", "2026-04-11T07:00")]
        await cal("delete_event", event_id=g["id"], confirm=True)
        h = await cal("create_event", title="H", start="2026-05-04T09:00:00", end="2026-05-04T10:00:00", rrule="FREQ=DAILY;COUNT=4")
        await cal("delete_event", event_id=h["id"], scope="this", instance_start="2026-05-05T09:00:00+02:00", confirm=True)
        lengthened = await cal("update_event", event_id=h["id"], end="2026-05-04T11:00:00")
        assert "code" not in lengthened, lengthened
        assert await cal.days() == ["2026-05-04", "2026-05-06", "2026-05-07"]
        await cal("delete_event", event_id=h["id"], confirm=True)
        y = await cal("create_event", title="Y", start="2026-05-04T09:00:00", end="2026-05-04T10:00:00",
                      rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=4")
        await cal("delete_event", event_id=y["id"], scope="this", instance_start="2026-05-11T09:00:00+02:00", confirm=True)
        ruled = await cal("update_event", event_id=y["id"], rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=5", start="2026-05-04T10:00:00",
                          end="2026-05-04T11:00:00")
        assert "code" not in ruled, ruled
        assert await cal.shown() == [("Y", f"2026-{d}T08:00") for d in ("05-04", "05-18", "05-25", "06-01")]


@pytest.mark.parametrize("kind", BACKENDS)
async def test_deleting_this_and_following_ends_a_count_series(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               procs: list) -> None:
    """cal28 #6: a delete only ends the series (no split is needed), whatever limits it."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        c = await cal("create_event", title="C", start="2026-04-06T09:00:00", end="2026-04-06T10:00:00", rrule="FREQ=DAILY;COUNT=5")
        gone = await cal("delete_event", event_id=c["id"], scope="this_and_following", instance_start="2026-04-08T09:00:00+02:00",
                         confirm=True)
        assert gone.get("scope") == "this_and_following", gone
        assert await cal.days() == ["2026-04-06", "2026-04-07"]


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_retried_split_answers_the_series_it_made(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         procs: list) -> None:
    """cal28 #5: the same "this and following" edit sent again answers the new series the first call made; when
    that one is gone, the not_found says the series now ends before that time and that the edit had landed."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        c = await cal("create_event", title="C", start="2026-06-01T09:00:00", end="2026-06-01T10:00:00",
                      rrule="FREQ=WEEKLY;BYDAY=MO;" + _until(kind, "20260629"))
        args = {"event_id": c["id"], "scope": "this_and_following", "instance_start": "2026-06-15T09:00:00+02:00", "title": "C2"}
        first = await cal("update_event", **args)
        assert "code" not in first, first
        again = await cal("update_event", **args)
        assert again.get("id") == first["id"], again
        assert [t for t, _ in await cal.shown()] == ["C", "C", "C2", "C2", "C2"]
        gone = await cal("delete_event", event_id=first["id"], confirm=True)
        assert "code" not in gone, gone
        late = await cal("update_event", **args)
        assert late.get("code") == "not_found" and "now ends before" in late["message"] and "landed" in late["message"], late
        never = await cal("update_event", event_id=c["id"], scope="this", instance_start="2026-06-02T09:00:00+02:00", title="X")
        assert never.get("code") == "not_found" and "landed" not in never["message"], never


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_monthly_by_weekday_series_moves_with_its_deleted_occurrence(kind: str, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    """cal28 fakes note: a relative monthly series (second Tuesday; Graph `relativeMonthly`) on every backend."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        m = await cal("create_event", title="M", start="2026-04-14T09:00:00", end="2026-04-14T10:00:00",
                      rrule="FREQ=MONTHLY;BYDAY=2TU;COUNT=3")
        assert await cal.days() == ["2026-04-14", "2026-05-12", "2026-06-09"]
        await cal("delete_event", event_id=m["id"], scope="this", instance_start="2026-05-12T09:00:00+02:00", confirm=True)
        moved = await cal("update_event", event_id=m["id"], start="2026-04-14T10:00:00", end="2026-04-14T11:00:00")
        assert "code" not in moved, moved
        assert await cal.shown() == [("M", "2026-04-14T08:00"), ("M", "2026-06-09T08:00")]
