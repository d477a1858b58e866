"""The accounting backend protocol: what the tools ask of the embedded ledger, QuickBooks and Xero.

Input the tools can check alone (balanced journals, positive quantities, currency precision) is
checked before a backend is called; a backend checks what needs its data (over-payment, status,
versions) before it changes anything.
"""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal
from typing import Protocol

from servers.accounting.model import (
    Account,
    Basis,
    Contact,
    ContactInput,
    ContactKind,
    ContactPage,
    Invoice,
    InvoicePage,
    InvoicePatch,
    InvoiceQuery,
    JournalEntry,
    JournalLine,
    NewInvoice,
    Payment,
    Report,
    ReportKind,
    Totals,
    TransactionPage,
)


class AccountingBackend(Protocol):
    name: str
    currency: str
    """The home currency reports are in."""

    async def accounts(self) -> list[Account]: ...

    async def contacts(self, query: str | None, kind: ContactKind | None, limit: int, cursor: str | None) -> ContactPage: ...

    async def upsert_contact(self, contact: ContactInput) -> Contact: ...

    async def invoices(self, query: InvoiceQuery, limit: int, cursor: str | None) -> InvoicePage: ...

    async def invoice(self, invoice_id: str) -> Invoice: ...

    async def quote(self, new: NewInvoice) -> Totals: ...

    async def create_invoice(self, new: NewInvoice, idempotency_key: str | None) -> Invoice: ...

    async def approve(self, invoice_id: str, version: str | None) -> Invoice: ...

    async def void(self, invoice_id: str, version: str | None, on: _dt.date, defaulted: bool = False) -> Invoice:
        """`defaulted`: `on` is the server's default (no void_date given), so a retry may find another day on record."""

    async def patch(self, invoice_id: str, version: str | None, patch: InvoicePatch) -> Invoice: ...

    async def pay(self, invoice_id: str, amount: Decimal, on: _dt.date, account_code: str | None, reference: str | None,
                  idempotency_key: str | None) -> Payment: ...

    async def journal(self, on: _dt.date, memo: str, lines: list[JournalLine], idempotency_key: str | None) -> JournalEntry: ...

    async def transactions(self, start: _dt.date, end: _dt.date, account_code: str | None, limit: int,
                           cursor: str | None) -> TransactionPage: ...

    async def report(self, kind: ReportKind, basis: Basis, start: _dt.date | None, end: _dt.date | None,
                     as_of: _dt.date | None) -> Report: ...
