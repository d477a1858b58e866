"""A server's own resource URIs, for a request that names a resource as the server knows it (an MCP
App reading its server's resources): which URIs a server lists, and whether a URI matches one of its
URI templates (RFC 6570, the expressions MCP servers use)."""

from __future__ import annotations

import functools
import re
from hub.catalog.naming import split_uri

_EXPRESSION = re.compile(r"\{([^}]*)\}")


def own_uri(exposed: str) -> str:
    """A resource URI (or URI template) as its server knows it: the exposed one with the namespace taken off."""
    split = split_uri(exposed)
    return split[1] if split is not None else exposed


MAX_URI = 2048
"""Longer URIs are matched against no template (a resource read must never cost the hub more)."""


def matches_template(uri: str, template: str) -> bool:
    """Whether `uri` is one a server's URI template (as the server knows it) expands to. Each expression
    matches atomically (no backtracking into it: linear time, re-check of apps round 9 — side-by-side
    expressions backtracked quadratically and a 40,000-character URI held the hub 7 s); a template whose
    expressions could only match by giving characters back then does not match, which is safe."""
    return len(uri) <= MAX_URI and _pattern(template).fullmatch(uri) is not None


@functools.lru_cache(maxsize=1024)
def _pattern(template: str) -> re.Pattern[str]:
    """A regular expression for the URIs an RFC 6570 template expands to: `{var}` one path segment,
    `{+var}`/`{#var}` anything, `{/var}` path segments, `{?a,b}`/`{&a}` a query."""
    out, at = [], 0
    for found in _EXPRESSION.finditer(template):
        out.append(re.escape(template[at:found.start()]))
        operator = found.group(1)[:1]
        expression = {"+": ".*", "#": "(?:#.*)?", "/": "(?:/[^?#]*)?", "?": "(?:[?&].*)?", "&": "(?:[?&].*)?",
                      ".": "(?:\\.[^/?#]*)?", ";": "(?:;[^/?#]*)?"}.get(operator, "[^/?#]+")
        out.append(f"(?>{expression})")
        at = found.end()
    out.append(re.escape(template[at:]))
    return re.compile("".join(out), re.DOTALL)
