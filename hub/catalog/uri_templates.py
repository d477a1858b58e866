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


def matches_template(uri: str, template: str) -> bool:
    """Whether `uri` is one a server's URI template (as the server knows it) expands to."""
    return _pattern(template).fullmatch(uri) is not None


@functools.lru_cache(maxsize=1024)
def _pattern(template: str) -> re.Pattern[str]:
    """A regular expression for the URIs an RFC 6570 template expands to: `{var}` one path segment,
    `{+var}`/`{#var}` anything, `{/var}` path segments, `{?a,b}`/`{&a}` a query."""
    out, at = [], 0
    for found in _EXPRESSION.finditer(template):
        out.append(re.escape(template[at:found.start()]))
        operator = found.group(1)[:1]
        out.append({"+": ".*", "#": "(?:#.*)?", "/": "(?:/[^?#]*)?", "?": "(?:[?&].*)?", "&": "(?:[?&].*)?",
                    ".": "(?:\\.[^/?#]*)?", ";": "(?:;[^/?#]*)?"}.get(operator, "[^/?#]+"))
        at = found.end()
    out.append(re.escape(template[at:]))
    return re.compile("".join(out), re.DOTALL)
