"""Normalized calendar records. Every instant carries UTC, local time and its IANA zone; all-day
events carry dates with an exclusive end."""

from __future__ import annotations

import datetime as _dt
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

Response = Literal["accepted", "declined", "tentative", "needs_action"]
Scope = Literal["this", "this_and_following", "all"]


class EventTime(BaseModel):
    utc: datetime | None = Field(default=None, description="The instant in UTC (timed events).")
    local: datetime | None = Field(default=None, description="The same instant with the event's UTC offset.")
    zone: str | None = Field(default=None, description="IANA zone the local time is in.")
    date: _dt.date | None = Field(default=None, description="All-day events: the date (end dates are exclusive).")


class Attendee(BaseModel):
    email: str
    name: str | None = None
    response: Response = "needs_action"
    optional: bool = False


class Event(BaseModel):
    id: str = Field(description="The series (or single event) id.")
    provider: str
    remote_id: str
    calendar_id: str
    title: str
    description: str = ""
    location: str | None = None
    start: EventTime
    end: EventTime
    all_day: bool = False
    recurrence: list[str] | None = Field(default=None, description="RRULE/EXDATE lines of the series.")
    instance_start: datetime | date | None = Field(
        default=None, description="For one occurrence of a series: its original start (pass it to act on this instance)."
    )
    attendees: list[Attendee] = Field(default_factory=list)
    organizer: str | None = None
    reminders_minutes: list[int] = Field(default_factory=list)
    status: Literal["confirmed", "tentative", "cancelled"] = "confirmed"
    transparent: bool = Field(default=False, description="True if the event does not block time.")
    etag: str | None = Field(default=None, description="Pass as expected_etag to update_event to avoid overwriting a newer change.")
    raw: dict[str, Any] | None = None

    @field_validator("location")
    @classmethod
    def _no_location(cls, value: str | None) -> str | None:
        """A location cleared with "" (or only blanks) reads as none, as on Graph (which cannot tell the two apart)
        and CalDAV servers (Radicale drops a blank one)."""
        return value if value and value.strip() else None


class EventPage(BaseModel):
    events: list[Event]
    next_cursor: str | None = None
    truncated: bool = Field(default=False, description="Some series were not (fully) expanded: too many occurrences in "
                                                       "this range. `notes` says which; narrow the range.")
    notes: list[str] = Field(default_factory=list)


class Calendar(BaseModel):
    id: str
    name: str
    zone: str
    primary: bool = False
    read_only: bool = False


class CalendarList(BaseModel):
    calendars: list[Calendar]


class Interval(BaseModel):
    start: datetime
    end: datetime


class Busy(BaseModel):
    participant: str
    busy: list[Interval]
    error: str | None = Field(default=None, description="Set when this participant has no calendar here: their "
                                                         "availability is unknown (busy lists only events they are invited to).")
    truncated: bool = Field(default=False, description="A series was too dense to expand: its whole span is listed as busy.")


class FreeBusy(BaseModel):
    start: datetime
    end: datetime
    participants: list[Busy]
    unknown_participants: list[str] = Field(default_factory=list, description="Participants with no calendar here.")


class WorkingHours(BaseModel):
    zone: str = "UTC"
    start: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(default="17:00", pattern=r"^([01]\d|2[0-4]):[0-5]\d$")
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])


class Slot(BaseModel):
    start: EventTime
    end: EventTime


class Slots(BaseModel):
    slots: list[Slot]
    searched_until: datetime
    unknown_participants: list[str] = Field(
        default_factory=list, description="Participants with no calendar here: the slots could not check that they are free.")
    truncated: bool = Field(default=False, description="Some busy times were too dense to expand and were taken as busy "
                                                       "for their whole span; slots there are not offered.")
    notes: list[str] = Field(default_factory=list)


class Now(BaseModel):
    utc: datetime
    local: datetime
    zone: str
    weekday: str
    date: _dt.date


class Deleted(BaseModel):
    id: str
    scope: Scope
    deleted: bool = True


class NewEvent(BaseModel):
    """What create_event asks of a backend (times already resolved to aware datetimes or dates)."""

    calendar_id: str
    title: str
    start: datetime | date
    end: datetime | date
    zone: str
    all_day: bool = False
    rrule: str | None = None
    attendees: list[Attendee] = Field(default_factory=list)
    location: str | None = None
    description: str = ""
    reminders_minutes: list[int] = Field(default_factory=list)


class EventChanges(BaseModel):
    title: str | None = None
    description: str | None = None
    location: str | None = None
    start: datetime | date | None = None
    end: datetime | date | None = None
    attendees: list[Attendee] | None = None
    rrule: str | None = None
