"""Microsoft Graph (v1.0, Outlook / Microsoft 365 calendars) as a calendar backend.

Configuration: `GRAPH_TOKEN` (a bearer token), or `GRAPH_TENANT_ID` + `GRAPH_CLIENT_ID` +
`GRAPH_CLIENT_SECRET` + `GRAPH_REFRESH_TOKEN` (refreshed at the tenant's v2.0 token endpoint,
refresh tokens rotate and are kept encrypted by the kit's vault); `GRAPH_API` overrides the base and
`GRAPH_USER` picks a mailbox other than `me` (`users/<id or address>`).

Reading: `calendarView` expands series between `startDateTime` and `endDateTime`; pages follow
`@odata.nextLink` (only ever on the configured API origin); `Prefer: outlook.timezone="<IANA>"`
makes Graph answer in the calendar's zone, and Windows zone names ("W. Europe Standard Time") are
mapped to IANA wherever they appear. The text query is sent as `$filter=contains(subject, …)`.
Free/busy is `POST …/calendar/getSchedule` (busy, tentative and out-of-office block time).
Writing: recurrence is converted between RRULE and Graph's pattern objects (`graph_recurrence`);
updates send `If-Match` with the event's `@odata.etag` (412 → conflict); one occurrence is edited
through `…/events/{id}/instances`; "this and following" creates a new series from that occurrence,
carries the edited and deleted occurrences over, then ends the old series the day before (range type
`endDate`; `graph_series`, `splitting`: a failure undoes the new series) — COUNT-limited (`numbered`)
series get a clear error. Graph keeps one reminder per event: the earliest of `reminders_minutes` is sent.
Responses use `accept` / `tentativelyAccept` / `decline`.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from servers.calendar.model import (
    Attendee,
    Busy,
    Calendar,
    Event,
    EventChanges,
    EventPage,
    Interval,
    NewEvent,
    Response,
    Scope,
)
from servers.calendar import rrules
from servers.calendar.retries import cut_still_needed
from servers.calendar.rrules import missing_occurrence
from servers.calendar.providers.graph_moves import (REACHED, cancelled_at, change_series, delete_if_emptied, edited_occurrences, on_rule,
                                                    patch_keeping, reach_occurrences, series_start)
from servers.calendar.providers.graph_kinds import SERIES_ALL_DAY, mark_series_kinds, series_all_day
from servers.calendar.providers.graph_recurrence import to_graph, to_rrule
from servers.calendar.providers.graph_series import ended_recurrence, if_match, keep_entries, split, transaction_id
from servers.calendar.providers.graph_whole import text_side
from servers.calendar.providers.series_text import change_text
from servers.calendar.providers.splitting import Asked, create_handle, settle_create, stale
from servers.calendar.providers.graph_times import iana
from servers.calendar.providers.graph_times import local as _local
from servers.calendar.providers.graph_times import read as _read
from servers.calendar.timeutil import as_utc, event_time, zone
from servers.kit.cursor import decode_cursor, encode_cursor, next_link
from servers.kit.errors import DomainError, not_found
from servers.kit.http import ProviderHTTP
from servers.kit.credentials import connect, oauth_from_env

RESPONSE_FROM = {"none": "needs_action", "notResponded": "needs_action", "accepted": "accepted", "organizer": "accepted",
                 "tentativelyAccepted": "tentative", "declined": "declined"}
ANSWERED = {"accepted": "accepted", "tentative": "tentativelyAccepted", "declined": "declined"}
RESPOND_ACTION = {"accepted": "accept", "tentative": "tentativelyAccept", "declined": "decline"}
BLOCKING = {"busy", "tentative", "oof", "workingElsewhere"}


class GraphCalendar:
    name = "graph"

    def __init__(self, http: ProviderHTTP, base_url: str, user: str = "me") -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.user = user.strip("/")
        self._calendars: dict[str, Calendar] = {}
        self._owners: dict[str, str] = {}

    @classmethod
    def from_env(cls, data_dir: Any = None, transport: httpx.AsyncBaseTransport | None = None, token_transport: Any = None) -> GraphCalendar:
        base = os.environ.get("GRAPH_API", "https://graph.microsoft.com/v1.0")
        user = os.environ.get("GRAPH_USER", "me")
        tenant = os.environ.get("GRAPH_TENANT_ID", "")
        credentials = oauth_from_env("Microsoft Graph", "GRAPH", f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
                                     data_dir=data_dir, also_required=["GRAPH_TENANT_ID"], token_transport=token_transport,
                                     scope="offline_access Calendars.ReadWrite", sign_in="sign in to Microsoft again")
        return cls(connect("Microsoft Graph", base, credentials, headers={"Accept": "application/json"}, transport=transport), base, user)

    # -- paths and mapping -----------------------------------------------------------------

    def _events(self, event_id: str | None = None) -> str:
        return f"/{self.user}/events/{quote(event_id, safe='')}" if event_id else f"/{self.user}/events"

    def _calendar_path(self, calendar_id: str) -> str:
        return f"/{self.user}/calendars/{quote(calendar_id, safe='')}"

    @staticmethod
    def _prefer(tz: str) -> dict[str, str]:
        return {"Prefer": f'outlook.timezone="{tz}"'}

    def _event(self, raw: dict[str, Any], calendar_id: str, tz: str) -> Event:
        all_day = bool(raw.get("isAllDay"))
        start, end = _read(raw["start"], tz), _read(raw["end"], tz)
        event_zone = iana(raw.get("originalStartTimeZone") if raw.get("originalStartTimeZone") not in (None, "tzone://Microsoft/Custom")
                          else None, iana(raw["start"].get("timeZone"), tz))
        try:
            zone(event_zone)
        except DomainError:
            event_zone = tz
        first: datetime | date = start.date() if all_day else start.astimezone(zone(event_zone))
        last: datetime | date = end.date() if all_day else end.astimezone(zone(event_zone))
        original = raw.get("originalStart")
        instance_start: datetime | date | None = None
        if original and raw.get("type") in ("occurrence", "exception"):
            slot = datetime.fromisoformat(original.replace("Z", "+00:00")).astimezone(zone(event_zone))
            instance_start = slot.date() if raw.get(SERIES_ALL_DAY, all_day) else slot  # named as its series names them
        attendees = [Attendee(email=a["emailAddress"]["address"], name=a["emailAddress"].get("name"), optional=a.get("type") == "optional",
                              response=RESPONSE_FROM.get((a.get("status") or {}).get("response", "none"), "needs_action"))  # type: ignore[arg-type]
                     for a in raw.get("attendees", []) if (a.get("emailAddress") or {}).get("address")]
        mine, answer = self._owners.get(calendar_id, "").lower(), (raw.get("responseStatus") or {}).get("response")
        for attendee in attendees:  # the mailbox's own answer is reported on the event, not in its attendee list
            if attendee.email.lower() == mine and answer in RESPONSE_FROM:
                attendee.response = RESPONSE_FROM[answer]  # type: ignore[assignment]
        status = "cancelled" if raw.get("isCancelled") else "tentative" if raw.get("showAs") == "tentative" else "confirmed"
        return Event(
            id=raw.get("seriesMasterId") or raw["id"], provider="graph", remote_id=raw["id"], calendar_id=calendar_id,
            title=raw.get("subject") or "", description=(raw.get("body") or {}).get("content") or raw.get("bodyPreview") or "",
            location=(raw.get("location") or {}).get("displayName") or None,
            start=event_time(first, event_zone), end=event_time(last, event_zone), all_day=all_day,
            recurrence=to_rrule(raw.get("recurrence")), instance_start=instance_start, attendees=attendees,
            organizer=((raw.get("organizer") or {}).get("emailAddress") or {}).get("address"),
            reminders_minutes=[raw["reminderMinutesBeforeStart"]] if raw.get("isReminderOn") else [],
            status=status, transparent=raw.get("showAs") == "free", etag=raw.get("@odata.etag"),  # type: ignore[arg-type]
        )

    # -- reading ---------------------------------------------------------------------------

    async def calendars(self) -> list[Calendar]:
        settings = await self.http.json("GET", f"/{self.user}/mailboxSettings")
        tz = iana((settings or {}).get("timeZone"))
        body = await self.http.json("GET", f"/{self.user}/calendars")
        found = []
        for raw in body.get("value", []):
            owner = (raw.get("owner") or {}).get("address")
            found.append(Calendar(id=raw["id"], name=raw.get("name", raw["id"]), zone=tz, primary=bool(raw.get("isDefaultCalendar")),
                                  read_only=not raw.get("canEdit", True)))
            if owner:
                self._owners[raw["id"]] = owner
        self._calendars = {c.id: c for c in found}
        return found

    async def calendar(self, calendar_id: str) -> Calendar:
        if calendar_id not in self._calendars:
            await self.calendars()
        if calendar_id not in self._calendars:
            raise not_found("calendar", calendar_id)
        return self._calendars[calendar_id]

    async def list_events(
        self, calendar_id: str, start: datetime, end: datetime, query: str | None, expand: bool, limit: int, cursor: str | None
    ) -> EventPage:
        tz = (await self.calendar(calendar_id)).zone
        link = next_link(decode_cursor(cursor), self.base_url)
        params: dict[str, Any] | None = None
        if link is None:
            params = {"startDateTime": start.astimezone(UTC).isoformat(), "endDateTime": end.astimezone(UTC).isoformat(),
                      "$top": min(limit, 1000), "$orderby": "start/dateTime"}
            if query:
                params["$filter"] = f"contains(subject,'{query.replace(chr(39), chr(39) * 2)}')"
        body = await self.http.json("GET", link or f"{self._calendar_path(calendar_id)}/calendarView", params=params,
                                    headers=self._prefer(tz))
        rows = body.get("value", [])
        if not expand:  # one row per series: the master, fetched once, instead of its occurrences
            masters: dict[str, dict[str, Any]] = {}
            collapsed = []
            for raw in rows:
                master_id = raw.get("seriesMasterId")
                if master_id is None:
                    collapsed.append(raw)
                elif master_id not in masters:
                    masters[master_id] = await self.http.json("GET", self._events(master_id), headers=self._prefer(tz))
                    collapsed.append(masters[master_id])
            rows = collapsed
        await mark_series_kinds(self, rows, tz)
        events = [e for e in (self._event(r, calendar_id, tz) for r in rows) if e.status != "cancelled"]
        following = body.get("@odata.nextLink")
        return EventPage(events=events, next_cursor=encode_cursor({"next": following}) if following else None)

    async def _instance(self, event_id: str, instance_start: datetime | date, tz: str) -> dict[str, Any]:
        begin = as_utc(instance_start, tz)
        body = await self.http.json("GET", self._events(event_id) + "/instances", headers=self._prefer(tz), params={
            "startDateTime": (begin - timedelta(days=1)).isoformat(), "endDateTime": (begin + timedelta(days=2)).isoformat()})
        timed = isinstance(instance_start, datetime)  # an all-day occurrence is no date-time's, nor a timed one a date's
        series_kind: list[bool] = []  # the series' isAllDay, read once, only when an edited occurrence is at the slot

        async def named(raw: dict[str, Any]) -> bool:
            """Whether `raw`'s slot is the one asked, of the kind its series names them by: one occurrence of a timed
            series made all-day (or the reverse) keeps its series' kind of slot (it could be neither read nor listed
            by a name that reached it)."""
            original = raw.get("originalStart")
            moment = datetime.fromisoformat(original.replace("Z", "+00:00")) if original else _read(raw["start"], tz)
            if moment.astimezone(UTC) != begin:
                return False
            if raw.get("type") == "exception":  # edited: its own kind may differ from its series', which names it
                if not series_kind:
                    series_kind.append(await series_all_day(self, event_id, tz))
                if series_kind[0] == timed:
                    return False
            elif bool(raw.get("isAllDay")) == timed:
                return False
            raw[SERIES_ALL_DAY] = not timed  # what a write to it answers is named so too
            return True

        for raw in body.get("value", []):
            if await named(raw):
                return raw
        for raw in await edited_occurrences(self, event_id, tz):  # moved more than the window away from its slot
            if raw.get("originalStart") and await named(raw):
                return raw
        raise missing_occurrence(event_id, instance_start, await self._ends_before(event_id, instance_start, tz))

    async def _ends_before(self, event_id: str, instance_start: datetime | date, tz: str) -> bool:
        """Whether the series has no occurrence at or after `instance_start`, by its rule (its range's `endDate`
        in its zone, or its number of occurrences): exactly — 09:30 after a last 09:00 is past it. A value of the other kind than
        the series (a date for a timed series, a time for an all-day one) is no time of it: never "ended"."""
        master = await self.http.json("GET", self._events(event_id), headers=self._prefer(tz))
        span = (master.get("recurrence") or {}).get("range") or {}
        if bool(master.get("isAllDay")) == isinstance(instance_start, datetime):
            return False
        if span.get("type") not in ("numbered", "endDate"):
            return False
        rule = (to_rrule(master["recurrence"]) or [""])[0]  # its end as COUNT or a DATE UNTIL (that day's end, its zone)
        anchored = rrules.anchored(rule, series_start(master, tz))
        return anchored is not None and rrules.first_at_or_after(anchored, instance_start) is None

    async def get_event(self, calendar_id: str, event_id: str, instance_start: datetime | date | None) -> Event:
        tz = (await self.calendar(calendar_id)).zone
        raw = await self._instance(event_id, instance_start, tz) if instance_start is not None else \
            await self.http.json("GET", self._events(event_id), headers=self._prefer(tz))
        return self._event(raw, calendar_id, tz)

    async def free_busy(self, participants: list[str], start: datetime, end: datetime) -> list[Busy]:
        if not self._calendars:
            await self.calendars()
        addresses = [self._owners.get(p, p) for p in participants]
        body = await self.http.json("POST", f"/{self.user}/calendar/getSchedule", idempotent=True, writes=False, headers=self._prefer("UTC"), json={
            "schedules": addresses, "availabilityViewInterval": 15,
            "startTime": {"dateTime": start.astimezone(UTC).replace(tzinfo=None).isoformat(), "timeZone": "UTC"},
            "endTime": {"dateTime": end.astimezone(UTC).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}})
        answers = {(s.get("scheduleId") or "").lower(): s for s in body.get("value", [])}
        out = []
        for participant, address in zip(participants, addresses, strict=True):
            entry = answers.get(address.lower())
            if entry is None or entry.get("error"):
                reason = ((entry or {}).get("error") or {}).get("responseCode") or "no schedule returned"
                out.append(Busy(participant=participant, busy=[], error=reason))
                continue
            spans = sorted({(max(_read(i["start"], "UTC").astimezone(UTC), start), min(_read(i["end"], "UTC").astimezone(UTC), end))
                            for i in entry.get("scheduleItems", []) if i.get("status") in BLOCKING})
            out.append(Busy(participant=participant, busy=[Interval(start=s, end=e) for s, e in spans if s < e]))
        return out

    # -- writing ---------------------------------------------------------------------------

    def _body(self, fields: NewEvent | EventChanges, tz: str) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if fields.title is not None:
            body["subject"] = fields.title
        if fields.description is not None:
            body["body"] = {"contentType": "text", "content": fields.description}
        if fields.location is not None:
            body["location"] = {"displayName": fields.location}
        if fields.start is not None:
            body["start"] = _local(fields.start, tz)
            body["isAllDay"] = not isinstance(fields.start, datetime)
        if fields.end is not None:
            body["end"] = _local(fields.end, tz)
        if fields.attendees is not None:
            body["attendees"] = [{"emailAddress": {"address": a.email, **({"name": a.name} if a.name else {})},
                                  "type": "optional" if a.optional else "required"} for a in fields.attendees]
        return body

    async def create(self, new: NewEvent, idempotency_key: str | None = None) -> Event:
        """POSTs with a `transactionId` the connector chooses (`create_handle`): Graph answers a repeated create
        with the event it already made for it, so an unclear answer is settled by repeating the POST
        (`settle_create`, as the series split does) and a keyed retry never books twice."""
        body = self._body(new, new.zone)
        if new.rrule:
            body["recurrence"] = to_graph(new.rrule, new.start, getattr(getattr(new.start, "tzinfo", None), "key", None) or new.zone)
        if new.reminders_minutes:
            body.update(isReminderOn=True, reminderMinutesBeforeStart=min(new.reminders_minutes))
        transaction = transaction_id(create_handle(f"graph:{self.user}:{new.calendar_id}", idempotency_key))

        async def post() -> dict[str, Any]:
            return await self.http.json("POST", f"{self._calendar_path(new.calendar_id)}/events",  # type: ignore[no-any-return]
                                        json=body | {"transactionId": transaction}, headers=self._prefer(new.zone))

        raw = await settle_create("Microsoft Graph", f"transactionId {transaction}", post, post, what="the event", details={},
                                  advice="Look for it (list_events around its start) before creating it again",
                                  asked=Asked(new, lambda found: self._event(found, new.calendar_id, new.zone),
                                              rule=to_rrule(body.get("recurrence"))), post_may_repeat=True)
        return self._event(raw, new.calendar_id, new.zone)

    async def update(
        self, calendar_id: str, event_id: str, scope: Scope, instance_start: datetime | date | None,
        changes: EventChanges, expected_etag: str | None,
    ) -> Event:
        tz = (await self.calendar(calendar_id)).zone
        body = self._body(changes, tz)
        if scope != "all" and instance_start is None:
            raise DomainError("invalid_argument", "give instance_start to change one occurrence (or use scope='all')")
        if scope == "this_and_following" and instance_start is not None:
            return self._event(await split(self, calendar_id, event_id, instance_start, body, changes, tz, expected_etag), calendar_id, tz)
        if scope != "all" or not any(key in body for key in REACHED):
            return self._event(await self._update_raw(event_id, scope, instance_start, changes, body, expected_etag, tz),
                               calendar_id, tz)
        before = await self.http.json("GET", self._events(event_id), headers=self._prefer(tz))
        if expected_etag and before.get("@odata.etag") != expected_etag:
            raise stale(event_id)  # before anything is written, occurrences included
        if "attendees" in body:
            body["attendees"] = keep_entries(body["attendees"], before.get("attendees"))
        if changes.start is None and changes.end is None and changes.rrule is None:
            # text or attendees: the edited occurrences first, the series last (`graph_whole`)
            side = text_side(self, event_id, before, body, expected_etag, tz,
                             lambda asked, etag: self._update_raw(event_id, scope, instance_start, changes, asked, etag, tz))
            raw = await change_text(event_id, before, body, side)
            return self._event(raw, calendar_id, tz)
        raw = await self._update_raw(event_id, scope, instance_start, changes, body, expected_etag, tz)
        if await reach_occurrences(self, event_id, before, raw, body, tz, series_written=True):
            raw = await self.http.json("GET", self._events(event_id), headers=self._prefer(tz))  # its etag as it is now
        return self._event(raw, calendar_id, tz)

    async def _update_raw(self, event_id: str, scope: Scope, instance_start: datetime | date | None, changes: EventChanges,
                          body: dict[str, Any], expected_etag: str | None, tz: str) -> dict[str, Any]:
        """`update` of one occurrence or the whole series: the raw event Graph answers."""
        target = event_id
        if scope == "this" and instance_start is not None:
            occurrence = await self._instance(event_id, instance_start, tz)
            target = occurrence["id"]
            if "attendees" in body:
                body["attendees"] = keep_entries(body["attendees"], occurrence.get("attendees"))
        if scope == "all" and (changed := await change_series(self, event_id, body, changes, expected_etag, tz)) is not None:
            return changed
        if changes.rrule is not None:
            if scope == "this":
                raise DomainError("invalid_argument", "one occurrence has no recurrence of its own; use scope='all'")
            current = await self.http.json("GET", self._events(event_id), headers=self._prefer(tz))
            first = changes.start or on_rule(changes.rrule, current, tz)
            if changes.start is None and changes.rrule and first != _read(current["start"], tz):
                body.update(start=_local(first, tz), end=_local(first + (_read(current["end"], tz) - _read(current["start"], tz)), tz))
            body["recurrence"] = to_graph(changes.rrule, first, tz) if changes.rrule else None
        if scope == "all" and changes.rrule != "" and \
                (kept := await patch_keeping(self, event_id, body, changes.start, expected_etag, tz)) is not None:
            return kept
        headers = self._prefer(tz) | ({"If-Match": expected_etag} if expected_etag else {})
        raw: dict[str, Any] = await self.http.json("PATCH", self._events(target), json=body, headers=headers, idempotent=True)
        if target != event_id:
            raw[SERIES_ALL_DAY] = occurrence[SERIES_ALL_DAY]
        return raw

    async def respond(self, calendar_id: str, event_id: str, response: Response, instance_start: datetime | date | None) -> Event:
        """POSTs the answer; the event is read before it, so a failed read-back still answers what was done."""
        if response not in RESPOND_ACTION:
            raise DomainError("invalid_argument", "Graph takes accepted, tentative or declined as a response")
        tz = (await self.calendar(calendar_id)).zone
        raw = await self._instance(event_id, instance_start, tz) if instance_start is not None else \
            await self.http.json("GET", self._events(event_id), headers=self._prefer(tz))
        await self.http.request("POST", f"{self._events(raw['id'])}/{RESPOND_ACTION[response]}", json={"sendResponse": True},
                                idempotent=True)
        asked = raw
        try:
            raw = await self.http.json("GET", self._events(raw["id"]), headers=self._prefer(tz))
        except DomainError:
            raw = raw | {"responseStatus": {"response": ANSWERED[response]}}
        if SERIES_ALL_DAY in asked:
            raw[SERIES_ALL_DAY] = asked[SERIES_ALL_DAY]
        return self._event(raw, calendar_id, tz)

    async def delete(self, calendar_id: str, event_id: str, scope: Scope, instance_start: datetime | date | None) -> bool:
        tz = (await self.calendar(calendar_id)).zone
        if scope == "all":
            await self.http.request("DELETE", self._events(event_id))
        elif instance_start is None:
            raise DomainError("invalid_argument", "give instance_start to delete one occurrence (or use scope='all')")
        elif scope == "this":
            try:
                target = (await self._instance(event_id, instance_start, tz))["id"]
            except DomainError as exc:  # deleted already (a retry after a lost answer) is no error
                if exc.body.code != "not_found" or not await cancelled_at(self, event_id, instance_start, tz):
                    raise
            else:
                await self.http.request("DELETE", self._events(target))
        elif await cut_still_needed(lambda: self._instance(event_id, instance_start, tz),
                                    lambda: cancelled_at(self, event_id, instance_start, tz)):
            master = await self.http.json("GET", self._events(event_id), headers=self._prefer(tz))
            ended = ended_recurrence(master, event_id, instance_start, tz, deleting=True)
            await self.http.json("PATCH", self._events(event_id), json={"recurrence": ended}, headers=if_match(master), idempotent=True)
        # Graph keeps a series whose occurrences were each deleted as its own record: it goes too.
        return scope == "all" or await delete_if_emptied(self, event_id, tz)
