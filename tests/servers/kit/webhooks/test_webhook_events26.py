"""Outside review, events round 26: Graph lifecycle notifications asked for and acted on; the channel
upkeep and the route using one secret lookup; Google's `primary` recorded under the id the tools give;
a mixed Graph batch read item by item; equal bodies under distinct delivery ids kept apart; a resource
listed twice kept as one channel. Provider APIs are local fakes of their documented shapes."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from servers.kit.http import ProviderHTTP
from servers.kit.store import Store
from servers.kit.webhooks import Intake
from servers.kit.webhooks.channels import ChannelKeeper, GraphSubscriptions, keepers_from_env
from servers.kit.webhooks.serve import with_webhooks
from tests.servers.kit.webhooks.test_webhook_channels import FakeGoogle, FakeGraph
from tests.webhook_support import SECRETS, make_intake, set_secrets, signed

pytestmark = pytest.mark.anyio
GRAPH = "https://graph.microsoft.com/v1.0"
GOOGLE = "https://www.googleapis.com/calendar/v3"
ADDRESS = "https://hooks.example/webhooks/graph"


def http(base: str, handler: Any) -> ProviderHTTP:
    return ProviderHTTP("fake", base, transport=httpx.MockTransport(handler))


def backend(name: str, handler: Any, base: str) -> Any:
    return type("Backend", (), {"name": name, "http": http(base, handler)})()


async def post(intake: Intake, provider: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    app = with_webhooks(Starlette(), type("Server", (), {"webhooks": intake})())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.post(f"/webhooks/{provider}", content=body, headers=headers)


async def healthz(intake: Intake) -> dict[str, Any]:
    app = with_webhooks(Starlette(), type("Server", (), {"webhooks": intake})())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return (await client.get("/healthz")).json()


def lifecycle(subscription: str, event: str, state: str = SECRETS["graph"]) -> bytes:
    return json.dumps({"value": [{"subscriptionId": subscription, "subscriptionExpirationDateTime": "2026-12-08T10:00:00Z",
                                  "tenantId": "t1", "clientState": state, "lifecycleEvent": event}]}).encode()


async def until(check: Any, what: str) -> None:
    with anyio.fail_after(10):
        while not check():
            await anyio.sleep(0.01)  # waiting for `what`


@pytest.fixture
async def graph_keeper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Intake, ChannelKeeper, FakeGraph]]:
    set_secrets(monkeypatch)
    fake = FakeGraph()
    intake, _ = make_intake(tmp_path, domain="calendar")
    intake.keepers = keepers_from_env(backend("graph", fake.handler, GRAPH), intake.log.store,
                                      {"GRAPH_PUSH_ADDRESS": ADDRESS, "GRAPH_WEBHOOK_SECRET": SECRETS["graph"]})
    async with anyio.create_task_group() as group:
        group.start_soon(intake.keepers[0].run)
        await until(lambda: [c["state"] for c in intake.keepers[0].status_now()] == ["active"], "the first subscription kept")
        yield intake, intake.keepers[0], fake
        group.cancel_scope.cancel()


# -- #1 Graph lifecycle notifications ------------------------------------------------------------


async def test_graph_subscriptions_ask_for_lifecycle_notifications_and_a_removed_one_is_created_again(graph_keeper: Any) -> None:
    intake, keeper, fake = graph_keeper
    [first] = fake.subscriptions.values()
    assert first.get("lifecycleNotificationUrl") == ADDRESS, "lifecycle notifications are only sent when asked for at creation"
    fake.subscriptions.clear()  # Graph removed it (credentials changed, access revoked) ...
    answer = await post(intake, "graph", lifecycle(first["id"], "subscriptionRemoved"), {"Content-Type": "application/json"})
    assert answer.status_code == 200 and answer.json().get("lifecycle") == 1 and not answer.json().get("ignored")
    await until(lambda: fake.subscriptions, "a new subscription")  # ... and the upkeep makes a new one at once
    [second] = fake.subscriptions.values()
    assert second["clientState"] == SECRETS["graph"] and second["lifecycleNotificationUrl"] == ADDRESS
    await until(lambda: keeper.status_now()[0]["state"] == "active", "the channel active again")
    assert (await healthz(intake))["status"] == "ok"


async def test_graph_reauthorization_renews_at_once_and_missed_shows_a_resync(graph_keeper: Any) -> None:
    intake, keeper, fake = graph_keeper
    [sub] = fake.subscriptions.values()
    answer = await post(intake, "graph", lifecycle(sub["id"], "reauthorizationRequired"), {"Content-Type": "application/json"})
    assert answer.status_code == 200
    await until(lambda: fake.patches == 1, "a renewal (PATCH), which reauthorizes")

    await post(intake, "graph", lifecycle(sub["id"], "missed"), {"Content-Type": "application/json"})
    health = await healthz(intake)
    [channel] = health["webhooks"]["channels"]
    assert channel["state"] == "resync" and "missed" in channel["last_error"] and health["status"] == "degraded"
    assert SECRETS["graph"] not in json.dumps(health)
    unknown = await post(intake, "graph", lifecycle("someone-elses", "subscriptionRemoved"), {"Content-Type": "application/json"})
    assert unknown.status_code == 200 and len(fake.subscriptions) == 1, "another subscription's notice changes nothing here"


# -- #2 one secret lookup for the route and the upkeep ---------------------------------------------


async def test_the_calendar_servers_upkeep_uses_the_secret_its_route_checks(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`mcp-hub server calendar`: the route checks CALENDAR_GRAPH_WEBHOOK_SECRET first; so must the
    subscription's clientState (it carried GRAPH_WEBHOOK_SECRET, and Graph's notifications were refused 401)."""
    from servers.calendar.server import create_server

    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GRAPH_PUSH_ADDRESS", ADDRESS)
    monkeypatch.setenv("CALENDAR_GRAPH_WEBHOOK_SECRET", "the namespace's own")
    monkeypatch.setenv("GRAPH_WEBHOOK_SECRET", "provider-wide")
    fake = FakeGraph()
    graph = backend("graph", fake.handler, GRAPH)
    graph.store = Store(tmp_path / "calendar-idempotency.sqlite", [])
    intake = create_server(graph).webhooks
    [keeper] = intake.keepers
    await keeper.tick()
    [sub] = fake.subscriptions.values()
    assert sub["clientState"] == "the namespace's own"
    note = json.dumps({"value": [{"subscriptionId": sub["id"], "clientState": sub["clientState"], "changeType": "updated",
                                  "resource": "Users/u1/Events/AAMk1", "resourceData": {"id": "AAMk1"}}]}).encode()
    assert (await post(intake, "graph", note, {"Content-Type": "application/json"})).status_code == 200

    monkeypatch.delenv("GRAPH_WEBHOOK_SECRET")  # only the namespace's variable: still kept
    assert keeper.api.secret == "the namespace's own"
    intake.bind("work", provider_wide=lambda: False)  # behind the hub: the route's secret is read when used
    monkeypatch.setenv("WORK_GRAPH_WEBHOOK_SECRET", "set after bind")
    assert keeper.api.secret == "set after bind"


