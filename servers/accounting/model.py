"""Normalized accounting records. Amounts are `Amount` (Decimal inside, decimal strings on the wire)."""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from servers.accounting.money import ZERO, Amount
from servers.kit.errors import DomainError

AccountType = Literal["asset", "liability", "equity", "income", "expense"]
ContactKind = Literal["customer", "vendor", "both"]
InvoiceKind = Literal["receivable", "payable"]
InvoiceStatus = Literal["draft", "open", "partially_paid", "paid", "voided"]
ReportKind = Literal["trial_balance", "profit_and_loss", "balance_sheet", "aged_receivables", "aged_payables"]
Basis = Literal["accrual", "cash"]
CREDIT_NORMAL = {"liability", "equity", "income"}


class Account(BaseModel):
    code: str = Field(description="Account code used in lines and journal entries.")
    name: str
    type: AccountType
    subtype: str | None = Field(default=None, description="The provider's own account type (e.g. Bank, Accounts Receivable).")
    currency: str | None = None
    balance: Amount | None = Field(default=None, description="Balance on the account's normal side, when the backend reports one.")
    active: bool = True


class AccountList(BaseModel):
    accounts: list[Account]


class Contact(BaseModel):
    id: str
    name: str
    email: str | None = None
    kind: ContactKind
    currency: str | None = None
    tax_number: str | None = None
    version: str | None = Field(default=None, description="Pass back as version to update_contact-style upserts.")


class ContactPage(BaseModel):
    contacts: list[Contact]
    next_cursor: str | None = None


class ContactInput(BaseModel):
    id: str | None = None
    name: str = Field(min_length=1, max_length=200)
    email: str | None = None
    kind: ContactKind = "customer"
    currency: str | None = None
    tax_number: str | None = None
    version: str | None = None


def refuse_clearing(contact: ContactInput, provider: str) -> None:
    """`invalid_argument` for an update that clears a contact's email or tax number (`""`): `provider`
    keeps a field sent empty, so the call would answer done and change nothing."""
    if contact.id and any(field in contact.model_fields_set and getattr(contact, field) == "" for field in ("email", "tax_number")):
        raise DomainError("invalid_argument", f"{provider} keeps a contact's email and tax number when they are left empty: "
                          f"clearing one is not supported here; give the new value, or edit the contact in {provider}")


class LineInput(BaseModel):
    description: str = Field(default="", max_length=1000)
    quantity: Amount = Decimal(1)
    unit_price: Amount
    account_code: str | None = Field(default=None, description="Income (receivable) or expense (payable) account; omitted: "
                                     "the backend's default (embedded: 4000 Sales on invoices, 6000 Operating Expenses on bills).")
    tax_code: str | None = Field(default=None, description="A tax code of the backend (embedded: NONE, STD20, RED5).")
    item: str | None = Field(default=None, description="Provider product/service id (QuickBooks invoices need one).")


class InvoiceLine(LineInput):
    net: Amount
    tax: Amount
    total: Amount


class Totals(BaseModel):
    currency: str
    lines: list[InvoiceLine]
    subtotal: Amount
    tax_total: Amount | None = Field(description="None when the provider computes tax only on create.")
    total: Amount | None
    rounding: str
    note: str | None = None


class Invoice(BaseModel):
    id: str
    number: str | None = None
    kind: InvoiceKind
    contact_id: str
    contact_name: str | None = None
    issue_date: _dt.date
    due_date: _dt.date | None = None
    currency: str
    status: InvoiceStatus
    lines: list[InvoiceLine]
    subtotal: Amount
    tax_total: Amount
    total: Amount
    amount_paid: Amount = ZERO
    balance: Amount
    reference: str | None = None
    version: str = Field(description="Pass back as version to update_invoice (optimistic concurrency).")
    provider: str


class InvoiceResult(BaseModel):
    """create_invoice's answer: the computed totals, and the invoice unless this was a dry run."""

    dry_run: bool
    totals: Totals
    invoice: Invoice | None = None


class InvoicePage(BaseModel):
    invoices: list[Invoice]
    next_cursor: str | None = None


class NewInvoice(BaseModel):
    kind: InvoiceKind
    contact_id: str
    issue_date: _dt.date
    due_date: _dt.date
    currency: str
    lines: list[LineInput]
    reference: str | None = None
    approve: bool = True


class InvoiceQuery(BaseModel):
    kind: InvoiceKind = "receivable"
    status: list[InvoiceStatus] | None = None
    contact_id: str | None = None
    issued_from: _dt.date | None = None
    issued_to: _dt.date | None = None
    overdue_on: _dt.date | None = Field(default=None, description="Only invoices with a balance due before this date.")
    min_total: Amount | None = None
    max_total: Amount | None = None


class InvoicePatch(BaseModel):
    due_date: _dt.date | None = None
    reference: str | None = None
    lines: list[LineInput] | None = None


class Payment(BaseModel):
    id: str
    invoice_id: str
    date: _dt.date
    amount: Amount
    currency: str
    account_code: str | None = None
    reference: str | None = None
    invoice_balance: Amount
    invoice_status: InvoiceStatus


class JournalLine(BaseModel):
    account_code: str
    debit: Amount = ZERO
    credit: Amount = ZERO
    description: str = ""


class JournalEntry(BaseModel):
    id: str
    date: _dt.date
    memo: str = ""
    currency: str
    lines: list[JournalLine]
    provider: str


class Transaction(BaseModel):
    id: str
    date: _dt.date
    account_code: str
    account_name: str | None = None
    debit: Amount = ZERO
    credit: Amount = ZERO
    source: str = Field(description="invoice, bill, payment, journal, void, ...")
    source_id: str | None = None
    memo: str = ""


class TransactionPage(BaseModel):
    transactions: list[Transaction]
    next_cursor: str | None = None


class ReportRow(BaseModel):
    name: str
    account_code: str | None = None
    amount: Amount
    columns: dict[str, Amount] | None = Field(default=None, description="Trial balance: debit/credit; aged: buckets.")


class ReportSection(BaseModel):
    name: str
    rows: list[ReportRow]
    total: Amount


class Report(BaseModel):
    report: ReportKind
    basis: Basis
    currency: str
    start: _dt.date | None = None
    end: _dt.date | None = None
    as_of: _dt.date | None = None
    sections: list[ReportSection]
    totals: dict[str, Amount] = Field(description="net_income; assets/liabilities/equity; debit/credit; per aging bucket.")
    balanced: bool | None = Field(default=None, description="Trial balance and balance sheet: whether the two sides agree.")
    provider: str
