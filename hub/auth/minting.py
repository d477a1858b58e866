"""Who may create which API key: no credential mints a key broader than itself.

Rule (docs/security.md, *Creating keys*): every scope of a new key must be granted by the minter's
own scopes (`grants`: `*`, `<ns>:*`, `admin` ⊇ `write` ⊇ `read`), and a minter pinned to profiles
(`profile:<name>`) may only mint keys pinned to some of the same profiles. A pin on the new key only
narrows it, so an unpinned minter may add any. The local operator (the CLI, which holds the data dir
or the database itself) is the root of trust and is not checked.
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.auth.scopes import grants

PIN_PREFIX = "profile:"
"""As `hub.profiles.PIN_SCOPE_PREFIX` (not imported: the profiles package pulls in the catalog)."""


class ScopeEscalation(ValueError):
    """A key was asked for with scopes or pins its minter does not hold; the message says which."""


def _pins(scopes: Sequence[str]) -> frozenset[str]:
    return frozenset(s[len(PIN_PREFIX):] for s in scopes if s.startswith(PIN_PREFIX))


def mint_problem(minter: Sequence[str], requested: Sequence[str]) -> str | None:
    """Why a credential holding `minter` may not create a key with `requested`, or None if it may."""
    wider = [s for s in requested if not s.startswith(PIN_PREFIX) and not grants(minter, s)]
    if wider:
        return (f"you may only create keys no broader than your own: your credential does not hold "
                f"{' '.join(wider)}")
    own_pins = _pins(minter)
    if own_pins:
        new_pins = _pins(requested)
        if not new_pins or not new_pins <= own_pins:
            allowed = " ".join(f"{PIN_PREFIX}{p}" for p in sorted(own_pins))
            return f"your credential is pinned ({allowed}), so a key it creates must carry the same pin"
    return None


def check_mint(minter: Sequence[str] | None, requested: Sequence[str]) -> None:
    """Raise `ScopeEscalation` unless `minter` may create a key with `requested` (None: the local operator)."""
    if minter is None:
        return
    problem = mint_problem(minter, requested)
    if problem is not None:
        raise ScopeEscalation(problem)
