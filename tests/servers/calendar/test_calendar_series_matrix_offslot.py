"""An occurrence write at a time that is no occurrence of the series (09:30 where the series meets at 09:00) is
`not_found` on every backend and changes nothing — never read as "from the next occurrence on" (Google deleted
the rest of the series and answered scope `all`). Reuses `test_calendar_series_matrix`'s backends. Times read
back are UTC (Berlin is UTC+2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.servers.calendar.test_calendar_series_matrix import BACKENDS, backend
from tests.servers.calendar.test_calendar_series_matrix_moves import _until

pytestmark = pytest.mark.anyio

OFF_SLOTS = {"half an hour late": "2026-06-12T09:30:00+02:00", "a day, not a time": "2026-06-12"}
"""On a day the series meets: half an hour after its occurrence, and the day alone (the series is timed)."""
WRITES: dict[str, tuple[str, dict[str, Any]]] = {
    "delete this_and_following": ("delete_event", {"scope": "this_and_following", "confirm": True}),
    "delete this": ("delete_event", {"scope": "this", "confirm": True}),
    "update this_and_following": ("update_event", {"scope": "this_and_following", "title": "X"}),
    "update this": ("update_event", {"scope": "this", "title": "X"}),
}


@pytest.mark.parametrize("off_slot", list(OFF_SLOTS))
@pytest.mark.parametrize("write", list(WRITES))
@pytest.mark.parametrize("kind", BACKENDS)
async def test_an_occurrence_write_at_a_time_that_is_no_occurrence_is_not_found_and_changes_nothing(
        kind: str, write: str, off_slot: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260615"))
        before = await cal.shown()
        assert len(before) == 6, before
        tool, args = WRITES[write]
        answer = await cal(tool, event_id=t["id"], instance_start=OFF_SLOTS[off_slot], **args)
        assert answer.get("code") == "not_found", answer
        assert await cal.shown() == before


@pytest.mark.parametrize("kind", BACKENDS)
async def test_deleting_this_and_following_from_an_occurrence_deleted_before_ends_the_series_there(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    """The slot is the series' own, though its occurrence is gone: the cut is where the caller says."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260615"))
        at = "2026-06-12T09:00:00+02:00"
        gone = await cal("delete_event", event_id=t["id"], scope="this", instance_start=at, confirm=True)
        assert "code" not in gone, gone
        cut = await cal("delete_event", event_id=t["id"], scope="this_and_following", instance_start=at, confirm=True)
        assert "code" not in cut, cut
        assert await cal.shown() == [("T", "2026-06-10T07:00"), ("T", "2026-06-11T07:00")]
