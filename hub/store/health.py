"""This replica's view of the key/audit store, for `/healthz` (health is reported per replica)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.hub import Hub


def store_health(hub: Hub) -> dict[str, Any]:
    """`{"backend": "sqlite" | "postgresql", "state": "ok" | "unreachable", "writing": bool, ...}`:
    `state` is whether the shared store last answered; `writing`, whether audit rows are being
    stored (False: `hub.audit.on_failure` applies)."""
    if hub.audit_log is not None:
        return hub.audit_log.health()
    if hub.shared_store is not None:
        return hub.shared_store.health()
    return {"backend": "sqlite"}
