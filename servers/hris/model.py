"""Normalized HRIS records. Sensitive fields exist on the model but stay empty unless the privacy
policy allows them and the caller asks for them by name."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

EmploymentStatus = Literal["active", "pending", "leave", "inactive"]
EmploymentType = Literal["full_time", "part_time", "contractor", "intern", "temporary"]
RequestStatus = Literal["requested", "approved", "denied", "cancelled"]
SENSITIVE_FIELDS = ("date_of_birth", "national_id", "compensation", "bank_account", "home_address",
                    "personal_email", "personal_phone")


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
    updated_at: datetime | None = None
    sensitive: dict[str, Any] | None = Field(
        default=None, description="Only fields the privacy policy allows and the caller asked for."
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
    type: str | None = None


class WhosOut(BaseModel):
    start: date
    end: date
    absences: list[Absence]


class Balance(BaseModel):
    type: str
    available_hours: float
    used_hours: float


class Balances(BaseModel):
    employee_id: str
    as_of: date
    balances: list[Balance]


class TimeOffRequest(BaseModel):
    id: str
    employee_id: str
    type: str
    start: date
    end: date
    hours: float
    status: RequestStatus
    note: str | None = None
    created_at: datetime


class TimeOffPage(BaseModel):
    requests: list[TimeOffRequest]
    next_cursor: str | None = None


class TimeOffPreview(BaseModel):
    """What `request_time_off` would do (dry_run) or did."""

    dry_run: bool
    request: TimeOffRequest | None = None
    hours: float
    balance_before: float
    balance_after: float
    overlaps: list[str] = Field(default_factory=list, description="Ids of the employee's requests that overlap.")


class Change(BaseModel):
    employee_id: str
    action: Literal["created", "updated", "deleted"]
    changed_at: datetime


class ChangePage(BaseModel):
    changes: list[Change]
    next_cursor: str | None = None
