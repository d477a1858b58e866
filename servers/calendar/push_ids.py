"""The ids the calendar's tools use for what a push delivery names by a provider alias.

Google echoes the path a channel watches in `X-Goog-Resource-URI`, so a channel on the default
calendar (`GOOGLE_PUSH_CALENDARS` defaults to `primary`) names it `primary`; the tools (`list_calendars`)
name it by its real id (`alice@example.com`), and `calendar://calendars/<that id>` never showed a change
(outside review, events round 26). Each change is recorded under the id `list_calendars` gives.

The sibling on Graph: the tools name an occurrence or exception of a series by its series' id
(`providers/graph.py: _event`), while a notification names the occurrence's own id; such a change is
recorded under the series' id (one look-up of the event's `type` and `seriesMasterId` per id, kept).
"""

from __future__ import annotations

from typing import Any

from servers.kit.errors import DomainError
from servers.kit.webhooks.processor import ToolIds
from servers.kit.webhooks.readers import ChangeSpec

GOOGLE_ALIASES = frozenset({"primary"})
"""Google's names for the signed-in user's primary calendar."""
KEPT_IDS = 4096
"""Graph event ids whose series is remembered (a bound: the process never grows with the history)."""


def tool_ids(backend: Any) -> ToolIds | None:
    """The processor's id mapping for `backend`, or None when its deliveries already carry the tools' ids.
    A failed look-up fails the attempt, which is retried (then dead-lettered, as any)."""
    name = getattr(backend, "name", "")
    if name == "google" and hasattr(backend, "calendars"):
        return _google(backend)
    if name == "graph" and hasattr(backend, "http") and hasattr(backend, "_events"):
        return _graph(backend)
    return None


def _google(backend: Any) -> ToolIds:
    """`primary` → the id of `calendars()`' `primary: true` entry, looked up once and kept: an account's
    primary calendar id never changes."""
    known: dict[str, str] = {}

    async def resolve(spec: ChangeSpec) -> ChangeSpec:
        if spec.kind != "calendar" or spec.record_id not in GOOGLE_ALIASES:
            return spec
        if "primary" not in known:
            primary = next((c.id for c in await backend.calendars() if c.primary), None)
            if primary is None:  # no calendar is marked primary: keep the alias rather than guess
                return spec
            known["primary"] = primary
        return ChangeSpec(spec.kind, known["primary"], spec.action)

    return resolve


def _graph(backend: Any) -> ToolIds:
    """An occurrence or exception → its series' id (`seriesMasterId`), as the tools name it. A deleted
    event cannot be looked up: its own id is kept (the series is usually notified of too)."""
    series: dict[str, str] = {}

    async def resolve(spec: ChangeSpec) -> ChangeSpec:
        if spec.kind != "event" or spec.action == "deleted":
            return spec
        if spec.record_id not in series:
            try:
                raw = await backend.http.json("GET", backend._events(spec.record_id),  # noqa: SLF001 — the connector's path
                                              params={"$select": "type,seriesMasterId"})
            except DomainError as exc:
                if exc.body.code != "not_found":
                    raise
                raw = None
            if len(series) >= KEPT_IDS:
                series.clear()
            series[spec.record_id] = str((raw or {}).get("seriesMasterId") or spec.record_id)
        return ChangeSpec(spec.kind, series[spec.record_id], spec.action)

    return resolve
