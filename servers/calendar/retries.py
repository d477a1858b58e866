"""A "this and following" edit sent again after its answer was lost (outside review cal28 #5).

The first call split the series: the old one now ends before `instance_start`, so the retry finds no
occurrence there and the backend answers `not_found` with `details.ends_before`. Then the new series the
first call made is looked for where the retry would have put it: a series (not the old one) whose first
occurrence starts at the retry's new start (or the slot) and that has the title, description and location
the retry sets. Exactly one such series is answered as the first call's result; otherwise the `not_found`
stands (its message says the edit probably landed and how to find the new series)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any

from servers.calendar.backend import CalendarBackend
from servers.calendar.model import Event, EventChanges
from servers.calendar.timeutil import as_utc
from servers.kit.errors import DomainError


def _starts_at(event: Event, first: datetime | date) -> bool:
    if isinstance(first, datetime):
        return event.start.utc is not None and as_utc(event.start.utc, "UTC") == as_utc(first, "UTC")
    return event.start.utc is None and event.start.date == first


def _place(location: str | None) -> str | None:
    """A location as it reads back (`Event.location`): blank is none (outside review cal30 #1: a retried split that
    cleared the location with "" no longer found the series it had made)."""
    return location if location and location.strip() else None


async def landed_split(backend: CalendarBackend, calendar_id: str, event_id: str, instance_start: datetime | date,
                       changes: EventChanges, error: DomainError, tz: str) -> Event:
    """The series a landed split made (see the module), or `error` raised again."""
    if error.body.code != "not_found" or not (error.body.details or {}).get("ends_before"):
        raise error
    first = changes.start or instance_start
    begin = as_utc(first, tz)
    page = await backend.list_events(calendar_id, begin - timedelta(minutes=1), begin + timedelta(minutes=1), None, True, 50, None)
    found: dict[str, Event] = {}
    for event in page.events:
        if event.id == event_id or not _starts_at(event, first) or event.id in found:
            continue
        if any(want is not None and have != want for want, have in ((changes.title, event.title),
                                                                    (changes.description, event.description),
                                                                    (_place(changes.location), event.location))) \
                or (changes.location is not None and _place(changes.location) is None and event.location is not None):
            continue
        series = await backend.get_event(calendar_id, event.id, None)
        if series.recurrence and _starts_at(series, first):
            found[event.id] = series
    if len(found) != 1:
        raise error
    return next(iter(found.values()))


async def cut_still_needed(find: Callable[[], Awaitable[Any]], cancelled: Callable[[], Awaitable[bool]]) -> bool:
    """Before a provider series is ended for a "this and following" delete at `instance_start`: True when the
    series has its occurrence there (`find`), or had it and it was deleted on its own (`cancelled`) — the cut is
    to be made; False when the series already ends before it (a retry after a lost answer: answered as the
    first); the `not_found` otherwise — a time that is no occurrence of the series is never read as "from the
    next one on" (Google and Graph cut the series there and answered success)."""
    try:
        await find()
    except DomainError as exc:
        if exc.body.code != "not_found":
            raise
        if (exc.body.details or {}).get("ends_before"):
            return False
        if not await cancelled():
            raise
    return True
