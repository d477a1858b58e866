"""Push-channel upkeep against local fakes of Google Calendar's watch API and Microsoft Graph's
subscriptions API (their documented request and response shapes): channels are opened, renewed ahead
of expiry (Google: a new channel, then the old one stopped; Graph: PATCH, or a new subscription when
the old one is gone), kept across a restart, retried after failures, and reported in /healthz."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from servers.kit.http import ProviderHTTP
from servers.kit.store import Store
from servers.kit.webhooks.channels import ChannelKeeper, GoogleChannels, GraphSubscriptions, keepers_from_env
from servers.kit.webhooks.serve import with_webhooks

pytestmark = pytest.mark.anyio
DAY = 86400.0


class FakeGoogle:
    def __init__(self) -> None:
        self.open: dict[str, str] = {}  # channel id -> resourceId
        self.stopped: list[str] = []
        self.fail = 0
        self.watches: list[dict[str, Any]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.fail:
            self.fail -= 1
            return httpx.Response(503, json={"error": {"message": "backend error"}})
        body = json.loads(request.content)
        if request.url.path.endswith("/events/watch"):
            self.watches.append({"path": request.url.raw_path.decode(), **body})
            resource_id = f"res-{len(self.watches)}"
            self.open[body["id"]] = resource_id
            expiration = int((time.time() + int(body["params"]["ttl"])) * 1000)
            return httpx.Response(200, json={"kind": "api#channel", "id": body["id"], "resourceId": resource_id,
                                             "resourceUri": "https://www.googleapis.com/calendar/v3/calendars/x/events",
                                             "token": body["token"], "expiration": str(expiration)})
        if request.url.path.endswith("/channels/stop"):
            assert self.open.pop(body["id"]) == body["resourceId"]
            self.stopped.append(body["id"])
            return httpx.Response(204)
        return httpx.Response(404, json={"error": {"message": "not found"}})


class FakeGraph:
    def __init__(self) -> None:
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.patches = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.split("/v1.0")[-1]
        if request.method == "POST" and path == "/subscriptions":
            body = json.loads(request.content)
            sid = f"sub-{len(self.subscriptions) + 1}"
            self.subscriptions[sid] = body | {"id": sid}
            return httpx.Response(201, json=self.subscriptions[sid])
        sid = path.rsplit("/", 1)[-1]
        if sid not in self.subscriptions:
            return httpx.Response(404, json={"error": {"code": "ResourceNotFound", "message": "gone"}})
        if request.method == "PATCH":
            self.patches += 1
            self.subscriptions[sid]["expirationDateTime"] = json.loads(request.content)["expirationDateTime"]
            return httpx.Response(200, json=self.subscriptions[sid])
        if request.method == "DELETE":
            del self.subscriptions[sid]
            return httpx.Response(204)
        return httpx.Response(405)


def http(base: str, fake: Any) -> ProviderHTTP:
    return ProviderHTTP("fake", base, transport=httpx.MockTransport(fake.handler))


async def test_google_channels_open_renew_by_replacing_and_survive_restart(tmp_path: Path) -> None:
    fake = FakeGoogle()
    api = GoogleChannels(http("https://www.googleapis.com/calendar/v3", fake), "https://hooks.example/webhooks/google", "tok")
    store = Store(tmp_path / "events.sqlite", [])
    keeper = ChannelKeeper(store, api, ["ada@example.com"])
    now = time.time()
    await keeper.tick(now)
    [first] = await keeper.status()
    assert first["state"] == "active" and first["expires_at"] > now + 6 * DAY
    assert fake.watches[0]["path"].endswith("/calendars/ada%40example.com/events/watch")
    assert (fake.watches[0]["type"], fake.watches[0]["address"], fake.watches[0]["token"]) == (
        "web_hook", "https://hooks.example/webhooks/google", "tok")

    restarted = ChannelKeeper(Store(tmp_path / "events.sqlite", []), api, ["ada@example.com"])
    await restarted.tick(now + DAY)
    assert len(fake.watches) == 1, "a restart keeps the open channel instead of opening another"

    await restarted.tick(first["expires_at"] - 3600)  # inside the renewal margin
    assert len(fake.watches) == 2 and len(fake.open) == 1 and len(fake.stopped) == 1, "new channel, old one stopped"

    gone = ChannelKeeper(store, api, [])  # no longer configured: stopped and forgotten
    await gone.tick()
    assert fake.open == {} and await gone.status() == []


async def test_graph_subscription_renewed_with_patch_or_recreated(tmp_path: Path) -> None:
    fake = FakeGraph()
    api = GraphSubscriptions(http("https://graph.microsoft.com/v1.0", fake), "https://hooks.example/webhooks/graph", "state-1")
    keeper = ChannelKeeper(Store(tmp_path / "events.sqlite", []), api, ["me/events"])
    now = time.time()
    await keeper.tick(now)
    [sub] = fake.subscriptions.values()
    assert (sub["resource"], sub["clientState"], sub["notificationUrl"]) == ("me/events", "state-1", "https://hooks.example/webhooks/graph")
    assert sub["changeType"] == "created,updated,deleted"
    expires = (await keeper.status())[0]["expires_at"]
    assert expires == datetime.fromisoformat(sub["expirationDateTime"].replace("Z", "+00:00")).timestamp()

    await keeper.tick(expires - 3600)
    assert fake.patches == 1 and len(fake.subscriptions) == 1
    fake.subscriptions.clear()  # Graph dropped it
    renewed = (await keeper.status())[0]["expires_at"]
    await keeper.tick(renewed - 3600)
    assert len(fake.subscriptions) == 1 and (await keeper.status())[0]["state"] == "active"


async def test_failures_are_recorded_retried_and_shown_in_healthz(tmp_path: Path) -> None:
    fake = FakeGoogle()
    fake.fail = 1
    backend = type("Backend", (), {"name": "google", "http": http("https://www.googleapis.com/calendar/v3", fake)})()
    env = {"GOOGLE_PUSH_ADDRESS": "https://hooks.example/webhooks/google", "GOOGLE_WEBHOOK_SECRET": "tok",
           "GOOGLE_PUSH_CALENDARS": "primary"}
    from servers.kit.webhooks import EventLog, Intake, Processor
    from servers.kit.webhooks.log import events_path

    log = EventLog(events_path(tmp_path, "calendar"))
    intake = Intake("calendar", ("google",), log, Processor(log, None))
    intake.keepers = keepers_from_env(backend, log.store, env)
    assert len(intake.keepers) == 1 and keepers_from_env(backend, log.store, {}) == []
    server = type("Server", (), {"webhooks": intake})()
    app = with_webhooks(Starlette(), server)

    now = time.time()
    await intake.keepers[0].tick(now)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        health = (await client.get("/healthz")).json()
        assert health["status"] == "degraded"
        [channel] = health["webhooks"]["channels"]
        assert channel["state"] == "error" and "(503)" in channel["last_error"]
        await intake.keepers[0].tick(now + 30)
        assert fake.watches == [], "not retried before its backoff"
        await intake.keepers[0].tick(now + 61)
        health = (await client.get("/healthz")).json()
    assert health["status"] == "ok" and health["webhooks"]["channels"][0]["state"] == "active"


async def test_channel_upkeep_state_shows_in_the_hubs_healthz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An in-process calendar's channel upkeep, as the HTTP hub's `/healthz` reports it."""
    from hub.config import parse_config
    from hub.hub import Hub
    from hub.frontends.server import build_server
    from hub.frontends.http.transports import build_http_app
    from servers.kit.webhooks.channels import ChannelKeeper

    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    fake = FakeGoogle()
    fake.fail = 1
    async with Hub(parse_config({"mcpServers": {"calendar": {"builtin": "calendar"}}})) as hub:
        with anyio.fail_after(30):
            while hub.downstreams["calendar"].state != "ready":
                await anyio.sleep(0.02)  # waiting for the state "ready"
        intake = hub.downstreams["calendar"].server_object.webhooks
        keeper = ChannelKeeper(intake.log.store, GoogleChannels(http("https://www.googleapis.com/calendar/v3", fake),
                                                                "https://hooks.example/webhooks/calendar/google", "tok"), ["primary"])
        intake.keepers.append(keeper)
        app = build_http_app(hub, build_server(hub), "http", "127.0.0.1", 8765)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765") as client:
            assert (await client.get("/healthz")).json()["webhooks"]["calendar"]["channels"] == [], "before any upkeep"
            now = time.time()
            await keeper.tick(now)
            failing = (await client.get("/healthz")).json()
            await keeper.tick(now + 61)
            healed = (await client.get("/healthz")).json()
    [channel] = failing["webhooks"]["calendar"]["channels"]
    assert (channel["provider"], channel["resource"], channel["state"]) == ("google", "primary", "error")
    assert "(503)" in channel["last_error"] and "tok" not in json.dumps(failing)
    assert failing["webhooks"]["calendar"]["status"] == "degraded" and failing["status"] == "ok", "shown, not degrading the hub"
    assert healed["webhooks"]["calendar"]["status"] == "ok"
    assert healed["webhooks"]["calendar"]["channels"][0]["state"] == "active"


