"""QuickBooks Online (Accounting API v3) as an accounting backend.

Configuration: `QUICKBOOKS_REALM_ID`, and `QUICKBOOKS_TOKEN` (a bearer token) or
`QUICKBOOKS_CLIENT_ID` + `QUICKBOOKS_CLIENT_SECRET` + `QUICKBOOKS_REFRESH_TOKEN` (Intuit rotates the
refresh token on every refresh; the kit's vault keeps the newest, encrypted). `QUICKBOOKS_API`
picks the host (default production; the sandbox is https://sandbox-quickbooks.api.intuit.com),
`QUICKBOOKS_MINORVERSION` the minor version (default 75), `QUICKBOOKS_CURRENCY` the home currency.

Mapping: every request carries `minorversion`; lists use the query language with STARTPOSITION /
MAXRESULTS inside an opaque cursor; ids are typed (`invoice:123`, `bill:45`, `customer:7`,
`vendor:9`) because QuickBooks keeps sales invoices and bills (and customers and vendors) apart;
account codes are QuickBooks account ids (what every reference uses). The version token is the
`SyncToken`: updates send it and a stale one (Fault 5010) is a `conflict`. Keyed creates send a
`requestid` derived from the caller, the tool and the idempotency key (`provider_key`), so a retried
POST cannot duplicate and no other caller's key meets it. Amounts are read as Decimal and sent
as JSON numbers carrying exactly their digits. Reports come from `/reports/*` with
`accounting_method`. What QuickBooks cannot do: draft invoices (an invoice is posted when created),
approving, voiding a bill through the API; those answer a clear error. A void is read from the
amounts (`is_voided`), and a voided invoice cannot be patched, as in the embedded ledger; nor can the
lines of one with payments or credits applied or that was emailed (the nearest thing to "not a draft"). A lines
patch keeps what QuickBooks holds on each line sent back (`qbo_mapping.patch_lines`).
Aged reports are QuickBooks' own (`report_date`), which apply credit memos and date payments themselves.
"""

from __future__ import annotations

