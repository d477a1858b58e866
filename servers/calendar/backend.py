"""The calendar backend protocol, and `IcalBackend`: the whole protocol on top of four storage
primitives over iCalendar objects, shared by the embedded store and CalDAV."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Protocol

from servers.calendar import ical
from servers.calendar.model import Busy, Calendar, Event, EventChanges, EventPage, Interval, NewEvent, Response, Scope
from servers.calendar.timeutil import as_utc
from servers.kit.cursor import decode_cursor, encode_cursor
from servers.kit.errors import DomainError, not_found


class CalendarBackend(Protocol):
    name: str

    async def calendars(self) -> list[Calendar]: ...

    async def calendar(self, calendar_id: str) -> Calendar: ...

    async def list_events(
        self, calendar_id: str, start: datetime, end: datetime, query: str | None, expand: bool, limit: int, cursor: str | None
    ) -> EventPage: ...

    async def get_event(self, calendar_id: str, event_id: str, instance_start: datetime | date | None) -> Event: ...

    async def free_busy(self, participants: list[str], start: datetime, end: datetime) -> list[Busy]: ...

    async def create(self, new: NewEvent) -> Event: ...

    async def update(
        self, calendar_id: str, event_id: str, scope: Scope, instance_start: datetime | date | None,
        changes: EventChanges, expected_etag: str | None,
    ) -> Event: ...

    async def respond(
        self, calendar_id: str, event_id: str, response: Response, instance_start: datetime | date | None
    ) -> Event: ...

    async def delete(self, calendar_id: str, event_id: str, scope: Scope, instance_start: datetime | date | None) -> None: ...


class IcalBackend:
    """Implements `CalendarBackend` given storage of one iCalendar object per series."""

    name = "ical"

    # -- primitives the subclass provides ----------------------------------------------------

    async def calendars(self) -> list[Calendar]:
        raise NotImplementedError

    async def _objects(self, calendar_id: str, start: datetime, end: datetime) -> list[tuple[str, str]]:
        """(iCalendar text, etag) of every object with an occurrence in [start, end)."""
        raise NotImplementedError

    async def _load(self, calendar_id: str, uid: str) -> tuple[str, str]:
        raise NotImplementedError

    async def _save(self, calendar_id: str, uid: str, text: str, expected_etag: str | None) -> str:
        """Store (create or replace); return the new etag. `conflict` if the etag moved on."""
        raise NotImplementedError

    async def _remove(self, calendar_id: str, uid: str) -> None:
        raise NotImplementedError

    # -- the protocol ------------------------------------------------------------------------

    async def calendar(self, calendar_id: str) -> Calendar:
        for found in await self.calendars():
            if found.id == calendar_id:
                return found
        raise not_found("calendar", calendar_id)

    async def _expanded(self, calendar_id: str, start: datetime, end: datetime, tz: str) -> list[Event]:
        events = []
        for text, etag in await self._objects(calendar_id, start, end):
            parsed = ical.load(text)
            series = ical.master(parsed)
            for occurrence in ical.occurrences(parsed, start, end):
                events.append(ical.to_event(occurrence, calendar_id, self.name, tz, etag, series))
        events.sort(key=lambda e: (e.start.utc or as_utc(e.start.date, tz), e.id))  # type: ignore[arg-type]
        return events

    async def list_events(
        self, calendar_id: str, start: datetime, end: datetime, query: str | None, expand: bool, limit: int, cursor: str | None
    ) -> EventPage:
        offset = int(decode_cursor(cursor).get("offset", 0))
        tz = (await self.calendar(calendar_id)).zone
        if expand:
            events = await self._expanded(calendar_id, start, end, tz)
        else:
            events = [ical.to_event(ical.master(ical.load(text)), calendar_id, self.name, tz, etag)
                      for text, etag in await self._objects(calendar_id, start, end)]
        if query:
            needle = query.lower()
            events = [e for e in events if needle in e.title.lower() or needle in e.description.lower()
                      or needle in (e.location or "").lower()]
        events = [e for e in events if e.status != "cancelled"]
        page = events[offset : offset + limit]
        more = offset + limit < len(events)
        return EventPage(events=page, next_cursor=encode_cursor({"offset": offset + limit}) if more else None)

    async def get_event(self, calendar_id: str, event_id: str, instance_start: datetime | date | None) -> Event:
        text, etag = await self._load(calendar_id, event_id)
        tz = (await self.calendar(calendar_id)).zone
        parsed = ical.load(text)
        series = ical.master(parsed)
        if instance_start is None:
            return ical.to_event(series, calendar_id, self.name, tz, etag)
        return ical.to_event(ical._instance(parsed, instance_start), calendar_id, self.name, tz, etag, series)

    async def free_busy(self, participants: list[str], start: datetime, end: datetime) -> list[Busy]:
        zones = {c.id: c.zone for c in await self.calendars()}
        expanded = {calendar_id: await self._expanded(calendar_id, start, end, tz) for calendar_id, tz in zones.items()}
        out = []
        for participant in participants:
            spans: list[Interval] = []
            for calendar_id, events in expanded.items():
                tz = zones[calendar_id]
                for event in events:
                    mine = calendar_id == participant
                    invited = any(a.email.lower() == participant.lower() and a.response != "declined" for a in event.attendees)
                    if event.transparent or event.status == "cancelled" or not (mine or invited):
                        continue
                    s = event.start.utc or as_utc(event.start.date, tz)  # type: ignore[arg-type]
                    e = event.end.utc or as_utc(event.end.date, tz)  # type: ignore[arg-type]
                    spans.append(Interval(start=max(s, start), end=min(e, end)))
            if participant not in zones and not spans:
                out.append(Busy(participant=participant, busy=[], error="no calendar for this participant here"))
                continue
            merged = sorted({(i.start, i.end) for i in spans})
            out.append(Busy(participant=participant, busy=[Interval(start=s, end=e) for s, e in merged]))
        return out

    async def create(self, new: NewEvent) -> Event:
        calendar = await self.calendar(new.calendar_id)
        if calendar.read_only:
            raise DomainError("forbidden", f"calendar {new.calendar_id} is read-only")
        built = ical.build_series(new, organizer=new.calendar_id if "@" in new.calendar_id else None)
        uid = str(ical.master(built)["UID"])
        etag = await self._save(new.calendar_id, uid, built.to_ical().decode(), None)
        return ical.to_event(ical.master(built), new.calendar_id, self.name, calendar.zone, etag)

    async def update(
        self, calendar_id: str, event_id: str, scope: Scope, instance_start: datetime | date | None,
        changes: EventChanges, expected_etag: str | None,
    ) -> Event:
        text, etag = await self._load(calendar_id, event_id)
        if expected_etag is not None and expected_etag != etag:
            raise DomainError("conflict", f"event {event_id} changed since you read it; get it again and reapply your change",
                              details={"current_etag": etag})
        results = ical.change(ical.load(text), scope, instance_start, changes)
        new_etag = await self._save(calendar_id, event_id, results[0].to_ical().decode(), etag)
        tz = (await self.calendar(calendar_id)).zone
        if len(results) == 2:
            split = results[1]
            uid = str(ical.master(split)["UID"])
            split_etag = await self._save(calendar_id, uid, split.to_ical().decode(), None)
            return ical.to_event(ical.master(split), calendar_id, self.name, tz, split_etag)
        updated = results[0]
        if scope == "this" and instance_start is not None and "RRULE" in ical.master(updated):
            return ical.to_event(ical._instance(updated, instance_start), calendar_id, self.name, tz, new_etag, ical.master(updated))
        return ical.to_event(ical.master(updated), calendar_id, self.name, tz, new_etag)

    async def respond(self, calendar_id: str, event_id: str, response: Response, instance_start: datetime | date | None) -> Event:
        text, etag = await self._load(calendar_id, event_id)
        parsed = ical.respond(ical.load(text), calendar_id, response, instance_start)
        new_etag = await self._save(calendar_id, event_id, parsed.to_ical().decode(), etag)
        tz = (await self.calendar(calendar_id)).zone
        target = ical._instance(parsed, instance_start) if instance_start is not None else ical.master(parsed)
        return ical.to_event(target, calendar_id, self.name, tz, new_etag, ical.master(parsed))

    async def delete(self, calendar_id: str, event_id: str, scope: Scope, instance_start: datetime | date | None) -> None:
        text, etag = await self._load(calendar_id, event_id)
        remaining = ical.remove(ical.load(text), scope, instance_start)
        if remaining is None:
            await self._remove(calendar_id, event_id)
        else:
            await self._save(calendar_id, event_id, remaining.to_ical().decode(), etag)


def window(start: datetime, end: datetime) -> None:
    if end <= start:
        raise DomainError("invalid_argument", "end must be after start", details={"field": "end"})
    if end - start > timedelta(days=366):
        raise DomainError("invalid_argument", "ranges are limited to 366 days; page through shorter ones")

