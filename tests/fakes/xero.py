"""A local fake of Xero's Accounting API 2.0 for one organisation: `xero-tenant-id` required,
Accounts, Contacts (searchTerm, where, page/pageSize), Invoices (where with ==, >=, <=, <, >
and DateTime(y,m,d), Statuses, ContactIDs, page/pageSize; PUT creates with Idempotency-Key; POST
updates status/fields, lines only of unpaid DRAFT/SUBMITTED/AUTHORISED ones; Xero computes line amounts
(less a line's DiscountRate or DiscountAmount) and tax per line from /TaxRates; credit notes, prepayments and
overpayments applied with `apply_credit`), Payments,
ManualJournals (must balance), Journals (offset by journal number), TaxRates, and report endpoints
answering documented shapes. Dates go out as `/Date(ms+0000)/` with a `DateString`.

As Xero does, every line item has a `LineItemID`, and an update's `LineItems` replace the stored ones: a line
sent with its id keeps that id (and only what was sent with it: Tracking, DiscountRate...), one without is a new
line, one left out is deleted. Every invoice has a `CurrencyRate` (units of its currency per one of the base
currency, `base_currency`; 1 in the base currency; the one sent, else `FX`, else a stand-in for the XE.com day
rate Xero would take), and a PAID one the `FullyPaidOnDate` of the allocation that settled it."""

from __future__ import annotations

import datetime as _dt
import json
import re
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.oauth import RotatingTokens
from tests.fakes.recording import injected, record

TENANT = "70784a63-d24b-46a9-a4db-0e70a274b056"
BASE = "/api.xro/2.0"
RATES = {"OUTPUT": Decimal("15"), "INPUT": Decimal("15"), "NONE": Decimal("0"), "EXEMPTOUTPUT": Decimal("0")}
FX = {"USD": Decimal("0.588235"), "AUD": Decimal("0.91"), "EUR": Decimal("0.54"), "GBP": Decimal("0.47")}
"""Units of each currency per one NZD (the base): what Xero would set as an invoice's CurrencyRate."""
OTHER_RATE = Decimal("2")
CREDITS = ("CreditNotes", "Prepayments", "Overpayments")
"""What Xero lists on an invoice as applied to it besides Payments; their sum is AmountCredited."""
_TERM = re.compile(r'^(\w+)\s*(==|>=|<=|<|>)\s*(?:"([^"]*)"|DateTime\((\d+),(\d+),(\d+)\)|(true|false)|([\d.]+))$')


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, default=lambda v: float(v) if isinstance(v, Decimal) else str(v)), status, media_type="application/json")


def _validation(message: str) -> Response:
    return _json({"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred",
                  "Elements": [{"ValidationErrors": [{"Message": message}]}]}, 400)


def _stamp(day: str) -> dict[str, str]:
    moment = _dt.datetime.fromisoformat(day[:10]).replace(tzinfo=_dt.UTC)
    return {"": f"/Date({int(moment.timestamp() * 1000)}+0000)/", "String": f"{day[:10]}T00:00:00"}


def _day_of(row: dict[str, Any], name: str) -> str:
    """The ISO day `row` holds under `name` (its `<name>String`, else the `/Date(ms)/` value), "" if none."""
    if text := row.get(f"{name}String"):
        return str(text)[:10]
    found = re.match(r"/Date\((-?\d+)", str(row.get(name) or ""))
    return _dt.datetime.fromtimestamp(int(found.group(1)) / 1000, _dt.UTC).date().isoformat() if found else ""


def _cell(value: Any, account: str | None = None) -> dict[str, Any]:
    cell: dict[str, Any] = {"Value": str(value)}
    if account:
        cell["Attributes"] = [{"Value": account, "Id": "account"}]
    return cell


