"""The accounting tool surface over `AccountingBackend`.

Checks that need no backend data run here, before any backend call: amounts are decimal strings
at the currency's precision, quantities are positive, journal entries balance, report arguments
are complete. Writes that could be repeated take an `idempotency_key`; destructive ones `confirm`.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Annotated, Literal

from mcp.server import MCPServer
from pydantic import Field

from hub.datadir import default_data_dir
from servers.accounting import ledger
from servers.accounting.backend import AccountingBackend
from servers.accounting.model import (
    AccountList,
    AccountType,
    Basis,
    Contact,
    ContactInput,
    ContactKind,
    ContactPage,
    Invoice,
    InvoiceKind,
    InvoicePage,
    InvoiceResult,
    InvoicePatch,
    InvoiceQuery,
    InvoiceStatus,
    JournalEntry,
    JournalLine,
    LineInput,
    NewInvoice,
    Payment,
    Report,
    ReportKind,
    Totals,
    TransactionPage,
)
from servers.accounting.money import ROUNDING, Amount, CurrencyCode
from servers.kit.text import refuse_blank, refuse_control_chars
from servers.kit.dates import in_years
from servers.kit.errors import DomainError
from servers.kit.providers import Provider, Providers
from servers.kit.store import Store
from servers.kit.tools import configure_domain, domain_examples, domain_tool
from servers.kit.webhooks import attach_webhooks

PROVIDERS = Providers("accounting", {
    "embedded": Provider("servers.accounting.store:EmbeddedAccounting"),
    "quickbooks": Provider("servers.accounting.providers.quickbooks:QuickBooks", (
        "QUICKBOOKS_REALM_ID", "QUICKBOOKS_TOKEN|QUICKBOOKS_CLIENT_ID+QUICKBOOKS_CLIENT_SECRET+QUICKBOOKS_REFRESH_TOKEN")),
    "xero": Provider("servers.accounting.providers.xero:Xero",
                     ("XERO_TENANT_ID", "XERO_TOKEN|XERO_CLIENT_ID+XERO_CLIENT_SECRET+XERO_REFRESH_TOKEN")),
})
Limit = Annotated[int, Field(ge=1, le=500, description="Items per page.")]
Cursor = Annotated[str | None, Field(description="next_cursor of the previous page; omit for the first page.")]
InvoiceRef = Annotated[str, Field(description="Invoice or bill id (search_invoices, create_invoice), or its number such "
                                              "as INV-00012.")]
ContactId = Annotated[str, Field(description="Customer or vendor contact id (search_contacts, upsert_contact).")]
Day = Annotated[_dt.date | None, Field(description="YYYY-MM-DD; default today.")]
Reference = Annotated[str | None, Field(description="Your reference, e.g. a PO or bank reference.")]
Key = Annotated[str | None, Field(max_length=200, description="Repeat a call with the same key and it runs once.")]
Currency = Annotated[CurrencyCode | None, Field(description="ISO 4217 code such as EUR; default: the home currency.")]
MAX_REPORT_DAYS = 3660


def make_backend(name: str | None = None, data_dir: Path | None = None) -> AccountingBackend:
    """The backend named by `name`, else `$ACCOUNTING_BACKEND`, else the embedded one (`PROVIDERS`)."""
    return PROVIDERS.make(name, data_dir)


def _today() -> _dt.date:
    return _dt.date.today()


def _not_ahead(day: _dt.date, field: str, what: str) -> _dt.date:
    """`day`, unless after tomorrow (a day of slack for callers ahead in time zones): money and reversals are
    recorded when they happen (outside review: a payment dated 200 days ahead made the invoice read paid today
    while today's reports still showed it owed)."""
    if day > _today() + _dt.timedelta(days=1):
        raise DomainError("invalid_argument", f"{field}: {day} is in the future; record the {what} on the day it "
                          "happens (today or earlier)", details={"field": field})
    return day


def create_server(backend: AccountingBackend | None = None) -> MCPServer:
    backend = backend or make_backend()
    store = getattr(backend, "store", None) or Store(default_data_dir() / "accounting-idempotency.sqlite", [])
    mcp = MCPServer("accounting", instructions="Double-entry accounting. Amounts are decimal strings such as \"12.50\"; "
                    "try create_invoice with dry_run first to see totals.")
    configure_domain(mcp, open_world=backend.name != "embedded", idempotency=store, examples=domain_examples(__package__))
    attach_webhooks(mcp, "accounting", store, ("quickbooks", "xero"), ("invoice", "contact", "payment", "journal"))

    @domain_tool(mcp, read_only=True)
    async def list_accounts(
        type: Annotated[AccountType | None, Field(description="Only accounts of this type; default all.")] = None,
        include_inactive: Annotated[bool, Field(description="Also list inactive accounts.")] = False,
    ) -> AccountList:
        """The ledger accounts (chart of accounts) and their codes.
        The chart of accounts with codes, types and (where the backend has them) balances."""
        accounts = [a for a in await backend.accounts() if (type is None or a.type == type) and (include_inactive or a.active)]
        return AccountList(accounts=accounts)

    @domain_tool(mcp, read_only=True)
    async def search_contacts(
        query: Annotated[str | None, Field(max_length=200, description="Part of a name, email or tax number.")] = None,
        kind: Annotated[ContactKind | None, Field(description="customer, vendor or both; default any.")] = None,
        limit: Limit = 50, cursor: Cursor = None,
    ) -> ContactPage:
        """Find customers and vendors (suppliers) in the books.
        Customers and vendors by name or email."""
        return await backend.contacts(query, kind, limit, cursor)

    @domain_tool(mcp, idempotent=True)
    async def upsert_contact(
        name: Annotated[str, Field(min_length=1, max_length=200, description="Company or person name.")],
        kind: Annotated[ContactKind | None, Field(description="customer (you invoice them), vendor (they bill you) or both; "
                                                  "a new contact without it is a customer, an update keeps it.")] = None,
        id: Annotated[str | None, Field(description="Update this contact; omit to create one.")] = None,
        email: Annotated[str | None, Field(description="Billing email address; on an update, omit to keep it, \"\" to clear it.")] = None,
        tax_number: Annotated[str | None, Field(description="VAT or tax id; on an update, omit to keep it, \"\" to clear it.")] = None,
        version: Annotated[str | None, Field(description="The version you read, to refuse overwriting a newer change.")] = None,
    ) -> Contact:
        """Add a customer or vendor to the books, or change one's details.
        Create a contact, or update one by id: only the fields you give change. A create that matches a
        contact exactly (name, kind, email, tax id) returns it instead of a duplicate."""
        refuse_control_chars(name=name, email=email, tax_number=tax_number)
        refuse_blank(name=name)
        given = {field: value for field, value in (("email", email), ("kind", kind), ("tax_number", tax_number)) if value is not None}
        return await backend.upsert_contact(ContactInput(id=id, name=name, version=version, **given))

    @domain_tool(mcp, read_only=True)
    async def search_invoices(
        kind: Annotated[InvoiceKind, Field(description="receivable = sales invoices, payable = bills.")] = "receivable",
        status: Annotated[list[InvoiceStatus] | None, Field(description="Any of these statuses, e.g. ['draft'].")] = None,
        contact_id: Annotated[str | None, Field(description="Only this customer's or vendor's (search_contacts).")] = None,
        issued_from: Annotated[_dt.date | None, Field(description="Issued on or after this day.")] = None,
        issued_to: Annotated[_dt.date | None, Field(description="Issued on or before this day.")] = None,
        overdue_only: Annotated[bool, Field(description="Only invoices with a balance past their due date today.")] = False,
        min_total: Annotated[Amount | None, Field(description="Total at least this amount.")] = None,
        max_total: Annotated[Amount | None, Field(description="Total at most this amount.")] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> InvoicePage:
        """Find invoices and bills: unpaid, overdue, for a customer or vendor, by date or amount.
        Invoices or bills by status, contact, dates, overdue and amount."""
        query = InvoiceQuery(kind=kind, status=status, contact_id=contact_id, issued_from=issued_from, issued_to=issued_to,
                             overdue_on=_today() if overdue_only else None, min_total=min_total, max_total=max_total)
        return await backend.invoices(query, limit, cursor)

    @domain_tool(mcp, read_only=True)
    async def get_invoice(invoice_id: InvoiceRef) -> Invoice:
        """Read one invoice or bill whose id or number you know; to find invoices by status, contact or date, use
        search_invoices.
        One invoice or bill with its lines, totals, amount paid and balance."""
        return await backend.invoice(invoice_id)

    @domain_tool(mcp)
    async def create_invoice(
        contact_id: ContactId,
        lines: Annotated[list[LineInput], Field(min_length=1, max_length=200,
                                                description="What is sold or bought: description, quantity, unit price.")],
        kind: Annotated[InvoiceKind, Field(description="receivable = a sales invoice, payable = a vendor bill.")] = "receivable",
        issue_date: Day = None,
        due_date: Annotated[_dt.date | None, Field(description="Default: issue date + payment_terms_days.")] = None,
        payment_terms_days: Annotated[int, Field(ge=0, le=365, description="Days until due, when no due_date.")] = 30,
        currency: Currency = None,
        reference: Reference = None,
        approve: Annotated[bool, Field(description="Post it to the ledger now (else it stays a draft).")] = True,
        dry_run: Annotated[bool, Field(description="Only compute the lines' net, tax and totals; nothing is created.")] = False,
        idempotency_key: Key = None,
    ) -> InvoiceResult:
        """Bill a customer, or enter a supplier's bill to pay, with line items.
        Create a sales invoice (receivable) or a bill (payable). Rounding is per line, half-even."""
        refuse_control_chars(reference=reference, lines=[line.description or "" for line in lines])
        issued = in_years(issue_date, "issue_date") or _today()
        due = in_years(due_date, "due_date") or in_years(issued + _dt.timedelta(days=payment_terms_days), "due_date")
        if due < issued:
            raise DomainError("invalid_argument", "due_date is before issue_date", details={"field": "due_date"})
        new = NewInvoice(kind=kind, contact_id=contact_id, issue_date=issued, due_date=due, currency=(currency or backend.currency).upper(),
                         lines=lines, reference=reference, approve=approve)
        ledger.price_lines(lines, new.currency, None)  # quantities and totals checked before any backend call
        if dry_run:
            return InvoiceResult(dry_run=True, totals=await backend.quote(new))

        invoice = await backend.create_invoice(new, idempotency_key)
        totals = Totals(currency=invoice.currency, lines=invoice.lines, subtotal=invoice.subtotal, tax_total=invoice.tax_total,
                        total=invoice.total, rounding=ROUNDING)
        return InvoiceResult(dry_run=False, totals=totals, invoice=invoice)

    @domain_tool(mcp, destructive=True)
    async def update_invoice(
        invoice_id: InvoiceRef,
        action: Annotated[Literal["approve", "void", "patch"], Field(description="approve a draft; void (reverses its postings); "
                                                                                  "patch due date, reference or a draft's lines.")],
        version: Annotated[str | None, Field(description="The version you read; a newer change makes this a conflict.")] = None,
        due_date: Annotated[_dt.date | None, Field(description="patch: new due date.")] = None,
        reference: Annotated[str | None, Field(description="patch: new reference.")] = None,
        lines: Annotated[list[LineInput] | None, Field(description="patch (drafts only): the full new lines. An approved "
                                                                   "invoice is refused: void it and issue a new one, or a "
                                                                   "credit note. Xero: DRAFT or SUBMITTED only. QuickBooks "
                                                                   "(no drafts): any invoice or bill with nothing paid or "
                                                                   "credited and, for an invoice, not emailed.")] = None,
        void_date: Annotated[_dt.date | None, Field(description="void: day of the reversal; default today.")] = None,
        confirm: Annotated[bool, Field(description="void: must be true (it cannot be undone).")] = False,
    ) -> Invoice:
        """Change an invoice or bill: approve a draft, void it, or edit its due date or lines.
        Approve, void or patch an invoice. Voiding needs confirm=true and reverses, never deletes."""
        refuse_control_chars(reference=reference, lines=[line.description or "" for line in lines or []])
        given = {"due_date": due_date, "reference": reference, "lines": lines, "void_date": void_date,
                 "confirm": confirm or None}
        belongs = {"approve": set(), "void": {"void_date", "confirm"}, "patch": {"due_date", "reference", "lines"}}[action]
        if stray := sorted(name for name, value in given.items() if value is not None and name not in belongs):
            # Nothing is written rather than only part of what was asked (outside review: `approve` with a
            # new due date answered success and stored no due date).
            raise DomainError("invalid_argument", f"{action} does not take {', '.join(stray)}; nothing was changed. "
                              + ("Patch the draft first, then approve it." if action == "approve" else
                                 "Call update_invoice once per action."), details={"fields": stray})
        if action == "approve":
            return await backend.approve(invoice_id, version)
        if action == "void":
            if not confirm:
                raise DomainError("invalid_argument", "voiding reverses the invoice's postings: call again with confirm=true")
            # No void_date: today, and a retry answers a void made on any day (outside review w28b #6)
            return await backend.void(invoice_id, version, _not_ahead(in_years(void_date, "void_date") or _today(), "void_date", "void"),
                                      defaulted=void_date is None)
        if due_date is None and reference is None and lines is None:
            raise DomainError("invalid_argument", "patch needs due_date, reference or lines")
        in_years(due_date, "due_date")
        return await backend.patch(invoice_id, version, InvoicePatch(due_date=due_date, reference=reference, lines=lines))

    @domain_tool(mcp)
    async def record_payment(
        invoice_id: InvoiceRef,
        amount: Annotated[Amount, Field(description="Full or partial; at most the balance due.")],
        date: Annotated[_dt.date | None, Field(description="Day the money moved; default today.")] = None,
        account_code: Annotated[str | None, Field(description="The bank account paid into/from (default: embedded 1000 Bank; "
                                                  "QuickBooks: QUICKBOOKS_BANK_ACCOUNT for bills; Xero: XERO_BANK_ACCOUNT_CODE).")] = None,
        reference: Reference = None,
        currency: Annotated[Currency, Field(description="The amount's currency; if given, it must be the invoice's.")] = None,
        idempotency_key: Key = None,
    ) -> Payment:
        """Record money received for an invoice or paid for a bill (in full or in part).
        Record a payment against an invoice or bill, dated on or after its issue date; its balance and status follow."""
        refuse_control_chars(reference=reference)
        invoice = await backend.invoice(invoice_id)
        day = _not_ahead(in_years(date, "date") or _today(), "date", "payment")
        try:
            amount, refused = ledger.check_payable(invoice, amount, day, currency), None  # currency, precision, status, date, balance
        except DomainError as exc:
            if idempotency_key is None:
                raise
            # A keyed retry whose first answer was lost finds the invoice paid by that very payment: the backend
            # replays it for the key (Xero Idempotency-Key, QuickBooks' marked payment) or refuses as the check did.
            amount, refused = ledger.check_payable(invoice, amount, day, currency, replay=True), exc
        try:
            return await backend.pay(invoice.id, amount, day, account_code, reference, idempotency_key)
        except DomainError as exc:
            if refused is not None and exc.body.code == "invalid_argument":
                raise refused from exc
            raise

    @domain_tool(mcp)
    async def create_journal_entry(
        lines: Annotated[list[JournalLine], Field(min_length=2, max_length=500,
                                                  description="Debit and credit lines; they must balance.")],
        date: Day = None,
        memo: Annotated[str, Field(max_length=1000, description="Why the entry is made.")] = "",
        idempotency_key: Key = None,
    ) -> JournalEntry:
        """Move amounts between ledger accounts (adjustment, transfer, depreciation).
        Post a manual journal entry; it must balance (total debits = total credits)."""
        refuse_control_chars(memo=memo, lines=[line.description or "" for line in lines])
        checked = ledger.check_journal(lines, backend.currency)
        return await backend.journal(_not_ahead(in_years(date, "date") or _today(), "date", "journal entry"), memo, checked,
                                     idempotency_key)

    @domain_tool(mcp, read_only=True)
    async def list_transactions(
        start: Annotated[_dt.date, Field(description="First day (inclusive).")],
        end: Annotated[_dt.date, Field(description="Last day (inclusive).")],
        account_code: Annotated[str | None, Field(description="Only postings to this account code (list_accounts).")] = None,
        limit: Limit = 100, cursor: Cursor = None,
    ) -> TransactionPage:
        """The general ledger: transactions on an account, or all accounts, in a date range.
        Ledger lines (debits and credits) between two dates, optionally for one account."""
        _check_range(start, end)
        return await backend.transactions(start, end, account_code, limit, cursor)

    @domain_tool(mcp, read_only=True)
    async def get_report(
        report: Annotated[ReportKind, Field(description="profit_and_loss (income statement), balance_sheet, "
                                                        "trial_balance, aged_receivables or aged_payables.")],
        start: Annotated[_dt.date | None, Field(description="profit_and_loss: first day.")] = None,
        end: Annotated[_dt.date | None, Field(description="profit_and_loss: last day (inclusive).")] = None,
        as_of: Annotated[_dt.date | None, Field(description="Other reports: the day they are as of (default today).")] = None,
        basis: Annotated[Basis, Field(description="accrual (when invoiced) or cash (when paid).")] = "accrual",
    ) -> Report:
        """Financial reports: profit and loss (income statement), balance sheet, trial balance, aged receivables
        (who owes us) and aged payables (what we owe).
        Trial balance, profit and loss, balance sheet, aged receivables or aged payables; accrual or cash basis."""
        if report == "profit_and_loss":
            if start is None or end is None:
                raise DomainError("invalid_argument", "profit_and_loss needs start and end dates", details={"field": "start"})
            _check_range(start, end)
            return await backend.report(report, basis, start, end, None)
        if report.startswith("aged") and basis == "cash":
            raise DomainError("invalid_argument", "aging is about unpaid invoices, so it has no cash basis; use basis='accrual'")
        return await backend.report(report, basis, None, None, as_of or _today())

    mcp.backend = backend  # type: ignore[attr-defined]
    return mcp


def _check_range(start: _dt.date, end: _dt.date) -> None:
    if end < start:
        raise DomainError("invalid_argument", "end is before start", details={"field": "end"})
    if (end - start).days > MAX_REPORT_DAYS:
        raise DomainError("invalid_argument", "ranges are limited to ten years; split the query")
