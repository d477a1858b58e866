"""Double-entry rules, free of storage: pricing invoice lines, checking journal entries, and the
balanced postings each business event makes.

Accrual basis: an approved receivable invoice debits Accounts Receivable with its total and credits
each line's income account with its net and Sales Tax Payable with its tax; a bill does the mirror
(expense and Input Tax debited, Accounts Payable credited); a payment moves the amount between the
bank account and AR/AP; a void posts the exact reverse of the invoice's postings. Cash basis: a
payment recognises income/expense (per account) and tax in proportion to the invoice's accrual
postings, cumulatively: after each payment, what has been recognised is the allocation of the total
paid so far, so the payment that settles the invoice recognises exactly the rest and a paid invoice
shows the same per-account amounts on both bases; invoices post nothing until paid. Every batch is
checked to balance before it is stored.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from servers.accounting.model import Invoice, InvoiceKind, InvoiceLine, JournalLine, LineInput, Totals
from servers.accounting.money import ROUNDING, ZERO, allocate_cumulative, check_magnitude, exact_money, multiply, round_money
from servers.kit.errors import DomainError

BANK, RECEIVABLE, INPUT_TAX, PAYABLE, TAX_PAYABLE = "1000", "1100", "1200", "2000", "2100"
# Control accounts (Xero's "system accounts"): each always equals its open documents — the aged receivables or
# payables report — so only invoices or bills, their payments and voids move it, never a line of a journal or a bill.
CONTROL_ACCOUNTS = {RECEIVABLE: "invoices", PAYABLE: "bills"}


@dataclass(frozen=True)
class Posting:
    account_code: str
    debit: Decimal
    credit: Decimal
    memo: str = ""


def post(account_code: str, amount: Decimal, memo: str = "") -> Posting:
    """A posting from a signed amount: positive debits, negative credits (the other side a zero of the
    same scale: "0.00", not "0")."""
    zero = ZERO.quantize(amount) if amount.is_finite() else ZERO
    return Posting(account_code, amount if amount > 0 else zero, -amount if amount < 0 else zero, memo)


def check_balanced(postings: Sequence[Posting]) -> None:
    debits = sum((p.debit for p in postings), ZERO)
    credits = sum((p.credit for p in postings), ZERO)
    if debits != credits:  # a bug in a rule, never the caller's input: refuse to store it
        raise AssertionError(f"unbalanced postings: debits {debits} != credits {credits}")


def price_lines(lines: Sequence[LineInput], currency: str, rates: Mapping[str, Decimal] | None) -> Totals:
    """Net, tax and total per line, rounded per line; `rates=None` when the provider computes tax.
    Refuses a total (or, with `rates=None`, a net subtotal) of zero or below: every create, patch and dry run
    of an invoice or bill, on every backend, goes through here before anything is written or sent."""
    if not lines:
        raise DomainError("invalid_argument", "an invoice needs at least one line", details={"field": "lines"})
    priced = []
    for index, line in enumerate(lines):
        where = f"lines[{index}]"
        if line.quantity <= 0:
            raise DomainError("invalid_argument", f"{where}.quantity must be positive", details={"field": f"{where}.quantity"})
        net = round_money(check_magnitude(multiply(line.quantity, line.unit_price), where, "quantity x unit_price"), currency)
        tax = round_money(ZERO, currency)
        if rates is not None and line.tax_code is not None:
            if line.tax_code not in rates:
                raise DomainError("invalid_argument", f"{where}.tax_code {line.tax_code!r} is unknown; use one of {', '.join(sorted(rates))}",
                                  details={"field": f"{where}.tax_code"})
            tax = round_money(net * rates[line.tax_code], currency)
        priced.append(InvoiceLine(**line.model_dump(), net=net, tax=tax, total=net + tax))
    subtotal = sum((p.net for p in priced), ZERO)
    tax_total = sum((p.tax for p in priced), ZERO) if rates is not None else None
    total = subtotal + tax_total if tax_total is not None else None
    # With the provider computing tax (rates=None) the total is unknown here, but the net subtotal is: it must be
    # positive too, or the provider books a zero/negative invoice that the dry run (with rates) refused (outside
    # review writes28 #6). Tax rates are never negative, so a positive total needs a positive net subtotal.
    if (total if total is not None else subtotal) <= 0:
        why = ("discount lines (negative unit_price) cannot outweigh the others" if any(p.net < 0 for p in priced) else
               f"each line's net is quantity x unit_price rounded to {currency}'s minor unit")
        comes = total if total is not None else f"{subtotal} before tax"
        raise DomainError("invalid_argument", f"the invoice total must be positive, it comes to {comes}; {why}. "
                          "Nothing was created or changed; fix the lines and call again", details={"field": "lines"})
    check_magnitude(total if total is not None else subtotal, "lines", "the invoice total")
    return Totals(currency=currency, lines=priced, subtotal=subtotal, tax_total=tax_total, total=total, rounding=ROUNDING,
                  note=None if rates is not None else "tax is computed by the provider when the invoice is created")


def check_journal(lines: Sequence[JournalLine], currency: str) -> list[JournalLine]:
    """Journal lines at currency precision, each one-sided and positive, debits equal to credits."""
    if len(lines) < 2:
        raise DomainError("invalid_argument", "a journal entry needs at least two lines", details={"field": "lines"})
    normalized: list[JournalLine] = []
    for index, line in enumerate(lines):
        where = f"lines[{index}]"
        # Stored at the currency's scale ("5.0" JPY is 5, "10.000" USD is 10.00), as every amount is.
        line = line.model_copy(update={"debit": exact_money(line.debit, currency, f"{where}.debit"),
                                       "credit": exact_money(line.credit, currency, f"{where}.credit")})
        normalized.append(line)
        if line.debit < 0 or line.credit < 0:
            raise DomainError("invalid_argument", f"{where}: amounts are positive; put a negative amount on the other side",
                              details={"field": where})
        if (line.debit > 0) == (line.credit > 0):
            raise DomainError("invalid_argument", f"{where}: give a debit or a credit (exactly one, above zero)",
                              details={"field": where})
    debits = sum((line.debit for line in lines), ZERO)
    credits = sum((line.credit for line in lines), ZERO)
    if debits != credits:
        raise DomainError("invalid_argument", f"the journal entry does not balance: debits {debits} != credits {credits} "
                          f"(off by {abs(debits - credits)}); nothing was posted", details={"field": "lines"})
    return normalized


def invoice_postings(kind: InvoiceKind, lines: Sequence[InvoiceLine], memo: str) -> list[Posting]:
    """Accrual postings of an approved invoice (receivable) or bill (payable)."""
    sign = 1 if kind == "payable" else -1  # bills debit expenses; invoices credit income
    by_account: dict[str, Decimal] = {}
    for line in lines:
        if line.account_code is None:
            raise DomainError("invalid_argument", "every line needs an account_code", details={"field": "lines"})
        by_account[line.account_code] = by_account.get(line.account_code, ZERO) + line.net
    tax = sum((line.tax for line in lines), ZERO)
    total = sum((line.total for line in lines), ZERO)
    postings = [post(code, sign * amount, memo) for code, amount in sorted(by_account.items()) if amount]
    if tax:
        postings.append(post(INPUT_TAX if kind == "payable" else TAX_PAYABLE, sign * tax, memo))
    postings.append(post(PAYABLE if kind == "payable" else RECEIVABLE, -sign * total, memo))
    check_balanced(postings)
    return postings


def payment_postings(kind: InvoiceKind, amount: Decimal, bank: str, memo: str) -> list[Posting]:
    control = PAYABLE if kind == "payable" else RECEIVABLE
    sign = -1 if kind == "payable" else 1
    postings = [post(bank, sign * amount, memo), post(control, -sign * amount, memo)]
    check_balanced(postings)
    return postings


def cash_targets(kind: InvoiceKind, lines: Sequence[InvoiceLine]) -> list[tuple[str, Decimal]]:
    """What a fully paid invoice recognises on the cash basis: its accrual amounts per income/expense
    account (sorted by code) and its tax, as (account, amount) pairs that sum to the total."""
    by_account: dict[str, Decimal] = {}
    for line in lines:
        by_account[line.account_code or ""] = by_account.get(line.account_code or "", ZERO) + line.net
    tax = sum((line.tax for line in lines), ZERO)
    return sorted(by_account.items()) + [(INPUT_TAX if kind == "payable" else TAX_PAYABLE, tax)]


def cash_postings(kind: InvoiceKind, lines: Sequence[InvoiceLine], paid_before: Decimal, amount: Decimal, bank: str, currency: str,
                  memo: str) -> list[Posting]:
    """Cash basis: what a payment of `amount`, after `paid_before` was paid on the invoice, recognises:
    the allocation of everything paid so far minus the allocation of what was paid before it."""
    targets = cash_targets(kind, lines)
    shares = allocate_cumulative(paid_before, amount, [weight for _, weight in targets], currency)
    sign = 1 if kind == "payable" else -1
    postings = [post(code, sign * share, memo) for (code, _), share in zip(targets, shares, strict=True) if share]
    postings.append(post(bank, -sign * amount, memo))
    check_balanced(postings)
    return postings


def reverse(postings: Sequence[Posting], memo: str) -> list[Posting]:
    return [Posting(p.account_code, p.credit, p.debit, memo) for p in postings]


def check_payable(invoice: Invoice, amount: Decimal, on: _dt.date | None = None, currency: str | None = None,
                  *, replay: bool = False) -> Decimal:
    """A payment must be in the invoice's currency and at its precision, above zero, on an approved
    invoice that is not yet paid, dated on or after the invoice's issue date, and at most its balance.
    Checked in that order, before any backend is asked to write (every provider shares it); returns
    the amount at the currency's scale. `replay`: a keyed retry whose first attempt may have paid it
    already — "paid" and "more than the balance" pass while at least `amount` was paid on the invoice,
    so the provider can replay that payment (or the backend find it) instead (re-check 17w #4)."""
    label = invoice.number or invoice.id
    if currency is not None and currency.upper() != invoice.currency.upper():
        raise DomainError("invalid_argument", f"currency: invoice {label} is in {invoice.currency}, the payment in {currency.upper()}; "
                          f"record it in {invoice.currency} (payments are not converted)",
                          details={"field": "currency", "invoice_currency": invoice.currency})
    amount = exact_money(amount, invoice.currency, "amount")  # at the currency's scale: "10.000" USD is 10.00
    if amount <= 0:
        raise DomainError("invalid_argument", f"amount: a payment must be above zero, got {amount}; a refund or a correction "
                          "is a journal entry (create_journal_entry)", details={"field": "amount"})
    if invoice.status == "draft":
        raise DomainError("invalid_argument", f"invoice {label} is a draft: approve it (update_invoice action=approve) before "
                          "recording payments", details={"field": "invoice_id", "status": invoice.status})
    maybe_ours = replay and invoice.total - invoice.balance >= amount and invoice.status != "voided"
    if invoice.status in ("voided", "paid") and not maybe_ours:
        raise DomainError("invalid_argument", f"invoice {label} is {invoice.status} (balance {invoice.balance} {invoice.currency}); "
                          "it takes no more payments", details={"field": "invoice_id", "status": invoice.status})
    if on is not None and on < invoice.issue_date:
        raise DomainError("invalid_argument", f"date: the payment date {on} is before invoice {label} was issued "
                          f"({invoice.issue_date}); use a date on or after {invoice.issue_date}",
                          details={"field": "date", "issue_date": invoice.issue_date.isoformat()})
    if amount > invoice.balance and not maybe_ours:
        raise DomainError("invalid_argument", f"amount: {amount} {invoice.currency} is more than the balance due on "
                          f"{label} ({invoice.balance} {invoice.currency}); record at most the balance",
                          details={"field": "amount", "balance": str(invoice.balance)})
    return amount


def lines_hold(current: Sequence[InvoiceLine], wanted: Sequence[LineInput], currency: str,
               discounted: Sequence[bool] = ()) -> bool:
    """Whether an invoice's `current` lines already are the `wanted` ones (a retried patch whose first call
    landed): same count and order, description, quantity, unit price and net (not for a line the provider
    discounts, `discounted[i]`: its net is below quantity × price, and a patch keeps its discount); account, tax
    code and item where `wanted` names them (left out, the provider chose its default). Used by the providers,
    which price tax themselves; the embedded ledger compares its own priced lines (`store._holds`)."""
    if len(current) != len(wanted):
        return False
    for index, (have, want) in enumerate(zip(current, wanted, strict=True)):
        if (have.description, have.quantity, have.unit_price) != (want.description, want.quantity, want.unit_price):
            return False
        kept_discount = index < len(discounted) and discounted[index]
        if not kept_discount and have.net != round_money(multiply(want.quantity, want.unit_price), currency):
            return False
        if any(getattr(want, f) is not None and getattr(want, f) != getattr(have, f) for f in ("account_code", "tax_code", "item")):
            return False
    return True
