"""Xero (Accounting API 2.0) records as the accounting domain's models, and back (`providers.xero`): dates
(`DateString` or `/Date(ms)/`), accounts by class, contacts (kind from `IsCustomer`/`IsSupplier`), invoices
and bills (`ACCREC`/`ACCPAY`, statuses mapped both ways), and the line items a create or patch sends."""

from __future__ import annotations

import datetime as _dt
import re
from decimal import Decimal
from typing import Any

from servers.accounting import ledger
from servers.accounting.line_match import match_lines, refuse_unclear
from servers.accounting.model import Account, AccountType, Contact, ContactKind, Invoice, InvoiceLine, InvoiceStatus, LineInput
from servers.accounting.money import ZERO, read_money, round_money
from servers.accounting.money import read_amount as amount

CLASS: dict[str, AccountType] = {"ASSET": "asset", "LIABILITY": "liability", "EQUITY": "equity", "REVENUE": "income", "EXPENSE": "expense"}
STATUSES: dict[str, list[str]] = {"draft": ["DRAFT", "SUBMITTED"], "open": ["AUTHORISED"], "partially_paid": ["AUTHORISED"],
                                  "paid": ["PAID"], "voided": ["VOIDED", "DELETED"]}
_MS_DATE = re.compile(r"/Date\((-?\d+)")
KEPT = ("LineItemID", "Tracking", "DiscountRate", "DiscountAmount")
"""What a changed line keeps of its stored line in a lines patch (`patch_lines`): Xero's line id, tracking
categories and discount, none of which the tools show."""


def read_date(raw: dict[str, Any], key: str) -> _dt.date | None:
    """The date `raw` holds under `key`: its `<key>String`, else a `/Date(ms)/` or ISO value (None if absent)."""
    if text := raw.get(f"{key}String"):
        return _dt.date.fromisoformat(text[:10])
    value = raw.get(key)
    if isinstance(value, str) and (match := _MS_DATE.match(value)):
        return _dt.datetime.fromtimestamp(int(match.group(1)) / 1000, _dt.UTC).date()
    return _dt.date.fromisoformat(value[:10]) if isinstance(value, str) and value else None


def read_account(raw: dict[str, Any]) -> Account:
    """A Xero account as ours (its code, else its id; type from its class)."""
    return Account(code=raw.get("Code") or raw["AccountID"], name=raw.get("Name", ""), type=CLASS.get(raw.get("Class", ""), "asset"),
                   subtype=raw.get("Type"), currency=raw.get("CurrencyCode"), active=raw.get("Status", "ACTIVE") == "ACTIVE")


def read_invoice(raw: dict[str, Any], home_currency: str) -> Invoice:
    """A Xero invoice (`ACCREC`) or bill (`ACCPAY`) as ours; its version is `UpdatedDateUTC`."""
    currency = raw.get("CurrencyCode") or home_currency

    lines = [read_line(item, currency) for item in raw.get("LineItems", [])]
    paid = read_money(raw.get("AmountPaid"), currency) + read_money(raw.get("AmountCredited"), currency)
    native = raw.get("Status", "DRAFT")
    status: InvoiceStatus = next((ours for ours, theirs in STATUSES.items() if native in theirs), "draft")
    if native == "AUTHORISED" and paid > 0:
        status = "partially_paid"
    contact = raw.get("Contact") or {}
    return Invoice(id=raw["InvoiceID"], number=raw.get("InvoiceNumber"), kind="payable" if raw.get("Type") == "ACCPAY" else "receivable",
                   contact_id=contact.get("ContactID", ""), contact_name=contact.get("Name"), issue_date=read_date(raw, "Date"),
                   due_date=read_date(raw, "DueDate"), currency=currency, status=status, lines=lines, subtotal=read_money(raw.get("SubTotal"), currency),
                   tax_total=read_money(raw.get("TotalTax"), currency), total=read_money(raw.get("Total"), currency), amount_paid=paid,
                   balance=read_money(raw.get("AmountDue"), currency) if status not in ("draft", "voided") else round_money(ZERO, currency),
                   reference=raw.get("Reference"), version=raw.get("UpdatedDateUTC", ""), provider="xero")


