"""Reports computed from ledger postings (embedded backend) or open invoices (aging, any backend).

Signs: each row shows an account on its normal side (assets and expenses debit-positive;
liabilities, equity and income credit-positive). The balance sheet shows the cumulative net income
to date as "Current earnings" in equity, so assets = liabilities + equity holds and the change in
equity between two dates equals the P&L's net income over them plus direct equity postings.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from servers.accounting.model import CREDIT_NORMAL, Account, Basis, Report, ReportRow, ReportSection
from servers.accounting.money import ZERO, round_money
from servers.kit.errors import DomainError

AGING_BUCKETS = ("current", "1_30", "31_60", "61_90", "over_90")


@dataclass(frozen=True)
class Entry:
    date: _dt.date
    account_code: str
    debit: Decimal
    credit: Decimal


@dataclass(frozen=True)
class OpenItem:
    """An open invoice's balance on the report day: in `currency` ("" = the report's), `label` naming it."""

    contact: str
    due_date: _dt.date
    balance: Decimal
    currency: str = ""
    label: str = ""


def _net(entries: Iterable[Entry], start: _dt.date | None, end: _dt.date | None) -> dict[str, Decimal]:
    """Debit minus credit per account over [start, end]."""
    out: dict[str, Decimal] = {}
    for entry in entries:
        if (start is None or entry.date >= start) and (end is None or entry.date <= end):
            out[entry.account_code] = out.get(entry.account_code, ZERO) + entry.debit - entry.credit
    return out


def _normal(account: Account, net: Decimal) -> Decimal:
    return -net if account.type in CREDIT_NORMAL else net


def _section(name: str, accounts: Sequence[Account], net: dict[str, Decimal], kinds: set[str]) -> ReportSection:
    rows = [ReportRow(name=a.name, account_code=a.code, amount=_normal(a, net[a.code]))
            for a in accounts if a.type in kinds and net.get(a.code)]
    return ReportSection(name=name, rows=rows, total=sum((r.amount for r in rows), ZERO))


def _rounded(report: Report) -> Report:
    """Every amount at the currency's precision (sums of rounded amounts, so this only fixes the scale: 0 -> 0.00)."""
    def fix(value: Decimal) -> Decimal:
        return round_money(value, report.currency)

    for section in report.sections:
        section.total = fix(section.total)
        for row in section.rows:
            row.amount = fix(row.amount)
            if row.columns:
                row.columns = {k: fix(v) for k, v in row.columns.items()}
    report.totals = {k: fix(v) for k, v in report.totals.items()}
    return report


def trial_balance(entries: Sequence[Entry], accounts: Sequence[Account], as_of: _dt.date, currency: str, basis: Basis,
                  provider: str) -> Report:
    net = _net(entries, None, as_of)
    rows = []
    for account in accounts:
        value = net.get(account.code, ZERO)
        if value:
            rows.append(ReportRow(name=account.name, account_code=account.code, amount=_normal(account, value),
                                  columns={"debit": max(value, ZERO), "credit": max(-value, ZERO)}))
    debit = sum((r.columns["debit"] for r in rows if r.columns), ZERO)
    credit = sum((r.columns["credit"] for r in rows if r.columns), ZERO)
    return _rounded(Report(report="trial_balance", basis=basis, currency=currency, as_of=as_of, provider=provider,
                  sections=[ReportSection(name="Accounts", rows=rows, total=debit - credit)],
                  totals={"debit": debit, "credit": credit}, balanced=debit == credit))


def profit_and_loss(entries: Sequence[Entry], accounts: Sequence[Account], start: _dt.date, end: _dt.date, currency: str,
                    basis: Basis, provider: str) -> Report:
    net = _net(entries, start, end)
    income = _section("Income", accounts, net, {"income"})
    expenses = _section("Expenses", accounts, net, {"expense"})
    return _rounded(Report(report="profit_and_loss", basis=basis, currency=currency, start=start, end=end, provider=provider,
                  sections=[income, expenses],
                  totals={"income": income.total, "expenses": expenses.total, "net_income": income.total - expenses.total}))


def balance_sheet(entries: Sequence[Entry], accounts: Sequence[Account], as_of: _dt.date, currency: str, basis: Basis,
                  provider: str) -> Report:
    net = _net(entries, None, as_of)
    assets = _section("Assets", accounts, net, {"asset"})
    liabilities = _section("Liabilities", accounts, net, {"liability"})
    equity = _section("Equity", accounts, net, {"equity"})
    earnings = -sum((value for code, value in net.items() for a in accounts if a.code == code and a.type in ("income", "expense")),
                    ZERO)
    if earnings:
        equity.rows.append(ReportRow(name="Current earnings", amount=earnings))
        equity.total += earnings
    return _rounded(Report(report="balance_sheet", basis=basis, currency=currency, as_of=as_of, provider=provider,
                  sections=[assets, liabilities, equity],
                  totals={"assets": assets.total, "liabilities": liabilities.total, "equity": equity.total,
                          "liabilities_and_equity": liabilities.total + equity.total},
                  balanced=assets.total == liabilities.total + equity.total))


def bucket(due: _dt.date, as_of: _dt.date) -> str:
    late = (as_of - due).days
    if late <= 0:
        return "current"
    return "1_30" if late <= 30 else "31_60" if late <= 60 else "61_90" if late <= 90 else "over_90"


def aged(kind: str, items: Iterable[OpenItem], as_of: _dt.date, currency: str, provider: str, advice: str = "") -> Report:
    """Open balances per contact in buckets of days past due (current, 1-30, 31-60, 61-90, over 90), all in
    `currency`: an item in another currency is refused (`conflict` naming it, with `advice`), never
    summed as if it were `currency` (outside review r38b #6). Convert items before (Xero: `xero_aging`)."""
    items = list(items)
    report = "aged_receivables" if kind == "receivable" else "aged_payables"
    foreign = [i for i in items if i.balance and i.currency and i.currency.upper() != currency.upper()]
    if foreign:
        shown = ", ".join(f"{i.label or i.contact} ({i.balance} {i.currency})" for i in foreign[:5])
        raise DomainError("conflict", f"{report}: {len(foreign)} open document(s) are not in {currency}, the report's "
                          f"currency: {shown}{', ...' if len(foreign) > 5 else ''}. {provider} gives no exchange rate for them "
                          f"here, so no total is given rather than one that adds different currencies as one. {advice}".strip(),
                          details={"currency": currency, "foreign": [{"document": i.label or i.contact, "currency": i.currency}
                                                                     for i in foreign[:20]]})
    per_contact: dict[str, dict[str, Decimal]] = {}
    for item in items:
        if item.balance:
            buckets = per_contact.setdefault(item.contact, {b: ZERO for b in AGING_BUCKETS})
            buckets[bucket(item.due_date, as_of)] += item.balance
    rows = [ReportRow(name=name, amount=sum(b.values(), ZERO), columns=b) for name, b in sorted(per_contact.items())]
    totals = {b: sum((r.columns[b] for r in rows if r.columns), ZERO) for b in AGING_BUCKETS}
    totals["total"] = sum((r.amount for r in rows), ZERO)
    return _rounded(Report(report=report, basis="accrual", currency=currency,
                  as_of=as_of, provider=provider, sections=[ReportSection(name="Contacts", rows=rows, total=totals["total"])],
                  totals=totals))
