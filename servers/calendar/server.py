"""The calendar tool surface over `CalendarBackend`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

from mcp.server import MCPServer
from pydantic import Field

from hub.datadir import default_data_dir
from servers.calendar import inputs
from servers.calendar.backend import CalendarBackend, window
from servers.calendar.inputs import Reminder, attendee_list, checked_rrule, existing_start, times
from servers.calendar.model import (
    Busy,
    Calendar,
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
from servers.calendar.push_ids import tool_ids
from servers.calendar.retries import landed_split
from servers.calendar.slots import find_slots
from servers.calendar.timeutil import as_utc, event_time, local_zone, parse_date, parse_instant, require_order
from servers.calendar.timeutil import zone as tz_zone
from servers.kit.errors import DomainError
from servers.kit.providers import Provider, Providers
from servers.kit.store import Store
from servers.kit.text import refuse_blank, refuse_control_chars
from servers.kit.tools import configure_domain, deleted_lately, domain_examples, domain_tool, forget_deleted
from servers.kit.webhooks import attach_webhooks
from servers.kit.webhooks.channels import keepers_from_env

PROVIDERS = Providers("calendar", {
    "embedded": Provider("servers.calendar.store:EmbeddedCalendar"),
    "caldav": Provider("servers.calendar.providers.caldav:CalDavCalendar", ("CALDAV_URL",)),
    "google": Provider("servers.calendar.providers.google:GoogleCalendar",
                       ("GOOGLE_CALENDAR_TOKEN|GOOGLE_CLIENT_ID+GOOGLE_CLIENT_SECRET+GOOGLE_REFRESH_TOKEN",)),
    "graph": Provider("servers.calendar.providers.graph:GraphCalendar",
                      ("GRAPH_TOKEN|GRAPH_TENANT_ID+GRAPH_CLIENT_ID+GRAPH_CLIENT_SECRET+GRAPH_REFRESH_TOKEN",)),
})
Limit = Annotated[int, Field(ge=1, le=500, description="Items per page.")]
Cursor = Annotated[str | None, Field(description="next_cursor of the previous page; omit for the first page.")]
CalendarRef = Annotated[str, Field(description="Calendar id, usually the owner's email (list_calendars).")]
EventId = Annotated[str, Field(description="Event id (list_events or create_event).")]
Zone = Annotated[str, Field(description="IANA time zone, e.g. Europe/Paris, for times without an offset.")]
Participants = Annotated[list[str], Field(description="Calendar ids or emails of the people to check.")]
When = Annotated[str, Field(max_length=64, description="ISO 8601; without an offset it is read in the calendar's (or `zone`'s) time zone.")]
Instance = Annotated[str | None, Field(max_length=64, description="An occurrence's instance_start, to act on that occurrence.")]
CalendarId = Annotated[str, Field(min_length=1, max_length=254, description="A calendar id (emails compare without case).")]
Title = Annotated[str, Field(min_length=1, max_length=500, description="What the event is called.")]
Description = Annotated[str, Field(max_length=20_000, description="Agenda or notes shown with the event.")]
RuleText = Annotated[str, Field(max_length=1_000)]
ZoneName = Annotated[str, Field(max_length=100)]


def make_backend(name: str | None = None, data_dir: Path | None = None) -> CalendarBackend:
    """The backend named by `name`, else `$CALENDAR_BACKEND`, else the embedded one (`PROVIDERS`)."""
    return PROVIDERS.make(name, data_dir)


def _instance(value: str | None, tz: str) -> datetime | date | None:
    if value is None:
        return None
    return parse_date(value, "instance_start") if len(value) == 10 else parse_instant(value, tz, "instance_start")


def _removes_every_occurrence(event: Event, scope: Scope, instance: datetime | date | None) -> bool:
    """Whether deleting `scope` at `instance` leaves nothing of `event`: "this" of a single event, or
    "this and following" from a series' first occurrence."""
    if scope == "this" and not event.recurrence:
        return True
    if scope != "this_and_following" or instance is None:
        return False
    first = event.start.utc or event.start.date
    if isinstance(instance, datetime) and isinstance(first, datetime):
        return instance.astimezone(UTC) == first.astimezone(UTC)
    return not isinstance(instance, datetime) and not isinstance(first, datetime) and instance == first


