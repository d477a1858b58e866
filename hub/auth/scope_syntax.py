"""How a list of scopes is written, wherever one is read: `keys create --scopes`, the console's key form,
`$MCP_HUB_SCOPES`, `hub.auth.stdio_scopes` and `hub.auth.required_scopes`. One rule for all, so a value that works in one place
works in every other (outside review newuser19: `MCP_HUB_SCOPES="a:read,b:read"` granted nothing).

No imports from the rest of the hub: the settings models use it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

SCOPE_RE = re.compile(r"^(?=.{1,64}$)[A-Za-z0-9_.*-]+(?::[A-Za-z0-9_.*-]+)*$")
"""What one scope may be spelt with (the console and the CLI alike): parts joined by single colons, none
empty — `ticketing: read` split into `ticketing:` and `read`, which granted nothing (re-check 19)."""
LEVEL_WORDS = frozenset({"read", "write", "admin"})
"""A level alone is a fragment of `<namespace>:<level>` written with a space, never a scope."""
SCOPE_SYNTAX = ("one or more <namespace>:<level> (letters, digits and . _ * -, parts joined by one colon with no "
                "space around it, up to 64 characters each), separated by spaces or commas, e.g. \"ticketing:read hris:read\"")


def split_scopes(scopes: Sequence[str]) -> list[str]:
    """Scopes as given, split at spaces and commas alike: `--scopes "memory:read,memory:write"` made a key
    with the one scope `memory:read,memory:write`, which grants nothing (outside review domains18)."""
    return list(dict.fromkeys(part for scope in scopes for part in re.split(r"[\s,]+", scope) if part))


def parse_scopes(scopes: str | Sequence[str]) -> list[str]:
    """`split_scopes`, then each checked against `SCOPE_RE`; raises ValueError saying what to write.

    An empty result is refused too: no scope is never what was meant (an empty `$MCP_HUB_SCOPES` gave `*`)."""
    parts = split_scopes([scopes] if isinstance(scopes, str) else list(scopes))
    bad = [s for s in parts if not SCOPE_RE.match(s) or s.lower() in LEVEL_WORDS]
    if not parts or bad:
        found = f"{', '.join(repr(s[:70]) for s in bad[:3])} is not a scope; " if bad else "no scope given; "
        raise ValueError(f"{found}write {SCOPE_SYNTAX}")
    return parts
