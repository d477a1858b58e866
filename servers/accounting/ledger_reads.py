"""Reading the embedded ledger back: postings as report entries (accrual as stored; cash derived
from payments), and ledger lines for list_transactions."""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from decimal import Decimal
from typing import Any

from servers.accounting import ledger, reports
from servers.accounting.model import Basis, InvoiceLine, Transaction


def _entry(row: sqlite3.Row) -> reports.Entry:
    return reports.Entry(_dt.date.fromisoformat(row["date"]), row["account_code"], Decimal(row["debit"]), Decimal(row["credit"]))


def entries(db: sqlite3.Connection, basis: Basis) -> list[reports.Entry]:
    """Accrual: every posting. Cash: journal entries as posted, and each payment recognising its
    invoice's income/expense and tax in proportion (`ledger.cash_postings`)."""
    if basis == "accrual":
        return [_entry(r) for r in db.execute("SELECT date, account_code, debit, credit FROM postings")]
    found = [_entry(r) for r in db.execute("SELECT p.date, p.account_code, p.debit, p.credit FROM postings p "
                                           "JOIN batches b ON b.id = p.batch_id WHERE b.source = 'journal'")]
    for row in db.execute("SELECT p.*, i.kind, i.lines, i.currency FROM payments p JOIN invoices i ON i.id = p.invoice_id"):
        lines = [InvoiceLine.model_validate(line) for line in json.loads(row["lines"])]
        for posting in ledger.cash_postings(row["kind"], lines, Decimal(row["amount"]), row["account_code"], row["currency"], ""):
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