def create_server(backend: CalendarBackend | None = None) -> MCPServer:
    backend = backend or make_backend()
    store = getattr(backend, "store", None) or Store(default_data_dir() / "calendar-idempotency.sqlite", [])
    mcp = MCPServer("calendar", instructions="Calendars with correct time zones. Call now first to anchor 'today' and 'tomorrow'.")
    configure_domain(mcp, open_world=backend.name != "embedded", idempotency=store, examples=domain_examples(__package__))
    intake = attach_webhooks(mcp, "calendar", store, ("google", "graph"), ("event", "calendar"))
    # Google channels / Graph subscriptions, if configured, carrying the secret the route checks (`Intake.secret`)
    intake.keepers = keepers_from_env(backend, intake.log.store, secrets=intake.secret)
    intake.processor.tool_ids = tool_ids(backend)  # Google's `primary` recorded as the id list_calendars gives

    @domain_tool(mcp, read_only=True, open_world=False)
    async def now(zone: Zone = "UTC") -> Now:
        """What time and date it is now in a time zone.
        The current time in a zone: the anchor for 'today', 'tomorrow', 'next Monday'."""
        current = datetime.now(UTC).astimezone(tz_zone(zone))
        return Now(utc=current.astimezone(UTC), local=current, zone=zone, weekday=current.strftime("%A"), date=current.date())

    @domain_tool(mcp, read_only=True)
    async def list_calendars() -> CalendarList:
        """The calendars you can see, yours and shared ones.
        Calendars this connection can see, with their time zones."""
        return CalendarList(calendars=await backend.calendars())

    @domain_tool(mcp, idempotent=True)
    async def create_calendar(
        calendar_id: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\s/]+$",
                                          description="Its id: best the owner's email, so invitations and free/busy find them.")],
        name: Annotated[str, Field(min_length=1, max_length=200, description="Display name of the calendar.")],
        zone: Annotated[str | None, Field(description="IANA zone; default this machine's.")] = None,
        primary: Annotated[bool | None, Field(description="Make it the primary calendar (default: only if it is the first).")] = None,
    ) -> Calendar:
        """Create a new calendar, e.g. for a team or rota.
        Add a calendar (embedded backend; a fresh install already has 'primary'). Calling again with
        the same id, name and zone answers the existing calendar."""
        refuse_control_chars(calendar_id=calendar_id, name=name)
        refuse_blank(name=name)
        if "@" in calendar_id:
            calendar_id = calendar_id.lower()  # email ids compare without case: one calendar per address
        creator = getattr(backend, "create_calendar", None)
        if creator is None:
            raise DomainError("invalid_argument", f"the {backend.name} backend's calendars are managed by the provider: create it "
                              "there, then list_calendars shows it")
        chosen = zone or local_zone()
        tz_zone(chosen)
        return await creator(calendar_id, name, chosen, primary)  # type: ignore[no-any-return]

    @domain_tool(mcp, read_only=True)
    async def list_events(
        calendar_id: CalendarRef,
        start: When,
        end: When,
        zone: Annotated[str | None, Field(description="IANA zone a start or end without offset is read in; default the "
                                          "calendar's. Each event's times are shown in its own zone, with UTC beside.")] = None,
        query: Annotated[str | None, Field(description="Only events whose title, description or location has these words.")] = None,
        expand: Annotated[bool, Field(description="Recurring series as separate occurrences (default).")] = True,
        limit: Limit = 100,
        cursor: Cursor = None,
    ) -> EventPage:
        """What is on a calendar: the meetings, calls and appointments in a time range (an agenda: what is
        scheduled today or this week); to find free time use find_available_slots.
        Events overlapping a time range, earliest first."""
        calendar = await backend.calendar(calendar_id)
        calendar_id, tz = calendar.id, zone or calendar.zone
        start_at, end_at = parse_instant(start, tz, "start"), parse_instant(end, tz, "end")
        window(start_at, end_at)
        return await backend.list_events(calendar_id, start_at, end_at, query, expand, limit, cursor)

    @domain_tool(mcp, read_only=True)
    async def get_event(calendar_id: CalendarRef, event_id: EventId, instance_start: Instance = None) -> Event:
        """Read one event whose id you know: time, attendees, recurrence.
        A series (or single event), or with instance_start one occurrence of it."""
        calendar = await backend.calendar(calendar_id)
        calendar_id, tz = calendar.id, calendar.zone
        return await backend.get_event(calendar_id, event_id, _instance(instance_start, tz))

    @domain_tool(mcp, read_only=True)
    async def get_free_busy(participants: Annotated[Participants, Field(min_length=1, max_length=50)], start: When, end: When,
                            zone: Zone = "UTC") -> FreeBusy:
        """Whether and when given people are busy in a time range, without event details.
        Busy intervals (UTC) per participant."""
        start_at, end_at = parse_instant(start, zone, "start"), parse_instant(end, zone, "end")
        window(start_at, end_at)
        busy = await backend.free_busy(participants, start_at.astimezone(UTC), end_at.astimezone(UTC))
        return FreeBusy(start=start_at.astimezone(UTC), end=end_at.astimezone(UTC), participants=busy,
                        unknown_participants=[b.participant for b in busy if b.error])

    @domain_tool(mcp, read_only=True)
    async def find_available_slots(
        participants: Annotated[Participants, Field(min_length=1, max_length=20)],
        duration_minutes: Annotated[int, Field(ge=5, le=24 * 60, description="Length of the meeting to fit.")],
        window_start: When,
        window_end: When,
        working_hours: Annotated[dict[str, WorkingHours] | None, Field(
            description="Per participant; default 09:00-17:00 Mon-Fri in their calendar's zone (UTC if unknown).")] = None,
        buffer_minutes: Annotated[int, Field(ge=0, le=240, description="Free minutes to keep before and after.")] = 0,
        granularity_minutes: Annotated[int, Field(ge=5, le=240, description="Slots start on multiples of this on a local clock: `zone`'s or a participant's.")] = 15,
        max_results: Annotated[int, Field(ge=1, le=50, description="How many slots to propose.")] = 5,
        zone: Zone = "UTC",
    ) -> Slots:
        """Find meeting times that work for several people (common free slots).
        Times when every participant is free and inside their working hours. Participants with no
        calendar here are listed in `unknown_participants`: slots only avoid the events they are
        invited to here, and their working hours apply only if given."""
        start_at = parse_instant(window_start, zone, "window_start").astimezone(UTC)
        end_at = parse_instant(window_end, zone, "window_end").astimezone(UTC)
        window(start_at, end_at)
        if end_at - start_at > timedelta(days=62):
            raise DomainError("invalid_argument", "search windows are limited to 62 days")
        known = {c.id.lower(): c.zone for c in await backend.calendars()}
        busy: list[Busy] = await backend.free_busy(participants, start_at, end_at)
        unknown = [b.participant for b in busy if b.error]
        if len(unknown) == len(participants):
            raise DomainError("not_found", f"none of the participants has a calendar here ({', '.join(p[:100] for p in unknown)}); "
                              "check the addresses (list_calendars shows the calendars)", details={"unknown_participants": unknown})
        given = working_hours or {}
        hours = {p: given.get(p) or WorkingHours(zone=known.get(p.lower(), "UTC")) for p in participants
                 if p not in unknown or p in given}
        spans = {b.participant: [(i.start, i.end) for i in b.busy] for b in busy}
        found = find_slots(spans, hours, start_at, end_at, timedelta(minutes=duration_minutes), timedelta(minutes=buffer_minutes),
                           timedelta(minutes=granularity_minutes), max_results, grid_zones=[zone])
        shown = tz_zone(zone)
        notes = [f"{p} has no calendar here: these slots avoid only the events they are invited to here, so check with them"
                 for p in unknown]
        dense = [b.participant for b in busy if b.truncated]
        if dense:
            notes.append(f"{', '.join(dense)}: a series too dense to expand counts as busy for its whole span")
        return Slots(slots=[Slot(start=event_time(s.astimezone(shown), zone), end=event_time(e.astimezone(shown), zone))
                            for s, e in found], searched_until=end_at, unknown_participants=unknown, truncated=bool(dense),
                     notes=notes)

    @domain_tool(mcp)
    async def create_event(
        calendar_id: CalendarId,
        title: Title,
        start: Annotated[str, Field(description="ISO date-time, or YYYY-MM-DD with all_day. With an offset (Z, +02:00) it "
                                                "is that instant; without, a local time in `zone` (or the calendar's).")],
        end: Annotated[str, Field(description="Exclusive end; for all-day events the day after the last day.")],
        zone: Annotated[str | None, Field(description="IANA zone the event lives in (DST, recurrences). Default: the "
                                                      "calendar's for local times, UTC for times given with an offset.")] = None,
        all_day: Annotated[bool, Field(description="A whole-day event: start and end are dates.")] = False,
        rrule: Annotated[str | None, Field(max_length=1_000, description="RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=MO;COUNT=10. "
                                                       "Several times a day needs COUNT<=1000 or UNTIL within a year.")] = None,
        attendees: Annotated[list[str] | None, Field(description="Email addresses.", max_length=200)] = None,
        location: Annotated[str | None, Field(max_length=1_000, description="Room, address or meeting link.")] = None,
        description: Description = "",
        reminders_minutes: Annotated[list[Reminder] | None, Field(max_length=5, description="Reminders, minutes before the start.")] = None,
        check_conflicts: Annotated[bool, Field(description="Refuse if the organizer or an attendee is busy then.")] = False,
        idempotency_key: Annotated[str | None, Field(max_length=200)] = None,
    ) -> Event:
        """Schedule (add, book, set up, put on the calendar) a meeting, call or appointment, once or repeating; to pick a time
        everyone can make, call find_available_slots first.
        Create an event or a recurring series."""
        refuse_control_chars(calendar_id=calendar_id, title=title, location=location, description=description)
        refuse_blank(title=title)
        calendar = await backend.calendar(calendar_id)
        calendar_id, tz = calendar.id, zone or calendar.zone
        start_at, end_at = times(start, end, tz, zone or "UTC", all_day, series=bool(rrule))
        invited = attendee_list(attendees)
        rule = await checked_rrule(rrule, start_at, tz)
        if rule:
            await inputs.require_on_rule(rule, start_at)
        new = NewEvent(calendar_id=calendar_id, title=title, start=start_at, end=end_at, zone=tz, all_day=all_day,
                       rrule=rule, attendees=invited, location=location,
                       description=description, reminders_minutes=sorted(set(reminders_minutes or [])))
        if check_conflicts:
            people = [calendar_id, *[a.email for a in invited]]
            busy = await backend.free_busy(people, as_utc(start_at, tz), as_utc(end_at, tz))
            clashes = [b.participant for b in busy if b.busy]
            if clashes:
                raise DomainError("conflict", f"{', '.join(clashes)} already busy then; pick another time (find_available_slots helps)",
                                  details={"busy": clashes})
        return await backend.create(new, idempotency_key)

    @domain_tool(mcp, idempotent=True)
    async def update_event(
        calendar_id: CalendarRef,
        event_id: EventId,
        scope: Annotated[Scope, Field(description="this occurrence, this and following, or the whole series")] = "all",
        instance_start: Instance = None,
        title: Annotated[str | None, Field(min_length=1, max_length=500, description="New title.")] = None,
        description: Annotated[str | None, Field(max_length=20_000, description="New description.")] = None,
        location: Annotated[str | None, Field(max_length=1_000, description="New location.")] = None,
        start: Annotated[str | None, Field(description="ISO date-time (or YYYY-MM-DD for all-day). With an offset it is "
                                                       "that instant; without, a local time in `zone` (or the event's).")] = None,
        end: Annotated[str | None, Field(description="Exclusive end, like start.")] = None,
        zone: Annotated[str | None, Field(max_length=100, description="IANA zone for the new times; default the event's own "
                                                                     "zone. Alone, it keeps the wall-clock times in this zone.")] = None,
        attendees: Annotated[list[str] | None, Field(description="Email addresses (replaces the list).", max_length=200)] = None,
        rrule: Annotated[str | None, Field(max_length=1_000, description="A new RRULE for the series; \"\" removes the "
                                                                         "recurrence.")] = None,
        expected_etag: Annotated[str | None, Field(description="The etag you read; the update fails with conflict if it changed.")] = None,
    ) -> Event:
        """Reschedule, move, push back, rename or edit a meeting, call or appointment (time, title, attendees, place).
        Change an event, one occurrence, or this and following occurrences of a series."""
        refuse_control_chars(calendar_id=calendar_id, event_id=event_id, title=title, location=location, description=description)
        refuse_blank(title=title)
        if all(v is None for v in (title, description, location, start, end, zone, attendees, rrule)):
            raise DomainError("invalid_argument", "nothing to change: pass at least one of title, description, location, start, "
                              "end, zone, attendees, rrule")
        calendar = await backend.calendar(calendar_id)
        calendar_id, tz = calendar.id, calendar.zone
        new_start = new_end = None
        reanchoring = zone is not None and start is None and end is None
        if reanchoring:
            start, end = await inputs.reanchored(backend, calendar_id, event_id, scope, _instance(instance_start, tz), zone)
        if start or end or rrule is not None:
            current = await backend.get_event(calendar_id, event_id, None)
            if rrule is not None and scope == "this" and current.recurrence is not None:
                raise DomainError("invalid_argument", "rrule belongs to the whole series: use scope 'all' or "
                                  "'this_and_following' to change it", details={"field": "rrule"})
            own = zone or current.start.zone or tz
            series = current.recurrence is not None and scope != "this"
            new_start = inputs.event_time(start, own, own, "start", None, series) if start else None
            new_end = inputs.event_time(end, own, own, "end", None, series) if end else None
            if new_start is not None and new_end is not None:
                try:
                    require_order(new_start, new_end, own)
                except DomainError as exc:
                    if not reanchoring:
                        raise
                    raise DomainError("invalid_argument", f"zone: the event shows {start} to {end}, across an hour its zone "
                                      f"repeats; read as wall-clock times in {own} it would end before it starts. Pass start "
                                      "and end (with offsets) to move it", details={"field": "zone"}) from exc
            first = new_start or existing_start(current, tz)
            if rrule and scope != "this":  # an event becoming (or staying) a series from this start ("" removes the rule)
                inputs.refuse_series_start(first)
            rrule = await checked_rrule(rrule, first, own)
            rule = rrule if rrule is not None else next((line for line in current.recurrence or [] if line.startswith("RRULE:")), "")
            if new_start is not None and scope != "this" and rule:  # the series (or its split-off part) begins here
                await inputs.require_on_rule(rule, new_start)
        changes = EventChanges(title=title, description=description, location=location, start=new_start, end=new_end,
                               attendees=attendee_list(attendees) if attendees is not None else None, rrule=rrule)
        # An event, a whole series or one occurrence already showing every field asked (zone included) is answered as
        # it is: no identical override, no new etag for a retry to make stale (on Google and Graph a write always
        # makes one: outside review r37 #4). Not "this and following": the one occurrence named says nothing of the
        # later ones (outside review r36 #1: an occurrence renamed alone hid a series rename), so such a call still splits.
        if rrule is None and (scope == "all" or (scope == "this" and instance_start is not None)):
            try:
                shown = await backend.get_event(calendar_id, event_id, _instance(instance_start, tz) if scope == "this" else None)
            except DomainError:  # gone from the series (a split already made, to be recognised below): the update decides
                shown = None
            if shown is not None and expected_etag in (None, shown.etag) and inputs.shows_changes(shown, changes, tz):
                return shown
        try:
            return await backend.update(calendar_id, event_id, scope, _instance(instance_start, tz), changes, expected_etag)
        except DomainError as exc:
            if exc.body.code == "conflict" and (exc.body.details or {}).get("status") == 412:
                # the provider's own "Precondition Failed" said nothing of what to do (outside reviews r36 #5, r37 #3)
                why = "expected_etag is no longer its etag" if expected_etag else "someone else changed it meanwhile"
                raise DomainError("conflict", f"event {event_id} changed since it was read ({why}): get it again "
                                  "(get_event) and reapply your change", details={"status": 412}) from exc
            if scope != "this_and_following" or instance_start is None:
                raise
            return await landed_split(backend, calendar_id, event_id, _instance(instance_start, tz), changes, exc, tz)  # type: ignore[arg-type]

    @domain_tool(mcp, idempotent=True)
    async def respond_to_event(
        calendar_id: CalendarRef, event_id: EventId,
        response: Annotated[Response, Field(description="accepted, declined or tentative.")],
        instance_start: Instance = None,
    ) -> Event:
        """RSVP to a meeting invitation.
        Accept, decline or tentatively accept an invitation (as the calendar's owner)."""
        calendar = await backend.calendar(calendar_id)
        calendar_id, tz = calendar.id, calendar.zone
        return await backend.respond(calendar_id, event_id, response, _instance(instance_start, tz))

    @domain_tool(mcp, destructive=True, idempotent=True)
    async def delete_event(
        calendar_id: CalendarRef, event_id: EventId,
        scope: Annotated[Scope, Field(description="this occurrence, this and following, or the whole series")] = "all",
        instance_start: Instance = None,
        confirm: Annotated[bool, Field(description="Must be true: deletion cannot be undone.")] = False,
    ) -> Deleted:
        """Cancel, call off or remove a meeting, call or appointment.
        Delete an event, one occurrence, or this and following occurrences. Requires confirm=true."""
        if not confirm:
            raise DomainError("invalid_argument", f"deleting {event_id} ({scope}) cannot be undone: call again with confirm=true")
        calendar = await backend.calendar(calendar_id)
        calendar_id, tz = calendar.id, calendar.zone
        instance = _instance(instance_start, tz)
        try:
            current = await backend.get_event(calendar_id, event_id, None)
        except DomainError as exc:
            if exc.body.code == "not_found" and await deleted_lately(mcp, event_id):
                return Deleted(id=event_id, scope="all")  # a retry of the delete that removed it: answered as then
            raise
        if scope != "all" and _removes_every_occurrence(current, scope, instance):
            # "This and following" from the first occurrence, or "this" of a single event, is the whole
            # event: deleted as such, so nothing empty stays readable and its keys answer not_found
            # (outside review: an empty series stayed, and its create key replayed it).
            scope = "all"
        if await backend.delete(calendar_id, event_id, scope, instance) or scope == "all":
            scope = "all"  # every occurrence is gone (a COUNT=1 series, its last one left): so is the event, and its keys
            await forget_deleted(mcp, event_id)
        return Deleted(id=event_id, scope=scope)

    mcp.backend = backend  # type: ignore[attr-defined]
    return mcp

