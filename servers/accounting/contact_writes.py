"""Creating and updating contacts in the embedded ledger (`servers.accounting.store`), inside the caller's
transaction: a create matching an existing contact exactly returns it, an update changes only the fields
the call gave, and a contact keeps the kind its open documents need."""

from __future__ import annotations

import sqlite3
import uuid

from servers.accounting import paging
from servers.accounting.ledger_writes import check_version
from servers.accounting.model import Contact, ContactInput
from servers.kit.errors import DomainError, not_found
from servers.kit.webhooks.feed import emit_change


def upsert_contact(db: sqlite3.Connection, contact: ContactInput) -> Contact:
    """Create `contact`, or update the one with its id (see `EmbeddedAccounting.upsert_contact`)."""
    given = contact.model_fields_set
    if contact.id is None:
        email, tax_number = contact.email or None, contact.tax_number or None
        same = db.execute(
            "SELECT id FROM contacts WHERE lower(trim(name)) = lower(trim(?)) AND kind = ? AND email IS ? AND tax_number IS ? "
            "ORDER BY rowid LIMIT 1", (contact.name, contact.kind, email, tax_number)).fetchone()
        if same is not None:
            return paging.contact_from_row(db.execute("SELECT * FROM contacts WHERE id = ?", (same["id"],)).fetchone())
        new_id = "C-" + uuid.uuid4().hex[:8]
        db.execute("INSERT INTO contacts (id, name, email, kind, tax_number) VALUES (?, ?, ?, ?, ?)",
                   (new_id, contact.name, email, contact.kind, tax_number))
    else:
        row = db.execute("SELECT * FROM contacts WHERE id = ?", (contact.id,)).fetchone()
        if row is None:
            raise not_found("contact", contact.id)
        email = (contact.email or None) if "email" in given else row["email"]
        kind = contact.kind if "kind" in given else row["kind"]
        tax_number = (contact.tax_number or None) if "tax_number" in given else row["tax_number"]
        if (contact.name, email, kind, tax_number) == (row["name"], row["email"], row["kind"], row["tax_number"]):
            # nothing to change (a retry whose answer was lost, its version now stale): the contact as it is, its version
            # and the change feed unmoved, so another writer's version stays good (outside review user34 #7)
            return paging.contact_from_row(row)
        check_version(str(row["version"]), contact.version, f"contact {contact.id}")
        for documents, needs in (("receivable", "customer"), ("payable", "vendor")):
            # a kind the contact's documents need stays (re-check: a customer made a vendor while its
            # invoice was open sat in aged receivables as a vendor)
            if kind not in (needs, "both") and db.execute(
                    "SELECT 1 FROM invoices WHERE contact_id = ? AND kind = ? AND status != 'voided' LIMIT 1",
                    (contact.id, documents)).fetchone():
                raise DomainError("invalid_argument", f"kind: the contact has {'sales invoices' if needs == 'customer' else 'bills'} "
                                  f"that are not voided, so it stays a {needs}; use 'both'",
                                  details={"field": "kind"})
        db.execute("UPDATE contacts SET name=?, email=?, kind=?, tax_number=?, version=version+1 WHERE id=?",
                   (contact.name, email, kind, tax_number, contact.id))
        new_id = contact.id
    emit_change(db, "contact", new_id, "updated" if contact.id else "created")
    return paging.contact_from_row(db.execute("SELECT * FROM contacts WHERE id = ?", (new_id,)).fetchone())
