"""Xero (Accounting API 2.0) as an accounting backend.

Configuration: `XERO_TENANT_ID` (sent as `xero-tenant-id` on every call), and `XERO_TOKEN` or
`XERO_CLIENT_ID` + `XERO_CLIENT_SECRET` + `XERO_REFRESH_TOKEN` (refresh tokens rotate; the kit's
vault keeps the newest, encrypted). `XERO_API` overrides the base, `XERO_CURRENCY` the home
currency, `XERO_BANK_ACCOUNT_CODE` the default account payments go into/out of.

Mapping: sales invoices are `ACCREC`, bills `ACCPAY`; lists use `page` + `pageSize` and `where`
(`Type=="ACCREC" AND Date>=DateTime(2026,03,01)`), `Statuses`, `ContactIDs`; dates are read from
`DateString` or `/Date(ms)/`. Line items are Description, Quantity, UnitAmount, AccountCode,
TaxType (`LineAmountTypes: Exclusive`, `unitdp=4` so unit prices keep four decimals). Keyed creates
send `Idempotency-Key` derived from the caller, the tool and their key (`provider_key`: Xero replays
a stored answer to whoever sends the key again, on any endpoint). Xero has no version token: we use `UpdatedDateUTC`, compared before each update
(a change landing between that read and the write is not detected — Xero offers nothing better).
Dry runs price lines with the tenant's `/TaxRates`. Ledger lines come from `/Journals` (ordered by
journal number, read 100 at a time). Aged receivables/payables are computed from the invoices that can be
open on the day, in the home currency (`xero_aging`). Lines are patched on DRAFT/SUBMITTED invoices only,
keeping what Xero holds on each line sent back that the tool does not show (`xero_mapping.patch_lines`).
Reading Xero records into ours and writing line items: `xero_mapping`; error bodies and write rules:
`xero_rules`; reports: `xero_reports`.
"""

from __future__ import annotations

import datetime as _dt
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from servers.accounting import ledger
from servers.accounting.model import (
    refuse_clearing,
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
    Transaction,
    TransactionPage,
)
from servers.accounting.money import ZERO, home_currency, round_money
from servers.accounting.money import read_amount as amount
from servers.accounting.providers import xero_aging
from servers.accounting.providers.xero_aging import where_date as _where_date
from servers.accounting.providers.xero_mapping import STATUSES, discounted, patch_lines, read_account, read_contact, read_date, read_invoice, write_lines
from servers.accounting.providers.xero_reports import read_report
from servers.accounting.providers.xero_rules import approved_since, error_text, refuse_issued_lines, unchanged_since
from servers.kit.cursor import decode_cursor, encode_cursor
from servers.kit.errors import DomainError
from servers.kit.http import ProviderHTTP
from servers.kit.idempotency import provider_key
from servers.kit.credentials import connect, oauth_from_env

REPORTS = {"trial_balance": "TrialBalance", "profit_and_loss": "ProfitAndLoss", "balance_sheet": "BalanceSheet"}
MAX_PAGES = 50


def _keyed(tool: str, key: str | None) -> dict[str, str] | None:
    """The `Idempotency-Key` header for the caller's `key` on `tool` (never the key itself)."""
    sent = provider_key(tool, key)
    return {"Idempotency-Key": sent} if sent else None


