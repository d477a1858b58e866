"""Reading the embedded ledger back: invoices with what was paid on them and their status, open
items for aging, postings as report entries (accrual as stored; cash derived from payments), and
ledger lines for list_transactions."""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from decimal import Decimal
from typing import Any

from servers.accounting import ledger, reports
from servers.accounting.model import Basis, Invoice, InvoiceKind, InvoiceLine, Transaction
from servers.accounting.money import ZERO, round_money


def invoice_from_row(db: sqlite3.Connection, row: sqlite3.Row, provider: str, as_of: _dt.date | None = None) -> Invoice:
    """An invoice row (joined with its contact's name) with what was paid on it by `as_of` (default: ever)."""
    lines = [InvoiceLine.model_validate(line) for line in json.loads(row["lines"])]
    paid_rows = db.execute("SELECT amount, date FROM payments WHERE invoice_id = ?", (row["id"],)).fetchall()
    paid = sum((Decimal(p["amount"]) for p in paid_rows if as_of is None or _dt.date.fromisoformat(p["date"]) <= as_of), ZERO)
    subtotal = sum((line.net for line in lines), ZERO)
    tax = sum((line.tax for line in lines), ZERO)
    total = subtotal + tax
    status = row["status"]
    if status == "open":
        status = "paid" if paid >= total else "partially_paid" if paid > 0 else "open"
    return Invoice(id=row["id"], number=row["number"], kind=row["kind"], contact_id=row["contact_id"],
                   contact_name=row["contact_name"], issue_date=row["issue_date"], due_date=row["due_date"],
                   currency=row["currency"], status=status, lines=lines, subtotal=subtotal, tax_total=tax, total=total,
                   amount_paid=round_money(paid, row["currency"]),
                   balance=round_money(total - paid if status not in ("draft", "voided") else ZERO, row["currency"]),
                   reference=row["reference"], version=str(row["version"]), provider=provider)


def open_items(db: sqlite3.Connection, kind: InvoiceKind, as_of: _dt.date, provider: str) -> list[reports.OpenItem]:
    """Approved invoices of `kind` issued by `as_of` and not voided by then, with their balance on that day, in
    the currency each was written in (`reports.aged` refuses one that is not the home currency)."""
    rows = db.execute("SELECT i.*, c.name AS contact_name FROM invoices i JOIN contacts c ON c.id = i.contact_id "
                      "WHERE i.kind = ? AND i.status != 'draft' AND i.issue_date <= ? "
                      "AND (i.voided_on IS NULL OR i.voided_on > ?)", (kind, as_of.isoformat(), as_of.isoformat()))
    items = []
    for row in rows:
        invoice = invoice_from_row(db, row, provider, as_of)
        items.append(reports.OpenItem(row["contact_name"], invoice.due_date or invoice.issue_date, invoice.total - invoice.amount_paid,
                                      invoice.currency, invoice.number or invoice.id))
    return items


def _entry(row: sqlite3.Row) -> reports.Entry:
    return reports.Entry(_dt.date.fromisoformat(row["date"]), row["account_code"], Decimal(row["debit"]), Decimal(row["credit"]))


def entries(db: sqlite3.Connection, basis: Basis) -> list[reports.Entry]:
    """Accrual: every posting. Cash: journal entries as posted, and each payment recognising its
    invoice's income/expense and tax (`ledger.cash_postings`), cumulatively in payment order — by
    date, then the order they were recorded — so what is recognised by the end of any day is the
    allocation of what had been paid on the invoice by then."""
    if basis == "accrual":
        return [_entry(r) for r in db.execute("SELECT date, account_code, debit, credit FROM postings")]
    found = [_entry(r) for r in db.execute("SELECT p.date, p.account_code, p.debit, p.credit FROM postings p "
                                           "JOIN batches b ON b.id = p.batch_id WHERE b.source = 'journal'")]
    paid: dict[str, Decimal] = {}
    for row in db.execute("SELECT p.*, i.kind, i.lines, i.currency FROM payments p JOIN invoices i ON i.id = p.invoice_id "
                          "ORDER BY p.invoice_id, p.date, p.rowid"):
        lines = [InvoiceLine.model_validate(line) for line in json.loads(row["lines"])]
        amount, before = Decimal(row["amount"]), paid.get(row["invoice_id"], Decimal(0))
        paid[row["invoice_id"]] = before + amount
        for posting in ledger.cash_postings(row["kind"], lines, before, amount, row["account_code"], row["currency"], ""):
            found.append(reports.Entry(_dt.date.fromisoformat(row["date"]), posting.account_code, posting.debit, posting.credit))
    return found


def transactions(db: sqlite3.Connection, start: _dt.date, end: _dt.date, account_code: str | None, after: int,
                 limit: int) -> list[Transaction]:
    """Up to `limit + 1` postings in [start, end] with ids above `after` (the extra one says there is more)."""
    sql = ("SELECT p.*, a.name, b.source, b.source_id FROM postings p JOIN batches b ON b.id = p.batch_id "
           "JOIN accounts a ON a.code = p.account_code WHERE p.date >= ? AND p.date <= ? AND p.id > ?")
    args: list[Any] = [start.isoformat(), end.isoformat(), after]
    if account_code:
        sql += " AND p.account_code = ?"
        args.append(account_code)
    return [Transaction(id=str(r["id"]), date=r["date"], account_code=r["account_code"], account_name=r["name"],
                        debit=Decimal(r["debit"]), credit=Decimal(r["credit"]), source=r["source"], source_id=r["source_id"],
                        memo=r["memo"] or "")
            for r in db.execute(sql + " ORDER BY p.id LIMIT ?", [*args, limit + 1])]
