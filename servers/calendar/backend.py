"""The calendar backend protocol, and `IcalBackend`: the whole protocol on top of four storage
primitives over iCalendar objects, shared by the embedded store and CalDAV."""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from servers.calendar import edits, ical, ical_split
from servers.calendar.expansion import Expansion, expand
from servers.calendar.expansion import expand as expand_objects  # `list_events` has a parameter named `expand`
from servers.calendar.providers.splitting import Asked, create_handle, settle_create
from servers.calendar.model import Busy, Calendar, Event, EventChanges, EventPage, Interval, NewEvent, Response, Scope
from servers.calendar.slots import merge
from servers.calendar.timeutil import as_utc
from servers.calendar.walks import Walks
from servers.kit.keyset import open_cursor, query_fingerprint, sign_cursor, store_secret
from servers.kit.errors import DomainError, not_found


_FOLD = re.compile(r"\r?\n[ \t]")
MERGE_ATTEMPTS = 5
"""Reads of an event an update or a response is re-applied to when another write lands between its
read and its write (only without `expected_etag`: a change to named fields merges onto the newer
event; with one, the caller asked for that version, so it is `conflict`). Every write is conditional
on the version read (`_save`), so nothing written in between is lost."""


class CalendarBackend(Protocol):
    name: str

    async def calendars(self) -> list[Calendar]: ...

    async def calendar(self, calendar_id: str) -> Calendar: ...

    async def list_events(
        self, calendar_id: str, start: datetime, end: datetime, query: str | None, expand: bool, limit: int, cursor: str | None
    ) -> EventPage: ...

    async def get_event(self, calendar_id: str, event_id: str, instance_start: datetime | date | None) -> Event: ...

    async def free_busy(self, participants: list[str], start: datetime, end: datetime) -> list[Busy]: ...

    async def create(self, new: NewEvent, idempotency_key: str | None = None) -> Event:
        """Create under a handle the connector chooses (`splitting.create_handle`: derived from the caller's
        `idempotency_key` when there is one), settling an unclear answer by reading it back."""
        ...

    async def update(
        self, calendar_id: str, event_id: str, scope: Scope, instance_start: datetime | date | None,
        changes: EventChanges, expected_etag: str | None,
    ) -> Event: ...

    async def respond(
        self, calendar_id: str, event_id: str, response: Response, instance_start: datetime | date | None
    ) -> Event: ...

    async def delete(self, calendar_id: str, event_id: str, scope: Scope, instance_start: datetime | date | None) -> bool:
        """Delete; True when the whole event is gone (every occurrence of it deleted)."""
        ...


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

    async def _invitations(self, calendar_id: str, start: datetime, end: datetime) -> list[tuple[str, str]]:
        """(text, etag) of objects on *other* calendars here that invite `calendar_id`'s owner. None by
        default: a CalDAV server delivers invitations into the invitee's calendar itself (RFC 6638)."""
        return []

    async def _invitation(self, calendar_id: str, uid: str) -> tuple[str, str, str]:
        """(organizer's calendar id, text, etag) of the object `uid` on another calendar here that invites
        `calendar_id`'s owner; `not_found` when there is none."""
        raise not_found("event", uid)

    async def _locate(self, calendar_id: str, uid: str) -> tuple[str, str, str]:
        """(calendar holding it, text, etag) of `uid` as `calendar_id` sees it: its own event, else an
        invitation to its owner from another calendar here."""
        try:
            return (calendar_id, *await self._load(calendar_id, uid))
        except DomainError as exc:
            if exc.body.code != "not_found":
                raise
        return await self._invitation(calendar_id, uid)

    async def _own(self, calendar_id: str, uid: str) -> tuple[str, str]:
        """`_load`, but an invitation from another calendar is named as such: only its organizer changes it."""
        try:
            return await self._load(calendar_id, uid)
        except DomainError as exc:
            if exc.body.code != "not_found":
                raise
            try:
                owner, _, _ = await self._invitation(calendar_id, uid)
            except DomainError:
                raise exc from None
            raise DomainError("forbidden", f"event {uid} is an invitation from {owner}'s calendar: only its organizer can change "
                              f"or delete it; answer it with respond_to_event (response='declined' to decline it)",
                              details={"organizer_calendar": owner}) from None

    # -- the protocol ------------------------------------------------------------------------

    async def calendar(self, calendar_id: str) -> Calendar:
        known = await self.calendars()
        for found in known:  # ids that are email addresses compare without case
            if found.id == calendar_id or ("@" in calendar_id and found.id.lower() == calendar_id.lower()):
                return found
        raise unknown_calendar(calendar_id, known)

    async def _seen(self, calendar_id: str, start: datetime, end: datetime) -> list[tuple[str, str]]:
        """What a calendar shows: its own objects and the invitations to its owner from other calendars here."""
        return [*await self._objects(calendar_id, start, end), *await self._invitations(calendar_id, start, end)]

    async def _expanded(self, calendar_id: str, start: datetime, end: datetime, tz: str) -> Expansion:
        objects = [(calendar_id, text, etag, tz) for text, etag in await self._seen(calendar_id, start, end)]
        found = expand(objects, self.name, start, end)
        found.events.sort(key=lambda e: (e.start.utc or as_utc(e.start.date, tz), e.id))  # type: ignore[arg-type]
        return found

    async def list_events(
        self, calendar_id: str, start: datetime, end: datetime, query: str | None, expand: bool, limit: int, cursor: str | None
    ) -> EventPage:
        """Occurrences sorted by (start, event id, recurrence id). A listing longer than `limit` is
        walked on a snapshot (`servers.calendar.walks`): writes between pages never repeat or skip
        an occurrence, and a signed cursor bound to this query resumes it; a cursor from another
        query is `invalid_argument`."""
        tz = (await self.calendar(calendar_id)).zone
        secret = await self._cursor_secret()
        fingerprint = query_fingerprint(f"events:{calendar_id}", {"start": start.astimezone(UTC).isoformat(),
                                        "end": end.astimezone(UTC).isoformat(), "query": query, "expand": expand})
        after = open_cursor(secret, cursor, fingerprint, 2)
        notes: list[str] = []
        if expand:
            expansion = await self._expanded(calendar_id, start, end, tz)
            events, notes = expansion.events, expansion.notes()
        else:  # the series themselves, of those with an occurrence in the range (a store may give more)
            objects = await self._seen(calendar_id, start, end)
            found = expand_objects([(calendar_id, text, etag, tz) for text, etag in objects], self.name, start, end)
            present = {e.id for e in found.events} | {s.uid for s in found.skipped}
            events = [event for text, etag in objects
                      if (event := ical.to_event(ical.master(ical.load(text)), calendar_id, self.name, tz, etag)).id in present]
        if query:
            needle = query.lower()
            events = [e for e in events if needle in e.title.lower() or needle in e.description.lower()
                      or needle in (e.location or "").lower()]
        ordered = [e for _, e in sorted(((_sort_key(e, tz), e) for e in events if e.status != "cancelled"), key=lambda i: i[0])]
        walks = self._walks()
        if after is None:
            page, next_cursor = ordered[:limit], None
            if len(ordered) > limit:
                walk_id = await walks.put([_identity(e) for e in ordered])
                next_cursor = sign_cursor(secret, fingerprint, [walk_id, limit])
        else:
            walk_id, position = str(after[0]), int(after[1] or 0)
            keys = await walks.get(walk_id)
            now = {_identity(e): e for e in ordered}
            page = []
            while position < len(keys) and len(page) < limit:
                found = now.get(tuple(keys[position]))  # type: ignore[call-overload]
                position += 1
                if found is not None:
                    page.append(found)
            more = any(tuple(key) in now for key in keys[position:])
            next_cursor = sign_cursor(secret, fingerprint, [walk_id, position]) if more else None
        return EventPage(events=page, next_cursor=next_cursor, truncated=bool(notes), notes=notes)

    def _walks(self) -> Walks:
        if not hasattr(self, "_walk_store"):
            self._walk_store = Walks(getattr(self, "store", None))
        return self._walk_store

    async def _cursor_secret(self) -> bytes:
        """The key cursors are signed with: the embedded store's (survives restarts), else one per
        process (a provider backend's cursors then end with the process: start the listing again)."""
        store = getattr(self, "store", None)
        if store is not None:
            return await store.run(store_secret)  # type: ignore[no-any-return]
        if not hasattr(self, "_secret"):
            self._secret = os.urandom(32)
        return self._secret

    async def get_event(self, calendar_id: str, event_id: str, instance_start: datetime | date | None) -> Event:
        _, text, etag = await self._locate(calendar_id, event_id)
        tz = (await self.calendar(calendar_id)).zone
        parsed = ical.load(text)
        series = ical.master(parsed)
        if instance_start is None:
            return ical.to_event(series, calendar_id, self.name, tz, etag)
        return ical.instance_event(parsed, ical.addressed(parsed, instance_start, tz), calendar_id, self.name, tz, etag)

    async def free_busy(self, participants: list[str], start: datetime, end: datetime) -> list[Busy]:
        """Busy intervals per participant: events on their calendar and invitations they did not
        decline, from every calendar here. Only objects naming a participant are expanded, so a
        dense series costs only the queries that involve its people."""
        zones = {c.id: c.zone for c in await self.calendars()}
        known = {c.lower() for c in zones}
        wanted = {p.lower() for p in participants}
        objects = []
        for calendar_id, tz in zones.items():
            for text, etag in await self._objects(calendar_id, start, end):
                unfolded = _FOLD.sub("", text).lower()  # iCalendar folds long lines (RFC 5545 §3.1)
                if calendar_id.lower() in wanted or any(p in unfolded for p in wanted):
                    objects.append((calendar_id, text, etag, tz))
        found = expand(objects, self.name, start, end)
        out = []
        for participant in participants:
            spans: list[tuple[datetime, datetime]] = []
            for event in found.events:
                tz = zones[event.calendar_id]
                mine = event.calendar_id.lower() == participant.lower()
                invited = any(a.email.lower() == participant.lower() and a.response != "declined" for a in event.attendees)
                if event.transparent or event.status == "cancelled" or not (mine or invited):
                    continue
                s = event.start.utc or as_utc(event.start.date, tz)  # type: ignore[arg-type]
                e = event.end.utc or as_utc(event.end.date, tz)  # type: ignore[arg-type]
                spans.append((max(s, start), min(e, end)))
            cut = [(s.busy_from, s.busy_until) for s in found.skipped if participant.lower() in s.people]
            spans.extend(cut)
            error = None
            if participant.lower() not in known:
                error = "no calendar for this participant here" + ("; busy shows only events they are invited to" if spans else "")
            merged = merge(spans)
            out.append(Busy(participant=participant, busy=[Interval(start=s, end=e) for s, e in merged], error=error,
                            truncated=bool(cut)))
        return out

    async def create(self, new: NewEvent, idempotency_key: str | None = None) -> Event:
        """Stored under a UID (and CalDAV resource name) derived from the call's key (`create_handle`), never
        over an existing object: a PUT whose answer was lost, or a keyed retry of it, is found again by
        that UID instead of being stored twice under another one (`settle_create`)."""
        calendar = await self.calendar(new.calendar_id)
        if calendar.read_only:
            raise DomainError("forbidden", f"calendar {new.calendar_id} is read-only")
        uid = f"{create_handle(f'{self.name}:{new.calendar_id}', idempotency_key)}@mcp-hub"
        text = ical.build_series(new, uid=uid, organizer=new.calendar_id if "@" in new.calendar_id else None).to_ical().decode()

        async def post() -> tuple[str, str]:
            return text, await self._save(new.calendar_id, uid, text, None)

        async def find() -> tuple[str, str] | None:
            try:
                return await self._load(new.calendar_id, uid)
            except DomainError as exc:
                if exc.body.code == "not_found":
                    return None
                raise

        def read(found: tuple[str, str]) -> Event:
            return ical.to_event(ical.master(ical.load(found[0])), new.calendar_id, self.name, calendar.zone, found[1])

        stored, etag = await settle_create(self.name, f"UID {uid}", post, find, what="the event", details={},
                                           advice="Look for it (list_events around its start) before creating it again",
                                           asked=Asked(new, read))
        # Answer with what was stored, read back as every later read will (not the object in hand).
        return ical.to_event(ical.master(ical.load(stored)), new.calendar_id, self.name, calendar.zone, etag)

    async def update(
        self, calendar_id: str, event_id: str, scope: Scope, instance_start: datetime | date | None,
        changes: EventChanges, expected_etag: str | None,
    ) -> Event:
        tz = (await self.calendar(calendar_id)).zone  # every read before the first write
        for attempt in range(MERGE_ATTEMPTS):
            text, etag = await self._own(calendar_id, event_id)
            if expected_etag is not None and expected_etag != etag:
                raise DomainError("conflict", f"event {event_id} changed since you read it; get it again and reapply your change",
                                  details={"current_etag": etag})
            # a floating series is written back in the calendar's zone, so `instance_start` names its occurrences as is
            stored = ical.anchor_floating(ical.load(text), tz)
            results = [ical.load(c.to_ical().decode()) for c in edits.change(stored, scope, instance_start, changes)]
            try:
                if len(results) == 2:  # this_and_following: the new series first, then the old one ended
                    split_etag = await ical_split.split(self, calendar_id, event_id, etag, results[0], results[1],
                                                        instance_start)  # type: ignore[arg-type]
                    return ical.to_event(ical.master(results[1]), calendar_id, self.name, tz, split_etag)
                if ical.unchanged(text, results[0]):  # nothing to write: the event, its etag and the feed stay
                    results[0], new_etag = ical.load(text), etag
                    break
                new_etag = await self._save(calendar_id, event_id, results[0].to_ical().decode(), etag)
                break
            except DomainError as exc:  # another write landed between our read and our write
                if exc.body.code != "conflict" or expected_etag is not None or attempt == MERGE_ATTEMPTS - 1:
                    raise
        updated = results[0]
        if scope == "this" and instance_start is not None and "RRULE" in ical.master(updated):
            return ical.instance_event(updated, instance_start, calendar_id, self.name, tz, new_etag)
        return ical.to_event(ical.master(updated), calendar_id, self.name, tz, new_etag)

    async def respond(self, calendar_id: str, event_id: str, response: Response, instance_start: datetime | date | None) -> Event:
        """Sets the PARTSTAT of `calendar_id`'s owner, on the event as it is stored: on the organizer's calendar
        for an invitation from another calendar here (so a decline frees their time); a calendar whose
        owner is not invited cannot answer."""
        tz = (await self.calendar(calendar_id)).zone  # every read before the write
        for attempt in range(MERGE_ATTEMPTS):
            holder, text, etag = await self._locate(calendar_id, event_id)
            parsed = edits.respond(ical.anchor_floating(ical.load(text), tz), calendar_id, response, instance_start)
            if ical.unchanged(text, parsed):  # the same answer again
                parsed, new_etag = ical.load(text), etag
                break
            try:
                new_etag = await self._save(holder, event_id, parsed.to_ical().decode(), etag)
                break
            except DomainError as exc:
                if exc.body.code != "conflict" or attempt == MERGE_ATTEMPTS - 1:
                    raise
        if instance_start is not None:
            return ical.instance_event(parsed, instance_start, calendar_id, self.name, tz, new_etag)
        return ical.to_event(ical.master(parsed), calendar_id, self.name, tz, new_etag)

    async def delete(self, calendar_id: str, event_id: str, scope: Scope, instance_start: datetime | date | None) -> bool:
        tz = (await self.calendar(calendar_id)).zone
        text, etag = await self._own(calendar_id, event_id)
        remaining = edits.remove(ical.anchor_floating(ical.load(text), tz), scope, instance_start)
        if remaining is None:
            await self._remove(calendar_id, event_id)
            return True
        await self._save(calendar_id, event_id, remaining.to_ical().decode(), etag)
        return False


