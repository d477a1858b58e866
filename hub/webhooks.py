"""Provider webhooks for in-process domains, on the HTTP hub at `/webhooks/<namespace>/<provider>`.

The hub never imports a domain: an in-process server object that carries a `webhooks` attribute
(duck-typed: `handle(request, provider) -> Response` and `running()`, an async context manager that
runs its background processor) is served here. Its processor starts once the domain has connected
(checked every second) or with the first delivery, and runs until the hub's HTTP app shuts down.
With the shared store configured (`hub.store.url`), each intake is moved to the PostgreSQL event log
first (`use_shared_store(url)`, duck-typed too). These routes take no MCP auth: each delivery proves itself with
the provider's signature.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.store import store_url

if TYPE_CHECKING:
    from hub.hub import Hub

logger = logging.getLogger("hub.webhooks")


class HubWebhooks:
    """Finds a namespace's intake and keeps its processor running while the app lives."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._group: anyio.abc.TaskGroup | None = None
        self._started: set[int] = set()
        self._lock = anyio.Lock()
        self._store_url = store_url(hub.config.hub.store)
        """With the shared PostgreSQL store configured, every intake's event log lives there."""
        hub.metrics.webhooks.source = self.metrics

    def metrics(self) -> dict[str, dict[str, dict[str, float]]]:
        """Per in-process domain with an intake: its per-provider counters (`Intake.metrics()`)."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for namespace in list(self.hub.downstreams):
            intake = self.intake(namespace)
            if intake is not None and hasattr(intake, "metrics"):
                try:
                    out[namespace] = intake.metrics()
                except Exception as exc:  # noqa: BLE001 — one unreadable log must not fail the scrape
                    logger.warning("webhook metrics of %s unavailable: %s", namespace, type(exc).__name__)
        return out

    def health(self) -> dict[str, Any]:
        """For the hub's `/healthz`: per domain, whether its processor runs, its per-provider metrics
        and its push channels' upkeep (Google channels, Graph subscriptions); `status` is `degraded`
        while events sit in its dead-letter queue or a channel is failing (shown, never degrading
        the hub: the hub still serves)."""
        out: dict[str, Any] = {}
        for namespace, providers in self.metrics().items():
            intake = self.intake(namespace)
            dead = sum(p.get("dead_lettered", 0) for p in providers.values())
            channels = _channels(intake, namespace)
            failing = dead or any(c["state"] == "error" for c in channels)
            out[namespace] = {"status": "degraded" if failing else "ok", "running": bool(getattr(intake, "started", False)),
                              "providers": providers, "channels": channels}
        return out

    def route(self) -> Route:
        return Route("/webhooks/{namespace}/{provider}", self.endpoint, methods=["POST", "GET"])

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            self._group = group
            group.start_soon(self._start_connected)
            try:
                yield
            finally:
                self._group = None
                self._started.clear()
                group.cancel_scope.cancel()

    async def _start_connected(self) -> None:
        """Start each in-process domain's processor (and push-channel upkeep) once it has connected, so
        events accepted before a restart are processed without waiting for a new delivery."""
        while True:
            for namespace in list(self.hub.downstreams):
                intake = self.intake(namespace)
                if intake is not None:
                    await self._ensure_running(intake)
            await anyio.sleep(1.0)  # in-process servers connect (and reconnect) in the background

    def intake(self, namespace: str) -> Any:
        downstream = self.hub.downstreams.get(namespace)
        return getattr(getattr(downstream, "server_object", None), "webhooks", None)

    async def endpoint(self, request: Request) -> Response:
        namespace = request.path_params["namespace"]
        if namespace not in self.hub.downstreams:
            return JSONResponse({"error": f"no server named {namespace!r} on this hub"}, status_code=404)
        intake = self.intake(namespace)
        if intake is None:
            # Not connected yet (503: providers retry) or not an in-process server with webhooks (404).
            downstream = self.hub.downstreams[namespace]
            if getattr(downstream.config, "transport", "") == "inprocess" and getattr(downstream, "server_object", None) is None:
                return JSONResponse({"error": f"{namespace} is starting; retry shortly"}, status_code=503,
                                    headers={"Retry-After": "5"})
            return JSONResponse({"error": f"{namespace} takes no webhooks through the hub"}, status_code=404)
        await self._ensure_running(intake)
        return await intake.handle(request, request.path_params["provider"])

    async def _ensure_running(self, intake: Any) -> None:
        if self._store_url is not None and hasattr(intake, "use_shared_store"):
            intake.use_shared_store(self._store_url)  # before its processor first runs: a no-op after
        async with self._lock:
            if id(intake) in self._started or self._group is None or getattr(intake, "started", False):
                return
            self._started.add(id(intake))
            self._group.start_soon(_run, intake)


def _channels(intake: Any, namespace: str) -> list[dict[str, Any]]:
    try:
        return list(intake.channels_now()) if hasattr(intake, "channels_now") else []
    except Exception as exc:  # noqa: BLE001 — one unreadable state file must not fail /healthz
        logger.warning("push channel state of %s unavailable: %s", namespace, type(exc).__name__)
        return []


async def _run(intake: Any) -> None:
    try:
        async with intake.running():
            await anyio.sleep_forever()
    except Exception:  # one domain's processor failing must not take the hub's HTTP app down
        logger.exception("webhook processor of %s stopped", getattr(intake, "domain", "?"))


def with_webhook_lifespan(webhooks: HubWebhooks, inner: Any) -> Any:
    """A Starlette lifespan running `inner` (may be None) and the webhook processors' task group."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with webhooks.lifespan():
            if inner is None:
                yield
            else:
                async with inner(app):
                    yield

    return lifespan
