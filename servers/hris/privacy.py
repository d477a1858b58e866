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
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from servers.hris.model import SENSITIVE_FIELDS, Absence, Employee, TimeOffRequest
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
