"""Sample data for `mcp-hub server accounting --demo`: two customers, a vendor, an owner's
investment, two invoices (one part paid) and a bill — balanced, dated relative to today."""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal

from servers.accounting.model import ContactInput, JournalLine, LineInput, NewInvoice
from servers.accounting.store import EmbeddedAccounting


async def seed(books: EmbeddedAccounting) -> None:
    """The sample company, into books that hold no contact yet (seeding twice doubled every invoice)."""
    if (await books.contacts(None, None, 1, None)).contacts:
        return
    acme = await books.upsert_contact(ContactInput(name="Acme Corp", email="ap@acme.example", kind="customer"))
    globex = await books.upsert_contact(ContactInput(name="Globex", email="billing@globex.example", kind="customer"))
    cloud = await books.upsert_contact(ContactInput(name="CloudHost Ltd", email="invoices@cloudhost.example", kind="vendor"))
    today = _dt.date.today()
    await books.journal(today - _dt.timedelta(days=90), "Owner's investment", [
        JournalLine(account_code="1000", debit=Decimal("25000.00")), JournalLine(account_code="3000", credit=Decimal("25000.00"))], None)
    first = await books.create_invoice(NewInvoice(
        kind="receivable", contact_id=acme.id, issue_date=today - _dt.timedelta(days=60), due_date=today - _dt.timedelta(days=30),
        currency=books.currency, lines=[LineInput(description="Consulting", quantity=Decimal(10), unit_price=Decimal("150.00"),
                                                 account_code="4100", tax_code="STD20")]), None)
    await books.pay(first.id, Decimal("1000.00"), today - _dt.timedelta(days=20), None, "wire", None)
    await books.create_invoice(NewInvoice(
        kind="receivable", contact_id=globex.id, issue_date=today - _dt.timedelta(days=10), due_date=today + _dt.timedelta(days=20),
        currency=books.currency, lines=[LineInput(description="Widgets", quantity=Decimal(40), unit_price=Decimal("12.50"),
                                                 account_code="4000", tax_code="STD20")]), None)
    await books.create_invoice(NewInvoice(
        kind="payable", contact_id=cloud.id, issue_date=today - _dt.timedelta(days=15), due_date=today + _dt.timedelta(days=15),
        currency=books.currency, lines=[LineInput(description="Hosting", unit_price=Decimal("420.00"), account_code="6200",
                                                 tax_code="STD20")]), None)

