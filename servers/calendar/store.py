"""The embedded calendar backend: calendars and iCalendar objects (one per series) in SQLite.

A fresh install is usable at once: while the store has no calendar at all, the first look at the
calendars creates `DEFAULT_CALENDAR` ("primary", the local user's, primary) in the machine's zone
(`TZ`, else /etc/localtime, else UTC). `create_calendar` adds more; asking again for an existing id
with the same name and zone is a no-op (safe to retry), with anything else a `conflict`.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from servers.calendar import ical
from servers.calendar.backend import IcalBackend
from servers.calendar.model import Attendee, Calendar, NewEvent
from servers.calendar.timeutil import local_zone
from servers.kit.errors import DomainError, not_found
from servers.kit.webhooks.feed import emit_change
from servers.kit.store import Store
from servers.calendar.walks import WALKS_TABLE

_MIGRATIONS = [
    """CREATE TABLE calendars (id TEXT PRIMARY KEY, name TEXT NOT NULL, zone TEXT NOT NULL, is_primary INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE events (uid TEXT PRIMARY KEY, calendar_id TEXT NOT NULL REFERENCES calendars(id), ical TEXT NOT NULL,
        etag TEXT NOT NULL, updated_at TEXT NOT NULL);
    CREATE INDEX events_calendar ON events(calendar_id)""",
    WALKS_TABLE,
]


DEFAULT_CALENDAR = "primary"


class EmbeddedCalendar(IcalBackend):
    name = "embedded"

    def __init__(self, data_dir: Path) -> None:
        self.store = Store(data_dir / "calendar.sqlite", _MIGRATIONS)

    async def calendars(self) -> list[Calendar]:
        zone = local_zone()

        def run(db: sqlite3.Connection) -> list[Calendar]:
            if db.execute("SELECT 1 FROM calendars LIMIT 1").fetchone() is None:
                db.execute("INSERT OR IGNORE INTO calendars VALUES (?, ?, ?, 1)", (DEFAULT_CALENDAR, "My calendar", zone))
            return [Calendar(id=r["id"], name=r["name"], zone=r["zone"], primary=bool(r["is_primary"]))
                    for r in db.execute("SELECT * FROM calendars ORDER BY is_primary DESC, id")]

        return await self.store.run(run)

    async def create_calendar(self, calendar_id: str, name: str, zone: str, primary: bool | None) -> Calendar:
        """A new calendar (the first one is primary unless `primary` is false); the same call again
        answers the existing calendar."""
        ZoneInfo(zone)

        def run(db: sqlite3.Connection) -> Calendar:
            row = db.execute("SELECT * FROM calendars WHERE id = ? OR (instr(?, '@') > 0 AND lower(id) = lower(?))",
                             (calendar_id, calendar_id, calendar_id)).fetchone()
            if row is not None:
                same = row["name"] == name and row["zone"] == zone and (primary is None or bool(row["is_primary"]) == primary)
                if not same:
                    raise DomainError("conflict", f"calendar {calendar_id!r} already exists (name {row['name']!r}, zone "
                                      f"{row['zone']}); pick another id", details={"field": "calendar_id"})
                return Calendar(id=row["id"], name=row["name"], zone=row["zone"], primary=bool(row["is_primary"]))
            first = db.execute("SELECT 1 FROM calendars LIMIT 1").fetchone() is None
            is_primary = first if primary is None else primary
            if is_primary:
                db.execute("UPDATE calendars SET is_primary = 0")
            db.execute("INSERT INTO calendars VALUES (?, ?, ?, ?)", (calendar_id, name, zone, int(is_primary)))
            emit_change(db, "calendar", calendar_id, "created")
            return Calendar(id=calendar_id, name=name, zone=zone, primary=is_primary)

        return await self.store.run(run)

    async def add_calendar(self, calendar_id: str, name: str, zone: str, primary: bool = False) -> None:
        ZoneInfo(zone)

        def run(db: sqlite3.Connection) -> None:
            if primary:
                db.execute("UPDATE calendars SET is_primary = 0")
            db.execute("INSERT OR REPLACE INTO calendars VALUES (?, ?, ?, ?)", (calendar_id, name, zone, int(primary)))

        await self.store.run(run)

    async def _objects(self, calendar_id: str, start: datetime, end: datetime) -> list[tuple[str, str]]:
        def run(db: sqlite3.Connection) -> list[tuple[str, str]]:
            return [(r["ical"], r["etag"]) for r in db.execute("SELECT ical, etag FROM events WHERE calendar_id = ?", (calendar_id,))]

        return await self.store.run(run)

    async def _invitations(self, calendar_id: str, start: datetime, end: datetime) -> list[tuple[str, str]]:
        """Events on other calendars here that invite this calendar's owner (its id is their email): they
        show on it, as a provider's invitations do (outside review money19 #4)."""
        if "@" not in calendar_id:
            return []

        def run(db: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = db.execute("SELECT ical, etag FROM events WHERE lower(calendar_id) != lower(?)", (calendar_id,))
            return [(r["ical"], r["etag"]) for r in rows if ical.invites(r["ical"], calendar_id)]

        return await self.store.run(run)

    async def _invitation(self, calendar_id: str, uid: str) -> tuple[str, str, str]:
        def run(db: sqlite3.Connection) -> tuple[str, str, str]:
            row = db.execute("SELECT calendar_id, ical, etag FROM events WHERE uid = ? AND lower(calendar_id) != lower(?)",
                             (uid, calendar_id)).fetchone()
            if row is None or "@" not in calendar_id or not ical.invites(row["ical"], calendar_id):
                raise not_found("event", uid)
            return row["calendar_id"], row["ical"], row["etag"]

        return await self.store.run(run)

    async def _load(self, calendar_id: str, uid: str) -> tuple[str, str]:
        def run(db: sqlite3.Connection) -> tuple[str, str]:
            row = db.execute("SELECT ical, etag FROM events WHERE uid = ? AND calendar_id = ?", (uid, calendar_id)).fetchone()
            if row is None:
                raise not_found("event", uid)
            return row["ical"], row["etag"]

        return await self.store.run(run)

    async def _save(self, calendar_id: str, uid: str, text: str, expected_etag: str | None) -> str:
        etag = ical.etag_of(text + datetime.now(UTC).isoformat())

        def run(db: sqlite3.Connection) -> str:
            row = db.execute("SELECT etag FROM events WHERE uid = ?", (uid,)).fetchone()
            if expected_etag is None and row is not None:  # a create never replaces: the UID is taken (maybe by this create)
                raise DomainError("conflict", f"an event with UID {uid} already exists; list the events to find it",
                                  details={"duplicate": True})
            if expected_etag is not None and (row is None or row["etag"] != expected_etag):
                raise DomainError("conflict", f"event {uid} changed while it was being updated; get it again")
            db.execute("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?)", (uid, calendar_id, text, etag, datetime.now(UTC).isoformat()))
            emit_change(db, "event", uid, "created" if row is None else "updated")
            return etag

        return await self.store.run(run)

    async def _remove(self, calendar_id: str, uid: str) -> None:
        def run(db: sqlite3.Connection) -> None:
            if db.execute("DELETE FROM events WHERE uid = ? AND calendar_id = ?", (uid, calendar_id)).rowcount:
                emit_change(db, "event", uid, "deleted")

        await self.store.run(run)

    async def seed_demo(self) -> None:
        """Three people in three zones, a weekly stand-up across a DST change, an all-day offsite."""

        def seeded(db: sqlite3.Connection) -> bool:
            return db.execute("SELECT 1 FROM calendars WHERE id != ? LIMIT 1", (DEFAULT_CALENDAR,)).fetchone() is not None

        if await self.store.run(seeded):
            return
        await self.add_calendar("ada@example.com", "Ada", "Europe/London", primary=True)
        await self.add_calendar("alan@example.com", "Alan", "America/New_York")
        await self.add_calendar("grace@example.com", "Grace", "Asia/Tokyo")
        london = ZoneInfo("Europe/London")
        monday = datetime(2026, 3, 23, 9, 30, tzinfo=london)
        await self.create(NewEvent(calendar_id="ada@example.com", title="Stand-up", start=monday, end=monday + timedelta(minutes=15),
                                   zone="Europe/London", rrule="FREQ=WEEKLY;BYDAY=MO,WE,FR",
                                   attendees=[Attendee(email="alan@example.com")]))
        day = monday.date() + timedelta(days=17)
        await self.create(NewEvent(calendar_id="ada@example.com", title="Team offsite", start=day, end=day + timedelta(days=2),
                                   zone="Europe/London", all_day=True))
