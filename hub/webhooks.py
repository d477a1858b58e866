"""Provider webhooks for in-process domains, on the HTTP hub at `/webhooks/<namespace>/<provider>`.

The hub never imports a domain: an in-process server object that carries a `webhooks` attribute
(duck-typed: `handle(request, provider) -> Response` and `running()`, an async context manager that
runs its background processor) is served here. Its processor starts once the domain has connected
(checked every second) or with the first delivery, and runs until the hub's HTTP app shuts down.
Before that the intake is bound to its namespace (`bind(namespace, store_url=, provider_wide=)`,
duck-typed too): its rows, dedupe and claims are that namespace's, its secrets are
`<NAMESPACE>_<PROVIDER>_WEBHOOK_SECRET` (the provider-wide variable only while it is the hub's one
server of its domain), and with the shared store configured (`hub.store.url`) its log is in
PostgreSQL. With replicas (`hub.cluster.redis_url`), the domain's change resources publish every
change through `hub.cluster.notify`, so a webhook processed here reaches subscribers anywhere.
These routes take no MCP auth: each delivery proves itself with the provider's signature.

A processor that fails (to start, or later) is shown as such in `/healthz` `webhooks.<namespace>`:
`processor: failed` with its masked `error`, when it failed, when the hub tries again (30 s, doubling up
to 10 min while it keeps failing) and what to do; deliveries are still accepted and wait in the event log.
Before (outside review events round 27) it showed `running: false` for ever, like one still starting.

Route names: a server's namespace; a server with no namespace (`""`) by its server name (unless
that is another server's namespace). A server name is accepted in the path too when it names no
namespace (`/webhooks/tickets-eu/github` for `"tickets-eu": {"namespace": "eu"}`): rows are
still keyed by the namespace.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.argument_errors import preview
from hub.domains import RegistryError, domain_target
from hub.redact import mask
from hub.store import store_url

if TYPE_CHECKING:
    from hub.downstream.connection import Downstream
    from hub.hub import Hub

logger = logging.getLogger("hub.webhooks")
RETRY_FIRST_S = 30.0
RETRY_MAX_S = 600.0


@dataclass
class Failure:
    """Why a route's processor stopped, and when the hub starts it again."""

    intake: Any
    error: str
    at: float
    retry_at: float
    times: int

    def shown(self, namespace: str) -> dict[str, Any]:
        return {"processor": "failed", "error": self.error, "failed_at": _iso(self.at), "retry_at": _iso(self.retry_at),
                "action": f"the webhook processor of {namespace} failed {self.times} time(s) in a row; the hub starts it "
                          "again at retry_at. Deliveries are still accepted and wait in the event log. Fix the cause the "
                          "error names (the hub log has the traceback: 'webhook processor of ... failed'), or restart "
                          "the server (console or `mcp-hub` reload) to try at once"}


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _reason(exc: BaseException) -> str:
    """A failure as shown outside the log: its type and first line, masked and cut."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:  # a task group's one failure
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return mask(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


class HubWebhooks:
    """Finds a namespace's intake, binds it, and keeps its processor running while the app lives."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._group: anyio.abc.TaskGroup | None = None
        self._running: dict[str, tuple[Any, anyio.CancelScope]] = {}
        """Route name -> the intake whose processor runs for it, and that processor's scope. A restarted,
        disabled or reloaded server's old intake is stopped when it is no longer the server's (outside
        review events18 #9: each console Restart left one more processor, its stores and its push-channel
        keepers running, so Google channels were renewed once per leaked keeper and orphaned)."""
        self._failed: dict[str, Failure] = {}
        """Route name -> its processor's last failure, until it runs again (shown by `health`)."""
        self._bound: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = anyio.Lock()
        self._store_url = store_url(hub.config.hub.store)
        """With the shared PostgreSQL store configured, every intake's event log lives there."""
        hub.metrics.webhooks.source = self.metrics

    def names(self) -> dict[str, Downstream]:
        """Route name -> server: each server's namespace, or the server name of one without (see the module)."""
        servers = list(self.hub.downstreams.values())
        out = {d.config.namespace: d for d in servers if d.config.namespace}
        for downstream in servers:
            if not downstream.config.namespace:
                out.setdefault(downstream.name, downstream)
        return out

    def resolve(self, segment: str) -> tuple[str, Downstream] | None:
        """The route name and server a path segment means: a namespace, else a server name."""
        names = self.names()
        if segment in names:
            return segment, names[segment]
        downstream = self.hub.downstreams.get(segment)
        return next(((name, d) for name, d in names.items() if d is downstream), None)

    def _intakes(self) -> Iterator[tuple[str, Downstream, Any]]:
        for name, downstream in self.names().items():
            intake = _intake(downstream)
            if intake is not None:
                yield name, downstream, intake

    def metrics(self) -> dict[str, dict[str, dict[str, float]]]:
        """Per in-process domain with an intake, by server name (the `server` label of every hub
        metric): its per-provider counters (`Intake.metrics()`)."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for name, downstream, intake in self._intakes():
            if hasattr(intake, "metrics"):
                try:
                    out[downstream.name] = intake.metrics()
                except Exception as exc:  # noqa: BLE001 — one unreadable log must not fail the scrape
                    logger.warning("webhook metrics of %s unavailable: %s", name, type(exc).__name__)
        return out

    def health(self) -> dict[str, Any]:
        """For the hub's `/healthz`, by route name (namespace): per domain, its server, whether its
        processor runs, its per-provider metrics and its push channels' upkeep (Google channels, Graph
        subscriptions); `status` is `degraded` while events sit in its dead-letter queue, a channel
        is failing or its processor failed (`processor`: running, starting or failed, with the failure's
        masked `error`, `retry_at` and `action`; shown, never degrading the hub: the hub still serves)."""
        metrics = self.metrics()
        out: dict[str, Any] = {}
        for name, downstream, intake in self._intakes():
            if downstream.name not in metrics:
                continue
            providers = metrics[downstream.name]
            dead = sum(p.get("dead_lettered", 0) for p in providers.values())
            channels = _channels(intake, name)
            running = bool(getattr(intake, "started", False))
            failure = self._failed.get(name)
            shown = failure.shown(name) if failure is not None and failure.intake is intake and not running else \
                {"processor": "running" if running else "starting"}
            failing = dead or any(c["state"] in ("error", "resync") for c in channels) or shown["processor"] == "failed"
            out[name] = {"status": "degraded" if failing else "ok", "server": downstream.name,
                         "running": running, **shown, "providers": providers, "channels": channels}
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
                self._running.clear()
                self._failed.clear()
                group.cancel_scope.cancel()

    async def _start_connected(self) -> None:
        """Start each in-process domain's processor (and push-channel upkeep) once it has connected, so
        events accepted before a restart are processed without waiting for a new delivery."""
        while True:
            current = {}
            for name, downstream, intake in list(self._intakes()):
                current[name] = intake
                await self._ensure_running(name, downstream, intake)
            async with self._lock:
                for name, (intake, scope) in list(self._running.items()):
                    if current.get(name) is not intake:  # its server stopped or was replaced
                        scope.cancel()
                        del self._running[name]
                for name, failure in list(self._failed.items()):
                    if current.get(name) is not failure.intake:  # a replaced server starts afresh
                        del self._failed[name]
            await anyio.sleep(1.0)  # in-process servers connect (and reconnect) in the background

    async def endpoint(self, request: Request) -> Response:
        segment = request.path_params["namespace"]
        found = self.resolve(segment)
        if found is None:
            return _takes_none(segment)
        name, downstream = found
        intake = _intake(downstream)
        if intake is None:
            # Not connected yet (503: providers retry) or not an in-process server with webhooks (404).
            if getattr(downstream.config, "transport", "") == "inprocess" and getattr(downstream, "server_object", None) is None:
                return JSONResponse({"error": f"{name} is starting; retry shortly"}, status_code=503,
                                    headers={"Retry-After": "5"})
            return _takes_none(segment)  # the same answer as for no server at all: the route lists nothing
        if not await self._ensure_running(name, downstream, intake):
            failure = self._failed.get(name)
            return JSONResponse({"error": f"the webhook route of {name} could not be set up "
                                          f"({failure.error if failure else 'unknown error'}): the delivery was not "
                                          "accepted; retry shortly (the hub's /healthz shows the failure)"},
                                status_code=503, headers={"Retry-After": "30"})
        return await intake.handle(request, request.path_params["provider"])

    async def _ensure_running(self, name: str, downstream: Downstream, intake: Any) -> bool:
        """Bind `intake` (once) and start its processor unless it runs or waits for its retry; whether the
        intake is bound (may take deliveries). A bind that fails is a failure like the processor's: shown,
        retried after the backoff, and no delivery is taken meanwhile (before, it escaped and stopped
        every domain's processors, and the intake was marked bound anyway, keyed by the wrong namespace)."""
        async with self._lock:
            failure = self._failed.get(name)
            waiting = failure is not None and failure.intake is intake and time.time() < failure.retry_at
            if intake not in self._bound:  # before its processor first runs or it takes a delivery
                if waiting:
                    return False
                try:
                    if hasattr(intake, "bind"):
                        intake.bind(name, store_url=self._store_url, provider_wide=lambda: self._alone(downstream),
                                    namespaces=lambda: list(self.names()))
                    await self._publish_changes(downstream)
                except Exception as exc:  # noqa: BLE001 — one domain's route failing must not stop the others
                    logger.exception("webhook route of %s could not be set up", name)
                    self._fail(name, intake, exc)
                    return False
                self._bound.add(intake)
            running = self._running.get(name)
            if (running is not None and running[0] is intake) or self._group is None or getattr(intake, "started", False):
                return True
            if waiting:
                return True  # it failed: started again at retry_at (shown in `health`)
            if running is not None:
                running[1].cancel()  # the server's earlier intake: its processor stops and closes its stores
            scope = anyio.CancelScope()
            self._running[name] = (intake, scope)
            self._group.start_soon(self._run, name, intake, scope)
            return True

    def _fail(self, name: str, intake: Any, exc: BaseException) -> None:
        """Remember that `name`'s processor (or its binding) failed, and when to try again."""
        earlier = self._failed.get(name)
        times = earlier.times + 1 if earlier is not None and earlier.intake is intake else 1
        now = time.time()
        self._failed[name] = Failure(intake, _reason(exc), now, now + min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (times - 1)), times)

    async def _run(self, name: str, intake: Any, scope: anyio.CancelScope) -> None:
        """Run `intake`'s processor until cancelled; a failure is remembered (`health`), and it is started
        again after a backoff by `_start_connected`."""
        with scope:
            try:
                async with intake.running():
                    if self._failed.get(name) is not None and self._failed[name].intake is intake:
                        await self._cleared_once_running(name, intake)
                    await anyio.sleep_forever()
            except Exception as exc:  # one domain's processor failing must not take the hub's HTTP app down
                logger.exception("webhook processor of %s failed", name)
                self._fail(name, intake, exc)
                if self._running.get(name, (None,))[0] is intake:
                    del self._running[name]

    async def _cleared_once_running(self, name: str, intake: Any) -> None:
        """Forget a failure once the restarted processor has run a while (so a crash loop keeps its backoff)."""
        await anyio.sleep(RETRY_FIRST_S)
        failure = self._failed.get(name)
        if failure is not None and failure.intake is intake:
            del self._failed[name]

    def _alone(self, downstream: Downstream) -> bool:
        """Whether `downstream` is the hub's only server of its domain (then the provider-wide
        `<PROVIDER>_WEBHOOK_SECRET` may serve it; with two tenants of one domain, neither)."""
        mine = _target(downstream)
        return sum(1 for d in self.hub.downstreams.values() if _target(d) == mine) == 1

    async def _publish_changes(self, downstream: Downstream) -> None:
        """With replicas, the domain publishes each change it makes to every replica (`hub.cluster.notify`)."""
        notifier = getattr(self.hub, "cluster_notify", None)
        server = getattr(downstream, "server_object", None)
        resources = getattr(server, "change_resources", None)
        if notifier is not None and hasattr(resources, "publish_every_change"):
            await resources.publish_every_change(notifier.published_at_source(downstream.name, server))


def _intake(downstream: Downstream) -> Any:
    return getattr(getattr(downstream, "server_object", None), "webhooks", None)


def _target(downstream: Downstream) -> str:
    """What code a server runs: a builtin's registered target, else its module (else its name)."""
    config = downstream.config
    if config.builtin is not None:
        try:
            return domain_target(config.builtin)
        except RegistryError:
            return f"builtin:{config.builtin}"
    return config.module or f"server:{downstream.name}"


def _channels(intake: Any, namespace: str) -> list[dict[str, Any]]:
    try:
        return list(intake.channels_now()) if hasattr(intake, "channels_now") else []
    except Exception as exc:  # noqa: BLE001 — one unreadable state file must not fail /healthz
        logger.warning("push channel state of %s unavailable: %s", namespace, type(exc).__name__)
        return []


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


def _takes_none(segment: str) -> JSONResponse:
    """No server here takes webhooks at `segment`: one answer whether or not a server has that name, so
    the unauthenticated route does not list the hub's servers (outside review admin17)."""
    return JSONResponse({"error": f"nothing on this hub takes webhooks at {preview(segment)}: deliveries go to "
                                  "/webhooks/<namespace>/<provider> of a domain server that takes them"}, status_code=404)
