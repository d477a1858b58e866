"""Microsoft Graph's part in a whole-series change of text or attendees (`GraphCalendar.update`, scope "all", no new
times or rule; the protocol is `series_text.change_text`): the series' edited occurrences first
(`graph_moves.reach_occurrences`), the series last. Each occurrence written changes the series' change key (as
Exchange does), so the series is read again before its own write and written with that etag."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from servers.calendar.providers.graph_moves import reach_occurrences
from servers.calendar.providers.graph_series import address, keep_entries
from servers.calendar.providers.series_text import SeriesSide

if TYPE_CHECKING:
    from servers.calendar.providers.graph import GraphCalendar

SERIES_FIELDS = ("subject", "body", "location", "attendees", "start", "end", "recurrence", "isAllDay")
"""What `expected_etag` protects, compared before and after the occurrences were written (not the change key)."""


def _people(attendees: list[dict[str, Any]] | None) -> list[tuple[str, str]]:
    """Attendees as compared: address (without case) and type — not their answers (an invitee's RSVP meanwhile is
    nobody's change to the series: outside review cal33 #4)."""
    return sorted((address(a), a.get("type") or "required") for a in attendees or [])


def _same(key: str, shown: Any, asked: Any) -> bool:
    if key == "attendees":
        return _people(shown) == _people(asked)
    if isinstance(asked, dict) and isinstance(shown, dict):  # Graph answers more keys than were sent
        return all(shown.get(k) == v for k, v in asked.items())
    return bool(shown == asked)


def shows(raw: dict[str, Any], body: dict[str, Any]) -> bool:
    """Whether the event already shows every field of a PATCH `body`."""
    return all(_same(key, raw.get(key), value) for key, value in body.items())


def text_side(cal: GraphCalendar, event_id: str, before: dict[str, Any], body: dict[str, Any], expected_etag: str | None,
              tz: str, write: Callable[[dict[str, Any], str | None], Awaitable[dict[str, Any]]]) -> SeriesSide:
    """Graph's part in `series_text.change_text`: `write(body, etag)` writes the series itself."""

    async def read() -> dict[str, Any]:
        found: dict[str, Any] = await cal.http.json("GET", cal._events(event_id), headers=cal._prefer(tz))
        return found

    async def reach() -> int:
        return await reach_occurrences(cal, event_id, before, before, body, tz, series_written=False)

    def moved(first: dict[str, Any], now: dict[str, Any]) -> bool:
        return any(not _same(key, now.get(key), first.get(key)) for key in (SERIES_FIELDS if expected_etag else tuple(body)))

    def over(asked: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
        if "attendees" not in asked:
            return asked
        return {**asked, "attendees": keep_entries(asked["attendees"], now.get("attendees"))}

    return SeriesSide(read=read, write=write, reach=reach, shows=shows, moved=moved, over=over,
                      etag=lambda raw: raw.get("@odata.etag"), occurrences_move_etag=True)
