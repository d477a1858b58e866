"""Normalized HRIS records. Sensitive fields exist on the model but stay empty unless the privacy
policy allows them, the caller holds `hris:sensitive` and asks for them by name; leave reasons
(type, note) are withheld the same way (see `servers.hris.privacy`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

EmploymentStatus = Literal["active", "pending", "leave", "inactive"]
EmploymentType = Literal["full_time", "part_time", "contractor", "intern", "temporary"]
RequestStatus = Literal["requested", "approved", "denied", "cancelled"]
SENSITIVE_FIELDS = ("date_of_birth", "national_id", "compensation", "bank_account", "home_address",
                    "personal_email", "personal_phone")
REASON_NOTE = ("The leave type is the reason someone is out (health data): null unless the caller holds scope "
               "hris:sensitive and HRIS_SENSITIVE_ALLOW includes leave_reason.")


class Employee(BaseModel):
    id: str
    provider: str
    remote_id: str
    employee_number: str | None = None
    first_name: str
    last_name: str
    display_name: str
    work_email: str | None = None
    title: str | None = None
    department: str | None = None
    location: str | None = None
    manager_id: str | None = None
    employment_status: EmploymentStatus
    employment_type: EmploymentType | None = None
    start_date: date | None = None
    end_date: date | None = None
    scheduled_hours_per_day: float | None = Field(
        default=None,
        description="The hours of this employee's working day where the HR system records them; a day off charges "
                    "this by default (8 when unknown, except for part-time employees: see request_time_off).",
    )
    updated_at: datetime | None = None
    sensitive: dict[str, Any] | None = Field(
        default=None,
        description="Only fields the caller asked for, holds scope hris:sensitive for, and HRIS_SENSITIVE_ALLOW allows.",
    )
    raw: dict[str, Any] | None = None


class EmployeePage(BaseModel):
    employees: list[Employee]
    next_cursor: str | None = None


class OrgNode(BaseModel):
    employee: Employee
    reports: list[OrgNode] = Field(default_factory=list)


class OrgChart(BaseModel):
    root: Employee
    direction: Literal["reports", "chain"]
    reports: list[OrgNode] = Field(default_factory=list, description="With direction=reports: the tree below root.")
    chain: list[Employee] = Field(default_factory=list, description="With direction=chain: managers, nearest first.")


class Department(BaseModel):
    name: str
    headcount: int


class DepartmentList(BaseModel):
    departments: list[Department]


class Absence(BaseModel):
    kind: Literal["time_off", "holiday"]
    employee_id: str | None = None
    name: str
    start: date
    end: date = Field(description="Inclusive.")
    type: str | None = Field(default=None, description=REASON_NOTE)
    reason_hidden: bool = Field(default=False, description="True when `type` is withheld (see `type`).")


class WhosOut(BaseModel):
    start: date
    end: date
    absences: list[Absence]


class Balance(BaseModel):
    """One time-off type. `available_hours` = entitlement − booked − pending: exactly what
    `request_time_off` grants (pending requests hold their hours until decided). The figures that
    move with bookings are null for callers who may not see leave reasons (see `Balances`)."""

    type: str
    entitlement_hours: float | None = Field(
        description="Hours granted; null when the provider reports only a balance (then available is its balance − pending)."
    )
    booked_hours: float | None = Field(description="Approved leave, taken or upcoming.")
    taken_hours: float | None = Field(description="The part of booked_hours on or before as_of.")
    pending_hours: float | None = Field(description="Requested and not yet decided; counts against available_hours.")
    available_hours: float | None = Field(description="What request_time_off can still grant.")


class Balances(BaseModel):
    employee_id: str
    as_of: date
    balances: list[Balance]
    total: Balance | None = Field(default=None, description=(
        "All types added up (type 'all'): given when the per-type figures are withheld (reason_hidden)."))
    reason_hidden: bool = Field(default=False, description=(
        "True when the per-type booked, taken, pending and available hours are null: they would tell which type "
        "someone's leave is (its reason, health data), which needs scope hris:sensitive and leave_reason in "
        "HRIS_SENSITIVE_ALLOW. The entitlements and `total` are shown."))


class TimeOffRequest(BaseModel):
    id: str
    employee_id: str
    type: str | None = Field(description=REASON_NOTE)
    start: date
    end: date
    hours: float
    status: RequestStatus
    note: str | None = Field(default=None, description="Health data like the type: withheld the same way.")
    created_at: datetime
    reason_hidden: bool = Field(default=False, description="True when `type` and `note` are withheld (see `type`).")


class TimeOffPage(BaseModel):
    requests: list[TimeOffRequest]
    next_cursor: str | None = None


class TimeOffPreview(BaseModel):
    """What `request_time_off` would do (dry_run) or did."""

    dry_run: bool
    request: TimeOffRequest | None = None
    hours: float
    hours_per_day: float = Field(description="Hours charged for each working day in the range.")
    balance_before: float | None = Field(description="Available hours of this type before the request.")
    balance_after: float | None
    overlaps: list[str] = Field(default_factory=list, description="Ids of the employee's requests that overlap.")
    reason_hidden: bool = Field(default=False, description=(
        "True when balance_before/balance_after are withheld: they reveal the hours of this type booked by earlier "
        "requests, whose types the caller may not see (scope hris:sensitive and leave_reason in HRIS_SENSITIVE_ALLOW)."))
