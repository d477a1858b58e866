"""Xero report JSON (`Reports[0].Rows`: a Header row of column titles, Sections with Title, Rows of
Cells — the first naming the account, with its id in `Attributes` — and SummaryRows) read into our
`Report`. Totals come from the summary rows' labels ("Total Income", "Net Profit", ...)."""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal
from typing import Any

from servers.accounting.model import Basis, Report, ReportKind, ReportRow, ReportSection
from servers.accounting.money import ZERO
from servers.accounting.money import read_amount as amount

SUMMARY_TOTALS = {"total income": "income", "total trading income": "income", "total operating expenses": "expenses",
                  "total cost of sales": "cost_of_sales", "gross profit": "gross_profit", "net profit": "net_income",
                  "total assets": "assets", "total liabilities": "liabilities", "total equity": "equity", "net assets": "net_assets"}


def _cells(row: dict[str, Any]) -> list[dict[str, Any]]:
    return row.get("Cells") or []


def read_report(body: dict[str, Any], kind: ReportKind, basis: Basis, currency: str, start: _dt.date | None, end: _dt.date | None,
                as_of: _dt.date | None) -> Report:
    report = (body.get("Reports") or [{}])[0]
    rows = report.get("Rows") or []
    titles = [str(c.get("Value", "")).strip().lower() for c in _cells(next((r for r in rows if r.get("RowType") == "Header"), {}))]
    debit_at = titles.index("ytd debit") if "ytd debit" in titles else titles.index("debit") if "debit" in titles else None
    credit_at = titles.index("ytd credit") if "ytd credit" in titles else titles.index("credit") if "credit" in titles else None
    sections: list[ReportSection] = []
    totals: dict[str, Decimal] = {}

    def parse(cells: list[dict[str, Any]]) -> ReportRow:
        name = str(cells[0].get("Value", "")) if cells else ""
        account = next((a.get("Value") for a in cells[0].get("Attributes") or [] if a.get("Id") == "account"), None) if cells else None
        if debit_at is not None and credit_at is not None:
            debit, credit = amount(cells[debit_at].get("Value")) or ZERO, amount(cells[credit_at].get("Value")) or ZERO
            return ReportRow(name=name, account_code=account, amount=debit - credit, columns={"debit": debit, "credit": credit})
        value = next((v for c in reversed(cells[1:]) if (v := amount(c.get("Value"))) is not None), ZERO)
        return ReportRow(name=name, account_code=account, amount=value)

    for section in rows:
        if section.get("RowType") != "Section":
            continue
        entries: list[ReportRow] = []
        total: Decimal | None = None
        for row in section.get("Rows") or []:
            parsed = parse(_cells(row))
            label = parsed.name.strip().lower()
            if row.get("RowType") == "SummaryRow" or label in SUMMARY_TOTALS:
                total = parsed.amount
                if label in SUMMARY_TOTALS:
                    totals[SUMMARY_TOTALS[label]] = parsed.amount
                elif label == "total" and parsed.columns:
                    totals.update(parsed.columns)
            else:
                entries.append(parsed)
        if entries or total is not None:
            sections.append(ReportSection(name=section.get("Title") or "", rows=entries,
                                          total=total if total is not None else sum((e.amount for e in entries), ZERO)))
    balanced = None
    if kind == "trial_balance" and "debit" in totals:
        balanced = totals["debit"] == totals.get("credit")
    if kind == "balance_sheet" and {"assets", "liabilities", "equity"} <= totals.keys():
        totals["liabilities_and_equity"] = totals["liabilities"] + totals["equity"]
        balanced = totals["assets"] == totals["liabilities_and_equity"]
    return Report(report=kind, basis=basis, currency=currency, start=start, end=end, as_of=as_of, sections=sections, totals=totals,
                  balanced=balanced, provider="xero")
