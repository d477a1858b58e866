"""The privacy policy for sensitive HR fields, decided before any provider call.

Sensitive fields (date of birth, national id, compensation, bank, home address, personal
contact) are never returned unless the allow-list permits them — `HRIS_SENSITIVE_ALLOW`, a comma
list, empty by default — and the caller asks for them by name in `fields`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from servers.hris.model import SENSITIVE_FIELDS
from servers.kit.errors import DomainError

POLICY_VARIABLE = "HRIS_SENSITIVE_ALLOW"


@dataclass(frozen=True)
class PrivacyPolicy:
    allowed: frozenset[str]

    @classmethod
    def from_env(cls) -> PrivacyPolicy:
        raw = os.environ.get(POLICY_VARIABLE, "")
        allowed = frozenset(f.strip() for f in raw.split(",") if f.strip())
        unknown = allowed - set(SENSITIVE_FIELDS)
        if unknown:
            raise ValueError(f"{POLICY_VARIABLE} names unknown fields {sorted(unknown)}; known: {', '.join(SENSITIVE_FIELDS)}")
        return cls(allowed)

    def sensitive_requested(self, fields: list[str] | None) -> list[str]:
        """The sensitive fields a request asks for; `forbidden` if any is outside the allow-list."""
        requested = [f for f in fields or [] if f in SENSITIVE_FIELDS]
        refused = [f for f in requested if f not in self.allowed]
        if refused:
            raise DomainError(
                "forbidden",
                f"the HRIS privacy policy does not allow {', '.join(refused)}; an administrator can allow fields "
                f"with {POLICY_VARIABLE} (currently: {', '.join(sorted(self.allowed)) or 'none'})",
                details={"policy": POLICY_VARIABLE, "refused": refused},
            )
        return requested
