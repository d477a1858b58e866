"""The privacy policy for sensitive HR data, decided before any provider call.

Two kinds of data are sensitive:
- employee fields (date of birth, national id, compensation, bank, home address, personal contact);
- the reason for leave — a time-off request's type and note ("sick", "chemotherapy appointment")
  are health data (GDPR art. 9 / LGPD special category), named `leave_reason` in the policy.

Each needs three things at once: the operator's allow-list `HRIS_SENSITIVE_ALLOW` (a comma list,
empty by default) names it; the caller holds scope `hris:sensitive` (granted by itself, `hris:*` or
`*` — not implied by `hris:read`/`write`/`admin`); and, for employee fields, the caller asks for
the field by name in `fields`. A caller that asks for a field it may not see gets `forbidden`
saying what is missing; a name that is no field at all is `invalid_argument` listing the known
ones. Leave records are never refused: without both conditions they show
that someone is out (who, when, hours, status) with `type` and `note` withheld and
`reason_hidden: true`. The local operator of a standalone server (no hub) holds every scope, so
for them the allow-list alone decides.

A figure derived from leave records gives the reason away as surely as the type itself: "sick:
16 h booked" next to a 16-hour absence shown without its type (outside review 8). So the hours
per type that move with bookings (booked, taken, pending, available: in `get_time_off_balances`,
in `request_time_off`'s balance before/after and in its over-balance refusal) follow the leave
reason's rule, for every type: hiding only "sensitive" types would still tell, by elimination, that
an absence missing from the vacation figures is something else. Those callers see each type's
entitlement and the hours of all types added up (who is out and for how long is not hidden).
A refusal is such a figure too (re-check 8: "not enough sick left" only when sick leave is booked),
so their requests are not checked against the balance — booked as pending whatever it is, the dry
run answering alike — and approving one that would pass the entitlement is refused instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from servers.hris.model import SENSITIVE_FIELDS, Absence, Balance, Balances, Employee, TimeOffPreview, TimeOffRequest
from servers.kit.caller import Caller
from servers.kit.errors import DomainError

POLICY_VARIABLE = "HRIS_SENSITIVE_ALLOW"
SENSITIVE_SCOPE = "hris:sensitive"
LEAVE_REASON = "leave_reason"
POLICY_NAMES = (*SENSITIVE_FIELDS, LEAVE_REASON)
# Fields every employee record carries anyway; naming them in `fields` is accepted and changes nothing.
STANDARD_FIELDS = tuple(f for f in Employee.model_fields if f not in ("sensitive", "raw"))


def check_field_names(fields: list[str] | None) -> None:
    """`invalid_argument` when `fields` names a field that does not exist (decided for issue #16:
    a typo must not pass silently as "no such data"). The message lists the standard fields and
    the sensitive ones with the scope and allow-list they need."""
    unknown = [f for f in dict.fromkeys(fields or []) if f not in SENSITIVE_FIELDS and f not in STANDARD_FIELDS]
    if unknown:
        shown = ", ".join(repr(f[:60]) for f in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise DomainError(
            "invalid_argument",
            f"fields: unknown field {shown}. Sensitive fields (need scope {SENSITIVE_SCOPE} and {POLICY_VARIABLE}): "
            f"{', '.join(SENSITIVE_FIELDS)}. Standard fields (always returned): {', '.join(STANDARD_FIELDS)}",
            details={"field": "fields", "unknown": [f[:60] for f in unknown[:20]],
                     "sensitive_fields": list(SENSITIVE_FIELDS), "sensitive_scope": SENSITIVE_SCOPE,
                     "standard_fields": list(STANDARD_FIELDS)},
        )


@dataclass(frozen=True)
class PrivacyPolicy:
    allowed: frozenset[str]

    @classmethod
    def from_env(cls) -> PrivacyPolicy:
        raw = os.environ.get(POLICY_VARIABLE, "")
        allowed = frozenset(f.strip() for f in raw.split(",") if f.strip())
        unknown = allowed - set(POLICY_NAMES)
        if unknown:
            raise ValueError(f"{POLICY_VARIABLE} names unknown fields {sorted(unknown)}; known: {', '.join(POLICY_NAMES)}")
        return cls(allowed)

    def sensitive_requested(self, fields: list[str] | None, caller: Caller) -> list[str]:
        """The sensitive fields a request asks for; `forbidden` if the caller lacks `hris:sensitive`
        or any field is outside the allow-list; `invalid_argument` for a field that does not exist."""
        check_field_names(fields)
        requested = [f for f in fields or [] if f in SENSITIVE_FIELDS]
        if requested and not caller.may(SENSITIVE_SCOPE):
            raise DomainError(
                "forbidden",
                f"{', '.join(requested)} need scope {SENSITIVE_SCOPE}, which this caller does not hold; "
                f"leave them out of fields, or ask an administrator for a key with {SENSITIVE_SCOPE}",
                details={"required_scope": SENSITIVE_SCOPE, "refused": requested},
            )
        refused = [f for f in requested if f not in self.allowed]
        if refused:
            raise DomainError(
                "forbidden",
                f"the HRIS privacy policy does not allow {', '.join(refused)}; an administrator can allow fields "
                f"with {POLICY_VARIABLE} (currently: {', '.join(sorted(self.allowed)) or 'none'})",
                details={"policy": POLICY_VARIABLE, "refused": refused},
            )
        return requested

    def shows_leave_reason(self, caller: Caller) -> bool:
        """Whether `caller` may see why someone is out (leave type and note)."""
        return LEAVE_REASON in self.allowed and caller.may(SENSITIVE_SCOPE)

    def absences(self, absences: list[Absence], caller: Caller) -> list[Absence]:
        """`absences` as `caller` may see them: time off without its type unless the reason is shown."""
        if self.shows_leave_reason(caller):
            return absences
        return [a.model_copy(update={"type": None, "reason_hidden": True}) if a.kind == "time_off" else a for a in absences]

    def requests(self, requests: list[TimeOffRequest], caller: Caller) -> list[TimeOffRequest]:
        """`requests` as `caller` may see them: without type and note unless the reason is shown."""
        if self.shows_leave_reason(caller):
            return requests
        return [r.model_copy(update={"type": None, "note": None, "reason_hidden": True}) for r in requests]

    def balances(self, balances: Balances, caller: Caller) -> Balances:
        """`balances` as `caller` may see them: per type only the entitlement, plus the total of all
        types, unless the reason is shown."""
        if self.shows_leave_reason(caller):
            return balances
        rows = balances.balances
        entitlements = [b.entitlement_hours for b in rows]
        total = Balance(
            type="all", entitlement_hours=None if None in entitlements else sum(e or 0.0 for e in entitlements),
            booked_hours=sum(b.booked_hours or 0.0 for b in rows), taken_hours=sum(b.taken_hours or 0.0 for b in rows),
            pending_hours=sum(b.pending_hours or 0.0 for b in rows), available_hours=sum(b.available_hours or 0.0 for b in rows))
        hidden = [Balance(type=b.type, entitlement_hours=b.entitlement_hours, booked_hours=None, taken_hours=None,
                          pending_hours=None, available_hours=None) for b in rows]
        return balances.model_copy(update={"balances": hidden, "total": total, "reason_hidden": True})

    def preview(self, preview: TimeOffPreview, caller: Caller) -> TimeOffPreview:
        """`preview` without the balance before and after unless `caller` may see leave reasons (the type
        and note the caller just sent are theirs and stay)."""
        if self.shows_leave_reason(caller):
            return preview
        return preview.model_copy(update={"balance_before": None, "balance_after": None, "reason_hidden": True})

    def refusal(self, error: DomainError, caller: Caller) -> DomainError:
        """An over-balance refusal (`balances.not_enough`, `balances.over_on_approval`) without its figures,
        and an approval's without the type, unless `caller` may see leave reasons; any other error as it is."""
        details = error.body.details or {}
        figures = "available_hours" in details or "left_hours" in details
        if error.body.code != "conflict" or not figures or self.shows_leave_reason(caller):
            return error
        asked = details.get("requested_hours", 0)
        if "request_id" in details:
            return DomainError(
                "conflict",
                f"approving request {details['request_id']} would book more hours ({asked:g}h) than its type has left; "
                f"deny it, or have someone with scope {SENSITIVE_SCOPE} check the balance (its figures and the type "
                "would show the reason for leave, which this caller may not see)",
                details={"request_id": details["request_id"], "requested_hours": asked, "reason_hidden": True},
            )
        return DomainError(
            "conflict",
            f"not enough {details.get('type')} left for the {asked:g}h requested; ask for fewer "
            f"days, or have someone with scope {SENSITIVE_SCOPE} check the balance (its figures would show the types "
            "of other leave, which this caller may not see)",
            details={"type": details.get("type"), "requested_hours": details.get("requested_hours"), "reason_hidden": True},
        )
