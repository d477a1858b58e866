"""The embedded accounting backend: a real double-entry ledger in SQLite.

Every business event writes one `batches` row and its `postings`, checked to balance, in the same
transaction as the event itself; nothing is ever deleted from the ledger (a void posts the reverse).
Amounts are stored as decimal text and summed as `Decimal`. One home currency
(`$ACCOUNTING_CURRENCY`, default USD): a document in another currency is refused, since converting
needs exchange rates this ledger does not keep. Tax codes: NONE 0 %, STD20 20 %, RED5 5 %.
A line without `account_code` goes to the default account of its kind (`DEFAULT_LINE_ACCOUNT`:
4000 Sales on invoices, 6000 Operating Expenses on bills); a payment without one goes to 1000 Bank, and
one with one must name a bank or cash account (`servers.accounting.chart`). The schema and batch posting
are in `ledger_writes`, contact upsert in `contact_writes`, reading back in `ledger_reads` and `paging`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path

from servers.accounting import ledger, ledger_reads, paging, reports
from servers.accounting.chart import DEFAULT_LINE_ACCOUNT, TAX_RATES, payment_account, postable_account, seed
from servers.accounting.contact_writes import upsert_contact
from servers.accounting.ledger import Posting, check_payable
from servers.accounting.ledger_writes import MIGRATIONS, check_version, post_batch
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
from servers.accounting.money import ZERO, home_currency
from servers.kit.keyset import store_secret
from servers.kit.errors import DomainError, not_found
from servers.kit.store import Store
from servers.kit.webhooks.feed import emit_change

def _day(value: str | None) -> _dt.date | None:
    return _dt.date.fromisoformat(value) if value else None


class EmbeddedAccounting:
    name = "embedded"

    def __init__(self, data_dir: Path, currency: str | None = None) -> None:
        self.currency = home_currency(currency or os.environ.get("ACCOUNTING_CURRENCY") or "USD", "ACCOUNTING_CURRENCY")
        self.store = Store(data_dir / "accounting.sqlite", MIGRATIONS)
        self._seeded = False
        self._secret: bytes | None = None

    def _cursor_secret(self, db: sqlite3.Connection) -> bytes:
        """The key list cursors are signed with (kept in the database, see `servers.kit.keyset`)."""
        if self._secret is None:
            self._secret = store_secret(db)
        return self._secret

    async def _db(self) -> None:
        if not self._seeded:
            await self.store.run(seed)
            self._seeded = True

    # -- reading helpers (inside a transaction) ---------------------------------------------

    @staticmethod
    def _accounts(db: sqlite3.Connection) -> list[Account]:
        return [Account(code=r["code"], name=r["name"], type=r["type"], subtype=r["subtype"], active=bool(r["active"]))
                for r in db.execute("SELECT * FROM accounts ORDER BY code")]

    def _invoice(self, db: sqlite3.Connection, invoice_id: str, as_of: _dt.date | None = None) -> Invoice:
        """The invoice with id `invoice_id`, or that number (writes then go by the id it has)."""
        row = db.execute("SELECT i.*, c.name AS contact_name FROM invoices i JOIN contacts c ON c.id = i.contact_id "
                         "WHERE i.id = ? OR i.number = ? ORDER BY i.id = ? DESC LIMIT 1",
                         (invoice_id, invoice_id, invoice_id)).fetchone()
        if row is None:
            raise not_found("invoice", invoice_id)
        return ledger_reads.invoice_from_row(db, row, self.name, as_of)

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

    async def contacts(self, query: str | None, kind: ContactKind | None, limit: int, cursor: str | None) -> ContactPage:
        """Contacts in the order they were added, keyset-paged (`servers.accounting.paging`)."""
        await self._db()

        def run(db: sqlite3.Connection) -> ContactPage:
            rows, next_cursor = paging.contact_rows(db, self._cursor_secret(db), query, kind, limit, cursor)
            return ContactPage(contacts=[paging.contact_from_row(r) for r in rows], next_cursor=next_cursor)

        return await self.store.run(run)

    async def upsert_contact(self, contact: ContactInput) -> Contact:
        """Create a contact, or update one by id. An update changes only the fields the call gave (an
        empty email or tax number clears it); a create that matches an existing contact exactly (name,
        kind, email and tax number) returns that contact, so a retried create makes no duplicate."""
        await self._db()
        return await self.store.run(lambda db: upsert_contact(db, contact))

    # -- invoices ---------------------------------------------------------------------------

    async def invoices(self, query: InvoiceQuery, limit: int, cursor: str | None) -> InvoicePage:
        """Invoices by issue date, then the order entered, keyset-paged (`servers.accounting.paging`)."""
        await self._db()

        def run(db: sqlite3.Connection) -> InvoicePage:
            found, next_cursor = paging.invoice_page(db, self._cursor_secret(db), query, self.name, limit, cursor)
            return InvoicePage(invoices=found, next_cursor=next_cursor)

        return await self.store.run(run)

    async def invoice(self, invoice_id: str) -> Invoice:
        await self._db()
        return await self.store.run(lambda db: self._invoice(db, invoice_id))

    def _priced(self, db: sqlite3.Connection, new: NewInvoice | InvoicePatch, kind: str, currency: str) -> Totals:
        assert new.lines is not None
        wanted = ("income",) if kind == "receivable" else ("expense", "asset")
        lines = [line if line.account_code else line.model_copy(update={"account_code": DEFAULT_LINE_ACCOUNT[kind]}) for line in new.lines]
        for index, line in enumerate(lines):
            postable_account(db, line.account_code, f"lines[{index}].account_code", wanted, line=True)
        return ledger.price_lines(lines, currency, TAX_RATES)

    def _holds(self, db: sqlite3.Connection, invoice: Invoice, patch: InvoicePatch) -> bool:
        """Whether `invoice` already is what `patch` asks (lines compared as priced, on a draft only)."""
        if patch.due_date not in (None, invoice.due_date) or patch.reference not in (None, invoice.reference):
            return False
        return patch.lines is None or (invoice.status == "draft"
                                       and self._priced(db, patch, invoice.kind, invoice.currency).lines == invoice.lines)

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
            contact = db.execute("SELECT kind, name FROM contacts WHERE id = ?", (new.contact_id,)).fetchone()
            if contact is None:
                raise not_found("contact", new.contact_id)
            needed = "customer" if new.kind == "receivable" else "vendor"
            if contact["kind"] not in (needed, "both"):  # a vendor in aged receivables (outside review)
                raise DomainError("invalid_argument", f"contact_id: {contact['name']!r} is a {contact['kind']}, and a "
                                  f"{'sales invoice' if new.kind == 'receivable' else 'bill'} is for a {needed}. Make the "
                                  "contact kind 'both' with upsert_contact, or pick another contact.",
                                  details={"field": "contact_id", "contact_kind": contact["kind"]})
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
        post_batch(db, invoice.issue_date, invoice.kind, invoice.id, invoice.number or "", postings)
        db.execute("UPDATE invoices SET status = 'open', version = version + 1 WHERE id = ?", (invoice.id,))

    async def approve(self, invoice_id: str, version: str | None) -> Invoice:
        await self._db()

        def run(db: sqlite3.Connection) -> Invoice:
            invoice = self._invoice(db, invoice_id)
            if invoice.status in ("open", "partially_paid", "paid"):
                return self._approved(invoice, version)
            check_version(invoice.version, version, f"invoice {invoice.id}")
            if invoice.status != "draft":
                raise DomainError("invalid_argument", f"invoice {invoice.number} is {invoice.status}; only drafts can be approved")
            self._approve(db, invoice)
            emit_change(db, "invoice", invoice.id, "updated")
            return self._invoice(db, invoice.id)

        return await self.store.run(run)

    @staticmethod
    def _approved(invoice: Invoice, version: str | None) -> Invoice:
        """An approve of an invoice already approved (outside review w28b #5): answered when the caller's view is
        current (its `version` matches, or it sent none) or the approval was made from the version it read (approve
        adds one to the version: a retry whose answer was lost carries the one before). A draft changed by someone
        else and then approved is a `conflict`: the caller never saw what was approved."""
        if version is None or version == invoice.version or (version.isdigit() and int(version) + 1 == int(invoice.version)):
            return invoice
        raise DomainError("conflict", f"invoice {invoice.number} was changed and approved since you read version {version} (now "
                          f"version {invoice.version}, {invoice.status}, total {invoice.total} {invoice.currency}); nothing was "
                          "changed. Get it again and check it is what you meant to approve; if it is not, void it",
                          details={"current_version": invoice.version, "status": invoice.status})

    async def void(self, invoice_id: str, version: str | None, on: _dt.date, defaulted: bool = False) -> Invoice:
        """Void `invoice_id` on day `on`. A retried void answers the voided invoice when it names the day on
        record, or when `on` is only the server's default (`defaulted`: the caller gave no void_date; outside
        review w28b #6: a retry after midnight defaulted to another day than the first call)."""
        await self._db()

        def run(db: sqlite3.Connection) -> Invoice:
            invoice = self._invoice(db, invoice_id)
            if invoice.status == "voided":
                # A retried void (its first answer lost) answers the voided invoice, as the first call did; the
                # version it carries is the one before that void, so it is not checked here. Another void date
                # cannot be told apart from a different request: refused, saying what is on record.
                voided_on = db.execute("SELECT voided_on FROM invoices WHERE id = ?", (invoice.id,)).fetchone()[0]
                if defaulted or voided_on in (None, on.isoformat()):
                    return invoice
                raise DomainError("invalid_argument", f"invoice {invoice.number} was already voided on {voided_on} (you sent "
                                  f"void_date {on}); nothing was changed: a void cannot be redated",
                                  details={"field": "void_date", "voided_on": voided_on})
            check_version(invoice.version, version, f"invoice {invoice.id}")
            if invoice.amount_paid > 0:
                raise DomainError("invalid_argument", f"invoice {invoice.number} has {invoice.amount_paid} {invoice.currency} of "
                                  "payments, so it cannot be voided. The embedded books keep no credit notes or write-offs "
                                  "yet: the balance stays owed (see docs/domains.md, Accounting)")
            if invoice.status != "draft":
                if on < invoice.issue_date:
                    raise DomainError("invalid_argument", f"the void date {on} is before the invoice date {invoice.issue_date}")
                batch = db.execute("SELECT id FROM batches WHERE source_id = ? AND source = ?", (invoice.id, invoice.kind)).fetchone()
                original = [Posting(r["account_code"], Decimal(r["debit"]), Decimal(r["credit"]))
                            for r in db.execute("SELECT * FROM postings WHERE batch_id = ?", (batch["id"],))]
                post_batch(db, on, "void", invoice.id, f"void {invoice.number}", ledger.reverse(original, f"void {invoice.number}"))
            db.execute("UPDATE invoices SET status = 'voided', voided_on = ?, version = version + 1 WHERE id = ?",
                       (on.isoformat(), invoice.id))
            emit_change(db, "invoice", invoice.id, "updated")
            return self._invoice(db, invoice.id)

        return await self.store.run(run)

    async def patch(self, invoice_id: str, version: str | None, patch: InvoicePatch) -> Invoice:
        await self._db()

        def run(db: sqlite3.Connection) -> Invoice:
            invoice = self._invoice(db, invoice_id)
            if invoice.status != "voided" and self._holds(db, invoice, patch):
                return invoice  # a retried patch (first answer lost, its version now stale): nothing to change
            check_version(invoice.version, version, f"invoice {invoice.id}")
            if invoice.status == "voided":
                raise DomainError("invalid_argument", f"invoice {invoice.number} is voided and cannot change")
            if patch.lines is not None:
                if invoice.status != "draft":
                    raise DomainError("invalid_argument", f"invoice {invoice.number} is approved: its lines are in the ledger. "
                                      "Void it and issue a new one (one with payments cannot be voided)")
                lines = [line.model_dump(mode="json") for line in self._priced(db, patch, invoice.kind, invoice.currency).lines]
                db.execute("UPDATE invoices SET lines = ? WHERE id = ?", (json.dumps(lines), invoice.id))
            if patch.due_date is not None:
                if patch.due_date < invoice.issue_date:
                    raise DomainError("invalid_argument", "due_date is before the issue date", details={"field": "due_date"})
                db.execute("UPDATE invoices SET due_date = ? WHERE id = ?", (patch.due_date.isoformat(), invoice.id))
            if patch.reference is not None:
                db.execute("UPDATE invoices SET reference = ? WHERE id = ?", (patch.reference, invoice.id))
            db.execute("UPDATE invoices SET version = version + 1 WHERE id = ?", (invoice.id,))
            emit_change(db, "invoice", invoice.id, "updated")
            return self._invoice(db, invoice.id)

        return await self.store.run(run)

    # -- payments and journals --------------------------------------------------------------

    async def pay(self, invoice_id: str, amount: Decimal, on: _dt.date, account_code: str | None, reference: str | None,
                  idempotency_key: str | None) -> Payment:
        await self._db()

        def run(db: sqlite3.Connection) -> Payment:
            invoice = self._invoice(db, invoice_id)
            paid = check_payable(invoice, amount, on)  # at the currency's scale
            bank = payment_account(db, account_code or ledger.BANK)
            payment_id = uuid.uuid4().hex[:12]
            db.execute("INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?)", (payment_id, invoice.id, on.isoformat(), str(paid), bank, reference))
            post_batch(db, on, "payment", payment_id, f"payment {invoice.number}",
                       ledger.payment_postings(invoice.kind, paid, bank, f"payment {invoice.number}"))
            after = self._invoice(db, invoice.id)
            emit_change(db, "payment", payment_id, "created")
            emit_change(db, "invoice", invoice.id, "updated")
            return Payment(id=payment_id, invoice_id=invoice.id, date=on, amount=paid, currency=invoice.currency, account_code=bank,
                           reference=reference, invoice_balance=after.balance, invoice_status=after.status)

        return await self.store.run(run)

    async def journal(self, on: _dt.date, memo: str, lines: list[JournalLine], idempotency_key: str | None) -> JournalEntry:
        await self._db()

        def run(db: sqlite3.Connection) -> JournalEntry:
            for index, line in enumerate(lines):
                postable_account(db, line.account_code, f"lines[{index}].account_code")
            entry_id = "JE-" + uuid.uuid4().hex[:10]
            postings = [ledger.post(line.account_code, line.debit - line.credit, line.description or memo) for line in lines]
            post_batch(db, on, "journal", entry_id, memo, postings, [line.model_dump(mode="json") for line in lines])
            emit_change(db, "journal", entry_id, "created")
            return JournalEntry(id=entry_id, date=on, memo=memo, currency=self.currency, lines=lines, provider=self.name)

        return await self.store.run(run)

    # -- ledger and reports -----------------------------------------------------------------

    async def transactions(self, start: _dt.date, end: _dt.date, account_code: str | None, limit: int,
                           cursor: str | None) -> TransactionPage:
        """Ledger lines in the order posted, keyset-paged (`servers.accounting.paging`)."""
        await self._db()

        def run(db: sqlite3.Connection) -> TransactionPage:
            rows, next_cursor = paging.transaction_page(db, self._cursor_secret(db), start, end, account_code, limit, cursor)
            return TransactionPage(transactions=rows, next_cursor=next_cursor)

        return await self.store.run(run)

    async def report(self, kind: ReportKind, basis: Basis, start: _dt.date | None, end: _dt.date | None,
                     as_of: _dt.date | None) -> Report:
        await self._db()

        def run(db: sqlite3.Connection) -> Report:
            accounts = self._accounts(db)
            if kind in ("aged_receivables", "aged_payables"):
                assert as_of is not None
                wanted = "receivable" if kind == "aged_receivables" else "payable"
                items = ledger_reads.open_items(db, wanted, as_of, self.name)
                return reports.aged(wanted, items, as_of, self.currency, self.name, advice=(
                    f"The embedded ledger keeps one currency ({self.currency}, ACCOUNTING_CURRENCY) and no exchange rates: these "
                    "were written under another one. Start with ACCOUNTING_CURRENCY set to their currency, or move these books "
                    "to QuickBooks or Xero, which convert"))
            entries = ledger_reads.entries(db, basis)
            if kind == "profit_and_loss":
                assert start is not None and end is not None
                return reports.profit_and_loss(entries, accounts, start, end, self.currency, basis, self.name)
            assert as_of is not None
            if kind == "trial_balance":
                return reports.trial_balance(entries, accounts, as_of, self.currency, basis, self.name)
            return reports.balance_sheet(entries, accounts, as_of, self.currency, basis, self.name)

        return await self.store.run(run)
