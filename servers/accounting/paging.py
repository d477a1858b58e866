"""Keyset paging for the embedded ledger's lists: contacts, invoices and ledger lines.

Each list is ordered by keys that never change once a record exists, so a cursor (the position of
the last record returned, signed and bound to the normalized query by `servers.kit.keyset`) resumes
strictly after it, and a full walk returns every record that matched throughout exactly once while
others write:
- contacts: in the order they were added (`rowid`); a name can change (`upsert_contact`), so
  ordering by name would move a renamed contact across the page boundary;
- invoices: by issue date, then the order they were entered (`rowid`); neither changes;
- ledger lines: in the order they were posted (posting id); postings are never changed or deleted.
A cursor from another query, or one crafted or altered, is `invalid_argument`.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
from decimal import Decimal
from typing import Any

from servers.accounting import ledger_reads
from servers.accounting.model import Contact, ContactKind, Invoice, InvoiceQuery, Transaction
from servers.kit.keyset import open_cursor, query_fingerprint, sign_cursor


def _amount(value: Decimal | None) -> str | None:
    """A decimal in canonical text ("10", "10.0" and "10.00" are the same filter)."""
    return None if value is None else format(value.normalize(), "f")


def _day(value: _dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def like_pattern(text: str) -> str:
    """`%text%` for `LIKE … ESCAPE '\\'`, with `%`, `_` and `\\` in `text` matching literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def contact_rows(db: sqlite3.Connection, secret: bytes, query: str | None, kind: ContactKind | None, limit: int,
                 cursor: str | None) -> tuple[list[sqlite3.Row], str | None]:
    """Up to `limit` contacts matching `query` (name or email, literal) and `kind`, after the cursor's
    position, and the cursor of the next page (None on the last)."""
    fingerprint = query_fingerprint("contacts", {"query": query or None, "kind": kind})
    after = open_cursor(secret, cursor, fingerprint, width=1)
    sql, args = "SELECT rowid AS position, * FROM contacts WHERE rowid > ?", [after[0] if after else 0]
    if query:
        sql += " AND (name LIKE ? ESCAPE '\\' OR email LIKE ? ESCAPE '\\')"
        args += [like_pattern(query)] * 2
    if kind:
        sql += " AND kind IN (?, 'both')"
        args.append(kind)
    rows = db.execute(sql + " ORDER BY rowid LIMIT ?", [*args, limit + 1]).fetchall()
    more = len(rows) > limit
    return rows[:limit], sign_cursor(secret, fingerprint, [rows[limit - 1]["position"]]) if more else None


def invoice_filters(query: InvoiceQuery) -> dict[str, Any]:
    """The search in canonical form (statuses sorted and deduplicated, dates ISO, amounts without
    trailing zeros): equal searches give equal dicts, so a cursor binds to what was asked. An
    `overdue_only` search is bound to the day it was asked on."""
    return {"kind": query.kind, "status": sorted(set(query.status)) if query.status else None,
            "contact_id": query.contact_id or None, "issued_from": _day(query.issued_from),
            "issued_to": _day(query.issued_to), "overdue_on": _day(query.overdue_on),
            "min_total": _amount(query.min_total), "max_total": _amount(query.max_total)}


def _matches(invoice: Invoice, query: InvoiceQuery) -> bool:
    """The filters that need an invoice's payments or lines (status, balance, total)."""
    return ((not query.status or invoice.status in query.status)
            and (query.overdue_on is None or invoice.balance > 0)
            and (query.min_total is None or invoice.total >= query.min_total)
            and (query.max_total is None or invoice.total <= query.max_total))


def invoice_page(db: sqlite3.Connection, secret: bytes, query: InvoiceQuery, provider: str, limit: int,
                 cursor: str | None) -> tuple[list[Invoice], str | None]:
    """Up to `limit` matching invoices after the cursor's position, by (issue date, rowid), and the
    next page's cursor. Filters on stored columns run in SQL; the others on each invoice read."""
    fingerprint = query_fingerprint("invoices", invoice_filters(query))
    after = open_cursor(secret, cursor, fingerprint, width=2)
    sql = ("SELECT i.rowid AS position, i.*, c.name AS contact_name FROM invoices i JOIN contacts c ON c.id = i.contact_id "
           "WHERE i.kind = ?")
    args: list[Any] = [query.kind]
    for clause, value in (("i.contact_id = ?", query.contact_id), ("i.issue_date >= ?", _day(query.issued_from)),
                          ("i.issue_date <= ?", _day(query.issued_to)), ("i.due_date < ?", _day(query.overdue_on))):
        if value is not None:
            sql += f" AND {clause}"
            args.append(value)
    if after is not None:
        sql += " AND (i.issue_date, i.rowid) > (?, ?)"
        args += after
    found: list[tuple[Invoice, list[Any]]] = []
    for row in db.execute(sql + " ORDER BY i.issue_date, i.rowid", args):
        invoice = ledger_reads.invoice_from_row(db, row, provider)
        if _matches(invoice, query):
            found.append((invoice, [row["issue_date"], row["position"]]))
            if len(found) > limit:
                break
    more = len(found) > limit
    return [i for i, _ in found[:limit]], sign_cursor(secret, fingerprint, found[limit - 1][1]) if more else None


def transaction_page(db: sqlite3.Connection, secret: bytes, start: _dt.date, end: _dt.date, account_code: str | None,
                     limit: int, cursor: str | None) -> tuple[list[Transaction], str | None]:
    """Up to `limit` ledger lines in [start, end] (on one account if given) in posting order after
    the cursor's position, and the next page's cursor."""
    fingerprint = query_fingerprint("transactions", {"start": start.isoformat(), "end": end.isoformat(),
                                                     "account_code": account_code or None})
    after = open_cursor(secret, cursor, fingerprint, width=1)
    rows = ledger_reads.transactions(db, start, end, account_code, int(after[0]) if after else 0, limit)
    more = len(rows) > limit
    return rows[:limit], sign_cursor(secret, fingerprint, [int(rows[limit - 1].id)]) if more else None


def contact_from_row(row: sqlite3.Row) -> Contact:
    return Contact(id=row["id"], name=row["name"], email=row["email"], kind=row["kind"], tax_number=row["tax_number"],
                   version=str(row["version"]))
