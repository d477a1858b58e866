"""QuickBooks Online entities as the accounting domain's models, and back (`providers.quickbooks`):
invoices and bills, customers and vendors, the lines a create or patch sends, error bodies, and what an
invoice allows (its lines once paid or sent, its SyncToken). QuickBooks has no
void flag: a void is read from the amounts (`is_voided`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from servers.accounting import ledger
from servers.accounting.model import Contact, Invoice, InvoiceLine, LineInput
from servers.accounting.money import ZERO, read_money
from servers.accounting.money import read_amount as amount
from servers.kit.errors import DomainError
from servers.kit.http import common_error_text


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
    lines: list[InvoiceLine] = []
    for line in raw.get("Line", []):
        detail = line.get("SalesItemLineDetail") or line.get("AccountBasedExpenseLineDetail")
        if detail is None:
            continue  # subtotal and discount summary lines
        net = read_money(line.get("Amount"), currency)
        lines.append(InvoiceLine(description=line.get("Description", ""), quantity=amount(detail.get("Qty")) or Decimal(1),
                                 unit_price=amount(detail.get("UnitPrice")) if detail.get("UnitPrice") is not None else net,
                                 account_code=(detail.get("AccountRef") or {}).get("value"),
                                 item=(detail.get("ItemRef") or {}).get("value"), tax_code=(detail.get("TaxCodeRef") or {}).get("value"),
                                 net=net, tax=ZERO, total=net))
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
