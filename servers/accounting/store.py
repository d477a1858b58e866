"""The embedded accounting backend: a real double-entry ledger in SQLite.

Every business event writes one `batches` row and its `postings`, checked to balance, in the same
transaction as the event itself; nothing is ever deleted from the ledger (a void posts the reverse).
Amounts are stored as decimal text and summed as `Decimal`. One home currency
(`$ACCOUNTING_CURRENCY`, default USD): a document in another currency is refused, since converting
needs exchange rates this ledger does not keep. Tax codes: NONE 0 %, STD20 20 %, RED5 5 %.
A line without `account_code` goes to the default account of its kind (`DEFAULT_LINE_ACCOUNT`:
4000 Sales on invoices, 6000 Operating Expenses on bills); a payment without one goes to 1000 Bank.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from servers.accounting import ledger, ledger_reads, reports
from servers.accounting.ledger import Posting, check_payable
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
from servers.accounting.money import ZERO
from servers.kit.cursor import decode_cursor, encode_cursor
from servers.kit.errors import DomainError, not_found
from servers.kit.store import Store
from servers.kit.webhooks.feed import emit_change

TAX_RATES = {"NONE": Decimal("0"), "STD20": Decimal("0.20"), "RED5": Decimal("0.05")}
DEFAULT_LINE_ACCOUNT = {"receivable": "4000", "payable": "6000"}
CHART = [
    ("1000", "Bank", "asset"), ("1100", "Accounts Receivable", "asset"), ("1200", "Input Tax Recoverable", "asset"),
    ("1500", "Equipment", "asset"), ("2000", "Accounts Payable", "liability"), ("2100", "Sales Tax Payable", "liability"),
    ("2500", "Loans", "liability"), ("3000", "Owner's Equity", "equity"), ("3900", "Retained Earnings", "equity"),
    ("4000", "Sales", "income"), ("4100", "Services", "income"), ("5000", "Cost of Goods Sold", "expense"),
    ("6000", "Operating Expenses", "expense"), ("6100", "Rent", "expense"), ("6200", "Software", "expense"),
]
_MIGRATIONS = [
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
]


def _day(value: str | None) -> _dt.date | None:
    return _dt.date.fromisoformat(value) if value else None


class EmbeddedAccounting:
    name = "embedded"

    def __init__(self, data_dir: Path, currency: str | None = None) -> None:
        self.currency = (currency or os.environ.get("ACCOUNTING_CURRENCY") or "USD").upper()
        self.store = Store(data_dir / "accounting.sqlite", _MIGRATIONS)
        self._seeded = False

    async def _db(self) -> None:
        if not self._seeded:
            def seed(db: sqlite3.Connection) -> None:
                db.executemany("INSERT OR IGNORE INTO accounts (code, name, type) VALUES (?, ?, ?)", CHART)

            await self.store.run(seed)
            self._seeded = True

    # -- reading helpers (inside a transaction) ---------------------------------------------

    @staticmethod
    def _accounts(db: sqlite3.Connection) -> list[Account]:
        return [Account(code=r["code"], name=r["name"], type=r["type"], active=bool(r["active"]))
                for r in db.execute("SELECT * FROM accounts ORDER BY code")]

    def _account(self, db: sqlite3.Connection, code: str | None, field: str, types: tuple[str, ...] | None = None) -> str:
        if not code:
            raise DomainError("invalid_argument", f"{field}: an account code is required; list_accounts shows the chart",
                              details={"field": field})
        row = db.execute("SELECT type FROM accounts WHERE code = ?", (code,)).fetchone()
        if row is None:
            raise DomainError("invalid_argument", f"{field}: account {code!r} does not exist; list_accounts shows the chart",
                              details={"field": field})
        if types and row["type"] not in types:
            raise DomainError("invalid_argument", f"{field}: account {code} is {row['type']}, expected {' or '.join(types)}",
                              details={"field": field})
        return code  # type: ignore[return-value]

    def _invoice(self, db: sqlite3.Connection, invoice_id: str, as_of: _dt.date | None = None) -> Invoice:
        row = db.execute("SELECT i.*, c.name AS contact_name FROM invoices i JOIN contacts c ON c.id = i.contact_id "
                         "WHERE i.id = ?", (invoice_id,)).fetchone()
        if row is None:
            raise not_found("invoice", invoice_id)
        return ledger_reads.invoice_from_row(db, row, self.name, as_of)

    @staticmethod
    def _post(db: sqlite3.Connection, on: _dt.date, source: str, source_id: str, memo: str, postings: list[Posting],
              lines: Any = None) -> str:
        ledger.check_balanced(postings)
        batch = uuid.uuid4().hex[:12]
        db.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)", (batch, on.isoformat(), source, source_id, memo,
                                                                       json.dumps(lines) if lines is not None else None))
        db.executemany("INSERT INTO postings (batch_id, date, account_code, debit, credit, memo) VALUES (?, ?, ?, ?, ?, ?)",
                       [(batch, on.isoformat(), p.account_code, str(p.debit), str(p.credit), p.memo) for p in postings])
        return batch

    @staticmethod
    def _check_version(current: str, expected: str | None, what: str) -> None:
        if expected is not None and expected != current:
            raise DomainError("conflict", f"{what} changed since you read it (version {current}, you sent {expected}); "
                              "get it again and reapply your change", details={"current_version": current})

    def _home(self, currency: str) -> None:
        if currency.upper() != self.currency:
            raise DomainError("invalid_argument", f"the embedded ledger keeps one currency, {self.currency}; {currency} needs a "
                              "provider with exchange rates (QuickBooks or Xero)", details={"field": "currency"})

    # -- chart and contacts -----------------------------------------------------------------

    async def accounts(self) -> list[Account]:
        await self._db()

        def run(db: sqlite3.Connection) -> list[Account]:
            net = reports._net(ledger_reads.entries(db, "accrual"), None, None)
            return [a.model_copy(update={"balance": reports._normal(a, net.get(a.code, ZERO)), "currency": self.currency})
                    for a in self._accounts(db)]

        return await self.store.run(run)

    @staticmethod
    def _contact(row: sqlite3.Row) -> Contact:
        return Contact(id=row["id"], name=row["name"], email=row["email"], kind=row["kind"], tax_number=row["tax_number"],
                       version=str(row["version"]))

    async def contacts(self, query: str | None, kind: ContactKind | None, limit: int, cursor: str | None) -> ContactPage:
        await self._db()
        offset = int(decode_cursor(cursor).get("offset", 0))

        def run(db: sqlite3.Connection) -> ContactPage:
            sql, args = "SELECT * FROM contacts WHERE 1=1", []
            if query:
                sql += " AND (name LIKE ? ESCAPE '\\' OR email LIKE ? ESCAPE '\\')"
                like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                args += [like, like]
            if kind:
                sql += " AND kind IN (?, 'both')"
                args.append(kind)
            rows = db.execute(sql + " ORDER BY name, id LIMIT ? OFFSET ?", [*args, limit + 1, offset]).fetchall()
            more = len(rows) > limit
            return ContactPage(contacts=[self._contact(r) for r in rows[:limit]],
                               next_cursor=encode_cursor({"offset": offset + limit}) if more else None)

        return await self.store.run(run)

    async def upsert_contact(self, contact: ContactInput) -> Contact:
        await self._db()

        def run(db: sqlite3.Connection) -> Contact:
            if contact.id is None:
                new_id = "C-" + uuid.uuid4().hex[:8]
                db.execute("INSERT INTO contacts (id, name, email, kind, tax_number) VALUES (?, ?, ?, ?, ?)",
                           (new_id, contact.name, contact.email, contact.kind, contact.tax_number))
            else:
                row = db.execute("SELECT version FROM contacts WHERE id = ?", (contact.id,)).fetchone()
                if row is None:
                    raise not_found("contact", contact.id)
                self._check_version(str(row["version"]), contact.version, f"contact {contact.id}")
                db.execute("UPDATE contacts SET name=?, email=?, kind=?, tax_number=?, version=version+1 WHERE id=?",
                           (contact.name, contact.email, contact.kind, contact.tax_number, contact.id))
                new_id = contact.id
            emit_change(db, "contact", new_id, "updated" if contact.id else "created")
            return self._contact(db.execute("SELECT * FROM contacts WHERE id = ?", (new_id,)).fetchone())

        return await self.store.run(run)

    # -- invoices ---------------------------------------------------------------------------

    async def invoices(self, query: InvoiceQuery, limit: int, cursor: str | None) -> InvoicePage:
        await self._db()
        offset = int(decode_cursor(cursor).get("offset", 0))

        def run(db: sqlite3.Connection) -> InvoicePage:
            sql, args = ("SELECT i.*, c.name AS contact_name FROM invoices i JOIN contacts c ON c.id = i.contact_id "
                         "WHERE i.kind = ?"), [query.kind]
            for clause, value in (("i.contact_id = ?", query.contact_id), ("i.issue_date >= ?", query.issued_from),
                                  ("i.issue_date <= ?", query.issued_to), ("i.due_date < ?", query.overdue_on)):
                if value is not None:
                    sql += f" AND {clause}"
                    args.append(str(value))
            found = [ledger_reads.invoice_from_row(db, r, self.name) for r in db.execute(sql + " ORDER BY i.issue_date, i.number", args)]
            found = [i for i in found if (not query.status or i.status in query.status)
                     and (query.overdue_on is None or i.balance > 0)
                     and (query.min_total is None or i.total >= query.min_total)
                     and (query.max_total is None or i.total <= query.max_total)]
            page = found[offset : offset + limit]
            more = offset + limit < len(found)
            return InvoicePage(invoices=page, next_cursor=encode_cursor({"offset": offset + limit}) if more else None)

        return await self.store.run(run)

    async def invoice(self, invoice_id: str) -> Invoice:
        await self._db()
        return await self.store.run(lambda db: self._invoice(db, invoice_id))

    def _priced(self, db: sqlite3.Connection, new: NewInvoice | InvoicePatch, kind: str, currency: str) -> Totals:
        assert new.lines is not None
        wanted = ("income",) if kind == "receivable" else ("expense", "asset")
        lines = [line if line.account_code else line.model_copy(update={"account_code": DEFAULT_LINE_ACCOUNT[kind]}) for line in new.lines]
        for index, line in enumerate(lines):
            self._account(db, line.account_code, f"lines[{index}].account_code", wanted)
        return ledger.price_lines(lines, currency, TAX_RATES)

    async def quote(self, new: NewInvoice) -> Totals:
        await self._db()
        self._home(new.currency)
        def run(db: sqlite3.Connection) -> Totals:
            if db.execute("SELECT 1 FROM contacts WHERE id = ?", (new.contact_id,)).fetchone() is None:
                raise not_found("contact", new.contact_id)
            return self._priced(db, new, new.kind, new.currency)

        return await self.store.run(run)

    async def create_invoice(self, new: NewInvoice, idempotency_key: str | None) -> Invoice:
        await self._db()
        self._home(new.currency)

        def run(db: sqlite3.Connection) -> Invoice:
            contact = db.execute("SELECT kind FROM contacts WHERE id = ?", (new.contact_id,)).fetchone()
            if contact is None:
                raise not_found("contact", new.contact_id)
            totals = self._priced(db, new, new.kind, new.currency)
            prefix = "INV" if new.kind == "receivable" else "BILL"
            count = db.execute("SELECT COUNT(*) FROM invoices WHERE kind = ?", (new.kind,)).fetchone()[0]
            invoice_id = uuid.uuid4().hex[:12]
            lines = [line.model_dump(mode="json") for line in totals.lines]
            db.execute("INSERT INTO invoices (id, number, kind, contact_id, issue_date, due_date, currency, status, reference, lines) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, 'draft', ?, ?)",
                       (invoice_id, f"{prefix}-{count + 1:05d}", new.kind, new.contact_id, new.issue_date.isoformat(),
                        new.due_date.isoformat(), new.currency.upper(), new.reference, json.dumps(lines)))
            if new.approve:
                self._approve(db, self._invoice(db, invoice_id))
            emit_change(db, "invoice", invoice_id, "created")
            return self._invoice(db, invoice_id)

        return await self.store.run(run)

    def _approve(self, db: sqlite3.Connection, invoice: Invoice) -> None:
        postings = ledger.invoice_postings(invoice.kind, invoice.lines, f"{invoice.number}")
        self._post(db, invoice.issue_date, invoice.kind, invoice.id, invoice.number or "", postings)
        db.execute("UPDATE invoices SET status = 'open', version = version + 1 WHERE id = ?", (invoice.id,))

    async def approve(self, invoice_id: str, version: str | None) -> Invoice:
        await self._db()

        def run(db: sqlite3.Connection) -> Invoice:
            invoice = self._invoice(db, invoice_id)
            self._check_version(invoice.version, version, f"invoice {invoice_id}")
            if invoice.status != "draft":
                raise DomainError("invalid_argument", f"invoice {invoice.number} is {invoice.status}; only drafts can be approved")
            self._approve(db, invoice)
            emit_change(db, "invoice", invoice_id, "updated")
            return self._invoice(db, invoice_id)

        return await self.store.run(run)

    async def void(self, invoice_id: str, version: str | None, on: _dt.date) -> Invoice:
        await self._db()

        def run(db: sqlite3.Connection) -> Invoice:
            invoice = self._invoice(db, invoice_id)
            self._check_version(invoice.version, version, f"invoice {invoice_id}")
            if invoice.status == "voided":
                raise DomainError("invalid_argument", f"invoice {invoice.number} is already voided")
            if invoice.amount_paid > 0:
                raise DomainError("invalid_argument", f"invoice {invoice.number} has {invoice.amount_paid} {invoice.currency} of "
                                  "payments; a paid invoice cannot be voided — credit it with a journal entry instead")
            if invoice.status != "draft":
                if on < invoice.issue_date:
                    raise DomainError("invalid_argument", f"the void date {on} is before the invoice date {invoice.issue_date}")
                batch = db.execute("SELECT id FROM batches WHERE source_id = ? AND source = ?", (invoice.id, invoice.kind)).fetchone()
                original = [Posting(r["account_code"], Decimal(r["debit"]), Decimal(r["credit"]))
                            for r in db.execute("SELECT * FROM postings WHERE batch_id = ?", (batch["id"],))]
                self._post(db, on, "void", invoice.id, f"void {invoice.number}", ledger.reverse(original, f"void {invoice.number}"))
            db.execute("UPDATE invoices SET status = 'voided', voided_on = ?, version = version + 1 WHERE id = ?",
                       (on.isoformat(), invoice_id))
            emit_change(db, "invoice", invoice_id, "updated")
            return self._invoice(db, invoice_id)

        return await self.store.run(run)

    async def patch(self, invoice_id: str, version: str | None, patch: InvoicePatch) -> Invoice:
        await self._db()

        def run(db: sqlite3.Connection) -> Invoice:
            invoice = self._invoice(db, invoice_id)
            self._check_version(invoice.version, version, f"invoice {invoice_id}")
            if invoice.status == "voided":
                raise DomainError("invalid_argument", f"invoice {invoice.number} is voided and cannot change")
            if patch.lines is not None:
                if invoice.status != "draft":
                    raise DomainError("invalid_argument", f"invoice {invoice.number} is approved: its lines are in the ledger. "
                                      "Void it and issue a new one, or post an adjusting journal entry")
                lines = [line.model_dump(mode="json") for line in self._priced(db, patch, invoice.kind, invoice.currency).lines]
                db.execute("UPDATE invoices SET lines = ? WHERE id = ?", (json.dumps(lines), invoice_id))
            if patch.due_date is not None:
                if patch.due_date < invoice.issue_date:
                    raise DomainError("invalid_argument", "due_date is before the issue date", details={"field": "due_date"})
                db.execute("UPDATE invoices SET due_date = ? WHERE id = ?", (patch.due_date.isoformat(), invoice_id))
            if patch.reference is not None:
                db.execute("UPDATE invoices SET reference = ? WHERE id = ?", (patch.reference, invoice_id))
            db.execute("UPDATE invoices SET version = version + 1 WHERE id = ?", (invoice_id,))
            emit_change(db, "invoice", invoice_id, "updated")
            return self._invoice(db, invoice_id)

        return await self.store.run(run)

    # -- payments and journals --------------------------------------------------------------

    async def pay(self, invoice_id: str, amount: Decimal, on: _dt.date, account_code: str | None, reference: str | None,
                  idempotency_key: str | None) -> Payment:
        await self._db()

        def run(db: sqlite3.Connection) -> Payment:
            invoice = self._invoice(db, invoice_id)
            check_payable(invoice, amount, on)
            bank = self._account(db, account_code or ledger.BANK, "account_code", ("asset",))
            payment_id = uuid.uuid4().hex[:12]
            db.execute("INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?)", (payment_id, invoice_id, on.isoformat(), str(amount), bank, reference))
            self._post(db, on, "payment", payment_id, f"payment {invoice.number}",
                       ledger.payment_postings(invoice.kind, amount, bank, f"payment {invoice.number}"))
            after = self._invoice(db, invoice_id)
            emit_change(db, "payment", payment_id, "created")
            emit_change(db, "invoice", invoice_id, "updated")
            return Payment(id=payment_id, invoice_id=invoice_id, date=on, amount=amount, currency=invoice.currency, account_code=bank,
                           reference=reference, invoice_balance=after.balance, invoice_status=after.status)

        return await self.store.run(run)

    async def journal(self, on: _dt.date, memo: str, lines: list[JournalLine], idempotency_key: str | None) -> JournalEntry:
        await self._db()

        def run(db: sqlite3.Connection) -> JournalEntry:
            for index, line in enumerate(lines):
                self._account(db, line.account_code, f"lines[{index}].account_code")
            entry_id = "JE-" + uuid.uuid4().hex[:10]
            postings = [ledger.post(line.account_code, line.debit - line.credit, line.description or memo) for line in lines]
            self._post(db, on, "journal", entry_id, memo, postings, [line.model_dump(mode="json") for line in lines])
            emit_change(db, "journal", entry_id, "created")
            return JournalEntry(id=entry_id, date=on, memo=memo, currency=self.currency, lines=lines, provider=self.name)

        return await self.store.run(run)

    # -- ledger and reports -----------------------------------------------------------------

    async def transactions(self, start: _dt.date, end: _dt.date, account_code: str | None, limit: int,
                           cursor: str | None) -> TransactionPage:
        await self._db()
        after = int(decode_cursor(cursor).get("after", 0))
        rows = await self.store.run(lambda db: ledger_reads.transactions(db, start, end, account_code, after, limit))
        more = len(rows) > limit
        return TransactionPage(transactions=rows[:limit], next_cursor=encode_cursor({"after": int(rows[limit - 1].id)}) if more else None)

    async def report(self, kind: ReportKind, basis: Basis, start: _dt.date | None, end: _dt.date | None,
                     as_of: _dt.date | None) -> Report:
        await self._db()

        def run(db: sqlite3.Connection) -> Report:
            accounts = self._accounts(db)
            if kind in ("aged_receivables", "aged_payables"):
                assert as_of is not None
                wanted = "receivable" if kind == "aged_receivables" else "payable"
                items = ledger_reads.open_items(db, wanted, as_of, self.name)
                return reports.aged(wanted, items, as_of, self.currency, self.name)
            entries = ledger_reads.entries(db, basis)
            if kind == "profit_and_loss":
                assert start is not None and end is not None
                return reports.profit_and_loss(entries, accounts, start, end, self.currency, basis, self.name)
            assert as_of is not None
            if kind == "trial_balance":
                return reports.trial_balance(entries, accounts, as_of, self.currency, basis, self.name)
            return reports.balance_sheet(entries, accounts, as_of, self.currency, basis, self.name)

        return await self.store.run(run)

    async def seed_demo(self) -> None:
        """A small, balanced sample company (see `servers.accounting.demo`)."""
        from servers.accounting.demo import seed

        await seed(self)