import datetime as _dt
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from servers.accounting.model import (
    refuse_clearing,
    Account,
    AccountType,
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
from servers.accounting import ledger
from servers.accounting.money import ZERO, home_currency, read_money, round_money
from servers.accounting.money import read_amount as amount
from servers.accounting.providers.qbo_mapping import (
    error_text, is_voided, patch_lines, read_contact, read_invoice, refuse_issued_lines, unchanged_since, write_lines,
)
from servers.accounting.providers.qbo_reports import read_ledger, read_report
from servers.kit.cursor import decode_cursor, encode_cursor
from servers.kit.errors import DomainError
from servers.kit.http import ProviderHTTP
from servers.kit.idempotency import provider_key
from servers.kit.credentials import connect, oauth_from_env

CLASSIFICATION: dict[str, AccountType] = {"Asset": "asset", "Liability": "liability", "Equity": "equity", "Revenue": "income",
                                          "Expense": "expense"}
REPORTS = {"trial_balance": "TrialBalance", "profit_and_loss": "ProfitAndLoss", "balance_sheet": "BalanceSheet",
           "aged_receivables": "AgedReceivables", "aged_payables": "AgedPayables"}
PAID_MARK = "mcp-hub payment "
"""A keyed payment's PrivateNote: this and its requestid, so a retry can find it (`_earlier_payment`)."""
QUERY_PAGE, MAX_QUERY_PAGES = 1000, 20
"""QuickBooks answers at most 1,000 rows a query; `_every` reads at most 20 such pages."""
ENTITY = {"invoice": "Invoice", "bill": "Bill", "customer": "Customer", "vendor": "Vendor"}


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _split(typed_id: str, allowed: tuple[str, ...]) -> tuple[str, str]:
    kind, _, raw = typed_id.partition(":")
    if kind not in allowed or not raw:
        raise DomainError("invalid_argument", f"{typed_id!r} is not a QuickBooks id of kind {' or '.join(allowed)} "
                          f"(e.g. {allowed[0]}:123); use the id a search returned", details={"field": "id"})
    return kind, raw


def _request_id(key: str | None, tool: str) -> str | None:
    """QuickBooks' `requestid` (at most 50 characters) for the caller's key on `tool` (and entity), derived
    from the caller too (`provider_key`): QuickBooks answers a repeated requestid with its first answer."""
    return provider_key(tool, key, length=50)


class QuickBooks:
    name = "quickbooks"

    def __init__(self, http: ProviderHTTP, minorversion: str = "75", currency: str = "USD") -> None:
        self.http = http
        self.minorversion = minorversion
        self.currency = currency

    @classmethod
    def from_env(cls, data_dir: Path | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 token_transport: Any = None) -> QuickBooks:
        realm = os.environ["QUICKBOOKS_REALM_ID"]  # the company id; the accounting `PROVIDERS` table checks it is set
        base = os.environ.get("QUICKBOOKS_API", "https://quickbooks.api.intuit.com").rstrip("/") + f"/v3/company/{realm}"
        settings = {"minorversion": os.environ.get("QUICKBOOKS_MINORVERSION", "75"), "currency": home_currency(os.environ.get("QUICKBOOKS_CURRENCY", "USD"), "QUICKBOOKS_CURRENCY")}
        credentials = oauth_from_env("QuickBooks", "QUICKBOOKS", "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
                                     data_dir=data_dir, token_transport=token_transport, sign_in="reconnect the app to QuickBooks")
        http = connect("QuickBooks", base, credentials, headers={"Accept": "application/json"}, error_text=error_text,
                       transport=transport)
        return cls(http, **settings)

    # -- transport --------------------------------------------------------------------------

    async def _call(self, method: str, path: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        try:
            return await self.http.json(method, path, params={"minorversion": self.minorversion, **(params or {})}, decimals=True, **kwargs)
        except DomainError as error:
            if "Stale Object" in error.body.message or "5010" in error.body.message:
                raise DomainError("conflict", "QuickBooks has a newer version of this record (stale SyncToken); get it again and "
                                  "reapply your change") from None
            raise

    async def _query(self, statement: str, start: int, limit: int) -> list[dict[str, Any]]:
        entity = statement.split()[3]
        body = await self._call("GET", "/query", {"query": f"{statement} STARTPOSITION {start} MAXRESULTS {limit}"})
        return (body.get("QueryResponse") or {}).get(entity, [])

    async def _every(self, statement: str) -> list[dict[str, Any]]:
        """Every row `statement` selects, `QUERY_PAGE` a page; past `MAX_QUERY_PAGES` an error, never a short list."""
        rows: list[dict[str, Any]] = []
        for page in range(MAX_QUERY_PAGES + 1):
            found = await self._query(statement, page * QUERY_PAGE + 1, QUERY_PAGE)
            if found and page == MAX_QUERY_PAGES:
                raise DomainError("upstream_error", f"QuickBooks holds more than {MAX_QUERY_PAGES * QUERY_PAGE:,} rows for "
                                  f"{statement!r}, more than this server reads at once; nothing is answered rather than a "
                                  "list that leaves some out. Make inactive the ones no longer used, in QuickBooks",
                                  retryable=False, details={"limit": MAX_QUERY_PAGES * QUERY_PAGE})
            rows += found
            if len(found) < QUERY_PAGE:
                break
        return rows

    async def _read(self, entity: str, raw_id: str) -> dict[str, Any]:
        return (await self._call("GET", f"/{entity.lower()}/{raw_id}"))[entity]

    # -- chart and contacts -----------------------------------------------------------------

    async def accounts(self) -> list[Account]:
        rows = await self._every("select * from Account")
        return [Account(code=r["Id"], name=r.get("FullyQualifiedName") or r["Name"], type=CLASSIFICATION.get(r.get("Classification"), "asset"),
                        subtype=r.get("AccountType"), currency=(r.get("CurrencyRef") or {}).get("value"),
                        balance=read_money(r.get("CurrentBalance"), (r.get("CurrencyRef") or {}).get("value") or self.currency),
                        active=bool(r.get("Active", True))) for r in rows]

    async def contacts(self, query: str | None, kind: ContactKind | None, limit: int, cursor: str | None) -> ContactPage:
        state = decode_cursor(cursor)  # a crafted one is refused as invalid_argument, never reaches the query
        entity, first = state.get("entity", "vendor" if kind == "vendor" else "customer"), max(state.get("start", 1), 1)
        if entity not in ("customer", "vendor"):
            raise DomainError("invalid_argument", "cursor is not one this server issued: pass next_cursor from the previous page "
                              "unchanged", details={"field": "cursor"})
        where = f" where DisplayName LIKE {_quote('%' + query + '%')}" if query else ""
        rows = await self._query(f"select * from {ENTITY[entity]}{where} ORDERBY DisplayName", first, limit)
        contacts = [read_contact(r, entity) for r in rows]
        if len(rows) == limit:
            following: dict[str, Any] | None = {"entity": entity, "start": first + limit}
        elif entity == "customer" and kind in (None, "both"):
            following = {"entity": "vendor", "start": 1}
        else:
            following = None
        return ContactPage(contacts=contacts, next_cursor=encode_cursor(following) if following else None)

    async def upsert_contact(self, contact: ContactInput) -> Contact:
        refuse_clearing(contact, "QuickBooks")
        if contact.kind == "both":
            raise DomainError("invalid_argument", "QuickBooks keeps customers and vendors apart: create one of each")
        entity = contact.kind
        body: dict[str, Any] = {"DisplayName": contact.name}
        if contact.email:
            body["PrimaryEmailAddr"] = {"Address": contact.email}
        if contact.id:
            kind, raw_id = _split(contact.id, ("customer", "vendor"))
            current = await self._read(ENTITY[kind], raw_id)
            if contact.version is not None and contact.version != str(current.get("SyncToken")):
                raise DomainError("conflict", f"contact {contact.id} changed since you read it; get it again and reapply your change")
            body.update(Id=raw_id, SyncToken=current.get("SyncToken"), sparse=True)
            entity = kind
        if contact.tax_number:  # where `read_contact` reads it back: a customer's was dropped before
            body["TaxIdentifier" if entity == "vendor" else "ResaleNum"] = contact.tax_number
        try:
            saved = await self._call("POST", f"/{entity}", json=body)
        except DomainError as error:
            if "Duplicate Name" not in error.body.message:
                raise
            if not contact.id and (same := await self._same_contact(contact, entity)) is not None:
                return same  # a create matching a contact exactly returns it, as the tool promises (a retried create)
            raise DomainError("conflict", f"QuickBooks already has a customer, vendor or employee named {contact.name!r} (a name "
                              "is unique across all three): find it with search_contacts and update it by id, or use "
                              "another name", details={"field": "name"}) from None
        return read_contact(saved[ENTITY[entity]], entity)

    async def _same_contact(self, contact: ContactInput, entity: str) -> Contact | None:
        """The `entity` contact named as `contact` (as QuickBooks compares names) with its email and tax number."""
        rows = await self._query(f"select * from {ENTITY[entity]} where DisplayName = {_quote(contact.name)}", 1, 10)
        wanted = (contact.name.strip().casefold(), contact.email or None, contact.tax_number or None)
        return next((found for found in (read_contact(r, entity) for r in rows)
                     if (found.name.strip().casefold(), found.email or None, found.tax_number or None) == wanted), None)

    # -- invoices ---------------------------------------------------------------------------

    async def invoices(self, query: InvoiceQuery, limit: int, cursor: str | None) -> InvoicePage:
        kind = "invoice" if query.kind == "receivable" else "bill"
        start = max(decode_cursor(cursor).get("start", 1), 1)
        clauses = []
        if query.contact_id:
            clauses.append(f"{'CustomerRef' if kind == 'invoice' else 'VendorRef'} = {_quote(query.contact_id.partition(':')[2])}")
        for clause, value in (("TxnDate >= ", query.issued_from), ("TxnDate <= ", query.issued_to), ("DueDate < ", query.overdue_on),
                              ("TotalAmt >= ", query.min_total), ("TotalAmt <= ", query.max_total)):
            if value is not None:
                clauses.append(f"{clause}{_quote(str(value))}")
        if query.overdue_on is not None:
            clauses.append("Balance > '0'")
        where = f" where {' and '.join(clauses)}" if clauses else ""
        rows = await self._query(f"select * from {ENTITY[kind]}{where} ORDERBY TxnDate", start, limit)
        found = [read_invoice(r, kind, self.currency) for r in rows]
        if query.status:
            found = [i for i in found if i.status in query.status]
        return InvoicePage(invoices=found, next_cursor=encode_cursor({"start": start + limit}) if len(rows) == limit else None)

    async def invoice(self, invoice_id: str) -> Invoice:
        kind, raw_id = _split(invoice_id, ("invoice", "bill"))
        return read_invoice(await self._read(ENTITY[kind], raw_id), kind, self.currency)

    async def quote(self, new: NewInvoice) -> Totals:
        return ledger.price_lines(new.lines, new.currency, None)

    async def create_invoice(self, new: NewInvoice, idempotency_key: str | None) -> Invoice:
        if not new.approve:
            raise DomainError("invalid_argument", "QuickBooks has no draft invoices: an invoice is posted when created "
                              "(create it with approve=true when it should be)")
        kind = "invoice" if new.kind == "receivable" else "bill"
        party_kind, party = _split(new.contact_id, ("customer",) if kind == "invoice" else ("vendor",))
        body: dict[str, Any] = {"CustomerRef" if kind == "invoice" else "VendorRef": {"value": party}, "TxnDate": new.issue_date.isoformat(),
                                "DueDate": new.due_date.isoformat(), "Line": write_lines(kind, new.lines, new.currency),
                                "CurrencyRef": {"value": new.currency}}
        if new.reference:
            body["PrivateNote"] = new.reference
        request_id = _request_id(idempotency_key, f"create_invoice:{kind}")
        saved = await self._call("POST", f"/{kind}", {"requestid": request_id} if request_id else None, json=body,
                                 idempotent=request_id is not None)
        return read_invoice(saved[ENTITY[kind]], kind, self.currency)

    async def approve(self, invoice_id: str, version: str | None) -> Invoice:
        raise DomainError("invalid_argument", "QuickBooks invoices and bills are posted when created; there is nothing to approve")

    async def void(self, invoice_id: str, version: str | None, on: _dt.date, defaulted: bool = False) -> Invoice:
        kind, raw_id = _split(invoice_id, ("invoice", "bill"))
        if kind == "bill":
            raise DomainError("invalid_argument", "QuickBooks' API cannot void a bill; enter a vendor credit, or delete it in QuickBooks")
        current = await self._read(ENTITY[kind], raw_id)
        if is_voided(current, (current.get("CurrencyRef") or {}).get("value") or self.currency):
            # A retried void (its first answer lost; its version is the one before the void) answers the voided
            # invoice as the first call did; nothing is sent again.
            return read_invoice(current, kind, self.currency)
        unchanged_since(invoice_id, current, version)
        if (amount(current.get("TotalAmt")) or ZERO) != (amount(current.get("Balance")) or ZERO):
            raise DomainError("invalid_argument", f"{invoice_id} has payments applied; remove them in QuickBooks before voiding")
        saved = await self._call("POST", "/invoice", {"operation": "void"}, json={"Id": raw_id, "SyncToken": current["SyncToken"]},
                                 idempotent=True)
        return read_invoice(saved["Invoice"], kind, self.currency)

    async def patch(self, invoice_id: str, version: str | None, patch: InvoicePatch) -> Invoice:
        kind, raw_id = _split(invoice_id, ("invoice", "bill"))
        current = await self._read(ENTITY[kind], raw_id)
        if is_voided(current, (current.get("CurrencyRef") or {}).get("value") or self.currency):
            # As the embedded ledger: a voided invoice is final (QuickBooks would accept the write).
            raise DomainError("invalid_argument", f"invoice {current.get('DocNumber') or invoice_id} is voided and cannot change")
        shown = read_invoice(current, kind, self.currency)
        if patch.due_date in (None, shown.due_date) and patch.reference in (None, shown.reference) \
                and (patch.lines is None or ledger.lines_hold(shown.lines, patch.lines, shown.currency)):
            return shown  # a retried patch (first answer lost, its SyncToken now stale): nothing to send (w28b #9)
        unchanged_since(invoice_id, current, version)
        body: dict[str, Any] = {"Id": raw_id, "SyncToken": current["SyncToken"], "sparse": True}
        if patch.due_date is not None:
            body["DueDate"] = patch.due_date.isoformat()
        if patch.reference is not None:
            body["PrivateNote"] = patch.reference
        if patch.lines is not None:
            refuse_issued_lines(invoice_id, current)
            label = f"{invoice_id} ({current['DocNumber']})" if current.get("DocNumber") else invoice_id
            body["Line"] = patch_lines(label, kind, current.get("Line") or [], patch.lines, shown.currency)  # kept, never dropped
        saved = await self._call("POST", f"/{kind}", json=body, idempotent=True)
        return read_invoice(saved[ENTITY[kind]], kind, self.currency)

    # -- payments and journals --------------------------------------------------------------

    async def pay(self, invoice_id: str, value: Decimal, on: _dt.date, account_code: str | None, reference: str | None,
                  idempotency_key: str | None) -> Payment:
        invoice = await self.invoice(invoice_id)
        kind, raw_id = _split(invoice_id, ("invoice", "bill"))
        party = invoice.contact_id.partition(":")[2]
        link = [{"Amount": value, "LinkedTxn": [{"TxnId": raw_id, "TxnType": ENTITY[kind]}]}]
        if kind == "invoice":
            entity = "payment"
            body: dict[str, Any] = {"CustomerRef": {"value": party}, "TotalAmt": value, "TxnDate": on.isoformat(), "Line": link}
            if account_code:
                body["DepositToAccountRef"] = {"value": account_code}
            if reference:
                body["PaymentRefNum"] = reference
        else:
            entity = "billpayment"
            bank = account_code or os.environ.get("QUICKBOOKS_BANK_ACCOUNT")
            if not bank:
                raise DomainError("invalid_argument", "paying a bill needs account_code (the bank account's id) or "
                                  "QUICKBOOKS_BANK_ACCOUNT", details={"field": "account_code"})
            body = {"VendorRef": {"value": party}, "PayType": "Check", "CheckPayment": {"BankAccountRef": {"value": bank}},
                    "TotalAmt": value, "TxnDate": on.isoformat(), "Line": link}
        request_id = _request_id(idempotency_key, f"record_payment:{entity}")
        if request_id:
            body["PrivateNote"] = PAID_MARK + request_id
        if value > invoice.balance:  # only a keyed retry gets here (the server's pre-check, `replay`)
            return await self._earlier_payment(invoice, request_id, value, on, account_code, reference)
        saved = await self._call("POST", f"/{entity}", {"requestid": request_id} if request_id else None, json=body,
                                 idempotent=request_id is not None)
        raw = saved["Payment" if entity == "payment" else "BillPayment"]
        after = await self.invoice(invoice_id)
        return Payment(id=f"{entity}:{raw['Id']}", invoice_id=invoice_id, date=on, amount=value, currency=invoice.currency,
                       account_code=account_code, reference=reference, invoice_balance=after.balance, invoice_status=after.status)

    async def _earlier_payment(self, invoice: Invoice, request_id: str | None, value: Decimal, on: _dt.date,
                               account_code: str | None, reference: str | None) -> Payment:
        """A keyed retry on an invoice that no longer takes `value`: the payment an earlier attempt with this
        key made (its PrivateNote carries `PAID_MARK` + requestid, found among the invoice's linked
        payments), else the pre-check's refusal. QuickBooks is never sent it: a requestid it never saw
        would book an overpayment."""
        kind, raw_id = _split(invoice.id, ("invoice", "bill"))
        for link in (await self._read(ENTITY[kind], raw_id)).get("LinkedTxn") or []:
            entity = {"Payment": "Payment"}.get(link.get("TxnType"), "BillPayment" if str(link.get("TxnType")).startswith("BillPayment") else "")
            if not entity or not request_id:
                continue
            found = await self._read(entity, str(link["TxnId"]))
            if found.get("PrivateNote") == PAID_MARK + request_id:
                day = _dt.date.fromisoformat(found["TxnDate"]) if found.get("TxnDate") else on
                return Payment(id=f"{entity.lower()}:{found['Id']}", invoice_id=invoice.id, date=day, amount=value,
                               currency=invoice.currency, account_code=account_code, reference=reference,
                               invoice_balance=invoice.balance, invoice_status=invoice.status)
        ledger.check_payable(invoice, value, on)  # refuses: paid, or more than the balance
        raise DomainError("invalid_argument", f"amount: {value} is more than the balance due ({invoice.balance})")

    async def journal(self, on: _dt.date, memo: str, lines: list[JournalLine], idempotency_key: str | None) -> JournalEntry:
        body = {"TxnDate": on.isoformat(), "PrivateNote": memo, "Line": [
            {"Description": line.description or memo, "Amount": line.debit or line.credit, "DetailType": "JournalEntryLineDetail",
             "JournalEntryLineDetail": {"PostingType": "Debit" if line.debit else "Credit", "AccountRef": {"value": line.account_code}}}
            for line in lines]}
        request_id = _request_id(idempotency_key, "create_journal_entry")
        saved = await self._call("POST", "/journalentry", {"requestid": request_id} if request_id else None, json=body,
                                 idempotent=request_id is not None)
        return JournalEntry(id=f"journalentry:{saved['JournalEntry']['Id']}", date=on, memo=memo, currency=self.currency, lines=lines,
                            provider=self.name)

    # -- ledger and reports -----------------------------------------------------------------

    async def transactions(self, start: _dt.date, end: _dt.date, account_code: str | None, limit: int,
                           cursor: str | None) -> TransactionPage:
        """From the GeneralLedger report (one section per account); paged here, since reports are not."""
        params = {"start_date": start.isoformat(), "end_date": end.isoformat(),
                  "columns": "tx_date,txn_type,doc_num,memo,debt_amt,credit_amt"}
        if account_code:
            params["account"] = account_code
        items = read_ledger(await self._call("GET", "/reports/GeneralLedger", params), self.currency)
        offset = int(decode_cursor(cursor).get("offset", 0))
        more = offset + limit < len(items)
        return TransactionPage(transactions=items[offset : offset + limit], next_cursor=encode_cursor({"offset": offset + limit}) if more else None)

    async def report(self, kind: ReportKind, basis: Basis, start: _dt.date | None, end: _dt.date | None,
                     as_of: _dt.date | None) -> Report:
        params = {"accounting_method": "Cash" if basis == "cash" else "Accrual"}
        if kind == "profit_and_loss":
            assert start is not None and end is not None
            params.update(start_date=start.isoformat(), end_date=end.isoformat())
        elif kind.startswith("aged"):
            assert as_of is not None
            params = {"report_date": as_of.isoformat()}
        else:  # balance-sheet accounts are cumulative; income and expense from the fiscal year start (1 January here)
            assert as_of is not None
            params.update(start_date=as_of.replace(month=1, day=1).isoformat(), end_date=as_of.isoformat())
        body = await self._call("GET", f"/reports/{REPORTS[kind]}", params)
        report = read_report(body, kind, basis, self.currency, start, end, as_of)
        report.totals = {k: round_money(v, report.currency) for k, v in report.totals.items()}
        return report
