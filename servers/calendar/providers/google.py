"""Google Calendar (API v3) as a calendar backend.

Configuration: `GOOGLE_CALENDAR_TOKEN` (a bearer token), or `GOOGLE_CLIENT_ID` +
`GOOGLE_CLIENT_SECRET` + `GOOGLE_REFRESH_TOKEN` (refreshed at https://oauth2.googleapis.com/token);
`GOOGLE_CALENDAR_API` overrides the API base. Lists use `singleEvents=true` to expand series,
`orderBy=startTime` and `pageToken`; free/busy uses `POST /freeBusy`. Updates send `If-Match` with
the event's etag (412 → conflict). One occurrence is edited or deleted through its instance
(`/events/{id}/instances`); "this and following" starts a new series, carries the edited and deleted
occurrences over, then ends the old one with UNTIL (`google_series`, `splitting`: a failure undoes the
new series) — not for COUNT-limited series, which Google cannot split without recounting. Every write
of an event (an answer to an invitation too) sends `sendUpdates=all` (Google's default notifies no one),
so attendees are invited and told of changes and cancellations, and an organizer of the answer, as Graph
does by itself. A create names its event by a client-chosen id, so an unclear answer is settled by
reading it back (`splitting.settle_create`).
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from typing import Any

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
from servers.calendar.providers.google_moves import cancelled_at, change_series, delete_if_emptied
from servers.calendar.providers.google_series import (NOTIFY, REACHED, ended_recurrence, if_match, keep_answers, reach_exceptions,
                                                      split, text_side)
from servers.calendar.providers.series_text import change_text
from servers.calendar.providers.splitting import Asked, create_handle, gone, settle_create, stale
from servers.calendar.timeutil import as_utc, event_time, zone
from servers.kit.cursor import decode_cursor, encode_cursor
from servers.kit.errors import DomainError, not_found
from servers.kit.http import ProviderHTTP, common_rate_limit
from servers.kit.credentials import connect, oauth_from_env

RESPONSE_FROM = {"needsAction": "needs_action", "declined": "declined", "tentative": "tentative", "accepted": "accepted"}
RESPONSE_TO = {v: k for k, v in RESPONSE_FROM.items()}
RESPOND_ATTEMPTS = 3


def _time_body(value: datetime | date, tz: str) -> dict[str, str]:
    if isinstance(value, datetime):
        return {"dateTime": value.isoformat(), "timeZone": getattr(value.tzinfo, "key", None) or tz}
    return {"date": value.isoformat()}


LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
"""Google's per-minute limits, answered 403 ("Rate Limit Exceeded") as well as 429: a wait (exponential backoff, Google
says). Its `quotaExceeded` and `dailyLimitExceeded` stay refusals: no retry within a call's deadline ends them."""


def rate_limit(response: httpx.Response, body: Any) -> float | None:
    """Google's 403 that is a rate limit, read from its error's `reason` (never from its English text)."""
    error = body.get("error") if isinstance(body, dict) else None
    errors = error.get("errors") if isinstance(error, dict) else None
    reasons = {e.get("reason") for e in errors if isinstance(e, dict)} if isinstance(errors, list) else set()
    if response.status_code == 403 and reasons & LIMIT_REASONS:
        return 30.0
    return common_rate_limit(response, body)