def _identity(event: Event) -> tuple[str, str]:
    """What names an occurrence across writes: event id, and a series occurrence's recurrence id
    (never its start: a single event's expansion reports its start as its recurrence id)."""
    return event.id, _sort_key(event, "UTC")[2] if event.recurrence else ""


def _sort_key(event: Event, tz: str) -> tuple[str, str, str]:
    """(start in UTC, event id, recurrence id) as strings that sort like the values."""
    start = (event.start.utc or as_utc(event.start.date, tz)).astimezone(UTC)  # type: ignore[arg-type]
    rid = event.instance_start
    rid_text = rid.astimezone(UTC).isoformat() if isinstance(rid, datetime) else (rid.isoformat() if rid else "")
    return start.strftime("%Y-%m-%dT%H:%M:%S"), event.id, rid_text


def unknown_calendar(calendar_id: str, known: list[Calendar]) -> DomainError:
    shown = ", ".join(c.id for c in known[:10]) or "none yet"
    return DomainError("not_found", f"calendar {calendar_id[:200]!r} does not exist (calendars here: {shown}; list_calendars "
                       "shows them, create_calendar adds one)", details={"field": "calendar_id"})


def window(start: datetime, end: datetime) -> None:
    """A query range, checked on instants (same-zone datetimes would compare wall clocks)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise DomainError("invalid_argument", "end must be after start", details={"field": "end"})
    if end - start > timedelta(days=366):
        raise DomainError("invalid_argument", "ranges are limited to 366 days; page through shorter ones")

