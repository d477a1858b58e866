"""QuickBooks Online entities as the accounting domain's models, and back (`providers.quickbooks`):
invoices and bills, customers and vendors, the lines a create or patch sends, error bodies, and what an
invoice allows (its lines once paid or sent, its SyncToken), and the lines a patch sends (`patch_lines`).
QuickBooks has no void flag: a void is read from the amounts (`is_voided`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from servers.accounting import ledger
from servers.accounting.line_match import match_lines, refuse_unclear
from servers.accounting.model import Contact, Invoice, InvoiceLine, LineInput
from servers.accounting.money import ZERO, read_money
from servers.accounting.money import read_amount as amount
from servers.kit.errors import DomainError
from servers.kit.http import common_error_text

SHOWN = ("SalesItemLineDetail", "AccountBasedExpenseLineDetail")
"""The line details the tools show and write; `SubTotalLineDetail` is QuickBooks' own (it adds it back)."""
RECOMPUTED = ("TaxInclusiveAmt", "DiscountAmt", "TaxAmount")
"""Amounts of a line's detail that QuickBooks derives from its price: not kept on a line whose price changed."""
WRITTEN = ("ItemRef", "Qty", "UnitPrice", "AccountRef", "TaxCodeRef", "ItemAccountRef", *RECOMPUTED)
"""Detail fields the tools write or QuickBooks derives; any other a line holds is the caller's data to keep."""


def is_voided(raw: dict[str, Any], currency: str) -> bool:
    """Whether QuickBooks voided this invoice. It has no void flag: a void zeroes the total, balance
    and lines, read here — never `PrivateNote` ("Voided" after a void, but the caller's `reference`).
    The tools refuse zero totals, so only a $0 invoice made in QuickBooks also reads as voided."""
    lines = [line for line in raw.get("Line", []) if line.get("SalesItemLineDetail") or line.get("AccountBasedExpenseLineDetail")]
    return all(read_money(raw.get(key), currency) == 0 for key in ("TotalAmt", "Balance")) and \
        all(read_money(line.get("Amount"), currency) == 0 for line in lines)


def read_invoice(raw: dict[str, Any], kind: str, home_currency: str) -> Invoice:
    """A QuickBooks Invoice (`kind` invoice) or Bill (`kind` bill) as ours."""
    currency = (raw.get("CurrencyRef") or {}).get("value") or home_currency
    lines = [shown for line in raw.get("Line", []) if (shown := read_line(line, currency)) is not None]
    total, balance = read_money(raw.get("TotalAmt"), currency), read_money(raw.get("Balance"), currency)
    tax = read_money((raw.get("TxnTaxDetail") or {}).get("TotalTax"), currency)
    voided = is_voided(raw, currency)
    status = "voided" if voided else "paid" if balance == 0 else "partially_paid" if balance < total else "open"
    party = (raw.get("CustomerRef") if kind == "invoice" else raw.get("VendorRef")) or {}
    return Invoice(id=f"{kind}:{raw['Id']}", number=raw.get("DocNumber"), kind="receivable" if kind == "invoice" else "payable",
                   contact_id=f"{'customer' if kind == 'invoice' else 'vendor'}:{party.get('value')}",
                   contact_name=party.get("name"), issue_date=raw["TxnDate"], due_date=raw.get("DueDate"), currency=currency,
                   status=status, lines=lines, subtotal=total - tax, tax_total=tax, total=total, amount_paid=total - balance,
                   balance=balance, reference=raw.get("PrivateNote"), version=str(raw.get("SyncToken", "0")), provider="quickbooks")


def read_line(line: dict[str, Any], currency: str) -> InvoiceLine | None:
    """A sales or expense line as the tools show it; None for the lines they do not show (subtotal, discount,
    group, description-only and item-based expense lines)."""
    detail = line.get("SalesItemLineDetail") or line.get("AccountBasedExpenseLineDetail")
    if detail is None:
        return None
    net = read_money(line.get("Amount"), currency)
    return InvoiceLine(description=line.get("Description", ""), quantity=amount(detail.get("Qty")) or Decimal(1),
                       unit_price=amount(detail.get("UnitPrice")) if detail.get("UnitPrice") is not None else net,
                       account_code=(detail.get("AccountRef") or {}).get("value"), item=(detail.get("ItemRef") or {}).get("value"),
                       tax_code=(detail.get("TaxCodeRef") or {}).get("value"), net=net, tax=ZERO, total=net)


def read_contact(raw: dict[str, Any], kind: str) -> Contact:
    """A QuickBooks Customer or Vendor as ours."""
    return Contact(id=f"{kind}:{raw['Id']}", name=raw.get("DisplayName", ""), email=(raw.get("PrimaryEmailAddr") or {}).get("Address"),
                   kind="customer" if kind == "customer" else "vendor", currency=(raw.get("CurrencyRef") or {}).get("value"),
                   tax_number=raw.get("TaxIdentifier") or raw.get("ResaleNum"), version=str(raw.get("SyncToken", "0")))

def write_lines(kind: str, lines: list[LineInput], currency: str) -> list[dict[str, Any]]:
    """Our lines as an Invoice's (sales, by Item) or a Bill's (expense, by account)."""
    priced = ledger.price_lines(lines, currency, None).lines
    out = []
    for index, line in enumerate(priced):
        tax = {"TaxCodeRef": {"value": line.tax_code}} if line.tax_code else {}
        if kind == "invoice":
            if not line.item:
                raise DomainError("invalid_argument", f"lines[{index}].item: QuickBooks invoice lines name a product/service "
                                  "(its Item id)", details={"field": f"lines[{index}].item"})
            detail = {"DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {
                "ItemRef": {"value": line.item}, "Qty": line.quantity, "UnitPrice": line.unit_price, **tax}}
        else:
            if not line.account_code:
                raise DomainError("invalid_argument", f"lines[{index}].account_code: a QuickBooks bill line needs an expense "
                                  "account (its id, as list_accounts shows)", details={"field": f"lines[{index}].account_code"})
            detail = {"DetailType": "AccountBasedExpenseLineDetail", "AccountBasedExpenseLineDetail": {
                "AccountRef": {"value": line.account_code}, **tax}}
        out.append({"Amount": line.net, "Description": line.description, **detail})
    return out


