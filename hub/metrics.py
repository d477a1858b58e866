"""Prometheus metrics: calls by tool and outcome, latency, breaker state, in-flight, rejections, and
the webhook intakes of in-process domains (per server and provider)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

_BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class _StatusCollector(Collector):
    def __init__(self, status: Callable[[], dict[str, dict[str, Any]]]) -> None:
        self._status = status

    def collect(self) -> Iterable[GaugeMetricFamily]:
        breaker = GaugeMetricFamily("mcp_hub_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", labels=["server"])
        in_flight = GaugeMetricFamily("mcp_hub_in_flight", "Calls in flight per server", labels=["server"])
        up = GaugeMetricFamily("mcp_hub_server_up", "1 while the server is connected", labels=["server"])
        restarts = GaugeMetricFamily("mcp_hub_server_restarts", "Reconnects/restarts so far", labels=["server"])
        for name, s in self._status().items():
            breaker.add_metric([name], _BREAKER_VALUE[s["breaker"]])
            in_flight.add_metric([name], s["in_flight"])
            up.add_metric([name], 0 if s["health"] == "down" else 1)
            restarts.add_metric([name], s["restarts"])
        yield from (breaker, in_flight, up, restarts)


WebhookStats = Callable[[], dict[str, dict[str, dict[str, float]]]]
"""server -> provider -> {received, duplicate, rejected, dead_lettered, pending, lag_s}."""


class _WebhookCollector(Collector):
    """Reads the intakes at scrape time through `source` (set by `hub.webhooks`; None: no series)."""

    def __init__(self) -> None:
        self.source: WebhookStats | None = None

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        if self.source is None:
            return
        labels = ["server", "provider"]
        deliveries = CounterMetricFamily("mcp_hub_webhook_deliveries", "Webhook deliveries since start by outcome "
                                         "(received, duplicate, rejected, ignored: for another company or an event type the domain does not read)", labels=[*labels, "outcome"])
        dead = GaugeMetricFamily("mcp_hub_webhook_dead_lettered", "Events in the dead-letter queue", labels=labels)
        pending = GaugeMetricFamily("mcp_hub_webhook_pending", "Events accepted and not yet processed", labels=labels)
        lag = GaugeMetricFamily("mcp_hub_webhook_lag_seconds", "Age of the oldest pending event", labels=labels)
        for server, providers in self.source().items():
            for provider, s in providers.items():
                for outcome in ("received", "duplicate", "rejected", "ignored"):
                    deliveries.add_metric([server, provider, outcome], s.get(outcome, 0))
                dead.add_metric([server, provider], s.get("dead_lettered", 0))
                pending.add_metric([server, provider], s.get("pending", 0))
                lag.add_metric([server, provider], s.get("lag_s", 0.0))
        yield from (deliveries, dead, pending, lag)


class HubMetrics:
    def __init__(self, status: Callable[[], dict[str, dict[str, Any]]]) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "mcp_hub_calls", "Tool calls by tool, server and outcome", ["tool", "server", "outcome"], registry=self.registry
        )
        self.latency = Histogram(
            "mcp_hub_call_duration_seconds", "Tool call latency at the hub", ["server"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.rate_limited = Counter(
            "mcp_hub_rate_limited", "Calls refused by a rate limit", ["tool"], registry=self.registry
        )
        self.registry.register(_StatusCollector(status))
        self.webhooks = _WebhookCollector()
        """Set `self.webhooks.source` to export webhook intake metrics (`hub.webhooks` does)."""
        self.registry.register(self.webhooks)
        self._call_counters: dict[tuple[str, str, str], Any] = {}
        self._latencies: dict[str, Any] = {}

    def record_call(self, tool: str, server: str, outcome: str, seconds: float) -> None:
        """Count one call and its latency (the labelled children are looked up once, then kept)."""
        counter = self._call_counters.get((tool, server, outcome))
        if counter is None:
            counter = self._call_counters[(tool, server, outcome)] = self.calls.labels(tool, server, outcome)
        counter.inc()
        latency = self._latencies.get(server)
        if latency is None:
            latency = self._latencies[server] = self.latency.labels(server)
        latency.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