# -- #3 Google's primary calendar under the id list_calendars gives ------------------------------------


async def test_a_change_on_the_primary_calendar_is_recorded_under_its_real_id(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from servers.calendar.providers.google import GoogleCalendar
    from servers.calendar.server import create_server

    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GOOGLE_WEBHOOK_SECRET", "tok")

    def google(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/users/me/calendarList"):
            return httpx.Response(200, json={"items": [
                {"id": "team@group.calendar.google.com", "summary": "Team", "timeZone": "UTC", "accessRole": "writer"},
                {"id": "alice@example.com", "summary": "alice@example.com", "primary": True, "timeZone": "UTC",
                 "accessRole": "owner"}]})
        return httpx.Response(404, json={"error": {"message": "not found"}})

    server = create_server(GoogleCalendar(http(GOOGLE, google)))
    intake, names = server.webhooks, ("primary", "team%40group.calendar.google.com")
    for n, name in enumerate(names):
        answer = await post(intake, "google", b"", {
            "X-Goog-Channel-Token": "tok", "X-Goog-Channel-ID": "chan-1", "X-Goog-Message-Number": str(n + 2),
            "X-Goog-Resource-State": "exists", "X-Goog-Resource-Id": "res-1",
            "X-Goog-Resource-URI": f"{GOOGLE}/calendars/{name}/events?alt=json"})
        assert answer.status_code == 200
    await intake.processor.drain()
    page = await server.change_feed.page(None, None, 100, None)
    assert [(c.kind, c.record_id) for c in page.changes] == [("calendar", "alice@example.com"),
                                                             ("calendar", "team@group.calendar.google.com")]


# -- #4 a mixed Graph batch ------------------------------------------------------------------------------


async def test_a_graph_batch_mixing_subscriptions_keeps_our_items_and_skips_the_others(tmp_path: Path,
                                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    set_secrets(monkeypatch)
    intake, feed = make_intake(tmp_path, domain="calendar")

    def item(state: str, event: str) -> dict[str, Any]:
        return {"subscriptionId": f"sub-{state[:4]}", "clientState": state, "changeType": "updated",
                "resource": f"Users/u1/Events/{event}", "resourceData": {"id": event}}

    mixed = json.dumps({"value": [item("an old subscription's", "theirs"), item(SECRETS["graph"], "ours")]}).encode()
    answer = await post(intake, "graph", mixed, {"Content-Type": "application/json"})
    assert answer.status_code == 200 and answer.json()["duplicate"] is False
    assert len(await intake.log.list()) == 1
    await intake.processor.drain()
    page = await feed.page(None, None, 100, None)
    assert [(c.kind, c.record_id) for c in page.changes] == [("event", "ours")]
    none_ours = json.dumps({"value": [item("an old subscription's", "theirs")]}).encode()
    refused = await post(intake, "graph", none_ours, {"Content-Type": "application/json"})
    assert refused.status_code == 401 and "clientState" in refused.json()["error"]


async def test_only_our_graph_items_are_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_secrets(monkeypatch)
    intake, _ = make_intake(tmp_path, domain="calendar")
    theirs = {"subscriptionId": "x", "clientState": "another app's", "changeType": "updated",
              "resource": "Users/u2/Events/secret-id", "resourceData": {"id": "secret-id"}}
    ours = {"subscriptionId": "y", "clientState": SECRETS["graph"], "changeType": "created", "resource": "me/events/e1",
            "resourceData": {"id": "e1"}}
    assert (await post(intake, "graph", json.dumps({"value": [theirs, ours]}).encode(),
                       {"Content-Type": "application/json"})).status_code == 200
    [claimed] = await intake.log.due(time.time())
    assert b"secret-id" not in claimed["payload"] and b"e1" in claimed["payload"]


# -- #5 equal bodies, distinct delivery ids ------------------------------------------------------------


async def test_a_resource_listed_twice_keeps_one_channel_across_restarts(tmp_path: Path) -> None:
    fake = FakeGoogle()
    env = {"GOOGLE_PUSH_ADDRESS": "https://hooks.example/webhooks/google", "GOOGLE_WEBHOOK_SECRET": "tok",
           "GOOGLE_PUSH_CALENDARS": "ada@example.com, ada@example.com,ada@example.com"}
    google = backend("google", fake.handler, GOOGLE)
    for start in range(3):  # each start is an upkeep round on the same state file
        [keeper] = keepers_from_env(google, Store(tmp_path / "calendar-events.sqlite", []), env)
        await keeper.tick()
        assert len(fake.open) == 1, f"start {start}: live channels {len(fake.open)}"
    assert [c["resource"] for c in await keeper.status()] == ["ada@example.com"]

    graph = FakeGraph()
    [keeper] = keepers_from_env(backend("graph", graph.handler, GRAPH), Store(tmp_path / "g.sqlite", []),
                                {"GRAPH_PUSH_ADDRESS": ADDRESS, "GRAPH_WEBHOOK_SECRET": "s",
                                 "GRAPH_PUSH_RESOURCES": "me/events,/me/events, me/events"})
    await keeper.tick()
    await keeper.tick()
    assert [s["resource"] for s in graph.subscriptions.values()] == ["me/events"]


async def test_a_channel_no_longer_wanted_is_stopped(tmp_path: Path) -> None:
    fake = FakeGraph()
    store = Store(tmp_path / "g.sqlite", [])
    api = GraphSubscriptions(http(GRAPH, fake.handler), ADDRESS, "s")
    await ChannelKeeper(store, api, ["me/events", "/me/events"]).tick()  # as an earlier version kept them: two
    assert len(fake.subscriptions) == 2
    [keeper] = keepers_from_env(type("B", (), {"name": "graph", "http": api.http})(), store,
                                {"GRAPH_PUSH_ADDRESS": ADDRESS, "GRAPH_WEBHOOK_SECRET": "s",
                                 "GRAPH_PUSH_RESOURCES": "me/events,/me/events"})
    await keeper.tick()
    assert [s["resource"] for s in fake.subscriptions.values()] == ["me/events"], "the other spelling's is deleted"


async def test_a_change_on_a_graph_occurrence_is_recorded_under_its_series_id(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The tools name an occurrence or exception by its series' id (`seriesMasterId`); a notification
    names the occurrence's own id."""
    from servers.calendar.providers.graph import GraphCalendar
    from servers.calendar.server import create_server

    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    set_secrets(monkeypatch)
    asked: list[str] = []

    def graph(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        events = {"occ-1": {"id": "occ-1", "type": "exception", "seriesMasterId": "master-1"},
                  "single-1": {"id": "single-1", "type": "singleInstance"}}
        found = events.get(request.url.path.rsplit("/", 1)[-1])
        if request.method == "GET" and found is not None:
            return httpx.Response(200, json=found)
        return httpx.Response(404, json={"error": {"code": "ErrorItemNotFound", "message": "not found"}})

    server = create_server(GraphCalendar(http(GRAPH, graph), GRAPH))
    intake = server.webhooks

    def note(event: str, change: str) -> dict[str, Any]:
        return {"subscriptionId": "s", "clientState": SECRETS["graph"], "changeType": change,
                "resource": f"Users/u1/Events/{event}", "resourceData": {"id": event}}

    body = json.dumps({"value": [note("occ-1", "updated"), note("single-1", "updated"), note("gone-1", "updated"),
                                 note("occ-1", "updated"), note("old-1", "deleted")]}).encode()
    assert (await post(intake, "graph", body, {"Content-Type": "application/json"})).status_code == 200
    await intake.processor.drain()
    page = await server.change_feed.page(None, None, 100, None)
    # an item twice in one batch is one change (attack53 F1: each item is a delivery, keyed by its canonical JSON)
    assert [c.record_id for c in page.changes] == ["master-1", "single-1", "gone-1", "old-1"]
    assert len(asked) == 3, "each id looked up once; a deleted event is not looked up"

    foreign = {"subscriptionId": "other-app", "clientState": "theirs", "changeType": "created", "resource": "Users/u1/Events/x"}
    for again in (json.dumps({"value": [note("single-1", "updated")]}, indent=2),  # alone, re-serialised
                  json.dumps({"value": [foreign, dict(reversed(note("single-1", "updated").items()))]})):  # re-batched
        answer = await post(intake, "graph", again.encode(), {"Content-Type": "application/json"})
        assert answer.status_code == 200 and answer.json()["duplicate"] is True, answer.json()
    await intake.processor.drain()
    assert len((await server.change_feed.page(None, None, 100, None)).changes) == 4


async def test_a_graph_subscription_made_without_lifecycle_notifications_is_replaced_once(tmp_path: Path) -> None:
    """Graph cannot add `lifecycleNotificationUrl` to a subscription by PATCH: one kept from before is
    replaced (new, then the old deleted), once."""
    from servers.kit.webhooks.channels import fingerprint

    fake = FakeGraph()
    store = Store(tmp_path / "g.sqlite", [])
    api = GraphSubscriptions(http(GRAPH, fake.handler), ADDRESS, "s")
    keeper = ChannelKeeper(store, api, ["me/events"])
    now = time.time()
    await keeper.tick(now)
    old_sid = next(iter(fake.subscriptions))
    fake.subscriptions[old_sid].pop("lifecycleNotificationUrl")  # as an earlier version made it
    store._db.execute("UPDATE push_channels SET made_with = ?", (fingerprint("graph", ADDRESS, "s"),))  # noqa: SLF001
    assert keeper.status_now()[0]["state"] == "error"
    await keeper.tick(now + 120)
    [sub] = fake.subscriptions.values()
    assert sub["lifecycleNotificationUrl"] == ADDRESS and old_sid not in {s for s in fake.subscriptions if s != sub["id"]}
    await keeper.tick(now + 240)
    assert len(fake.subscriptions) == 1 and keeper.status_now()[0]["state"] == "active"
