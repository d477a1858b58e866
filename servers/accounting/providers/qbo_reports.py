"""QuickBooks Online report JSON (`Header` / `Columns` / nested `Rows` of Section and Data rows with
`ColData` strings) read into our `Report`: top-level sections become sections, nested data rows are
flattened into them, and the `group` summaries give the totals. The GeneralLedger report is read as ledger
lines (`read_ledger`)."""

from __future__ import annotations

import datetime as _dt
import re
from decimal import Decimal
from typing import Any

from servers.accounting.model import Basis, Report, ReportKind, ReportRow, ReportSection, Transaction
from servers.accounting.money import ZERO, read_money
from servers.accounting.money import read_amount as amount

GROUP_TOTALS = {"Income": "income", "Expenses": "expenses", "NetIncome": "net_income", "COGS": "cost_of_sales",
                "GrossProfit": "gross_profit", "TotalAssets": "assets", "Liabilities": "liabilities", "Equity": "equity",
                "TotalLiabilitiesAndEquity": "liabilities_and_equity"}
COLUMN_KEYS = {"debit": "debit", "credit": "credit", "current": "current", "1 - 30": "1_30", "31 - 60": "31_60",
               "61 - 90": "61_90", "91 and over": "over_90", "total": "total"}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class _Reader:
    def __init__(self, body: dict[str, Any]) -> None:
        titles = [c.get("ColTitle", "") for c in (body.get("Columns") or {}).get("Column", [])]
        self.keys = {i: COLUMN_KEYS[t.strip().lower()] for i, t in enumerate(titles) if t.strip().lower() in COLUMN_KEYS}
        self.totals: dict[str, Decimal] = {}

    def row(self, cells: list[dict[str, Any]]) -> ReportRow | None:
        values = [amount(c.get("value")) for c in cells[1:]]
        if not any(v is not None for v in values):
            return None
        columns = {self.keys[i + 1]: v or ZERO for i, v in enumerate(values) if i + 1 in self.keys}
        if "debit" in columns:
            value = columns.get("debit", ZERO) - columns.get("credit", ZERO)
        else:
            value = next((v for v in reversed(values) if v is not None), ZERO)
        return ReportRow(name=cells[0].get("value", ""), account_code=cells[0].get("id"), amount=value, columns=columns or None)

    def section(self, raw: dict[str, Any], into: list[ReportRow]) -> Decimal | None:
        for child in (raw.get("Rows") or {}).get("Row", []):
            if child.get("type") == "Data" or "ColData" in child:
                if (parsed := self.row(child.get("ColData", []))) is not None:
                    into.append(parsed)
            else:
                self.section(child, into)
        summary = self.row((raw.get("Summary") or {}).get("ColData", []))
        if summary is not None and raw.get("group"):
            key = GROUP_TOTALS.get(raw["group"], _snake(raw["group"]))
            self.totals[key] = summary.amount
            for column, value in (summary.columns or {}).items():
                if raw["group"] == "GrandTotal":
                    self.totals[column] = value
        return summary.amount if summary is not None else None


def read_report(body: dict[str, Any], kind: ReportKind, basis: Basis, currency: str, start: _dt.date | None, end: _dt.date | None,
                as_of: _dt.date | None) -> Report:
    reader = _Reader(body)
    sections: list[ReportSection] = []
    loose: list[ReportRow] = []
    for raw in (body.get("Rows") or {}).get("Row", []):
        if raw.get("type") == "Data" or "ColData" in raw:
            if (parsed := reader.row(raw.get("ColData", []))) is not None:
                loose.append(parsed)
            continue
        rows: list[ReportRow] = []
        total = reader.section(raw, rows)
        name = ((raw.get("Header") or {}).get("ColData") or [{}])[0].get("value") or raw.get("group") or ""
        if rows or total is not None:
            sections.append(ReportSection(name=name, rows=rows, total=total if total is not None else sum((r.amount for r in rows), ZERO)))
    if loose:
        sections.insert(0, ReportSection(name="Accounts", rows=loose, total=sum((r.amount for r in loose), ZERO)))
    totals = reader.totals
    balanced = None
    if kind == "trial_balance" and "debit" in totals:
        balanced = totals["debit"] == totals.get("credit")
    if kind == "balance_sheet" and "assets" in totals and "liabilities_and_equity" in totals:
        balanced = totals["assets"] == totals["liabilities_and_equity"]
    header = body.get("Header") or {}
    return Report(report=kind, basis=basis, currency=header.get("Currency") or currency, start=start, end=end, as_of=as_of,
                  sections=sections, totals=totals, balanced=balanced, provider="quickbooks")


def read_ledger(body: dict[str, Any], currency: str) -> list[Transaction]:
    """The GeneralLedger report's data rows (columns date, type, number, memo, debit, credit), each with the
    account of the section it is in."""
    items: list[Transaction] = []

    def walk(rows: list[dict[str, Any]], account: tuple[str, str] | None) -> None:
        for row in rows:
            header = ((row.get("Header") or {}).get("ColData") or [{}])[0]
            if row.get("type") == "Section" or "Rows" in row:
                walk((row.get("Rows") or {}).get("Row", []), (header.get("id", ""), header.get("value", "")) if header.get("id") else account)
            elif (cells := row.get("ColData")) and account is not None and len(cells) >= 6 and cells[0].get("value"):
                items.append(Transaction(id=f"{cells[1].get('value', '')}:{cells[1].get('id', '')}:{len(items)}", date=cells[0]["value"],
                                         account_code=account[0], account_name=account[1],
                                         debit=read_money(cells[4].get("value"), currency),
                                         credit=read_money(cells[5].get("value"), currency), source=cells[1].get("value", "").lower(),
                                         source_id=cells[1].get("id"), memo=cells[3].get("value", "")))

    walk((body.get("Rows") or {}).get("Row", []), None)
    return items
