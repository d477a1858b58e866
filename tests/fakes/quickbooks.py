"""A local fake of QuickBooks Online's Accounting API v3 for one company: the query endpoint
(WHERE with =, <, <=, >, >=, LIKE joined by `and`; ORDERBY; STARTPOSITION/MAXRESULTS), entity
reads, creates and sparse updates with SyncToken checks (Fault 5010 "Stale Object Error"),
`requestid` de-duplication, invoice void, payments and bill payments that reduce balances,
balanced-only journal entries, and report endpoints answering documented shapes. Every request must
carry `minorversion`. Numbers are exact decimals inside and JSON numbers on the wire.

As QuickBooks does, every line of an invoice or bill has an `Id` (and `LineNum`), and an update's `Line` replaces
the stored lines: a line sent with its `Id` keeps it (with only what was sent: ClassRef, CustomerRef,
BillableStatus...), one without is a new line, one left out is deleted."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.oauth import RotatingTokens
from tests.fakes.recording import injected, record

REALM = "9130357766"
PREFIX = f"/v3/company/{REALM}"
ENTITIES = {"customer": "Customer", "vendor": "Vendor", "invoice": "Invoice", "bill": "Bill", "payment": "Payment",
            "billpayment": "BillPayment", "journalentry": "JournalEntry", "account": "Account", "item": "Item"}
_CLAUSE = re.compile(r"^(\w+)\s*(>=|<=|=|<|>|LIKE)\s*'((?:[^'\\]|\\.)*)'$", re.IGNORECASE)


def _json(body: Any, status: int = 200) -> Response:
    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            return float(value)
        raise TypeError(type(value).__name__)

    return Response(json.dumps(body, default=default), status, media_type="application/json")


def fault(message: str, code: str, detail: str = "", status: int = 400) -> Response:
    return _json({"Fault": {"Error": [{"Message": message, "Detail": detail, "code": code}], "type": "ValidationFault"},
                  "time": "2026-11-23T10:00:00.000-08:00"}, status)


def _row(cells: list[Any]) -> dict[str, Any]:
    return {"ColData": [c if isinstance(c, dict) else {"value": str(c)} for c in cells], "type": "Data"}


def _section(group: str, title: str, rows: list[dict[str, Any]], summary: list[Any]) -> dict[str, Any]:
    return {"Header": {"ColData": [{"value": title}] + [{"value": ""}] * (len(summary) - 1)}, "Rows": {"Row": rows},
            "Summary": {"ColData": [{"value": str(c)} for c in summary]}, "type": "Section", "group": group}


REPORTS: dict[str, dict[str, Any]] = {
    "ProfitAndLoss": {
        "Columns": {"Column": [{"ColTitle": "", "ColType": "Account"}, {"ColTitle": "Total", "ColType": "Money"}]},
        "Rows": {"Row": [
            _section("Income", "Income", [_row([{"value": "Services", "id": "1"}, "1500.00"]), _row([{"value": "Sales", "id": "79"}, "80.55"])],
                     ["Total Income", "1580.55"]),
            _section("GrossProfit", "", [], ["Gross Profit", "1580.55"]),
            _section("Expenses", "Expenses", [_row([{"value": "Rent", "id": "17"}, "1200.00"])], ["Total Expenses", "1200.00"]),
            _section("NetIncome", "", [], ["Net Income", "380.55"])]}},
    "BalanceSheet": {
        "Columns": {"Column": [{"ColTitle": "", "ColType": "Account"}, {"ColTitle": "Total", "ColType": "Money"}]},
        "Rows": {"Row": [
            _section("TotalAssets", "ASSETS", [_row([{"value": "Checking", "id": "35"}, "2000.00"]),
                                                _row([{"value": "Accounts Receivable", "id": "84"}, "1000.00"])], ["Total Assets", "3000.00"]),
            {"Header": {"ColData": [{"value": "LIABILITIES AND EQUITY"}, {"value": ""}]}, "type": "Section", "group": "TotalLiabilitiesAndEquity",
             "Rows": {"Row": [
                 _section("Liabilities", "Liabilities", [_row([{"value": "Sales Tax Payable", "id": "89"}, "300.00"])], ["Total Liabilities", "300.00"]),
                 _section("Equity", "Equity", [_row([{"value": "Opening Balance Equity", "id": "34"}, "2319.45"]),
                                               _row([{"value": "Net Income", "id": ""}, "380.55"])], ["Total Equity", "2700.00"])]},
             "Summary": {"ColData": [{"value": "Total Liabilities and Equity"}, {"value": "3000.00"}]}}]}},
    "TrialBalance": {
        "Columns": {"Column": [{"ColTitle": "", "ColType": "Account"}, {"ColTitle": "Debit", "ColType": "Money"},
                               {"ColTitle": "Credit", "ColType": "Money"}]},
        "Rows": {"Row": [
            _row([{"value": "Checking", "id": "35"}, "2000.00", ""]), _row([{"value": "Accounts Receivable", "id": "84"}, "1000.00", ""]),
            _row([{"value": "Sales Tax Payable", "id": "89"}, "", "300.00"]), _row([{"value": "Services", "id": "1"}, "", "1500.00"]),
            _row([{"value": "Rent", "id": "17"}, "1200.00", ""]), _row([{"value": "Opening Balance Equity", "id": "34"}, "", "2319.45"]),
            _row([{"value": "Sales", "id": "79"}, "", "80.55"]),
            {"Summary": {"ColData": [{"value": "TOTAL"}, {"value": "4200.00"}, {"value": "4200.00"}]}, "type": "Section", "group": "GrandTotal"}]}},
    "AgedReceivables": {
        "Columns": {"Column": [{"ColTitle": ""}, {"ColTitle": "Current"}, {"ColTitle": "1 - 30"}, {"ColTitle": "31 - 60"},
                               {"ColTitle": "61 - 90"}, {"ColTitle": "91 and over"}, {"ColTitle": "Total"}]},
        "Rows": {"Row": [
            _row([{"value": "Acme Corp", "id": "58"}, "", "1000.00", "", "", "", "1000.00"]),
            {"Summary": {"ColData": [{"value": "TOTAL"}, {"value": "0.00"}, {"value": "1000.00"}, {"value": "0.00"}, {"value": "0.00"},
                                     {"value": "0.00"}, {"value": "1000.00"}]}, "type": "Section", "group": "GrandTotal"}]}},
    "GeneralLedger": {
        "Columns": {"Column": [{"ColTitle": "Date"}, {"ColTitle": "Transaction Type"}, {"ColTitle": "Num"}, {"ColTitle": "Memo/Description"},
                               {"ColTitle": "Debit"}, {"ColTitle": "Credit"}]},
        "Rows": {"Row": [
            {"Header": {"ColData": [{"value": "Checking", "id": "35"}]}, "type": "Section", "Rows": {"Row": [
                _row(["2026-03-10", {"value": "Payment", "id": "201"}, "", "", "880.55", ""]),
                _row(["2026-03-31", {"value": "Journal Entry", "id": "301"}, "", "Rent", "", "1200.00"])]},
             "Summary": {"ColData": [{"value": "Total for Checking"}]}},
            {"Header": {"ColData": [{"value": "Rent", "id": "17"}]}, "type": "Section", "Rows": {"Row": [
                _row(["2026-03-31", {"value": "Journal Entry", "id": "301"}, "", "Rent", "1200.00", ""])]}}]}},
}


@dataclass
class FakeQuickBooks:
    oauth: RotatingTokens = field(default_factory=RotatingTokens)
    store: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {name: {} for name in ENTITIES.values()})
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    request_ids: dict[str, Response] = field(default_factory=dict)
    next_id: int = 100

    def __post_init__(self) -> None:
        for account in [("35", "Checking", "Bank", "Asset"), ("84", "Accounts Receivable", "Accounts Receivable", "Asset"),
                        ("89", "Sales Tax Payable", "Other Current Liability", "Liability"), ("1", "Services", "Income", "Revenue"),
                        ("17", "Rent", "Expense", "Expense"), ("34", "Opening Balance Equity", "Equity", "Equity")]:
            self.store["Account"][account[0]] = {"Id": account[0], "Name": account[1], "AccountType": account[2], "Classification": account[3],
                                                 "CurrentBalance": Decimal("0"), "Active": True, "SyncToken": "0"}
        self.store["Customer"]["58"] = {"Id": "58", "DisplayName": "Acme Corp", "PrimaryEmailAddr": {"Address": "ap@acme.test"}, "SyncToken": "0"}
        self.store["Vendor"]["41"] = {"Id": "41", "DisplayName": "Paper & Co", "SyncToken": "0"}

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/oauth2/v1/tokens/bearer", self.oauth.token, methods=["POST"]),
            Route(f"{PREFIX}/query", self.query, methods=["GET"]),
            Route(f"{PREFIX}/reports/{{name}}", self.report, methods=["GET"]),
            Route(f"{PREFIX}/{{entity}}", self.write, methods=["POST"]),
            Route(f"{PREFIX}/{{entity}}/{{id}}", self.read, methods=["GET"]),
        ])

    async def _begin(self, request: Request) -> Response | None:
        await record(request, self.requests)
        if not self.oauth.authorized(request):
            return _json({"fault": {"error": [{"message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                                              "code": "3200"}], "type": "AUTHENTICATION"}}, 401)
        if "minorversion" not in request.query_params:
            return fault("minorversion is required by this fake", "4000")
        return injected(self.fail_next)

    # -- query language ---------------------------------------------------------------------

    @staticmethod
    def _matches(row: dict[str, Any], clause: str) -> bool:
        match = _CLAUSE.match(clause.strip())
        if match is None:
            raise ValueError(clause)
        name, op, value = match.group(1), match.group(2).upper(), match.group(3).replace("\\'", "'")
        actual = row.get(name)
        if isinstance(actual, dict):
            actual = actual.get("value")
        if op == "LIKE":
            return re.fullmatch(re.escape(value).replace("%", ".*"), str(actual or ""), re.IGNORECASE) is not None
        left: Any = actual
        right: Any = value
        if isinstance(actual, Decimal):
            right = Decimal(value)
        return {"=": left == right, "<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]

    async def query(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        text = request.query_params["query"]
        match = re.fullmatch(r"select \* from (\w+)(?: where (.+?))?(?: ORDERBY (\w+))? STARTPOSITION (\d+) MAXRESULTS (\d+)", text)
        if match is None:
            return fault("QueryParserError: Encountered unexpected text", "4000", text)
        entity, where, order, start, size = match.groups()
        rows = list(self.store[entity].values())
        if where:
            try:
                rows = [r for r in rows if all(self._matches(r, c) for c in re.split(r"\s+and\s+", where))]
            except ValueError as bad:
                return fault("QueryParserError", "4000", str(bad))
        if order:
            rows.sort(key=lambda r: str(r.get(order, "")))
        page = rows[int(start) - 1 : int(start) - 1 + int(size)]
        return _json({"QueryResponse": {entity: page, "startPosition": int(start), "maxResults": len(page)} if page else {},
                      "time": "2026-11-23T10:00:00.000-08:00"})

    async def read(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        name = ENTITIES.get(request.path_params["entity"])
        found = self.store.get(name or "", {}).get(request.path_params["id"])
        if found is None:
            return fault("Object Not Found", "610", "Object Not Found : Something you're trying to use has been made inactive or deleted")
        return _json({name: found})

    # -- writes -----------------------------------------------------------------------------

    async def write(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        request_id = request.query_params.get("requestid")
        if request_id and request_id in self.request_ids:
            return self.request_ids[request_id]
        name = ENTITIES.get(request.path_params["entity"])
        if name is None:
            return fault("Unsupported entity", "4000")
        body = json.loads(await request.body(), parse_float=Decimal)
        response = self._write(name, body, request.query_params.get("operation"))
        if request_id and response.status_code == 200:
            self.request_ids[request_id] = response
        return response

    def _write(self, name: str, body: dict[str, Any], operation: str | None) -> Response:
        if "Id" in body:
            current = self.store[name].get(body["Id"])
            if current is None:
                return fault("Object Not Found", "610")
            if str(body.get("SyncToken")) != current["SyncToken"]:
                return fault("Stale Object Error", "5010", f"Stale Object Error : You and another user were working on the same "
                             f"thing. SyncToken {body.get('SyncToken')} != {current['SyncToken']}")
            if name in ("Customer", "Vendor") and "DisplayName" in body and self._name_taken(body["DisplayName"], current):
                return fault("Duplicate Name Exists Error", "6240", "The name supplied already exists.")
            if operation == "void":
                current.update(TotalAmt=Decimal("0"), Balance=Decimal("0"), PrivateNote="Voided", Line=[])
            else:
                current.update({k: v for k, v in body.items() if k not in ("Id", "SyncToken", "sparse")})
                if "Line" in body:
                    self._totals(current)
            current["SyncToken"] = str(int(current["SyncToken"]) + 1)
            return _json({name: current})
        self.next_id += 1
        saved = {**body, "Id": str(self.next_id), "SyncToken": "0"}
        if name in ("Invoice", "Bill"):
            for line in body["Line"]:
                detail = line.get("SalesItemLineDetail")
                if detail and abs(Decimal(str(detail["Qty"])) * Decimal(str(detail["UnitPrice"])) - line["Amount"]) >= Decimal("0.005"):
                    return fault("Business Validation Error: Amount is not equal to UnitPrice * Qty", "6070")
            saved["DocNumber"] = str(1000 + self.next_id)
            if name == "Invoice":
                saved.setdefault("EmailStatus", "NotSet")  # QuickBooks: NotSet, NeedToSend or EmailSent (after a send)
            self._totals(saved)
        elif name in ("Payment", "BillPayment"):
            for line in body["Line"]:
                for link in line["LinkedTxn"]:
                    target = self.store[link["TxnType"]][link["TxnId"]]
                    target["Balance"] -= line["Amount"]
                    kind = "Payment" if name == "Payment" else "BillPaymentCheck"  # as QuickBooks lists them on the invoice
                    target.setdefault("LinkedTxn", []).append({"TxnId": saved["Id"], "TxnType": kind})
                    target["SyncToken"] = str(int(target["SyncToken"]) + 1)
        elif name == "JournalEntry":
            sides = {"Debit": Decimal(0), "Credit": Decimal(0)}
            for line in body["Line"]:
                sides[line["JournalEntryLineDetail"]["PostingType"]] += line["Amount"]
            if sides["Debit"] != sides["Credit"]:
                return fault("Transaction is not balanced", "6000", "The transaction must balance")
        elif name in ("Customer", "Vendor") and self._name_taken(body["DisplayName"], None):
            return fault("Duplicate Name Exists Error", "6240", "The name supplied already exists. : Another customer, "
                         "vendor or employee is already using this name. Please use a different name.")
        self.store[name][saved["Id"]] = saved
        return _json({name: saved, "time": "2026-11-23T10:00:00.000-08:00"})

    def _name_taken(self, name: str, other_than: dict[str, Any] | None) -> bool:
        """QuickBooks keeps a display name unique across customers, vendors and employees, whatever its case."""
        return any(c is not other_than and c["DisplayName"].strip().casefold() == name.strip().casefold()
                   for entity in ("Customer", "Vendor") for c in self.store[entity].values())

    @staticmethod
    def _totals(doc: dict[str, Any]) -> None:
        taken = [int(line["Id"]) for line in doc["Line"] if str(line.get("Id", "")).isdigit()]
        for number, line in enumerate(doc["Line"], 1):
            if "Id" not in line:
                taken.append(max(taken, default=0) + 1)
                line["Id"] = str(taken[-1])
            line["LineNum"] = number
        net = sum((line["Amount"] for line in doc["Line"]), Decimal(0))
        tax = (net * Decimal("0.08")).quantize(Decimal("0.01")) if any("TaxCodeRef" in str(line) for line in doc["Line"]) else Decimal(0)
        paid = doc.get("TotalAmt", Decimal(0)) - doc.get("Balance", Decimal(0))
        doc["TxnTaxDetail"] = {"TotalTax": tax}
        doc["TotalAmt"] = net + tax
        doc["Balance"] = net + tax - paid

    async def report(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        name = request.path_params["name"]
        if name not in REPORTS:
            return fault("Report not found", "4000")
        method = request.query_params.get("accounting_method", "Accrual")
        return _json({"Header": {"ReportName": name, "ReportBasis": method, "Currency": "USD",
                                 "StartPeriod": request.query_params.get("start_date"), "EndPeriod": request.query_params.get("end_date")},
                      **REPORTS[name]})
