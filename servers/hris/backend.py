"""The one protocol every HRIS backend implements."""

from __future__ import annotations

from datetime import date
from typing import Protocol

from pydantic import BaseModel

from servers.hris.model import (
    Absence,
    Balances,
    Department,
    Employee,
    EmployeePage,
    EmploymentStatus,
    EmploymentType,
    RequestStatus,
    TimeOffPage,
    TimeOffPreview,
    TimeOffRequest,
)


class EmployeeFilter(BaseModel):
    query: str | None = None
    department: str | None = None
    location: str | None = None
    manager_id: str | None = None
    status: EmploymentStatus | None = None
    employment_type: EmploymentType | None = None


class HrisBackend(Protocol):
    name: str

    async def search(self, where: EmployeeFilter, sensitive: list[str], limit: int, cursor: str | None) -> EmployeePage: ...

    async def get(self, ref: str, sensitive: list[str]) -> Employee: ...

    async def reports_of(self, employee_id: str) -> list[Employee]: ...

    async def departments(self) -> list[Department]: ...

    async def whos_out(self, start: date, end: date) -> list[Absence]: ...

    async def balances(self, employee_id: str, as_of: date) -> Balances: ...

    async def list_requests(
        self, employee_id: str | None, start: date | None, end: date | None, status: RequestStatus | None,
        limit: int, cursor: str | None,
    ) -> TimeOffPage: ...

    async def request_time_off(
        self, employee_id: str, type: str, start: date, end: date, note: str | None, dry_run: bool,
        hours_per_day: float | None = None, check_balance: bool = True,
    ) -> TimeOffPreview:
        """`hours_per_day`: the hours each working day charges (`balances.charged_per_day` decides when None).
        `check_balance` False: the caller may not see the balance, so none of the answer (dry run or not) may
        depend on it; a request over it is booked as pending and its approval is checked instead. A dry run
        raises what the real call would (the provider's own refusals aside)."""
        ...

    async def decide(self, request_id: str, decision: str) -> TimeOffRequest: ...