class Xero:
    name = "xero"

    def __init__(self, http: ProviderHTTP, currency: str = "USD", bank_account: str | None = None) -> None:
        self.http = http
        self.currency = currency
        self.bank_account = bank_account
        # invoice id -> (version approved from, version it made): tells a retried approve from a stale one (w28b #5)
        self._approvals: dict[str, tuple[str, str]] = {}

    @classmethod
    def from_env(cls, data_dir: Path | None = None, transport: httpx.AsyncBaseTransport | None = None, token_transport: Any = None) -> Xero:
        tenant = os.environ["XERO_TENANT_ID"]  # from /connections; the accounting `PROVIDERS` table checks it is set
        base = os.environ.get("XERO_API", "https://api.xero.com/api.xro/2.0")
        settings = {"currency": home_currency(os.environ.get("XERO_CURRENCY", "USD"), "XERO_CURRENCY"),
                    "bank_account": os.environ.get("XERO_BANK_ACCOUNT_CODE")}
        credentials = oauth_from_env("Xero", "XERO", "https://identity.xero.com/connect/token", data_dir=data_dir,
                                     token_transport=token_transport, sign_in="reconnect the app to Xero")
        http = connect("Xero", base, credentials, headers={"Accept": "application/json", "xero-tenant-id": tenant},
                       error_text=error_text, transport=transport)
        return cls(http, **settings)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self.http.json(method, path, decimals=True, **kwargs)

    # -- chart and contacts -----------------------------------------------------------------

    async def accounts(self) -> list[Account]:
        body = await self._call("GET", "/Accounts")
        return [read_account(a) for a in body.get("Accounts", [])]

    async def contacts(self, query: str | None, kind: ContactKind | None, limit: int, cursor: str | None) -> ContactPage:
        page = max(decode_cursor(cursor).get("page", 1), 1)
        params: dict[str, Any] = {"page": page, "pageSize": limit}
        if query:
            params["searchTerm"] = query
        if kind in ("customer", "vendor"):
            # a contact Xero has flagged neither way yet reads "both" (`read_contact`), so either search finds it
            params["where"] = "IsCustomer==true OR IsSupplier==false" if kind == "customer" else "IsSupplier==true OR IsCustomer==false"
        rows = (await self._call("GET", "/Contacts", params=params)).get("Contacts", [])
        return ContactPage(contacts=[read_contact(r) for r in rows], next_cursor=encode_cursor({"page": page + 1}) if len(rows) == limit else None)

    async def upsert_contact(self, contact: ContactInput) -> Contact:
        refuse_clearing(contact, "Xero")
        body: dict[str, Any] = {"Name": contact.name}
        if contact.email:
            body["EmailAddress"] = contact.email
        if contact.tax_number:
            body["TaxNumber"] = contact.tax_number
        if contact.id:
            current = (await self._call("GET", f"/Contacts/{contact.id}"))["Contacts"][0]
            if contact.version is not None and contact.version != current.get("UpdatedDateUTC"):
                raise DomainError("conflict", f"contact {contact.id} changed since you read it; get it again and reapply your change")
            body["ContactID"] = contact.id
        try:
            saved = await self._call("POST", "/Contacts", json={"Contacts": [body]}, idempotent=contact.id is not None)
        except DomainError as error:
            if "already assigned to another contact" not in error.body.message or "contact name" not in error.body.message:
                raise
            if not contact.id and (same := await self._same_contact(contact)) is not None:
                return same  # a create matching a contact exactly returns it, as the tool promises (a retried create)
            raise DomainError("conflict", f"Xero already has a contact named {contact.name!r} (a contact's name is unique): find "
                              "it with search_contacts and update it by id, or use another name",
                              details={"field": "name"}) from None
        return read_contact(saved["Contacts"][0])

    async def _same_contact(self, contact: ContactInput) -> Contact | None:
        """The contact named as `contact` (whatever the case) with its email and tax number, if there is one."""
        rows = (await self._call("GET", "/Contacts", params={"searchTerm": contact.name, "pageSize": 100}))["Contacts"]
        wanted = (contact.name.strip().casefold(), contact.email or None, contact.tax_number or None)
        return next((found for found in map(read_contact, rows)
                     if (found.name.strip().casefold(), found.email or None, found.tax_number or None) == wanted), None)

    # -- invoices ---------------------------------------------------------------------------

    async def invoices(self, query: InvoiceQuery, limit: int, cursor: str | None) -> InvoicePage:
        page = max(decode_cursor(cursor).get("page", 1), 1)
        where = [f'Type=="{"ACCREC" if query.kind == "receivable" else "ACCPAY"}"']
        for field, op, value in (("Date", ">=", query.issued_from), ("Date", "<=", query.issued_to), ("DueDate", "<", query.overdue_on)):
            if value is not None:
                where.append(f"{field}{op}{_where_date(value)}")
        if query.overdue_on is not None:
            where.append("AmountDue>0")
        if query.min_total is not None:
            where.append(f"Total>={query.min_total}")
        if query.max_total is not None:
            where.append(f"Total<={query.max_total}")
        params: dict[str, Any] = {"page": page, "pageSize": limit, "where": " AND ".join(where), "order": "Date"}
        if query.status:
            params["Statuses"] = ",".join(sorted({s for wanted in query.status for s in STATUSES[wanted]}))
        if query.contact_id:
            params["ContactIDs"] = query.contact_id
        rows = (await self._call("GET", "/Invoices", params=params)).get("Invoices", [])
        found = [read_invoice(r, self.currency) for r in rows]
        if query.status:
            found = [i for i in found if i.status in query.status]
        return InvoicePage(invoices=found, next_cursor=encode_cursor({"page": page + 1}) if len(rows) == limit else None)

    async def invoice(self, invoice_id: str) -> Invoice:
        return read_invoice((await self._call("GET", f"/Invoices/{invoice_id}"))["Invoices"][0], self.currency)

    async def quote(self, new: NewInvoice) -> Totals:
        body = await self._call("GET", "/TaxRates")
        rates = {r["TaxType"]: (amount(r.get("EffectiveRate")) or ZERO) / 100 for r in body.get("TaxRates", [])}
        return ledger.price_lines(new.lines, new.currency, rates)

    async def create_invoice(self, new: NewInvoice, idempotency_key: str | None) -> Invoice:
        body = {"Type": "ACCREC" if new.kind == "receivable" else "ACCPAY", "Contact": {"ContactID": new.contact_id},
                "Date": new.issue_date.isoformat(), "DueDate": new.due_date.isoformat(), "LineAmountTypes": "Exclusive",
                "LineItems": write_lines(new.lines, new.currency), "Status": "AUTHORISED" if new.approve else "DRAFT", "CurrencyCode": new.currency}
        if new.reference:
            body["Reference"] = new.reference
        saved = await self._call("PUT", "/Invoices", params={"unitdp": 4}, json={"Invoices": [body]},
                                 headers=_keyed("create_invoice", idempotency_key), idempotent=idempotency_key is not None)
        return read_invoice(saved["Invoices"][0], self.currency)

    async def _update(self, invoice_id: str, changes: dict[str, Any]) -> Invoice:
        """Write `changes` (read the invoice with `_current` first: that is the version check)."""
        saved = await self._call("POST", f"/Invoices/{invoice_id}", params={"unitdp": 4},
                                 json={"Invoices": [{"InvoiceID": invoice_id, **changes}]}, idempotent=True)
        return read_invoice(saved["Invoices"][0], self.currency)

    async def approve(self, invoice_id: str, version: str | None) -> Invoice:
        current = await self.invoice(invoice_id)
        if current.status in ("open", "partially_paid", "paid"):
            if self._approvals.get(invoice_id) == (version, current.version):
                return current  # this server approved it from that version, and nothing changed since: a retry
            return approved_since(current, version)  # answered when the version is current (or none); nothing is sent
        if current.status == "voided":
            raise DomainError("invalid_argument", f"invoice {current.number or current.id} is voided; only drafts can be approved")
        unchanged_since(current, version)
        done = await self._update(invoice_id, {"Status": "AUTHORISED"})
        if len(self._approvals) >= 1000:
            self._approvals.pop(next(iter(self._approvals)))
        self._approvals[invoice_id] = (current.version, done.version)
        return done

    async def void(self, invoice_id: str, version: str | None, on: _dt.date, defaulted: bool = False) -> Invoice:
        current = await self.invoice(invoice_id)
        if current.status == "voided":
            return current  # a retried void (its first answer lost) answers the voided invoice; nothing is sent
        unchanged_since(current, version)
        if current.amount_paid > 0:
            raise DomainError("invalid_argument", f"invoice {current.number} has payments; Xero voids only unpaid invoices — remove "
                              "the payments in Xero first")
        return await self._update(invoice_id, {"Status": "DELETED" if current.status == "draft" else "VOIDED"})

    async def patch(self, invoice_id: str, version: str | None, patch: InvoicePatch) -> Invoice:
        """Change due date, reference or a draft's lines; lines keep what Xero holds on them (`patch_lines`)."""
        raw = (await self._call("GET", f"/Invoices/{invoice_id}"))["Invoices"][0]
        current = read_invoice(raw, self.currency)
        if current.status != "voided" and patch.due_date in (None, current.due_date) and patch.reference in (None, current.reference) \
                and (patch.lines is None or (current.status == "draft" and ledger.lines_hold(
                    current.lines, patch.lines, current.currency, [discounted(item) for item in raw.get("LineItems") or []]))):
            return current  # a retried patch (first answer lost, its version now stale): nothing to send (w28b #9)
        unchanged_since(current, version)
        if current.status == "voided":  # final, as in the embedded ledger and QuickBooks: nothing is sent
            raise DomainError("invalid_argument", f"invoice {current.number or current.id} is voided and cannot change")
        changes: dict[str, Any] = {}
        if patch.due_date is not None:
            changes["DueDate"] = patch.due_date.isoformat()
        if patch.reference is not None:
            changes["Reference"] = patch.reference
        if patch.lines is not None:
            refuse_issued_lines(current)
            changes["LineItems"] = patch_lines(raw.get("LineItems") or [], patch.lines, current.currency)  # the invoice's currency
        return await self._update(invoice_id, changes)

    # -- payments and journals --------------------------------------------------------------

    async def pay(self, invoice_id: str, value: Decimal, on: _dt.date, account_code: str | None, reference: str | None,
                  idempotency_key: str | None) -> Payment:
        bank = account_code or self.bank_account
        if not bank:
            raise DomainError("invalid_argument", "give account_code (the bank account's code) or set XERO_BANK_ACCOUNT_CODE",
                              details={"field": "account_code"})
        body: dict[str, Any] = {"Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": bank}, "Date": on.isoformat(), "Amount": value}
        if reference:
            body["Reference"] = reference
        saved = await self._call("PUT", "/Payments", json={"Payments": [body]},
                                 headers=_keyed("record_payment", idempotency_key), idempotent=idempotency_key is not None)
        after = await self.invoice(invoice_id)
        return Payment(id=saved["Payments"][0]["PaymentID"], invoice_id=invoice_id, date=on, amount=value, currency=after.currency,
                       account_code=bank, reference=reference, invoice_balance=after.balance, invoice_status=after.status)

    async def journal(self, on: _dt.date, memo: str, lines: list[JournalLine], idempotency_key: str | None) -> JournalEntry:
        body = {"Narration": memo or "Journal entry", "Date": on.isoformat(), "Status": "POSTED",
                "JournalLines": [{"LineAmount": line.debit if line.debit else -line.credit, "AccountCode": line.account_code,
                                  "Description": line.description} for line in lines]}
        saved = await self._call("PUT", "/ManualJournals", json={"ManualJournals": [body]},
                                 headers=_keyed("create_journal_entry", idempotency_key), idempotent=idempotency_key is not None)
        return JournalEntry(id=saved["ManualJournals"][0]["ManualJournalID"], date=on, memo=memo, currency=self.currency, lines=lines,
                            provider=self.name)

    # -- ledger and reports -----------------------------------------------------------------

    async def transactions(self, start: _dt.date, end: _dt.date, account_code: str | None, limit: int,
                           cursor: str | None) -> TransactionPage:
        """Journal lines in [start, end], whole journals per page, resuming after the last journal number read."""
        offset = int(decode_cursor(cursor).get("offset", 0))
        items: list[Transaction] = []
        for _ in range(MAX_PAGES):
            journals = (await self._call("GET", "/Journals", params={"offset": offset})).get("Journals", [])
            if not journals:
                return TransactionPage(transactions=items)
            for journal in journals:
                day = read_date(journal, "JournalDate")
                rows = []
                for line in journal.get("JournalLines", []):
                    if day is None or not start <= day <= end or account_code not in (None, line.get("AccountCode")):
                        continue
                    net = amount(line.get("NetAmount")) or ZERO
                    rows.append(Transaction(id=line.get("JournalLineID", ""), date=day, account_code=line.get("AccountCode", ""),
                                            account_name=line.get("AccountName"), debit=round_money(max(net, ZERO), self.currency),
                                            credit=round_money(max(-net, ZERO), self.currency), source=str(journal.get("SourceType", "")).lower(),
                                            source_id=journal.get("SourceID"), memo=line.get("Description", "")))
                if items and len(items) + len(rows) > limit:
                    return TransactionPage(transactions=items, next_cursor=encode_cursor({"offset": offset}))
                items += rows
                offset = int(journal.get("JournalNumber", offset + 1))
        return TransactionPage(transactions=items, next_cursor=encode_cursor({"offset": offset}))

    async def report(self, kind: ReportKind, basis: Basis, start: _dt.date | None, end: _dt.date | None,
                     as_of: _dt.date | None) -> Report:
        if kind in ("aged_receivables", "aged_payables"):
            assert as_of is not None
            return await self._aged("receivable" if kind == "aged_receivables" else "payable", as_of)
        params: dict[str, Any] = {"paymentsOnly": "true" if basis == "cash" else "false"}
        if kind == "profit_and_loss":
            assert start is not None and end is not None
            params.update(fromDate=start.isoformat(), toDate=end.isoformat())
        else:
            assert as_of is not None
            params["date"] = as_of.isoformat()
        body = await self._call("GET", f"/Reports/{REPORTS[kind]}", params=params)
        return read_report(body, kind, basis, self.currency, start, end, as_of)

    async def _aged(self, kind: str, as_of: _dt.date) -> Report:
        """Computed from the invoices that can be open on `as_of`, in the home currency (`xero_aging`)."""
        async def fetch(params: dict[str, Any]) -> list[dict[str, Any]]:
            return (await self._call("GET", "/Invoices", params=params)).get("Invoices", [])

        return await xero_aging.aged(fetch, kind, as_of, self.currency, self.name)
