"""CalDAV (RFC 4791) as a calendar backend, through the `caldav` library.

Configuration: `CALDAV_URL`, `CALDAV_USER`, `CALDAV_PASSWORD`; `CALDAV_ZONE` is the zone for times
given without an offset (default UTC). Objects are iCalendar resources, one per series, so the
shared `IcalBackend` logic applies unchanged; the `caldav` client is synchronous, so every call
runs in a worker thread. Calendar ids are the calendars' URLs. The etag used for optimistic
concurrency is a digest of the resource as last read; a replace re-reads it with the server's ETag
and PUTs with `If-Match`, so the server refuses (412, `conflict`) a write that lost a race. A write
answers the digest of what the server stored (read back after the PUT), so it is what the next read
gives and the next update accepts. Every PUT and DELETE the server accepted is reported to the tool
call's watch (`servers.kit.landed`), which never sees the library's own HTTP.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import anyio
import caldav
from caldav.lib import error as caldav_error

from servers.calendar import ical
from servers.calendar.backend import IcalBackend
from servers.calendar.model import Calendar
from servers.kit.credentials import Basic, remember_credentials
from servers.kit.errors import DomainError, not_found
from servers.kit.landed import note

DATE_SLACK = timedelta(days=1)


class CalDavCalendar(IcalBackend):
    name = "caldav"

    def __init__(self, url: str, username: str | None, password: str | None, default_zone: str = "UTC") -> None:
        self.default_zone = default_zone
        self._client = caldav.DAVClient(url=url, username=username, password=password, require_tls=url.startswith("https"),
                                        timeout=15)
        self._calendars: dict[str, Any] | None = None

    @classmethod
    def from_env(cls, data_dir: Any = None) -> CalDavCalendar:
        """From `CALDAV_URL` (checked by the calendar `PROVIDERS` table), `CALDAV_USER`, `CALDAV_PASSWORD`,
        `CALDAV_ZONE`; the caldav library does its own HTTP, so `connect` is not used here."""
        url = os.environ["CALDAV_URL"]
        remember_credentials(Basic(os.environ.get("CALDAV_USER") or "", os.environ.get("CALDAV_PASSWORD") or ""))
        return cls(url, os.environ.get("CALDAV_USER"), os.environ.get("CALDAV_PASSWORD"), os.environ.get("CALDAV_ZONE", "UTC"))

    async def _run(self, work: Any, *args: Any) -> Any:
        try:
            return await anyio.to_thread.run_sync(work, *args)
        except caldav_error.AuthorizationError:
            raise DomainError("unauthorized", "the CalDAV server rejected the credentials; check CALDAV_USER/CALDAV_PASSWORD") from None
        except caldav_error.NotFoundError:
            raise DomainError("not_found", "the CalDAV server has no such calendar or event") from None
        except (caldav_error.DAVError, OSError) as exc:
            raise DomainError("unavailable", f"the CalDAV server failed ({type(exc).__name__}); try again later") from None

    def _load_calendars(self) -> dict[str, Any]:
        if self._calendars is None:
            principal = self._client.principal()
            self._calendars = {str(c.url): c for c in principal.calendars()}
        return self._calendars

    async def _dav(self, calendar_id: str) -> Any:
        calendars = await self._run(self._load_calendars)
        if calendar_id not in calendars:
            raise not_found("calendar", calendar_id)
        return calendars[calendar_id]

    async def calendars(self) -> list[Calendar]:
        calendars = await self._run(self._load_calendars)
        return [Calendar(id=url, name=str(await self._run(c.get_display_name) or url), zone=self.default_zone, primary=i == 0)
                for i, (url, c) in enumerate(calendars.items())]

    async def _objects(self, calendar_id: str, start: datetime, end: datetime) -> list[tuple[str, str]]:
        dav = await self._dav(calendar_id)
        # A server reads an all-day DATE in a zone of its own (RFC 4791 §9.9: UTC without a calendar
        # zone), so it is asked a day wider on each side; the expansion keeps the exact range.
        found = await self._run(lambda: dav.search(start=start - DATE_SLACK, end=end + DATE_SLACK, event=True, expand=False))
        return [(obj.data, ical.etag_of(obj.data)) for obj in found]

    async def _load(self, calendar_id: str, uid: str) -> tuple[str, str]:
        dav = await self._dav(calendar_id)
        obj = await self._run(dav.event_by_uid, uid)
        return obj.data, ical.etag_of(obj.data)

    async def _save(self, calendar_id: str, uid: str, text: str, expected_etag: str | None) -> str:
        """Create (a PUT with `If-None-Match: *` at the resource named by the UID, so a repeated create is
        refused, 412 → a `duplicate` conflict, never stored twice or over another object), or replace the
        object whose text digests to `expected_etag`: read it (body and the
        server's ETag), compare, and PUT with `If-Match` on that ETag, so a writer in between makes
        the server answer 412 (`conflict`) and two writers can never both pass the check. Returns the
        etag the next read gives (`_stored_etag`)."""
        dav = await self._dav(calendar_id)
        if expected_etag is None:
            def create() -> str:
                url = dav.url.join(quote(uid, safe="@") + ".ics")  # the resource name follows the UID
                response = self._client.put(str(url), text, {"If-None-Match": "*", "Content-Type": "text/calendar; charset=utf-8"})
                if response.status == 412:
                    return "taken"
                if response.status >= 300:
                    raise caldav_error.PutError(f"{response.status} {response.reason}")
                _landed("PUT", url, uid)
                return "etag:" + self._stored_etag(dav, uid, text, (response.headers or {}).get("ETag"))

            made = await self._run(create)
            if made == "taken":
                raise DomainError("conflict", f"the CalDAV server already holds an event with UID {uid}",
                                  details={"duplicate": True})
            return made.removeprefix("etag:")

        def replace() -> str:
            obj = dav.event_by_uid(uid)  # body and ETag from one response, read as `_load` reads
            if ical.etag_of(obj.data) != expected_etag:
                return "changed"
            server_etag = obj.etag
            if not server_etag:  # the search did not report it: a GET does, for the body it answers with
                body = obj.data
                obj.load()
                server_etag = obj.etag if ical.etag_of(obj.data) == ical.etag_of(body) else None
            if not server_etag or server_etag.startswith("W/"):
                return "no_etag"
            response = self._client.put(str(obj.url), text, {"If-Match": server_etag,
                                                             "Content-Type": "text/calendar; charset=utf-8"})
            if response.status == 412:
                return "changed"
            if response.status >= 300:
                raise caldav_error.PutError(f"{response.status} {response.reason}")
            _landed("PUT", obj.url, uid)
            return "etag:" + self._stored_etag(dav, uid, text, (response.headers or {}).get("ETag"))

        outcome = await self._run(replace)
        if outcome == "no_etag":
            raise DomainError("unavailable", "the CalDAV server gave no strong ETag for this event, so it cannot be changed "
                              "safely (a concurrent write could be lost); use a server that sends ETags")
        if not outcome.startswith("etag:"):
            raise DomainError("conflict", f"event {uid} changed on the CalDAV server while it was being updated; get it again "
                              "and reapply your change", details={"field": "expected_etag"})
        return outcome.removeprefix("etag:")

    @staticmethod
    def _stored_etag(dav: Any, uid: str, text: str, put_etag: str | None) -> str:
        """The etag of what the server stored for `text` — the digest of the body it now answers, which
        `_load` and `_objects` compute — read back right after the PUT: servers normalise what they
        store (Radicale reorders lines and adds a VTIMEZONE), so the digest of `text` would never match
        (re-check 8). The body read is ours when its ETag is the one the PUT answered, or, without one
        (RFC 4791 §5.3.4: none for a changed body), when it holds `text`'s events unchanged. Otherwise
        another write landed in between: the digest of `text` is returned, which the next update
        refuses as stale (`conflict`) rather than overwrite that write."""
        try:
            stored = dav.event_by_uid(uid)
        except (caldav_error.DAVError, OSError):  # the write is done; an etag the next update refuses is safe
            return ical.etag_of(text)
        put_etag = unquote(put_etag) if put_etag and put_etag.startswith(("%22", "W/%22")) else put_etag
        ours = stored.etag == put_etag if put_etag and stored.etag else ical.same_events(text, stored.data)
        return ical.etag_of(stored.data) if ours else ical.etag_of(text)

    async def _remove(self, calendar_id: str, uid: str) -> None:
        dav = await self._dav(calendar_id)

        def remove() -> None:
            obj = dav.event_by_uid(uid)
            obj.delete()
            _landed("DELETE", obj.url, uid)

        await self._run(remove)


def _landed(method: str, url: Any, uid: str) -> None:
    """Report a write the server accepted to the tool call's watch (`servers.kit.landed`): the caldav
    library does its own HTTP, so `ProviderHTTP` never sees it, and a later failure of the same call
    must be answered as partly applied (not retryable), never as a plain retryable error."""
    note("CalDAV", method, urlsplit(str(url)).path, lambda: {"id": uid}, writes=True)
