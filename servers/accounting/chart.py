"""The embedded ledger's chart of accounts, and which of its accounts money can move through.

Decided for issue #16 (`postable_account`, `payment_account`): an account is a *bank or cash*
account when its subtype is `bank` or `cash` (the chart marks 1000 Bank; QuickBooks calls the same
thing AccountType Bank). A payment is money
arriving in or leaving such an account, so `record_payment` takes only those; any other account
(1100 Accounts Receivable, an expense, …) is `invalid_argument` naming the accepted codes. A journal
entry may move amounts between any accounts but the two control accounts, 1100 Accounts Receivable
and 2000 Accounts Payable (`ledger.CONTROL_ACCOUNTS`), which only invoices, bills, their payments and
voids move, so they always equal the aged receivables and payables reports (Xero's system accounts).
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal

from servers.accounting.ledger import CONTROL_ACCOUNTS, INPUT_TAX, TAX_PAYABLE
from servers.kit.errors import DomainError

TAX_RATES = {"NONE": Decimal("0"), "STD20": Decimal("0.20"), "RED5": Decimal("0.05")}
DEFAULT_LINE_ACCOUNT = {"receivable": "4000", "payable": "6000"}
MONEY_SUBTYPES = ("bank", "cash")
CHART: list[tuple[str, str, str, str | None]] = [
    ("1000", "Bank", "asset", "bank"), ("1100", "Accounts Receivable", "asset", None),
    ("1200", "Input Tax Recoverable", "asset", None), ("1500", "Equipment", "asset", None),
    ("2000", "Accounts Payable", "liability", None), ("2100", "Sales Tax Payable", "liability", None),
    ("2500", "Loans", "liability", None), ("3000", "Owner's Equity", "equity", None),
    ("3900", "Retained Earnings", "equity", None), ("4000", "Sales", "income", None), ("4100", "Services", "income", None),
    ("5000", "Cost of Goods Sold", "expense", None), ("6000", "Operating Expenses", "expense", None),
    ("6100", "Rent", "expense", None), ("6200", "Software", "expense", None),
]
# Migration: the subtype column, with 1000 marked on a ledger seeded before it existed.
SUBTYPE_MIGRATION = "ALTER TABLE accounts ADD COLUMN subtype TEXT; UPDATE accounts SET subtype = 'bank' WHERE code = '1000'"


def seed(db: sqlite3.Connection) -> None:
    db.executemany("INSERT OR IGNORE INTO accounts (code, name, type, subtype) VALUES (?, ?, ?, ?)", CHART)


def payment_account(db: sqlite3.Connection, code: str) -> str:
    """`code` if it is an active bank or cash account; else `invalid_argument` listing those that are."""
    accepted = [(r["code"], r["name"]) for r in db.execute(
        f"SELECT code, name FROM accounts WHERE active = 1 AND subtype IN ({','.join('?' * len(MONEY_SUBTYPES))}) ORDER BY code",
        MONEY_SUBTYPES)]
    if code in {c for c, _ in accepted}:
        return code
    row = db.execute("SELECT name, type FROM accounts WHERE code = ?", (code,)).fetchone()
    what = f"account {code!r} does not exist" if row is None else f"account {code} ({row['name']}, {row['type']}) is not a bank or cash account"
    listed = ", ".join(f"{c} {n}" for c, n in accepted) or "none"
    raise DomainError("invalid_argument", f"account_code: {what}; a payment goes into or out of a bank or cash account: {listed}",
                      details={"field": "account_code", "accepted": [c for c, _ in accepted]})


def postable_account(db: sqlite3.Connection, code: str | None, field: str, types: tuple[str, ...] | None = None,
                     line: bool = False) -> str:
    """`code` if it exists, is of `types` and may be posted to by hand; `line`: an invoice or bill line's, which is
    neither money (record_payment moves it) nor tax (the line's tax_code does)."""
    if not code:
        raise DomainError("invalid_argument", f"{field}: an account code is required; list_accounts shows the chart",
                          details={"field": field})
    row = db.execute("SELECT type, subtype, name FROM accounts WHERE code = ?", (code,)).fetchone()
    if row is None:
        raise DomainError("invalid_argument", f"{field}: account {code!r} does not exist; list_accounts shows the chart",
                          details={"field": field})
    if code in CONTROL_ACCOUNTS:
        documents = CONTROL_ACCOUNTS[code]
        raise DomainError(
            "invalid_argument",
            f"{field}: account {code} is a control account: it always equals the open {documents} (the aged "
            f"{'receivables' if documents == 'invoices' else 'payables'} report), so only {documents}, their payments "
            f"and voids move it. Change the amount owed with update_invoice (void) or record_payment; post other "
            "adjustments to another account (list_accounts).",
            details={"field": field, "control_account": code})
    if line and (row["subtype"] in MONEY_SUBTYPES or code in (INPUT_TAX, TAX_PAYABLE)):
        # outside review: a bill line on 1000 Bank made 500.00 of cash that never arrived
        what = "a bank or cash account: money moves with record_payment" if row["subtype"] in MONEY_SUBTYPES else \
            "a tax account: a line's tax follows its tax_code"
        raise DomainError("invalid_argument", f"{field}: account {code} ({row['name']}) is {what}. Code the line to "
                          "an income, expense or other asset account (list_accounts).", details={"field": field})
    if types and row["type"] not in types:
        raise DomainError("invalid_argument", f"{field}: account {code} is {row['type']}, expected {' or '.join(types)}",
                          details={"field": field})
    return code  # type: ignore[return-value]