def read_line(item: dict[str, Any], currency: str) -> InvoiceLine:
    """A Xero line item as the tools show it."""
    net, tax = read_money(item.get("LineAmount"), currency), read_money(item.get("TaxAmount"), currency)
    return InvoiceLine(description=item.get("Description", ""), quantity=amount(item.get("Quantity")) or Decimal(1),
                       unit_price=amount(item.get("UnitAmount")) or ZERO, account_code=item.get("AccountCode"),
                       tax_code=item.get("TaxType"), item=item.get("ItemCode"), net=net, tax=tax, total=net + tax)


def read_contact(raw: dict[str, Any]) -> Contact:
    """A Xero contact as ours; its version is `UpdatedDateUTC`."""
    # Xero sets IsCustomer / IsSupplier itself, from a contact's first invoice or bill (neither can be
    # written): a contact with neither is usable both ways, so it reads "both" — a new vendor read
    # "customer" before
    customer, supplier = bool(raw.get("IsCustomer")), bool(raw.get("IsSupplier"))
    kind: ContactKind = "vendor" if supplier and not customer else "customer" if customer and not supplier else "both"
    return Contact(id=raw["ContactID"], name=raw.get("Name", ""), email=raw.get("EmailAddress") or None, kind=kind,
                   currency=raw.get("DefaultCurrency"), tax_number=raw.get("TaxNumber"), version=raw.get("UpdatedDateUTC"))


def write_lines(lines: list[LineInput], currency: str) -> list[dict[str, Any]]:
    """`lines` as Xero `LineItems` (quantities checked positive first, at `currency`'s scale)."""
    ledger.price_lines(lines, currency, None)  # positive quantities
    out = []
    for line in lines:
        item: dict[str, Any] = {"Description": line.description, "Quantity": line.quantity, "UnitAmount": line.unit_price}
        item.update({k: v for k, v in (("AccountCode", line.account_code), ("TaxType", line.tax_code), ("ItemCode", line.item)) if v})
        out.append(item)
    return out


def patch_lines(stored: list[dict[str, Any]], lines: list[LineInput], currency: str) -> list[dict[str, Any]]:
    """`lines` as the `LineItems` of a patch of an invoice whose line items are `stored`.

    Decision (outside review r38b #5): keep, never drop. Xero replaces an invoice's line items with the ones
    sent: a line without its `LineItemID` is a new line, so its tracking categories and discount were lost.
    Each new line is matched to a stored one (`line_match.match_lines`). One shown unchanged goes back as Xero
    holds it (id, tracking, discount, account, tax amount); a changed one goes as written plus its stored
    line's `KEPT` fields (and its account, tax type and item where the new line leaves them out), and Xero
    recomputes its amounts. A line matched to none is new; a stored line no new line stands for is removed, as
    the patch asks, unless it holds tracking or a discount while a new line is added: that is refused, as it
    cannot be told from an edit (`line_match.refuse_unclear`)."""
    fresh, shown = write_lines(lines, currency), [read_line(item, currency) for item in stored]
    matches = match_lines(shown, lines)
    refuse_unclear(shown, lines, matches, [_holds(item) for item in stored], "Xero")
    out = []
    for sent, match in zip(fresh, matches, strict=True):
        if match.index is None:
            out.append(sent)
            continue
        have = stored[match.index]
        if match.unchanged:
            out.append({k: v for k, v in have.items() if k != "ValidationErrors"})
        else:
            codes = {k: have[k] for k in ("AccountCode", "TaxType", "ItemCode") if k not in sent and have.get(k)}
            out.append({**sent, **codes, **{k: have[k] for k in KEPT if have.get(k) is not None}})
    return out


def discounted(item: dict[str, Any]) -> bool:
    """Whether Xero discounts a stored line item (its net is then below quantity × unit price)."""
    return bool(item.get("DiscountRate") or item.get("DiscountAmount"))


def _holds(item: dict[str, Any]) -> str:
    """What a stored line item holds that the tools do not show and a patch could lose ("" for nothing)."""
    tracking = ", ".join(f"{t.get('Name')}: {t.get('Option')}" for t in item.get("Tracking") or [])
    held = [f"tracking ({tracking})"] if tracking else []
    if discounted(item):
        held.append("a discount")
    return " and ".join(held)