def error_text(body: dict[str, Any]) -> list[str]:
    """QuickBooks' error shape: `{"Fault": {"Error": [{"Message", "Detail", "code"}], "type"}}`."""
    fault = body.get("Fault")
    errors = fault.get("Error", []) if isinstance(fault, dict) else []
    return [*(" — ".join(str(e[k]) for k in ("Message", "Detail") if e.get(k)) for e in errors if isinstance(e, dict)),
            *common_error_text(body)]


def refuse_issued_lines(invoice_id: str, current: dict[str, Any]) -> None:
    """QuickBooks has no drafts, so "drafts only" means: nothing paid or credited yet and never emailed. Past
    that, QuickBooks would rewrite lines a customer was sent or a payment settled (outside review money19)."""
    label = f"{invoice_id} ({current['DocNumber']})" if current.get("DocNumber") else invoice_id
    total, balance = amount(current.get("TotalAmt")) or ZERO, amount(current.get("Balance")) or ZERO
    if balance != total:
        raise DomainError("invalid_argument", f"{label} has payments or credits applied (balance {balance} of {total}): its "
                          "lines are settled in part. Issue a credit memo and a new invoice, or remove the payments in "
                          "QuickBooks first; only the lines of an unpaid, unsent invoice can be patched",
                          details={"field": "lines"})
    if current.get("EmailStatus") == "EmailSent":
        raise DomainError("invalid_argument", f"{label} was emailed to the customer: its lines are what they were sent. Void "
                          "it and issue a new one, or issue a credit memo for the difference; only the lines of an unpaid, "
                          "unsent invoice can be patched", details={"field": "lines"})


def unchanged_since(invoice_id: str, current: dict[str, Any], version: str | None) -> None:
    """`conflict` if the invoice or bill changed since `version` (its SyncToken) was read."""
    if version is not None and version != str(current.get("SyncToken")):
        raise DomainError("conflict", f"{invoice_id} changed since you read it (SyncToken {current.get('SyncToken')}, you sent "
                          f"{version}); get it again and reapply your change", details={"current_version": str(current.get("SyncToken"))})


def patch_lines(label: str, kind: str, stored: list[dict[str, Any]], lines: list[LineInput], currency: str) -> list[dict[str, Any]]:
    """`lines` as the `Line` of a sparse update of the invoice or bill `label` whose lines are `stored`.

    Decision (outside review r38b #5): keep, or refuse; never drop. The sent `Line` replaces every line, and a
    line sent without its `Id` is a new one, so a line's class, billable customer and status were lost. Each new
    line is matched to a stored one (`line_match.match_lines`): one shown unchanged goes back as QuickBooks holds
    it; a changed one keeps its stored line's `Id` and every detail field the tools do not write (`ClassRef`,
    `CustomerRef`, `BillableStatus`, `MarkupInfo`...), less the amounts QuickBooks derives from its price
    (`RECOMPUTED`), and its stored account, tax code and item where the new line leaves them out. A stored line
    matched to none is removed, unless it holds such fields while a new line is added: that is refused, as it
    cannot be told from an edit (`line_match.refuse_unclear`). A document with lines the tools cannot show
    (discount, group, description-only or item-based expense lines) is refused (`invalid_argument`): replacing
    its lines would delete them."""
    hidden = sorted({line.get("DetailType") or "a line without detail" for line in stored
                     if not any(key in line for key in SHOWN) and line.get("DetailType") != "SubTotalLineDetail"})
    if hidden:
        raise DomainError("invalid_argument", f"{label} has lines the tools cannot show or write ({', '.join(hidden)}): a lines "
                          "patch replaces every line, so it would delete them. Change its lines in QuickBooks, or patch "
                          "only due_date and reference", details={"field": "lines", "line_kinds": hidden})
    shown = [line for line in stored if any(key in line for key in SHOWN)]
    current = [c for line in shown if (c := read_line(line, currency)) is not None]
    matches = match_lines(current, lines)
    refuse_unclear(current, lines, matches, [_holds(line) for line in shown], "QuickBooks")
    out = []
    for sent, match in zip(write_lines(kind, lines, currency), matches, strict=True):
        if match.index is None:
            out.append(sent)
            continue
        have = shown[match.index]
        if match.unchanged:
            out.append(have)
            continue
        key = sent["DetailType"]
        detail = {k: v for k, v in (have.get(key) or {}).items() if k not in RECOMPUTED}
        if (detail.get("ItemRef") or {}).get("value") != (sent[key].get("ItemRef") or {}).get("value"):
            detail.pop("ItemAccountRef", None)  # the income account of the item it no longer names
        out.append({**{k: v for k, v in have.items() if k not in SHOWN}, **sent, key: {**detail, **sent[key]}})
    return out


def _holds(line: dict[str, Any]) -> str:
    """The detail fields a stored line holds that the tools do not write ("" for none): its class, billable
    customer and status, markup..."""
    detail = line.get("SalesItemLineDetail") or line.get("AccountBasedExpenseLineDetail") or {}
    return ", ".join(k for k, v in detail.items() if k not in WRITTEN and v not in (None, "", "NotBillable"))
