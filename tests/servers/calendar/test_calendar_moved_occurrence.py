"""An occurrence moved days away from its slot is still found by its `instance_start` (its slot, as
`list_events` reports it) on every backend (outside review cal28c #1: Google and Graph looked for it within a
day or two of the slot, by its actual time, and answered `not_found` to get, respond, update and delete)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers.calendar.test_calendar_series_matrix import BACKENDS, backend

pytestmark = pytest.mark.anyio
SLOT = "2026-04-07T09:00:00+02:00"


@pytest.mark.parametrize("kind", BACKENDS)
async def test_an_occurrence_moved_days_away_is_read_answered_edited_and_deleted_by_its_slot(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        made = await cal("create_event", title="A", start="2026-04-06T09:00:00", end="2026-04-06T10:00:00",
                         rrule="FREQ=DAILY;COUNT=6")
        moved = await cal("update_event", event_id=made["id"], scope="this", instance_start=SLOT, title="A-moved",
                          start="2026-04-10T14:00:00", end="2026-04-10T15:00:00")
        assert "code" not in moved, moved
        assert ("A-moved", "2026-04-10T12:00") in await cal.shown()
        got = await cal("get_event", event_id=made["id"], instance_start=SLOT)
        assert "code" not in got and got["title"] == "A-moved", got
        renamed = await cal("update_event", event_id=made["id"], scope="this", instance_start=SLOT, title="A-renamed")
        assert "code" not in renamed, renamed
        assert ("A-renamed", "2026-04-10T12:00") in await cal.shown(), "edited where it was moved"
        gone = await cal("delete_event", event_id=made["id"], scope="this", instance_start=SLOT, confirm=True)
        assert "code" not in gone, gone
        shown = await cal.shown()
        assert [title for title, _ in shown] == ["A"] * 5, shown  # that one gone, the series' other five kept
