"""Writing the embedded ledger (`servers.accounting.store`), inside the caller's transaction: the SQLite
schema, posting one balanced batch with its postings, and the optimistic version check every update makes."""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
import uuid
from typing import Any

from servers.accounting import ledger
from servers.accounting.chart import SUBTYPE_MIGRATION
from servers.accounting.ledger import Posting
from servers.kit.errors import DomainError

MIGRATIONS = [
    """CREATE TABLE accounts (code TEXT PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 1);
    CREATE TABLE contacts (id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT, kind TEXT NOT NULL, tax_number TEXT,
        version INTEGER NOT NULL DEFAULT 1);
    CREATE TABLE invoices (id TEXT PRIMARY KEY, number TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, contact_id TEXT NOT NULL
        REFERENCES contacts(id), issue_date TEXT NOT NULL, due_date TEXT NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL,
        reference TEXT, lines TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1, voided_on TEXT);
    CREATE TABLE payments (id TEXT PRIMARY KEY, invoice_id TEXT NOT NULL REFERENCES invoices(id), date TEXT NOT NULL,
        amount TEXT NOT NULL, account_code TEXT NOT NULL, reference TEXT);
    CREATE TABLE batches (id TEXT PRIMARY KEY, date TEXT NOT NULL, source TEXT NOT NULL, source_id TEXT NOT NULL, memo TEXT,
        lines TEXT);
    CREATE TABLE postings (id INTEGER PRIMARY KEY AUTOINCREMENT, batch_id TEXT NOT NULL REFERENCES batches(id),
        date TEXT NOT NULL, account_code TEXT NOT NULL REFERENCES accounts(code), debit TEXT NOT NULL, credit TEXT NOT NULL,
        memo TEXT);
    CREATE INDEX postings_date ON postings(date);
    CREATE INDEX payments_invoice ON payments(invoice_id);
    CREATE INDEX batches_source ON batches(source_id)""",
    SUBTYPE_MIGRATION,
]


def post_batch(db: sqlite3.Connection, on: _dt.date, source: str, source_id: str, memo: str, postings: list[Posting],
               lines: Any = None) -> str:
    """Write one batch dated `on` for the event `source`/`source_id` and its `postings` (checked to balance);
    `lines`, when given, is kept with the batch as JSON. Returns the batch id."""
    ledger.check_balanced(postings)
    batch = uuid.uuid4().hex[:12]
    db.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)", (batch, on.isoformat(), source, source_id, memo,
                                                                   json.dumps(lines) if lines is not None else None))
    db.executemany("INSERT INTO postings (batch_id, date, account_code, debit, credit, memo) VALUES (?, ?, ?, ?, ?, ?)",
                   [(batch, on.isoformat(), p.account_code, str(p.debit), str(p.credit), p.memo) for p in postings])
    return batch


def check_version(current: str, expected: str | None, what: str) -> None:
    """`conflict` when the caller sent a version (`expected`) other than the `current` one of `what`."""
    if expected is not None and expected != current:
        raise DomainError("conflict", f"{what} changed since you read it (version {current}, you sent {expected}); "
                          "get it again and reapply your change", details={"current_version": current})