def _report(name: str, header: list[str], sections: list[tuple[str, list[list[Any]], list[Any] | None]]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [{"RowType": "Header", "Cells": [_cell(h) for h in header]}]
    for title, lines, summary in sections:
        children = [{"RowType": "Row", "Cells": [_cell(line[0], line[1]), *[_cell(v) for v in line[2:]]]} for line in lines]
        if summary:
            children.append({"RowType": "SummaryRow", "Cells": [_cell(v) for v in summary]})
        rows.append({"RowType": "Section", "Title": title, "Rows": children})
    return {"Reports": [{"ReportID": name, "ReportName": name, "ReportType": name, "Rows": rows}]}


REPORTS = {
    "ProfitAndLoss": _report("ProfitAndLoss", ["", "31 Mar 26"], [
        ("Income", [["Sales", "acc-200", "1580.55"]], ["Total Income", "1580.55"]),
        ("Less Operating Expenses", [["Rent", "acc-469", "1200.00"]], ["Total Operating Expenses", "1200.00"]),
        ("", [["Net Profit", None, "380.55"]], None)]),
    "BalanceSheet": _report("BalanceSheet", ["", "31 Mar 2026"], [
        ("Assets", [["Business Bank Account", "acc-090", "2000.00"], ["Accounts Receivable", "acc-610", "1000.00"]], ["Total Assets", "3000.00"]),
        ("Liabilities", [["GST", "acc-820", "300.00"]], ["Total Liabilities", "300.00"]),
        ("", [["Net Assets", None, "2700.00"]], None),
        ("Equity", [["Current Year Earnings", None, "380.55"], ["Owner A Funds Introduced", "acc-881", "2319.45"]], ["Total Equity", "2700.00"])]),
    "TrialBalance": _report("TrialBalance", ["Account", "Debit", "Credit", "YTD Debit", "YTD Credit"], [
        ("Revenue", [["Sales (200)", "acc-200", "", "1580.55", "", "1580.55"]], None),
        ("Expenses", [["Rent (469)", "acc-469", "1200.00", "", "1200.00", ""]], None),
        ("Assets", [["Business Bank Account (090)", "acc-090", "2000.00", "", "2000.00", ""],
                    ["Accounts Receivable (610)", "acc-610", "1000.00", "", "1000.00", ""]], None),
        ("Liabilities", [["GST (820)", "acc-820", "", "300.00", "", "300.00"]], None),
        ("Equity", [["Owner A Funds Introduced (881)", "acc-881", "", "2319.45", "", "2319.45"]], None),
        ("", [], ["Total", "4200.00", "4200.00", "4200.00", "4200.00"])]),
}


@dataclass
class FakeXero:
    oauth: RotatingTokens = field(default_factory=RotatingTokens)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    journals: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    idempotent: dict[str, Response] = field(default_factory=dict)
    clock: int = 0
    base_currency: str = "NZD"

    def __post_init__(self) -> None:
        for name, customer, supplier in (("Acme Ltd", True, False), ("Paper Supplies", False, True), ("Both Ways", True, True)):
            contact_id = str(uuid.uuid4())
            self.contacts[contact_id] = {"ContactID": contact_id, "Name": name, "EmailAddress": "", "IsCustomer": customer,
                                         "IsSupplier": supplier, "UpdatedDateUTC": self._updated()}

    def _updated(self) -> str:
        self.clock += 1
        return f"/Date({1774000000000 + self.clock * 1000}+0000)/"

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/connect/token", self.oauth.token, methods=["POST"]),
            Route(f"{BASE}/Accounts", self.accounts, methods=["GET"]),
            Route(f"{BASE}/TaxRates", self.tax_rates, methods=["GET"]),
            Route(f"{BASE}/Contacts", self.contacts_route, methods=["GET", "POST"]),
            Route(f"{BASE}/Contacts/{{id}}", self.contact, methods=["GET"]),
            Route(f"{BASE}/Invoices", self.invoices_route, methods=["GET", "PUT"]),
            Route(f"{BASE}/Invoices/{{id}}", self.invoice, methods=["GET", "POST"]),
            Route(f"{BASE}/Payments", self.payments, methods=["PUT"]),
            Route(f"{BASE}/ManualJournals", self.manual_journals, methods=["PUT"]),
            Route(f"{BASE}/Journals", self.journals_route, methods=["GET"]),
            Route(f"{BASE}/Reports/{{name}}", self.report, methods=["GET"]),
        ])

    async def _begin(self, request: Request) -> Response | None:
        await record(request, self.requests)
        if not self.oauth.authorized(request):
            return _json({"Type": None, "Title": "Unauthorized", "Status": 401, "Detail": "TokenExpired: token expired"}, 401)
        if request.headers.get("xero-tenant-id") != TENANT:
            return _json({"Type": None, "Title": "Forbidden", "Status": 403, "Detail": "AuthenticationUnsuccessful"}, 403)
        if (key := request.headers.get("idempotency-key")) and key in self.idempotent:
            return self.idempotent[key]
        return injected(self.fail_next)

    @staticmethod
    def _body(raw: bytes) -> Any:
        return json.loads(raw, parse_float=Decimal)

    # -- filters ----------------------------------------------------------------------------

    @staticmethod
    def _where(row: dict[str, Any], where: str) -> bool:
        return any(FakeXero._all_of(row, alternative) for alternative in where.split(" OR "))

    @staticmethod
    def _all_of(row: dict[str, Any], where: str) -> bool:
        for term in where.split(" AND "):
            match = _TERM.match(term.strip())
            if match is None:
                raise ValueError(term)
            name, op, text, year, month, day, boolean, number = match.groups()
            actual: Any = row.get(name)
            expected: Any = text
            if year:
                actual, expected = _day_of(row, name), f"{int(year):04d}-{int(month):02d}-{int(day):02d}"
            elif boolean:
                expected = boolean == "true"
            elif number:
                expected = Decimal(number)
            if not {"==": actual == expected, ">=": actual >= expected, "<=": actual <= expected, "<": actual < expected,
                    ">": actual > expected}[op]:
                return False
        return True

    def _page(self, rows: list[dict[str, Any]], request: Request) -> list[dict[str, Any]]:
        size, page = int(request.query_params.get("pageSize", 100)), int(request.query_params.get("page", 1))
        return rows[(page - 1) * size : page * size]

    # -- routes -----------------------------------------------------------------------------

    async def accounts(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        return _json({"Accounts": [
            {"AccountID": "acc-090", "Code": "090", "Name": "Business Bank Account", "Type": "BANK", "Class": "ASSET", "Status": "ACTIVE"},
            {"AccountID": "acc-200", "Code": "200", "Name": "Sales", "Type": "REVENUE", "Class": "REVENUE", "Status": "ACTIVE"},
            {"AccountID": "acc-469", "Code": "469", "Name": "Rent", "Type": "OVERHEADS", "Class": "EXPENSE", "Status": "ACTIVE"},
            {"AccountID": "acc-300", "Code": "300", "Name": "Old Stock", "Type": "DIRECTCOSTS", "Class": "EXPENSE", "Status": "ARCHIVED"}]})

    async def tax_rates(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        return _json({"TaxRates": [{"Name": k, "TaxType": k, "EffectiveRate": f"{v}.0000", "Status": "ACTIVE"} for k, v in RATES.items()]})

    async def contacts_route(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        if request.method == "POST":
            saved = []
            for body in self._body(await request.body())["Contacts"]:
                contact = self.contacts.get(body.get("ContactID", "")) or {"ContactID": str(uuid.uuid4()), "IsCustomer": False, "IsSupplier": False}
                name = str(body.get("Name", contact.get("Name", ""))).strip().casefold()
                if any(c is not contact and c["Name"].strip().casefold() == name for c in self.contacts.values()):
                    return _validation(f"The contact name {body.get('Name')} is already assigned to another contact. The contact "
                                       "name must be unique across all active contacts.")
                contact.update(body, UpdatedDateUTC=self._updated())
                self.contacts[contact["ContactID"]] = contact
                saved.append(contact)
            return _json({"Contacts": saved})
        rows = list(self.contacts.values())
        if term := request.query_params.get("searchTerm"):
            rows = [c for c in rows if term.lower() in c["Name"].lower()]
        if where := request.query_params.get("where"):
            rows = [c for c in rows if self._where(c, where)]
        return _json({"Contacts": self._page(sorted(rows, key=lambda c: c["Name"]), request)})

    async def contact(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        found = self.contacts.get(request.path_params["id"])
        return _json({"Contacts": [found]}) if found else _json({"Title": "NotFound", "Status": 404, "Detail": "not found"}, 404)

    def _compute(self, invoice: dict[str, Any]) -> None:
        cent = Decimal("0.01")
        for item in invoice["LineItems"]:
            item.setdefault("LineItemID", str(uuid.uuid4()))
            gross = Decimal(str(item["Quantity"])) * Decimal(str(item["UnitAmount"]))
            if item.get("DiscountRate") is not None:
                gross = gross * (100 - Decimal(str(item["DiscountRate"]))) / 100
            elif item.get("DiscountAmount") is not None:
                gross -= Decimal(str(item["DiscountAmount"]))
            item["LineAmount"] = gross.quantize(cent, ROUND_HALF_EVEN)
            item["TaxAmount"] = (item["LineAmount"] * RATES.get(item.get("TaxType", "NONE"), Decimal(0)) / 100).quantize(cent, ROUND_HALF_EVEN)
        invoice["SubTotal"] = sum((i["LineAmount"] for i in invoice["LineItems"]), Decimal(0))
        invoice["TotalTax"] = sum((i["TaxAmount"] for i in invoice["LineItems"]), Decimal(0))
        invoice["Total"] = invoice["SubTotal"] + invoice["TotalTax"]
        invoice["AmountPaid"] = sum((p["Amount"] for p in invoice.get("Payments", [])), Decimal(0))
        invoice["AmountCredited"] = sum((c["AppliedAmount"] for key in CREDITS for c in invoice.get(key, [])), Decimal(0))
        invoice["AmountDue"] = invoice["Total"] - invoice["AmountPaid"] - invoice["AmountCredited"]
        if invoice["Status"] == "AUTHORISED" and invoice["AmountDue"] == 0:
            invoice["Status"] = "PAID"
            days = [_day_of(p, "Date") for key in ("Payments", *CREDITS) for p in invoice.get(key, [])]
            if days:
                invoice["FullyPaidOnDate"] = _stamp(max(days))[""]
        code = invoice.get("CurrencyCode") or self.base_currency
        invoice.setdefault("CurrencyRate", Decimal(1) if code == self.base_currency else FX.get(code, OTHER_RATE))
        for key in ("Date", "DueDate"):
            if key in invoice and not str(invoice[key]).startswith("/Date"):
                stamp = _stamp(str(invoice[key]))
                invoice[key], invoice[f"{key}String"] = stamp[""], stamp["String"]
        invoice["UpdatedDateUTC"] = self._updated()

    def apply_credit(self, invoice_id: str, kind: str, applied: Decimal, dated: str) -> None:
        """A credit note, prepayment or overpayment (`kind`: its list on the invoice, `CREDITS`) of `applied`,
        dated `dated`, allocated to the invoice, as Xero lists it on a list read: AppliedAmount and the
        credit's own Date (not the allocation's; XeroAPI/Xero-OpenAPI#266), counted in AmountCredited."""
        singular = {"CreditNotes": "CreditNote", "Prepayments": "Prepayment", "Overpayments": "Overpayment"}[kind]
        invoice = self.invoices[invoice_id]
        invoice.setdefault(kind, []).append({f"{singular}ID": str(uuid.uuid4()), "ID": str(uuid.uuid4()), "Total": applied,
                                             "AppliedAmount": applied, **{f"Date{k}": v for k, v in _stamp(dated).items()}})
        self._compute(invoice)

    async def invoices_route(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        if request.method == "PUT":
            saved = []
            for body in self._body(await request.body())["Invoices"]:
                if body["Contact"]["ContactID"] not in self.contacts:
                    return _validation("The contact could not be found")
                invoice = {**body, "InvoiceID": str(uuid.uuid4()), "InvoiceNumber": f"INV-{len(self.invoices) + 1:04d}", "Payments": [],
                           "Contact": {"ContactID": body["Contact"]["ContactID"], "Name": self.contacts[body["Contact"]["ContactID"]]["Name"]}}
                self._compute(invoice)
                self.invoices[invoice["InvoiceID"]] = invoice
                saved.append(invoice)
            response = _json({"Invoices": saved})
            if key := request.headers.get("idempotency-key"):
                self.idempotent[key] = response
            return response
        q = request.query_params
        rows = list(self.invoices.values())
        if where := q.get("where"):
            rows = [i for i in rows if self._where(i, where)]
        if statuses := q.get("Statuses"):
            rows = [i for i in rows if i["Status"] in statuses.split(",")]
        if contacts := q.get("ContactIDs"):
            rows = [i for i in rows if i["Contact"]["ContactID"] in contacts.split(",")]
        return _json({"Invoices": self._page(sorted(rows, key=lambda i: i["DateString"]), request)})

    async def invoice(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        found = self.invoices.get(request.path_params["id"])
        if found is None:
            return _json({"Title": "NotFound", "Status": 404, "Detail": "The resource you're looking for cannot be found"}, 404)
        if request.method == "POST":
            changes = self._body(await request.body())["Invoices"][0]
            if changes.get("Status") == "VOIDED" and found["AmountPaid"] > 0:
                return _validation("Invoice not of valid status for modification")
            if "LineItems" in changes and (found["Status"] in ("PAID", "VOIDED", "DELETED") or found["AmountPaid"] > 0
                                           or found.get("AmountCredited", 0) > 0):
                # Xero edits the lines of DRAFT, SUBMITTED and unpaid AUTHORISED invoices, nothing else
                return _validation("This document cannot be edited as it has a payment or credit note allocated to it.")
            found.update({k: v for k, v in changes.items() if k != "InvoiceID"})
            self._compute(found)
        return _json({"Invoices": [found]})

    async def payments(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        saved = []
        for body in self._body(await request.body())["Payments"]:
            invoice = self.invoices.get(body["Invoice"]["InvoiceID"])
            if invoice is None or invoice["Status"] != "AUTHORISED":
                return _validation("Payment can only be made against an authorised invoice")
            if body["Amount"] > invoice["AmountDue"]:
                return _validation("Payment amount exceeds the amount outstanding on this document")
            payment = {"PaymentID": str(uuid.uuid4()), "Amount": body["Amount"], **{f"Date{k}": v for k, v in _stamp(body["Date"]).items()}}
            invoice["Payments"].append(payment)
            self._compute(invoice)
            saved.append({**payment, "Invoice": {"InvoiceID": invoice["InvoiceID"]}})
        response = _json({"Payments": saved})
        if key := request.headers.get("idempotency-key"):
            self.idempotent[key] = response
        return response

    async def manual_journals(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        body = self._body(await request.body())["ManualJournals"][0]
        if sum((line["LineAmount"] for line in body["JournalLines"]), Decimal(0)) != 0:
            return _validation("The total debits must equal total credits")
        journal_id = str(uuid.uuid4())
        self.journals.append({"JournalID": str(uuid.uuid4()), "JournalNumber": len(self.journals) + 1, "SourceType": "MANJOURNAL",
                              "SourceID": journal_id, **{f"JournalDate{k}": v for k, v in _stamp(body["Date"]).items()},
                              "JournalLines": [{"JournalLineID": str(uuid.uuid4()), "AccountCode": line["AccountCode"],
                                                "NetAmount": line["LineAmount"], "Description": line.get("Description", "")}
                                               for line in body["JournalLines"]]})
        return _json({"ManualJournals": [{**body, "ManualJournalID": journal_id}]})

    async def journals_route(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        offset = int(request.query_params.get("offset", 0))
        return _json({"Journals": [j for j in self.journals if j["JournalNumber"] > offset][:100]})

    async def report(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        name = request.path_params["name"]
        return _json(REPORTS[name]) if name in REPORTS else _json({"Title": "NotFound", "Status": 404, "Detail": "no such report"}, 404)
