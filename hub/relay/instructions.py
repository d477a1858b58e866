"""The hub's `instructions`: its own line, then each downstream's instructions under its namespace.

Rules (docs/domains.md, "Protocol relay"):
- Computed when a client initializes (or discovers), from the servers connected at that moment
  whose `instructions` are non-empty, in server-name order, each under a `## <namespace>` heading
  (the server key for an empty namespace) so the model knows which tools a sentence is about.
- Only servers the caller may see (`may_see_server`): instructions never describe what a client
  cannot use.
- The whole text stays within `hub.instructions_budget` characters (default 4096). Each server
  gets an equal share of what the hub's line leaves; a share a server does not use passes to the
  next. A section cut short ends with "…" and the sections that do not fit at all are named in a
  last line, so nothing is dropped silently. A server still making its first connection gives the
  instructions remembered from its last start (`hub.catalog.listing_cache`), if any.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.auth.principal import Principal
from hub.relay.scope import may_see_server

if TYPE_CHECKING:
    from hub.hub import Hub

HUB_LINE = "Tools from several systems, namespaced as <server>__<tool>."
DEFAULT_BUDGET = 4096
_MIN_SECTION = 80
"""Below this many characters a section is not worth starting: the server is named as omitted."""


def merge_instructions(sections: list[tuple[str, str]], budget: int = DEFAULT_BUDGET, head: str = HUB_LINE) -> str:
    """`head`, then one `## <label>` section per `(label, text)`, the whole within `budget` characters."""
    out = head[:budget]
    omitted: list[str] = []
    for index, (label, text) in enumerate(sections):
        left = budget - len(out)
        reserve = 64 if index < len(sections) - 1 else 0  # room for naming later omissions
        share = (left - reserve) // (len(sections) - index)
        section = f"\n\n## {label}\n"
        room = share - len(section)
        body = text.strip()
        if room < min(_MIN_SECTION, len(body)):
            omitted.append(label)
            continue
        if len(body) > room:
            body = body[: room - 1].rstrip() + "…"
        out += section + body
    if omitted:
        note = f"\n\n(instructions of {', '.join(omitted)} omitted: over the size budget)"
        if len(out) + len(note) > budget:
            note = "\n\n(more instructions omitted: over the size budget)"
        if len(out) + len(note) <= budget:
            out += note
    return out


def hub_instructions(hub: Hub, principal: Principal, head: str = HUB_LINE) -> str:
    """The instructions the hub gives `principal` now (see the module's rules)."""
    sections: list[tuple[str, str]] = []
    for name in sorted(hub.downstreams):
        downstream = hub.downstreams[name]
        text = downstream.instructions if downstream.state in ("ready", "starting") else None  # starting: remembered
        if text and text.strip() and may_see_server(hub, principal, name):
            sections.append((downstream.config.namespace or name, text))
    return merge_instructions(sections, hub.config.hub.instructions_budget, head or HUB_LINE)