class ShortGrantGoogle(FakeGoogle):
    """Grants `grant_s` whatever `ttl` was asked (Google documents that it may grant less)."""

    def __init__(self, grant_s: float) -> None:
        super().__init__()
        self.grant_s = grant_s

    def handler(self, request: httpx.Request) -> httpx.Response:
        response = super().handler(request)
        if request.url.path.endswith("/events/watch"):
            body = json.loads(response.content) | {"expiration": str(int((time.time() + self.grant_s) * 1000))}
            return httpx.Response(200, json=body)
        return response


async def test_a_channel_granted_less_than_the_margin_is_renewed_halfway_not_every_second(tmp_path: Path) -> None:
    """Outside review, events round 10: a channel granted 1 h was due ("24 h before expiry") the moment
    it opened: a new channel and a stop about once a second, forever, while /healthz said `active`."""
    fake = ShortGrantGoogle(3600)
    api = GoogleChannels(http("https://www.googleapis.com/calendar/v3", fake), "https://hooks.example/webhooks/google", "tok")
    keeper = ChannelKeeper(Store(tmp_path / "events.sqlite", []), api, ["ada@example.com"])
    now = time.time()
    next_at = await keeper.tick(now)
    assert now + 1700 < next_at < now + 1900  # halfway through the grant
    await keeper.tick(now + 1)
    await keeper.tick(now + 60)
    assert len(fake.watches) == 1 and fake.stopped == []
    await keeper.tick(next_at + 1)
    assert len(fake.watches) == 2 and len(fake.stopped) == 1 and (await keeper.status())[0]["state"] == "active"


async def test_a_grant_that_ends_at_once_is_an_error_retried_with_backoff(tmp_path: Path) -> None:
    """A grant already over by this host's clock (the clock runs ahead, or an odd answer): shown as an
    error in /healthz and retried with backoff, not renewed on every tick."""
    fake = ShortGrantGoogle(-7200)
    api = GoogleChannels(http("https://www.googleapis.com/calendar/v3", fake), "https://hooks.example/webhooks/google", "tok")
    keeper = ChannelKeeper(Store(tmp_path / "events.sqlite", []), api, ["ada@example.com"])
    now = time.time()
    next_at = await keeper.tick(now)
    [status] = await keeper.status()
    assert status["state"] == "error" and "clock" in status["last_error"] and next_at >= now + 60
    await keeper.tick(now + 5)
    assert len(fake.watches) == 1
