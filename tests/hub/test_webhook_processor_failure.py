"""Outside review events round 27 #2: a domain's webhook processor that failed to start showed
`running: false` in `/healthz` for ever, like one still starting. It must say it failed, why (masked),
and what to do — and the hub starts it again after a backoff."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

import hub.webhooks as hub_webhooks
from hub.settings import StoreSettings
from hub.webhooks import HubWebhooks

pytestmark = pytest.mark.anyio


class Intake:
    """Fails to start its processor `failures` times, then runs."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.started = False

    def bind(self, *args: Any, **kwargs: Any) -> None:
        pass

    def metrics(self) -> dict[str, dict[str, float]]:
        return {"github": {"received": 0, "dead_lettered": 0}}

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Intake]:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("could not open postgresql://hub:hunter2@db/events: connection refused")
        self.started = True
        try:
            yield self
        finally:
            self.started = False


async def wait(done: Any) -> None:
    with anyio.fail_after(15):
        while not done():
            await anyio.sleep(0.01)


def _hub(intake: Intake) -> Any:
    config = SimpleNamespace(namespace="tk", builtin=None, module="servers.ticketing", transport="inprocess")
    downstream = SimpleNamespace(name="tk", config=config, server_object=SimpleNamespace(webhooks=intake, change_resources=None))
    return SimpleNamespace(downstreams={"tk": downstream}, config=SimpleNamespace(hub=SimpleNamespace(store=StoreSettings())),
                           metrics=SimpleNamespace(webhooks=SimpleNamespace(source=None)))


async def test_a_processor_that_failed_to_start_says_so_why_and_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_webhooks, "RETRY_FIRST_S", 0.2, raising=False)
    intake = Intake(failures=1)
    webhooks = HubWebhooks(_hub(intake))
    async with webhooks.lifespan():
        await wait(lambda: webhooks.health()["tk"].get("processor") == "failed")
        shown = webhooks.health()["tk"]
        assert shown["status"] == "degraded" and shown["running"] is False
        assert shown["error"].startswith("RuntimeError: could not open") and "hunter2" not in shown["error"]
        assert "retry_at" in shown and "event log" in shown["action"] and "restart" in shown["action"]
        await wait(lambda: webhooks.health()["tk"].get("processor") == "running")  # started again after the backoff
        shown = webhooks.health()["tk"]
        assert shown["status"] == "ok" and shown["running"] is True and "error" not in shown


async def test_a_processor_still_starting_is_shown_as_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    webhooks = HubWebhooks(_hub(Intake(failures=0)))
    assert webhooks.health()["tk"]["processor"] == "starting"  # no app lifespan yet: nothing started it


class BindFails(Intake):
    """Its binding (the hub's namespace, the shared store) fails once."""

    def __init__(self) -> None:
        super().__init__(failures=0)
        self.binds = 0
        self.bound_as: str | None = None

    def bind(self, namespace: str, **kwargs: Any) -> None:
        self.binds += 1
        if self.binds == 1:
            raise ConnectionError("shared store postgresql://hub:hunter2@db unreachable")
        self.bound_as = namespace

    async def handle(self, request: Any, provider: str) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse({"accepted": True, "namespace": self.bound_as})


async def test_a_route_whose_binding_failed_refuses_deliveries_with_503_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx
    from starlette.applications import Starlette

    monkeypatch.setattr(hub_webhooks, "RETRY_FIRST_S", 0.2, raising=False)
    intake = BindFails()
    webhooks = HubWebhooks(_hub(intake))
    app = Starlette(routes=[webhooks.route()])
    async with webhooks.lifespan(), httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://hub") as http:
        await wait(lambda: intake.binds >= 1)
        shown = webhooks.health()["tk"]
        assert shown["processor"] == "failed" and shown["error"].startswith("ConnectionError") and "hunter2" not in shown["error"]
        refused = await http.post("/webhooks/tk/github", content=b"{}")
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert "not accepted" in refused.json()["error"] and "hunter2" not in refused.text
        await wait(lambda: webhooks.health()["tk"]["processor"] == "running")
        taken = await http.post("/webhooks/tk/github", content=b"{}")
        assert taken.status_code == 200 and taken.json() == {"accepted": True, "namespace": "tk"}
