"""How each downstream server is doing, as `mcp-hub status`, the admin console and `/healthz` report it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.hub import Hub


def server_status(hub: Hub) -> dict[str, dict[str, Any]]:
    """Per server: connected / degraded / down, breaker, in-flight, restarts, last error, latency."""
    out: dict[str, dict[str, Any]] = {}
    for name, d in hub.downstreams.items():
        breaker = hub.breakers.breakers.get(name)
        breaker_state = breaker.state if breaker else "closed"
        bulkhead = hub.bulkheads.bulkheads.get(name)
        saturated = bulkhead is not None and bulkhead.waiting > 0
        if d.state != "ready":
            health = "down"
        elif breaker_state != "closed" or saturated:
            health = "degraded"
        else:
            health = "connected"
        p50, p95 = d.stats.percentile(0.5), d.stats.percentile(0.95)
        out[name] = {
            "health": health,
            "state": d.state,
            "breaker": breaker_state,
            "in_flight": d.stats.in_flight,
            "queued": bulkhead.waiting if bulkhead else 0,
            "callers_paused": sum(1 for c in list(breaker.paused) if breaker.paused_for(c)) if breaker else 0,
            "restarts": d.restarts,
            "calls": d.stats.calls,
            "failures": d.stats.failures,
            "last_error": getattr(d, "operator_error", d.error),  # operators only: /healthz details need hub:admin
            "p50_ms": round(p50 * 1000, 2) if p50 is not None else None,
            "p95_ms": round(p95 * 1000, 2) if p95 is not None else None,
            "protocol": d.protocol_version,
        }
    return out
