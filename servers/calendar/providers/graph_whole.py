"""Microsoft Graph: a whole-series change of text or attendees (`GraphCalendar.update`, scope "all", no new times
or rule): the series' edited occurrences first (`graph_moves.reach_occurrences`), the series last, so the same call
repeated after any failure finishes it (outside reviews cal31–cal33). Each occurrence written changes the series'
change key (as Exchange does), so the series is read again before its own write and written with that etag: a change
someone else made meanwhile is a `conflict` (to what `expected_etag` protected, or to the fields this change sets),
never overwritten. A write whose answer was lost is judged by reading the series back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from servers.calendar.providers.graph_moves import reach_occurrences
from servers.calendar.providers.graph_series import address
from servers.calendar.providers.splitting import UNSURE, series_not_written, stale
from servers.kit.errors import DomainError

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


async def change_text(cal: GraphCalendar, event_id: str, before: dict[str, Any], body: dict[str, Any],
                      expected_etag: str | None, tz: str,
                      write: Callable[[str | None], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """The change (`body`) to the series read as `before`; `write(etag)` writes the series itself. Its raw body after."""

    async def read() -> dict[str, Any]:
        found: dict[str, Any] = await cal.http.json("GET", cal._events(event_id), headers=cal._prefer(tz))
        return found

    wrote = await reach_occurrences(cal, event_id, before, before, body, tz, series_written=False)
    if not wrote and shows(before, body):  # already so (a repeat after a lost answer): nothing written, no mail
        return before
    etag = expected_etag
    if wrote:
        try:
            now = await read()
        except DomainError as exc:
            raise series_not_written(event_id, wrote, exc) from exc
        etag = now.get("@odata.etag")
        if any(not _same(key, now.get(key), before.get(key)) for key in (SERIES_FIELDS if expected_etag else tuple(body))):
            raise series_not_written(event_id, wrote, stale(event_id), etag)  # someone else wrote it meanwhile
    try:
        return await write(etag)
    except DomainError as exc:
        if exc.body.code in UNSURE:
            with suppress(DomainError):
                if shows(now := await read(), body):  # it landed: the state asked for (outside review cal33 #2)
                    return now
        if wrote:
            raise series_not_written(event_id, wrote, exc, etag) from exc
        raise
