"""A whole-series change of text or attendees on a provider series (Google, Graph): the series' edited occurrences
first, the series last, so the same call repeated after any failure finishes it (outside reviews cal31–cal33).

The series is written with If-Match on the etag it was read at. Someone else's write meanwhile (on Graph, also each
occurrence this change wrote: Exchange moves the series' change key with it) makes that a `conflict`: the series is read
again and, if what this change protects did not move — with `expected_etag` every field of the series, without it
the fields this change sets; an invitee's answer is never a change to the series — written again over what it now
shows, so an answer given meanwhile is kept (outside review r34 #2: the series' own list, built before the occurrences
were written, reset it). A series write whose answer was lost is judged by reading the series back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from servers.calendar.providers.splitting import UNSURE, series_not_written, stale
from servers.kit.errors import DomainError

Raw = dict[str, Any]
WRITES = 3
"""How often the series is written before a series changed again each time counts as refused."""


@dataclass(frozen=True)
class SeriesSide:
    """One provider's part in `change_text`."""

    read: Callable[[], Awaitable[Raw]]
    """The series as it is now."""
    write: Callable[[Raw, str | None], Awaitable[Raw]]
    """PATCHes the series with a body, If-Match on an etag; the series' raw body after it."""
    reach: Callable[[], Awaitable[int]]
    """Writes the change to the series' edited occurrences (`splitting.reach_each`); how many were written."""
    shows: Callable[[Raw, Raw], bool]
    """Whether a raw series already shows every field of a body."""
    moved: Callable[[Raw, Raw], bool]
    """Whether someone else changed, between the series as read first and as read now, what this change protects."""
    over: Callable[[Raw, Raw], Raw]
    """The body to write over the series as read (each kept invitee keeping the answer it shows there)."""
    etag: Callable[[Raw], str | None]
    occurrences_move_etag: bool
    """Each occurrence written changes the series' etag (Graph): the series is read again before its write, and an
    answer after occurrences were written names the etag to repeat with."""


async def change_text(series_id: str, before: Raw, body: Raw, side: SeriesSide) -> Raw:
    """`body` (title, description, location, attendees) on the series read as `before` and on its edited occurrences.
    The series' raw body after it."""
    wrote = await side.reach()
    if not wrote and side.shows(before, side.over(body, before)):  # already so (a repeat after a lost answer): no mail
        return before
    current = before
    if wrote and side.occurrences_move_etag:
        current = await _again(series_id, wrote, before, side)
    for attempt in range(WRITES):
        try:
            return await side.write(side.over(body, current), side.etag(current))
        except DomainError as exc:
            if exc.body.code in UNSURE:  # it may have landed: look (outside review cal33 #2)
                with suppress(DomainError):
                    if side.shows(now := await side.read(), side.over(body, now)):
                        return now
            if exc.body.code != "conflict" or attempt + 1 == WRITES:
                if wrote:
                    raise series_not_written(series_id, wrote, exc, _hint(side, current)) from exc
                raise
        current = await _again(series_id, wrote, before, side)
    raise AssertionError("unreachable")  # every pass returns or raises


async def _again(series_id: str, wrote: int, before: Raw, side: SeriesSide) -> Raw:
    """The series read again; a `conflict` if someone else changed what this change protects since `before`."""
    try:
        now = await side.read()
    except DomainError as exc:
        if wrote:
            raise series_not_written(series_id, wrote, exc) from exc
        raise
    if side.moved(before, now):
        if wrote:
            raise series_not_written(series_id, wrote, stale(series_id), _hint(side, now))
        raise stale(series_id)
    return now


def _hint(side: SeriesSide, current: Raw) -> str | None:
    return side.etag(current) if side.occurrences_move_etag else None
