"""Xero's error bodies, and what a Xero invoice allows: its lines on drafts only, a write only on the version read
(`providers.xero`)."""

from __future__ import annotations

import datetime as _dt
import re
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
        raise DomainError("conflict", f"invoice {current.number or current.id} changed since you read it (updated "
                          f"{shown_version(current.version)}, you read {shown_version(version)}); get it again and reapply "
                          "your change", details={"current_version": current.version})
    return current


def approved_since(current: Invoice, version: str | None) -> Invoice:
    """An approve of an invoice Xero already has approved (outside review w28b #5): answered when the caller's
    `version` is current or absent (or, in `Xero.approve`, when this server made the approval from that version
    and nothing changed since). Xero's version is the time of the last change, which cannot tell a retry whose
    answer was lost in transit from a draft someone else changed and approved: a stale version is then a
    `conflict` that shows what is now approved, so the caller checks it rather than take it unseen."""
    if version is None or version == current.version:
        return current
    raise DomainError("conflict", f"invoice {current.number or current.id} was approved (now {current.status}, total "
                      f"{current.total} {current.currency}, updated {shown_version(current.version)}) after the version you "
                      f"read ({shown_version(version)}); nothing was sent. Get it again: if it is what you meant to approve "
                      "(your earlier approve may have landed), there is nothing more to do; if not, void it",
                      details={"current_version": current.version, "status": current.status})


def shown_version(version: str) -> str:
    """Xero's `/Date(1774000005000+0000)/` as an ISO time for people; other text as it is."""
    found = re.fullmatch(r"/Date\((-?\d+)([+-]\d{4})?\)/", version)
    if not found:
        return version
    return _dt.datetime.fromtimestamp(int(found.group(1)) / 1000, _dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
