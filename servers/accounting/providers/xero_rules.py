"""Xero's error bodies, and what a Xero invoice allows: its lines on drafts only, a write only on the version read
(`providers.xero`)."""

from __future__ import annotations

from typing import Any

from servers.accounting.model import Invoice
from servers.kit.errors import DomainError
from servers.kit.http import common_error_text


def error_text(body: dict[str, Any]) -> list[str]:
    """Xero's error shapes: `{"Message", "Detail"}`, validation errors under
    `Elements[].ValidationErrors[].Message`, and the common ones."""
    messages = [body[key] for key in ("Message", "Detail") if isinstance(body.get(key), str)]
    for element in body.get("Elements") or []:
        if isinstance(element, dict):
            messages += [e.get("Message", "") for e in element.get("ValidationErrors", []) if isinstance(e, dict)]
    return [*messages, *common_error_text(body)]


def refuse_issued_lines(invoice: Invoice) -> None:
    """Lines change on drafts only (DRAFT, SUBMITTED), as in the embedded ledger: Xero would rewrite an
    approved invoice's lines (outside review money19), changing what was issued to the customer and posted."""
    if invoice.status == "draft":
        return
    label = invoice.number or invoice.id
    if invoice.status == "voided":
        raise DomainError("invalid_argument", f"invoice {label} is voided and cannot change")
    raise DomainError("invalid_argument", f"invoice {label} is approved ({invoice.status}): its lines are in the ledger and "
                      "were issued. Void it and issue a new one, or issue a credit note for the difference (one with "
                      "payments cannot be voided); only a draft's lines can be patched", details={"field": "lines"})


def unchanged_since(current: Invoice, version: str | None) -> Invoice:
    """`current`, or `conflict` if it changed since `version` was read."""
    if version is not None and version != current.version:
        raise DomainError("conflict", f"invoice {current.id} changed since you read it (updated {current.version}); get it again "
                          "and reapply your change", details={"current_version": current.version})
    return current