class GoogleCalendar:
    name = "google"

    def __init__(self, http: ProviderHTTP) -> None:
        self.http = http
        self._zones: dict[str, Calendar] = {}

    @classmethod
    def from_env(cls, data_dir: Any = None, transport: httpx.AsyncBaseTransport | None = None, token_transport: Any = None) -> GoogleCalendar:
        base = os.environ.get("GOOGLE_CALENDAR_API", "https://www.googleapis.com/calendar/v3")
        credentials = oauth_from_env("Google Calendar", "GOOGLE", "https://oauth2.googleapis.com/token", data_dir=data_dir,
                                     token_variable="GOOGLE_CALENDAR_TOKEN", token_transport=token_transport,
                                     sign_in="sign in with Google again")
        return cls(connect("Google Calendar", base, credentials, headers={"Accept": "application/json"}, rate_limit=rate_limit,
                           transport=transport))

    # -- reading ---------------------------------------------------------------------------

    async def calendars(self) -> list[Calendar]:
        body = await self.http.json("GET", "/users/me/calendarList")
        found = [Calendar(id=c["id"], name=c.get("summaryOverride") or c.get("summary", c["id"]), zone=c.get("timeZone", "UTC"),
                          primary=bool(c.get("primary")), read_only=c.get("accessRole") in ("reader", "freeBusyReader"))
                 for c in body.get("items", [])]
        self._zones = {c.id: c for c in found}
        return found

    async def calendar(self, calendar_id: str) -> Calendar:
        if calendar_id not in self._zones:
            await self.calendars()
        if calendar_id not in self._zones:
            raise not_found("calendar", calendar_id)
        return self._zones[calendar_id]

    def _path(self, calendar_id: str, event_id: str | None = None) -> str:
        from urllib.parse import quote

        path = f"/calendars/{quote(calendar_id, safe='')}/events"
        return f"{path}/{quote(event_id, safe='')}" if event_id else path

    def _event(self, raw: dict[str, Any], calendar_id: str, tz: str) -> Event:
        def when(part: dict[str, Any]) -> datetime | date:
            if "date" in part:
                return date.fromisoformat(part["date"])
            moment = datetime.fromisoformat(part["dateTime"].replace("Z", "+00:00"))
            return moment.astimezone(zone(part.get("timeZone") or tz))

        start, end = when(raw["start"]), when(raw["end"])
        original = raw.get("originalStartTime")
        attendees = [Attendee(email=a["email"], name=a.get("displayName"), optional=bool(a.get("optional")),
                              response=RESPONSE_FROM.get(a.get("responseStatus", "needsAction"), "needs_action"))  # type: ignore[arg-type]
                     for a in raw.get("attendees", [])]
        reminders = [o["minutes"] for o in (raw.get("reminders") or {}).get("overrides", [])]
        event_zone = raw["start"].get("timeZone") or tz
        return Event(
            id=raw.get("recurringEventId") or raw["id"], provider="google", remote_id=raw["id"], calendar_id=calendar_id,
            title=raw.get("summary", ""), description=raw.get("description", ""), location=raw.get("location"),
            start=event_time(start, event_zone), end=event_time(end, event_zone), all_day="date" in raw["start"],
            recurrence=raw.get("recurrence"), instance_start=when(original) if original else None, attendees=attendees,
            organizer=(raw.get("organizer") or {}).get("email"), reminders_minutes=reminders,
            status=raw.get("status", "confirmed"), transparent=raw.get("transparency") == "transparent", etag=raw.get("etag"),
        )

    async def list_events(
        self, calendar_id: str, start: datetime, end: datetime, query: str | None, expand: bool, limit: int, cursor: str | None
    ) -> EventPage:
        tz = (await self.calendar(calendar_id)).zone
        params: dict[str, Any] = {"timeMin": start.astimezone(UTC).isoformat(), "timeMax": end.astimezone(UTC).isoformat(),
                                  "singleEvents": "true" if expand else "false", "maxResults": min(limit, 2500), "timeZone": tz}
        if expand:
            params["orderBy"] = "startTime"
        if query:
            params["q"] = query
        if token := decode_cursor(cursor).get("page_token"):
            params["pageToken"] = token
        body = await self.http.json("GET", self._path(calendar_id), params=params)
        events = [self._event(r, calendar_id, tz) for r in body.get("items", []) if r.get("status") != "cancelled"]
        next_token = body.get("nextPageToken")
        return EventPage(events=events, next_cursor=encode_cursor({"page_token": next_token}) if next_token else None)

    async def _instance(self, calendar_id: str, event_id: str, instance_start: datetime | date) -> dict[str, Any]:
        begin = as_utc(instance_start, "UTC")
        body = await self.http.json("GET", self._path(calendar_id, event_id) + "/instances", params={
            "timeMin": (begin - timedelta(days=1)).isoformat(), "timeMax": (begin + timedelta(days=1)).isoformat(), "showDeleted": "false"})
        found = _with_original_start(body.get("items", []), begin)
        if found is None:  # moved more than a day from its slot: asked by its original start, wherever it went
            original = instance_start.isoformat() if not isinstance(instance_start, datetime) else \
                begin.isoformat().replace("+00:00", "Z")
            try:
                body = await self.http.json("GET", self._path(calendar_id, event_id) + "/instances",
                                            params={"originalStart": original, "showDeleted": "false"})
            except DomainError as exc:  # a date for a timed series (or the reverse) is no slot of it: not found
                if exc.body.code != "invalid_argument":
                    raise
                body = {}
            found = _with_original_start(body.get("items", []), begin)
        if found is not None:
            return found
        raise missing_occurrence(event_id, instance_start, await self._ends_before(calendar_id, event_id, instance_start))

    async def _ends_before(self, calendar_id: str, event_id: str, instance_start: datetime | date) -> bool:
        """Whether the series' rule has no occurrence at or after `instance_start` (it was ended before it)."""
        master = await self.http.json("GET", self._path(calendar_id, event_id))
        line = next((r for r in master.get("recurrence") or [] if r.startswith("RRULE:")), None)
        if line is None or ("UNTIL=" not in line and "COUNT=" not in line):
            return False
        start = master["start"]
        first = date.fromisoformat(start["date"]) if "date" in start else \
            datetime.fromisoformat(start["dateTime"].replace("Z", "+00:00")).astimezone(zone(start.get("timeZone") or "UTC"))
        if isinstance(first, datetime) != isinstance(instance_start, datetime):
            return False  # a date for a timed series (or the reverse) is no slot it ended before: plain not_found
        rule = rrules.anchored(line, first)
        return rule is not None and rrules.first_at_or_after(rule, instance_start) is None

    async def get_event(self, calendar_id: str, event_id: str, instance_start: datetime | date | None) -> Event:
        tz = (await self.calendar(calendar_id)).zone
        raw = await self._instance(calendar_id, event_id, instance_start) if instance_start is not None else \
            await self.http.json("GET", self._path(calendar_id, event_id))
        return self._event(raw, calendar_id, tz)

    async def free_busy(self, participants: list[str], start: datetime, end: datetime) -> list[Busy]:
        body = await self.http.json("POST", "/freeBusy", idempotent=True, writes=False, json={
            "timeMin": start.astimezone(UTC).isoformat(), "timeMax": end.astimezone(UTC).isoformat(),
            "items": [{"id": p} for p in participants]})
        out = []
        for participant in participants:
            entry = (body.get("calendars") or {}).get(participant, {})
            errors = entry.get("errors")
            busy = [Interval(start=datetime.fromisoformat(b["start"].replace("Z", "+00:00")),
                             end=datetime.fromisoformat(b["end"].replace("Z", "+00:00"))) for b in entry.get("busy", [])]
            out.append(Busy(participant=participant, busy=busy, error=errors[0].get("reason") if errors else None))
        return out

    # -- writing ---------------------------------------------------------------------------

    async def create(self, new: NewEvent, idempotency_key: str | None = None) -> Event:
        """Inserts under a client-chosen event id (`create_handle`), so an answer lost after the insert landed
        is found again by that id rather than booked twice (`settle_create`); attendees are invited."""
        body: dict[str, Any] = {"summary": new.title, "description": new.description, "start": _time_body(new.start, new.zone),
                                "end": _time_body(new.end, new.zone), "attendees": [{"email": a.email} for a in new.attendees]}
        if new.location:
            body["location"] = new.location
        if new.rrule:
            body["recurrence"] = [new.rrule if new.rrule.startswith("RRULE:") else f"RRULE:{new.rrule}"]
        if new.reminders_minutes:
            body["reminders"] = {"useDefault": False, "overrides": [{"method": "popup", "minutes": m} for m in new.reminders_minutes]}
        handle = create_handle(f"google:{new.calendar_id}", idempotency_key)
        path = self._path(new.calendar_id)

        async def post() -> dict[str, Any]:
            return await self.http.json("POST", path, json=body | {"id": handle}, params=NOTIFY)  # type: ignore[no-any-return]

        async def find() -> dict[str, Any] | None:
            return await self.find(new.calendar_id, handle)

        raw = await settle_create("Google Calendar", f"event id {handle}", post, find, what="the event", details={},
                                  advice="Look for it (list_events around its start) before creating it again",
                                  asked=Asked(new, lambda found: self._event(found, new.calendar_id, new.zone)))
        return self._event(raw, new.calendar_id, new.zone)

    async def find(self, calendar_id: str, event_id: str) -> dict[str, Any] | None:
        """The event made under a client-chosen id, or None when there is none (or it was deleted: Google
        keeps a deleted event's id, answering it `cancelled` or 410)."""
        try:
            raw = await self.http.json("GET", self._path(calendar_id, event_id))
        except DomainError as exc:
            if gone(exc):
                return None
            raise
        return None if raw.get("status") == "cancelled" else raw  # type: ignore[no-any-return]

    def _patch_body(self, changes: EventChanges, tz: str) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for field, key in (("title", "summary"), ("description", "description"), ("location", "location")):
            if getattr(changes, field) is not None:
                body[key] = getattr(changes, field)
        if changes.start is not None:
            body["start"] = _time_body(changes.start, tz)
        if changes.end is not None:
            body["end"] = _time_body(changes.end, tz)
        if changes.attendees is not None:
            body["attendees"] = [{"email": a.email} for a in changes.attendees]
        if changes.rrule is not None:
            body["recurrence"] = [f"RRULE:{changes.rrule.removeprefix('RRULE:')}"] if changes.rrule else []
        return body

    async def update(
        self, calendar_id: str, event_id: str, scope: Scope, instance_start: datetime | date | None,
        changes: EventChanges, expected_etag: str | None,
    ) -> Event:
        tz = (await self.calendar(calendar_id)).zone
        headers = {"If-Match": expected_etag} if expected_etag else None
        body = self._patch_body(changes, tz)
        if scope != "all" and instance_start is None:
            raise DomainError("invalid_argument", "give instance_start to change one occurrence (or use scope='all')")
        if scope == "this" and instance_start is not None:
            occurrence = await self._instance(calendar_id, event_id, instance_start)
            target = occurrence["id"]
            if "attendees" in body:
                body["attendees"] = keep_answers(body["attendees"], occurrence.get("attendees"))
        elif scope == "this_and_following" and instance_start is not None:
            raw = await split(self, calendar_id, event_id, instance_start, body, expected_etag)
            return self._event(raw, calendar_id, tz)
        else:
            before = await self.http.json("GET", self._path(calendar_id, event_id)) if any(key in body for key in REACHED) \
                else None
            if before is not None:
                if expected_etag and before.get("etag") != expected_etag:
                    raise stale(event_id)  # before anything is written, occurrences included
                asked = body.get("attendees")
                if asked is not None:
                    body["attendees"] = keep_answers(asked, before.get("attendees"))
                if "start" not in body and "recurrence" not in body:
                    # text or attendees: the edited occurrences first, the series last (`series_text`)
                    side = text_side(self, calendar_id, event_id, before, body, asked, expected_etag)
                    return self._event(await change_text(event_id, before, body, side), calendar_id, tz)
            if (changed := await change_series(self, calendar_id, event_id, body, expected_etag, tz)) is None:
                changed = await self.http.json("PATCH", self._path(calendar_id, event_id), json=body, headers=headers,
                                               idempotent=True, params=NOTIFY)
            if before is not None:
                await reach_exceptions(self, calendar_id, before, changed, body, series_written=True)
            return self._event(changed, calendar_id, tz)
        raw = await self.http.json("PATCH", self._path(calendar_id, target), json=body, headers=headers, idempotent=True,
                                   params=NOTIFY)
        return self._event(raw, calendar_id, tz)

    async def respond(self, calendar_id: str, event_id: str, response: Response, instance_start: datetime | date | None) -> Event:
        """Rewrites the attendee list with If-Match on the etag it was read at; a concurrent change is re-read and the
        answer re-applied (a few times), so no one else's edit to the list is overwritten."""
        tz = (await self.calendar(calendar_id)).zone
        for attempt in range(RESPOND_ATTEMPTS):
            raw = await self._instance(calendar_id, event_id, instance_start) if instance_start is not None else \
                await self.http.json("GET", self._path(calendar_id, event_id))
            attendees = raw.get("attendees", [])
            if not any(a.get("email", "").lower() == calendar_id.lower() or a.get("self") for a in attendees):
                raise DomainError("invalid_argument", f"{calendar_id} is not invited to this event")
            for attendee in attendees:
                if attendee.get("email", "").lower() == calendar_id.lower() or attendee.get("self"):
                    attendee["responseStatus"] = RESPONSE_TO[response]
            try:
                updated = await self.http.json("PATCH", self._path(calendar_id, raw["id"]), json={"attendees": attendees},
                                               params=NOTIFY,  # the organizer is told the answer (recheck21d #4)
                                               headers={"If-Match": raw["etag"]} if raw.get("etag") else None, idempotent=True)
            except DomainError as exc:
                if exc.body.code != "conflict" or attempt == RESPOND_ATTEMPTS - 1:
                    raise
                continue
            return self._event(updated, calendar_id, tz)
        raise AssertionError("unreachable")

    async def delete(self, calendar_id: str, event_id: str, scope: Scope, instance_start: datetime | date | None) -> bool:
        if scope == "all" or instance_start is None:
            if scope != "all":
                raise DomainError("invalid_argument", "give instance_start to delete one occurrence (or use scope='all')")
            await self.http.request("DELETE", self._path(calendar_id, event_id), params=NOTIFY)
        elif scope == "this":
            try:
                target = (await self._instance(calendar_id, event_id, instance_start))["id"]
            except DomainError as exc:  # deleted already (a retry after a lost answer) is no error
                if exc.body.code != "not_found" or not await cancelled_at(self, calendar_id, event_id, instance_start):
                    raise
            else:
                await self.http.request("DELETE", self._path(calendar_id, target), params=NOTIFY)
        elif await cut_still_needed(lambda: self._instance(calendar_id, event_id, instance_start),
                                    lambda: cancelled_at(self, calendar_id, event_id, instance_start)):
            master = await self.http.json("GET", self._path(calendar_id, event_id))
            await self.http.json("PATCH", self._path(calendar_id, event_id), idempotent=True, headers=if_match(master),
                                 json={"recurrence": ended_recurrence(master, instance_start, deleting=True)}, params=NOTIFY)
        # Google keeps a series whose occurrences were each deleted as its own record: it goes too.
        return scope == "all" or await delete_if_emptied(self, calendar_id, event_id)


def _with_original_start(items: list[dict[str, Any]], begin: datetime | date) -> dict[str, Any] | None:
    """The instance among `items` whose original start (its slot in the series, `originalStartTime`) is `begin`."""
    for raw in items:
        original = raw.get("originalStartTime") or raw["start"]
        moment = date.fromisoformat(original["date"]) if "date" in original else \
            datetime.fromisoformat(original["dateTime"].replace("Z", "+00:00"))
        if as_utc(moment, "UTC") == begin:
            return raw
    return None
