"""The embedded HRIS backend: employees, holidays, balances and time-off requests in SQLite. Lists
page with signed keyset cursors bound to their query (`servers.hris.paging`)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from collections.abc import Callable
from functools import partial
from typing import Any

from servers.hris.backend import EmployeeFilter
from servers.hris import paging
from servers.hris.balances import (
    FULL_TIME_DAY_HOURS, balance_of, charged_per_day, check_employed, not_enough, most_in_a_day, over_on_approval,
)
from servers.hris.model import (
    SENSITIVE_FIELDS,
    Absence,
    Balance,
    Balances,
    Department,
    Employee,
    EmployeePage,
    RequestStatus,
    TimeOffPage,
    TimeOffPreview,
    TimeOffRequest,
)
from servers.kit.keyset import store_secret
from servers.kit.errors import DomainError, not_found
from servers.kit.store import Store
from servers.kit.webhooks.feed import FEED_TABLE, emit_change

HOURS_PER_DAY = FULL_TIME_DAY_HOURS  # how providers turn a type counted in days into hours
DECISIONS = {"approve": "approved", "deny": "denied", "cancel": "cancelled"}
_MIGRATIONS = [
    """CREATE TABLE employees (
        id TEXT PRIMARY KEY, employee_number TEXT UNIQUE, first_name TEXT NOT NULL, last_name TEXT NOT NULL,
        work_email TEXT UNIQUE, title TEXT, department TEXT, location TEXT, manager_id TEXT REFERENCES employees(id),
        employment_status TEXT NOT NULL, employment_type TEXT, start_date TEXT, end_date TEXT,
        sensitive TEXT NOT NULL DEFAULT '{}', updated_at TEXT NOT NULL);
    CREATE INDEX employees_manager ON employees(manager_id);
    CREATE INDEX employees_updated ON employees(updated_at);
    CREATE TABLE holidays (day TEXT PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE balances (employee_id TEXT NOT NULL REFERENCES employees(id), type TEXT NOT NULL,
        granted_hours REAL NOT NULL, PRIMARY KEY (employee_id, type));
    CREATE TABLE requests (id INTEGER PRIMARY KEY, employee_id TEXT NOT NULL REFERENCES employees(id),
        type TEXT NOT NULL, start TEXT NOT NULL, "end" TEXT NOT NULL, hours REAL NOT NULL, status TEXT NOT NULL,
        note TEXT, created_at TEXT NOT NULL, decided_at TEXT)""",
    # The change feed (servers/kit/webhooks/feed.py) replaces the employees.updated_at query: employees
    # already here enter it once, in updated_at order, so a feed read after the upgrade misses none.
    FEED_TABLE + """;
    INSERT OR IGNORE INTO kit_changes (kind, record_id, action, changed_at, source, origin)
        SELECT 'employee', id, 'updated',
               CASE WHEN instr(updated_at, '.') THEN updated_at ELSE replace(updated_at, '+00:00', '.000000+00:00') END,
               'embedded', 'backfill:' || id
        FROM employees ORDER BY updated_at, id""",
    # A working day's hours per employee (NULL: not recorded; 8 for full-time, asked for part-time).
    "ALTER TABLE employees ADD COLUMN hours_per_day REAL",
]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def business_days(start: date, end: date, holidays: set[str]) -> int:
    days, current = 0, start
    while current <= end:
        if current.weekday() < 5 and current.isoformat() not in holidays:
            days += 1
        current += timedelta(days=1)
    return days


def _overbooked(overlapping: list[sqlite3.Row], start: date, end: date, per_day: float, day_of: Callable[[float], float],
                holidays: set[str]) -> tuple[list[str], float]:
    """The overlapping requests on a working day of `start`..`end` where they and `per_day` more hours would
    take more than that date's day (`day_of` the largest hours a day asked on it: `balances.most_in_a_day`;
    each request spread evenly over its working days), and the smallest such day (for the message)."""
    taken: dict[date, float] = {}
    largest: dict[date, float] = {}
    on: dict[date, list[str]] = {}
    for r in overlapping:
        first, last = date.fromisoformat(r["start"]), date.fromisoformat(r["end"])
        each = r["hours"] / max(1, business_days(first, last, holidays))
        current = max(first, start)
        while current <= min(last, end):
            if business_days(current, current, holidays):
                taken[current] = taken.get(current, 0.0) + each
                largest[current] = max(largest.get(current, per_day), each)
                on.setdefault(current, []).append(str(r["id"]))
            current += timedelta(days=1)
    over = {d: day_of(largest[d]) for d, hours in taken.items() if hours + per_day > day_of(largest[d]) + 1e-9}
    clashing = {i for d in over for i in on[d]}
    return sorted(clashing, key=int), min(over.values(), default=day_of(per_day))


class EmbeddedHris:
    name = "embedded"

    def __init__(self, data_dir: Path) -> None:
        self.store = Store(data_dir / "hris.sqlite", _MIGRATIONS)
        self._secret: bytes | None = None

    def _cursor_secret(self, db: sqlite3.Connection) -> bytes:
        """The key list cursors are signed with (kept in the database, see `servers.kit.keyset`)."""
        if self._secret is None:
            self._secret = store_secret(db)
        return self._secret

    async def search(self, where: EmployeeFilter, sensitive: list[str], limit: int, cursor: str | None) -> EmployeePage:
        """Employees in the order added, keyset-paged (`servers.hris.paging`)."""

        def run(db: sqlite3.Connection) -> EmployeePage:
            rows, next_cursor = paging.employee_rows(db, self._cursor_secret(db), where, limit, cursor)
            return EmployeePage(employees=[_employee(r, sensitive) for r in rows], next_cursor=next_cursor)

        return await self.store.run(run)

    async def get(self, ref: str, sensitive: list[str]) -> Employee:
        return await self.store.run(lambda db: _employee(self._row(db, ref), sensitive))

    async def reports_of(self, employee_id: str) -> list[Employee]:
        def run(db: sqlite3.Connection) -> list[Employee]:
            rows = db.execute("SELECT * FROM employees WHERE manager_id = ? ORDER BY last_name", (employee_id,))
            return [_employee(r, []) for r in rows]

        return await self.store.run(run)

    async def departments(self) -> list[Department]:
        def run(db: sqlite3.Connection) -> list[Department]:
            rows = db.execute(
                "SELECT department, COUNT(*) AS n FROM employees WHERE department IS NOT NULL "
                "AND employment_status != 'inactive' GROUP BY department ORDER BY department"
            )
            return [Department(name=r["department"], headcount=r["n"]) for r in rows]

        return await self.store.run(run)

    async def whos_out(self, start: date, end: date) -> list[Absence]:
        def run(db: sqlite3.Connection) -> list[Absence]:
            out = [Absence(kind="holiday", name=r["name"], start=r["day"], end=r["day"])
                   for r in db.execute("SELECT * FROM holidays WHERE day BETWEEN ? AND ? ORDER BY day", (start.isoformat(), end.isoformat()))]
            for r in db.execute(
                'SELECT r.*, e.first_name, e.last_name FROM requests r JOIN employees e ON e.id = r.employee_id '
                'WHERE r.status = \'approved\' AND r.start <= ? AND r."end" >= ? ORDER BY r.start',
                (end.isoformat(), start.isoformat()),
            ):
                out.append(Absence(kind="time_off", employee_id=r["employee_id"], name=f"{r['first_name']} {r['last_name']}",
                                   start=r["start"], end=r["end"], type=r["type"]))
            return out

        return await self.store.run(run)

    async def balances(self, employee_id: str, as_of: date) -> Balances:
        """Entitlements are flat (no accrual periods), so only the taken/upcoming split of booked
        hours depends on `as_of`; available is the same figure `request_time_off` checks."""

        def run(db: sqlite3.Connection) -> Balances:
            found = self._row(db, employee_id)["id"]  # an email or employee number names the same person
            grants = db.execute("SELECT type, granted_hours FROM balances WHERE employee_id = ? ORDER BY type", (found,))
            out = [_balance(db, found, g["type"], g["granted_hours"], as_of) for g in grants.fetchall()]
            return Balances(employee_id=found, as_of=as_of, balances=out)

        return await self.store.run(run)

    async def list_requests(
        self, employee_id: str | None, start: date | None, end: date | None, status: RequestStatus | None,
        limit: int, cursor: str | None,
    ) -> TimeOffPage:
        """Requests by first day, then id, keyset-paged (`servers.hris.paging`)."""

        def run(db: sqlite3.Connection) -> TimeOffPage:
            found = self._row(db, employee_id)["id"] if employee_id is not None else None  # by email or number too
            rows, next_cursor = paging.request_rows(db, self._cursor_secret(db), found, start, end, status, limit, cursor)
            return TimeOffPage(requests=[_request(r) for r in rows], next_cursor=next_cursor)

        return await self.store.run(run)

    async def request_time_off(
        self, employee_id: str, type: str, start: date, end: date, note: str | None, dry_run: bool,
        hours_per_day: float | None = None, check_balance: bool = True,
    ) -> TimeOffPreview:
        """A dry run raises what the real call would; `check_balance` False books a request over the balance
        as pending (its approval is checked instead, `decide`)."""
        ref = employee_id
        if end < start:
            raise DomainError("invalid_argument", "end is before start (both dates are inclusive)", details={"field": "end"})

        def run(db: sqlite3.Connection) -> TimeOffPreview:
            person = self._row(db, ref)
            employee_id = person["id"]  # an email or employee number names the same person
            check_employed(_employee(person, []), start, end)
            per_day = charged_per_day(employee_id, person["employment_type"], person["hours_per_day"], hours_per_day)
            grant = db.execute("SELECT granted_hours FROM balances WHERE employee_id = ? AND type = ?", (employee_id, type)).fetchone()
            if grant is None:
                types = [r[0] for r in db.execute("SELECT type FROM balances WHERE employee_id = ?", (employee_id,))]
                raise DomainError("invalid_argument", f"{employee_id} has no {type!r} time off; types: {', '.join(types) or 'none'}")
            holidays = {r[0] for r in db.execute("SELECT day FROM holidays")}
            hours = business_days(start, end, holidays) * per_day
            if hours == 0:
                raise DomainError("invalid_argument", "that range has no working days (weekends and holidays only)")
            balance = _balance(db, employee_id, type, grant[0], date.today())
            before = balance.available_hours
            overlapping = db.execute(
                "SELECT id, start, \"end\", hours FROM requests WHERE employee_id = ? AND status IN ('approved', 'requested') "
                "AND start <= ? AND \"end\" >= ?", (employee_id, end.isoformat(), start.isoformat())).fetchall()
            overlaps = [str(r["id"]) for r in overlapping]
            clashing, day = _overbooked(overlapping, start, end, per_day,
                                        partial(most_in_a_day, person["hours_per_day"], person["employment_type"]), holidays)
            preview = TimeOffPreview(dry_run=dry_run, hours=hours, hours_per_day=per_day, balance_before=before,
                                     balance_after=before - hours, overlaps=overlaps)
            if clashing:  # part days on one date may add up to a working day (outside review: two half days)
                if person["hours_per_day"] is not None:
                    what = f"{employee_id}'s {day:g}h working day"
                elif person["employment_type"] == "part_time":
                    what = (f"the {day:g}h day the requests' hours_per_day give ({employee_id} has no daily schedule on "
                            "record: a part-time day is the largest hours_per_day asked on the date, or twice it, as two "
                            "half days, when under 8h; HR can record the schedule)")
                else:
                    what = f"the {day:g}h one date can take ({employee_id} has no daily schedule on record)"
                raise DomainError("conflict", f"overlaps existing request(s) {', '.join(clashing)}: together more than "
                                  f"{what} on a date — the same day asked twice, e.g. a retry whose answer was lost? Nothing "
                                  "was booked; cancel or change those, or ask for fewer hours or other days",
                                  details={"overlaps": clashing, "day_hours": day})
            if check_balance and before - hours < 0:
                raise not_enough(balance, hours)
            if dry_run:
                return preview
            cursor = db.execute(
                'INSERT INTO requests (employee_id, type, start, "end", hours, status, note, created_at) VALUES (?, ?, ?, ?, ?, \'requested\', ?, ?)',
                (employee_id, type, start.isoformat(), end.isoformat(), hours, note, _now()),
            )
            preview.request = _request(db.execute("SELECT * FROM requests WHERE id = ?", (cursor.lastrowid,)).fetchone())
            emit_change(db, "time_off_request", preview.request.id, "created")
            return preview

        return await self.store.run(run)

    async def decide(self, request_id: str, decision: str) -> TimeOffRequest:
        def run(db: sqlite3.Connection) -> TimeOffRequest:
            # ids as listed only: SQLite would take "01" or "1.0" for request 1
            canonical = request_id.isascii() and request_id.isdigit() and str(int(request_id)) == request_id
            row = db.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone() if canonical else None
            if row is None:
                raise not_found("time-off request", request_id)
            target = DECISIONS[decision]
            if row["status"] == target:  # the same decision again (a retry after a lost answer): what it did
                return _request(row)
            allowed = {"requested": {"approved", "denied", "cancelled"}, "approved": {"cancelled"}}.get(row["status"], set())
            if target not in allowed:
                raise DomainError("conflict", f"request {request_id} is {row['status']} and cannot be {target}",
                                  details={"status": row["status"]})
            if row["status"] == "approved" and date.fromisoformat(row["start"]) <= date.today():
                # cancelling would give back hours already taken (outside review: a leave cancelled mid-way
                # refunded its first week)
                raise DomainError("conflict", f"request {request_id} is approved leave that began on {row['start']}: its "
                                  "days so far are taken, so it cannot be cancelled; only leave not yet begun can be. "
                                  "To end it early, have HR shorten it in the HR records.",
                                  details={"status": row["status"], "start": row["start"]})
            if target == "approved":
                _check_approval(db, row)
            db.execute("UPDATE requests SET status = ?, decided_at = ? WHERE id = ?", (target, _now(), request_id))
            emit_change(db, "time_off_request", str(row["id"]), "updated")
            return _request(db.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone())

        return await self.store.run(run)

    async def add_employee(self, **fields: Any) -> None:
        sensitive = {k: fields.pop(k) for k in list(fields) if k in SENSITIVE_FIELDS}
        fields.setdefault("updated_at", _now())
        fields["sensitive"] = json.dumps(sensitive)

        def run(db: sqlite3.Connection) -> None:
            db.execute(f"INSERT INTO employees ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})", list(fields.values()))
            emit_change(db, "employee", fields["id"], "created")

        await self.store.run(run)

    async def seed_demo(self) -> None:
        """A small company: a CEO, two managers, reports, balances, a holiday (`--demo`)."""
        if (await self.search(EmployeeFilter(), [], 1, None)).employees:
            return
        people = [
            dict(id="e1", employee_number="1001", first_name="Grace", last_name="Hopper", work_email="grace@example.com",
                 title="CEO", department="Leadership", location="London", manager_id=None, date_of_birth="1906-12-09",
                 national_id="QQ123456C", home_address="1 Navy Way"),
            dict(id="e2", employee_number="1002", first_name="Ada", last_name="Lovelace", work_email="ada@example.com",
                 title="Head of Engineering", department="Engineering", location="London", manager_id="e1"),
            dict(id="e3", employee_number="1003", first_name="Alan", last_name="Turing", work_email="alan@example.com",
                 title="Engineer", department="Engineering", location="Manchester", manager_id="e2"),
            dict(id="e4", employee_number="1004", first_name="Katherine", last_name="Johnson", work_email="katherine@example.com",
                 title="Analyst", department="Finance", location="Remote", manager_id="e1", employment_type="part_time",
                 hours_per_day=4.0),
        ]
        for person in people:
            person.setdefault("employment_type", "full_time")
            await self.add_employee(employment_status="active", start_date="2024-01-08", **person)

        def rest(db: sqlite3.Connection) -> None:
            db.executemany("INSERT INTO balances VALUES (?, ?, ?)",
                           [(p["id"], t, h) for p in people for t, h in (("vacation", 200.0), ("sick", 80.0))])
            db.execute("INSERT INTO holidays VALUES ('2026-12-25', 'Christmas Day'), ('2026-12-26', 'Boxing Day')")

        await self.store.run(rest)

    @staticmethod
    def _row(db: sqlite3.Connection, ref: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM employees WHERE id = ? OR lower(work_email) = lower(?) OR employee_number = ?",
                         (ref, ref, ref)).fetchone()  # an email in any case (re-check)
        if row is None:
            raise not_found("employee", ref)
        return row


def _balance(db: sqlite3.Connection, employee_id: str, type: str, granted: float, as_of: date) -> Balance:
    """The balance of one type: approved leave is booked (taken up to `as_of`, by working day),
    requested leave is pending, and both count against the entitlement."""
    rows = db.execute(
        'SELECT start, "end", hours, status FROM requests WHERE employee_id = ? AND type = ? AND status IN (\'approved\', \'requested\')',
        (employee_id, type),
    ).fetchall()
    holidays: set[str] | None = None
    booked = taken = pending = 0.0
    for r in rows:
        if r["status"] == "requested":
            pending += r["hours"]
            continue
        booked += r["hours"]
        start, end = date.fromisoformat(r["start"]), date.fromisoformat(r["end"])
        if end <= as_of:
            taken += r["hours"]
        elif start <= as_of:
            if holidays is None:
                holidays = {h[0] for h in db.execute("SELECT day FROM holidays")}
            # by the request's own hours a day (part days, part-time schedules)
            days = business_days(start, end, holidays)
            taken += r["hours"] * business_days(start, as_of, holidays) / days if days else r["hours"]
    return balance_of(type, entitlement=granted, booked=booked, taken=taken, pending=pending)


def _check_approval(db: sqlite3.Connection, row: sqlite3.Row) -> None:
    """Refuse approving `row` when its hours and the approved leave of its type would pass the entitlement
    (requests by callers who may not see the balance are booked whatever it is, privacy.py)."""
    grant = db.execute("SELECT granted_hours FROM balances WHERE employee_id = ? AND type = ?",
                       (row["employee_id"], row["type"])).fetchone()
    if grant is None:
        return
    balance = _balance(db, row["employee_id"], row["type"], grant[0], date.today())
    if (balance.booked_hours or 0.0) + row["hours"] > grant[0] + 1e-9:
        raise over_on_approval(str(row["id"]), balance, row["hours"])


def _employee(row: sqlite3.Row, sensitive: list[str]) -> Employee:
    stored = json.loads(row["sensitive"])
    return Employee(
        id=row["id"], provider="embedded", remote_id=row["id"], employee_number=row["employee_number"],
        first_name=row["first_name"], last_name=row["last_name"], display_name=f"{row['first_name']} {row['last_name']}",
        work_email=row["work_email"], title=row["title"], department=row["department"], location=row["location"],
        manager_id=row["manager_id"], employment_status=row["employment_status"], employment_type=row["employment_type"],
        start_date=row["start_date"], end_date=row["end_date"], scheduled_hours_per_day=row["hours_per_day"],
        updated_at=row["updated_at"],
        sensitive={f: stored.get(f) for f in sensitive} if sensitive else None,
    )


def _request(row: sqlite3.Row) -> TimeOffRequest:
    return TimeOffRequest(id=str(row["id"]), employee_id=row["employee_id"], type=row["type"], start=row["start"],
                          end=row["end"], hours=row["hours"], status=row["status"], note=row["note"], created_at=row["created_at"])
