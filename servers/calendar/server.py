"""The calendar tool surface over `CalendarBackend`."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

from mcp.server import MCPServer
from pydantic import Field

from hub.datadir import default_data_dir
from servers.calendar.backend import CalendarBackend, window
from servers.calendar.model import (
    Attendee,
    Busy,
    CalendarList,
    Deleted,
    Event,
    EventChanges,
    EventPage,
    FreeBusy,
    NewEvent,
    Now,
    Response,
    Scope,
    Slot,
    Slots,
    WorkingHours,
)
from servers.calendar.slots import find_slots
from servers.calendar.timeutil import as_utc, event_time, parse_date, parse_instant
from servers.calendar.timeutil import zone as tz_zone
from servers.kit.errors import DomainError
from servers.kit.idempotency import run_once
from servers.kit.store import Store
from servers.kit.tools import domain_tool

BACKENDS = ("embedded", "caldav", "google", "graph")
Limit = Annotated[int, Field(ge=1, le=500)]
When = Annotated[str, Field(description="ISO 8601; without an offset it is read in the calendar's (or `zone`'s) time zone.")]
Instance = Annotated[str | None, Field(description="An occurrence's instance_start, to act on that occurrence.")]


def make_backend(name: str | None = None, data_dir: Path | None = None) -> CalendarBackend:
    name = (name or os.environ.get("CALENDAR_BACKEND") or "embedded").lower()
    if name == "embedded":
        from servers.calendar.store import EmbeddedCalendar

        return EmbeddedCalendar(data_dir or default_data_dir())
    if name == "caldav":
        from servers.calendar.providers.caldav import CalDavCalendar

        return CalDavCalendar.from_env()
    if name == "google":
        from servers.calendar.providers.google import GoogleCalendar

        return GoogleCalendar.from_env(data_dir)
    if name == "graph":
        from servers.calendar.providers.graph import GraphCalendar

        return GraphCalendar.from_env(data_dir)
    raise ValueError(f"unknown calendar backend {name!r}; choose one of {', '.join(BACKENDS)}")


def _instance(value: str | None, tz: str) -> datetime | date | None:
    if value is None:
        return None
    return parse_date(value, "instance_start") if len(value) == 10 else parse_instant(value, tz, "instance_start")


def create_server(backend: CalendarBackend | None = None) -> MCPServer:
    backend = backend or make_backend()
    store = getattr(backend, "store", None) or Store(default_data_dir() / "calendar-idempotency.sqlite", [])
    mcp = MCPServer("calendar", instructions="Calendars with correct time zones. Call now first to anchor 'today' and 'tomorrow'.")

    @domain_tool(mcp, read_only=True, open_world=False)
    async def now(zone: str = "UTC") -> Now:
        """The current time in a zone: the anchor for 'today', 'tomorrow', 'next Monday'."""
        current = datetime.now(UTC).astimezone(tz_zone(zone))
        return Now(utc=current.astimezone(UTC), local=current, zone=zone, weekday=current.strftime("%A"), date=current.date())

    @domain_tool(mcp, read_only=True)
    async def list_calendars() -> CalendarList:
        """Calendars this connection can see, with their time zones."""
        return CalendarList(calendars=await backend.calendars())

    @domain_tool(mcp, read_only=True)
    async def list_events(
        calendar_id: str,
        start: When,
        end: When,
        zone: str | None = None,
        query: str | None = None,
        expand: Annotated[bool, Field(description="Recurring series as separate occurrences (default).")] = True,
        limit: Limit = 100,
        cursor: str | None = None,
    ) -> EventPage:
        """Events overlapping a time range, earliest first."""
        tz = zone or (await backend.calendar(calendar_id)).zone
        start_at, end_at = parse_instant(start, tz, "start"), parse_instant(end, tz, "end")
        window(start_at, end_at)
        return await backend.list_events(calendar_id, start_at, end_at, query, expand, limit, cursor)

    @domain_tool(mcp, read_only=True)
    async def get_event(calendar_id: str, event_id: str, instance_start: Instance = None) -> Event:
        """A series (or single event), or with instance_start one occurrence of it."""
        tz = (await backend.calendar(calendar_id)).zone
        return await backend.get_event(calendar_id, event_id, _instance(instance_start, tz))

    @domain_tool(mcp, read_only=True)
    async def get_free_busy(participants: Annotated[list[str], Field(min_length=1, max_length=50)], start: When, end: When,
                            zone: str = "UTC") -> FreeBusy:
        """Busy intervals (UTC) per participant."""
        start_at, end_at = parse_instant(start, zone, "start"), parse_instant(end, zone, "end")
        window(start_at, end_at)
        busy = await backend.free_busy(participants, start_at.astimezone(UTC), end_at.astimezone(UTC))
        return FreeBusy(start=start_at.astimezone(UTC), end=end_at.astimezone(UTC), participants=busy)

    @domain_tool(mcp, read_only=True)
    async def find_available_slots(
        participants: Annotated[list[str], Field(min_length=1, max_length=20)],
        duration_minutes: Annotated[int, Field(ge=5, le=24 * 60)],
        window_start: When,
        window_end: When,
        working_hours: Annotated[dict[str, WorkingHours] | None, Field(
            description="Per participant; default 09:00-17:00 Mon-Fri in their calendar's zone (UTC if unknown).")] = None,
        buffer_minutes: Annotated[int, Field(ge=0, le=240)] = 0,
        granularity_minutes: Annotated[int, Field(ge=5, le=240)] = 15,
        max_results: Annotated[int, Field(ge=1, le=50)] = 5,
        zone: str = "UTC",
    ) -> Slots:
        """Times when every participant is free and inside their working hours."""
        start_at = parse_instant(window_start, zone, "window_start").astimezone(UTC)
        end_at = parse_instant(window_end, zone, "window_end").astimezone(UTC)
        window(start_at, end_at)
        if end_at - start_at > timedelta(days=62):
            raise DomainError("invalid_argument", "search windows are limited to 62 days")
        known = {c.id: c.zone for c in await backend.calendars()}
        hours = {p: (working_hours or {}).get(p) or WorkingHours(zone=known.get(p, "UTC")) for p in participants}
        busy: list[Busy] = await backend.free_busy(participants, start_at, end_at)
        spans = {b.participant: [(i.start, i.end) for i in b.busy] for b in busy}
        found = find_slots(spans, hours, start_at, end_at, timedelta(minutes=duration_minutes), timedelta(minutes=buffer_minutes),
                           timedelta(minutes=granularity_minutes), max_results)
        shown = tz_zone(zone)
        return Slots(slots=[Slot(start=event_time(s.astimezone(shown), zone), end=event_time(e.astimezone(shown), zone))
                            for s, e in found], searched_until=end_at)

    @domain_tool(mcp)
    async def create_event(
        calendar_id: str,
        title: Annotated[str, Field(min_length=1, max_length=500)],
        start: Annotated[str, Field(description="ISO date-time, or YYYY-MM-DD with all_day.")],
        end: Annotated[str, Field(description="Exclusive end; for all-day events the day after the last day.")],
        zone: str | None = None,
        all_day: bool = False,
        rrule: Annotated[str | None, Field(description="RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=MO;COUNT=10")] = None,
        attendees: list[str] | None = None,
        location: str | None = None,
        description: Annotated[str, Field(max_length=20_000)] = "",
        reminders_minutes: list[int] | None = None,
        check_conflicts: Annotated[bool, Field(description="Refuse if the organizer or an attendee is busy then.")] = False,
        idempotency_key: Annotated[str | None, Field(max_length=200)] = None,
    ) -> Event:
        """Create an event or a recurring series."""
        tz = zone or (await backend.calendar(calendar_id)).zone
        tz_zone(tz)
        if all_day:
            start_at: datetime | date = parse_date(start, "start")
            end_at: datetime | date = parse_date(end, "end")
        else:
            start_at, end_at = parse_instant(start, tz, "start"), parse_instant(end, tz, "end")
        if end_at <= start_at:  # type: ignore[operator]
            raise DomainError("invalid_argument", "end must be after start (all-day ends are exclusive: the day after)",
                              details={"field": "end"})
        new = NewEvent(calendar_id=calendar_id, title=title, start=start_at, end=end_at, zone=tz, all_day=all_day, rrule=rrule,
                       attendees=[Attendee(email=a) for a in attendees or []], location=location, description=description,
                       reminders_minutes=reminders_minutes or [])
        if check_conflicts:
            people = [calendar_id, *[a for a in attendees or []]]
            busy = await backend.free_busy(people, as_utc(start_at, tz), as_utc(end_at, tz))
            clashes = [b.participant for b in busy if b.busy]
            if clashes:
                raise DomainError("conflict", f"{', '.join(clashes)} already busy then; pick another time (find_available_slots helps)",
                                  details={"busy": clashes})
        return await run_once(store, "create_event", idempotency_key, Event, lambda: backend.create(new))

    @domain_tool(mcp, idempotent=True)
    async def update_event(
        calendar_id: str,
        event_id: str,
        scope: Annotated[Scope, Field(description="this occurrence, this and following, or the whole series")] = "all",
        instance_start: Instance = None,
        title: str | None = None,
        description: str | None = None,
        location: str | None = None,
        start: When | None = None,
        end: When | None = None,
        attendees: list[str] | None = None,
        rrule: str | None = None,
        expected_etag: str | None = None,
    ) -> Event:
        """Change an event, one occurrence, or this and following occurrences of a series."""
        tz = (await backend.calendar(calendar_id)).zone
        changes = EventChanges(
            title=title, description=description, location=location,
            start=(parse_date(start, "start") if len(start) == 10 else parse_instant(start, tz, "start")) if start else None,
            end=(parse_date(end, "end") if len(end) == 10 else parse_instant(end, tz, "end")) if end else None,
            attendees=[Attendee(email=a) for a in attendees] if attendees is not None else None, rrule=rrule,
        )
        return await backend.update(calendar_id, event_id, scope, _instance(instance_start, tz), changes, expected_etag)

    @domain_tool(mcp, idempotent=True)
    async def respond_to_event(calendar_id: str, event_id: str, response: Response, instance_start: Instance = None) -> Event:
        """Accept, decline or tentatively accept an invitation (as the calendar's owner)."""
        tz = (await backend.calendar(calendar_id)).zone
        return await backend.respond(calendar_id, event_id, response, _instance(instance_start, tz))

    @domain_tool(mcp, destructive=True, idempotent=True)
    async def delete_event(calendar_id: str, event_id: str, scope: Scope = "all", instance_start: Instance = None,
                           confirm: bool = False) -> Deleted:
        """Delete an event, one occurrence, or this and following occurrences. Requires confirm=true."""
        if not confirm:
            raise DomainError("invalid_argument", f"deleting {event_id} ({scope}) cannot be undone: call again with confirm=true")
        tz = (await backend.calendar(calendar_id)).zone
        await backend.delete(calendar_id, event_id, scope, _instance(instance_start, tz))
        return Deleted(id=event_id, scope=scope)

    mcp.backend = backend  # type: ignore[attr-defined]
    return mcp

