"""Xero aged receivables/payables, computed from invoices (Xero's own aged reports need one contact per call).

What was owed on an invoice at the end of `as_of` is its total less every allocation dated by then (payments,
credit notes, prepayments, overpayments), Xero's `AmountDue` from today on. Only invoices that can be open then
are read (outside review r38b #7): `AUTHORISED` ones dated by `as_of`, and for a past day also the `PAID` ones
whose `FullyPaidOnDate` is after it. Voided invoices never count (Xero voids on the invoice's own date, so its
balance sheet and aged reports never show one either). Each balance is stated in the home currency with the
invoice's `CurrencyRate` (Xero: units of the invoice's currency per one of the base currency, so base =
amount / rate; r38b #6); a foreign balance without a usable rate, or more invoices than `MAX_PAGES` pages,
is an error, never a short or mixed figure.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from servers.accounting import reports
from servers.accounting.model import Invoice, Report
from servers.accounting.money import ZERO, read_money, round_money
from servers.accounting.money import read_amount as amount
from servers.accounting.providers.xero_mapping import read_date, read_invoice
from servers.kit.errors import DomainError

PAGE = 100
MAX_PAGES = 50
"""Pages of `PAGE` invoices read per status; one more page would make the report an error (`too_many`)."""

Fetch = Callable[[dict[str, Any]], Awaitable[list[dict[str, Any]]]]
"""GET /Invoices with these query parameters: the rows of that page."""


def where_date(value: _dt.date) -> str:
    """A date as Xero's `where` writes it."""
    return f"DateTime({value.year},{value.month:02d},{value.day:02d})"


def _today() -> _dt.date:
    return _dt.date.today()


async def aged(fetch: Fetch, kind: str, as_of: _dt.date, home: str, provider: str) -> Report:
    """The aged receivables (`kind` receivable) or payables report on `as_of`, in `home` currency."""
    report = "aged_receivables" if kind == "receivable" else "aged_payables"
    dated = f'Type=="{"ACCREC" if kind == "receivable" else "ACCPAY"}" AND Date<={where_date(as_of)}'
    queries = [{"Statuses": "AUTHORISED", "where": dated}]
    if as_of < _today():  # paid since: open on that day
        queries.append({"Statuses": "PAID", "where": f"{dated} AND FullyPaidOnDate>{where_date(as_of)}"})
    items = []
    for query in queries:
        for raw in await _every(fetch, query, report, as_of):
            invoice = read_invoice(raw, home)
            owed = _owed(raw, invoice, as_of)
            items.append(reports.OpenItem(invoice.contact_name or invoice.contact_id, invoice.due_date or invoice.issue_date,
                                          in_home(raw, invoice, owed, home, report), home, invoice.number or invoice.id))
    return reports.aged(kind, items, as_of, home, provider)


async def _every(fetch: Fetch, query: dict[str, Any], report: str, as_of: _dt.date) -> list[dict[str, Any]]:
    """Every invoice `query` finds, `PAGE` a page; more than `MAX_PAGES` pages is an error, not a short list."""
    rows: list[dict[str, Any]] = []
    for page in range(1, MAX_PAGES + 2):
        found = await fetch({**query, "page": page, "pageSize": PAGE})
        if found and page > MAX_PAGES:
            raise DomainError("upstream_error", f"{report} as of {as_of}: Xero lists more than {MAX_PAGES * PAGE:,} "
                              f"{query['Statuses']} invoices that may be open on that day, more than this server reads for "
                              "one report; no report is given rather than one that leaves some out. Use Xero's own aged "
                              "report in Xero, or page through the open ones with search_invoices (status open and "
                              "partially_paid, by contact)", retryable=False,
                              details={"limit": MAX_PAGES * PAGE, "statuses": query["Statuses"]})
        rows += found
        if len(found) < PAGE:
            break
    return rows


def in_home(raw: dict[str, Any], invoice: Invoice, balance: Decimal, home: str, report: str) -> Decimal:
    """`balance` (in the invoice's currency) in `home`: divided by the invoice's `CurrencyRate` when the
    currencies differ, at `home`'s precision. No usable rate on a foreign balance is an error: a guess
    would be a wrong figure."""
    if not balance or invoice.currency.upper() == home.upper():
        return balance
    rate = amount(raw.get("CurrencyRate"))
    if rate is None or rate <= 0:
        label = invoice.number or invoice.id
        raise DomainError("upstream_error", f"{report}: invoice {label} owes {balance} {invoice.currency}, and Xero sent "
                          f"{'no' if rate is None else f'an unusable ({rate})'} exchange rate (CurrencyRate) for it, so "
                          f"that balance cannot be stated in {home}, the report's currency; no report is given rather "
                          f"than one that guesses. Set the invoice's exchange rate in Xero, then ask again",
                          retryable=False, details={"invoice": label, "currency": invoice.currency})
    return round_money(balance / rate, home)


def settled(raw: dict[str, Any]) -> list[tuple[_dt.date | None, Decimal]]:
    """Every allocation against the invoice, dated: payments, and credit notes, prepayments and overpayments
    applied to it. A credit's own `Allocations` (date of each allocation) are used when Xero sends them; else its
    `AppliedAmount` at its `Date`, which on a list read is the credit's date, not the allocation's (Xero)."""
    found = [(read_date(p, "Date"), amount(p.get("Amount")) or ZERO) for p in raw.get("Payments") or []]
    for key in ("CreditNotes", "Prepayments", "Overpayments"):
        for credit in raw.get(key) or []:
            allocations = [a for a in credit.get("Allocations") or []
                           if (a.get("Invoice") or {}).get("InvoiceID") in (None, raw.get("InvoiceID"))]
            if allocations:
                found += [(read_date(a, "Date"), amount(a.get("Amount")) or ZERO) for a in allocations]
            else:
                found.append((read_date(credit, "Date"), amount(credit.get("AppliedAmount")) or ZERO))
    return found


def _owed(raw: dict[str, Any], invoice: Invoice, as_of: _dt.date) -> Decimal:
    """What was owed on the invoice at the end of `as_of`, in its currency: Xero's own `AmountDue` from today on,
    else the total less every allocation dated by then (outside review money19: credit notes and
    pre/overpayments were ignored)."""
    if as_of >= _today():
        return read_money(raw.get("AmountDue"), invoice.currency)
    done = sum((value for day, value in settled(raw) if day is None or day <= as_of), ZERO)
    return max(invoice.total - round_money(done, invoice.currency), ZERO)
