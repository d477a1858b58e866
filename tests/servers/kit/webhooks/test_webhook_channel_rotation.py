"""Outside review, events round 18, #4: a push channel remembers what it was made with (a fingerprint
of its provider, push address and secret, never the secret), and the upkeep replaces — opens anew,
then stops the old — a channel whose secret (Graph clientState, Google token) or address changed,
instead of only extending it. Until then, and while every delivery on its route is refused, the
channel shows as failing in /healthz. Fakes of Graph's /subscriptions and Google's watch API
(`test_webhook_channels`)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from servers.kit.store import Store
from servers.kit.webhooks import EventLog, Intake, Processor
from servers.kit.webhooks.channels import ChannelKeeper, GoogleChannels, GraphSubscriptions
from servers.kit.webhooks.log import events_path
from servers.kit.webhooks.serve import with_webhooks
from tests.servers.kit.webhooks.test_webhook_channels import FakeGoogle, FakeGraph, http

pytestmark = pytest.mark.anyio
GRAPH = "https://graph.microsoft.com/v1.0"
GOOGLE = "https://www.googleapis.com/calendar/v3"
ADDRESS = "https://hooks.example/webhooks/graph"
OLD, NEW = "graph-client-state-OLD-18", "graph-client-state-NEW-18"


def graph_keeper(store: Store, fake: FakeGraph, secret: str, address: str = ADDRESS) -> ChannelKeeper:
    """A keeper as one server start makes it (the secret and address from that start's environment)."""
    return ChannelKeeper(store, GraphSubscriptions(http(GRAPH, fake), address, secret), ["me/events"])


async def test_a_rotated_graph_secret_replaces_the_subscription(tmp_path: Path) -> None:
    fake, store = FakeGraph(), Store(tmp_path / "calendar-events.sqlite", [])
    now = time.time()
    await graph_keeper(store, fake, OLD).tick(now)
    [old] = fake.subscriptions
    assert fake.subscriptions[old]["clientState"] == OLD

    rotated = graph_keeper(store, fake, NEW)  # the next start, with the new secret
    [shown] = rotated.status_now()
    assert shown["state"] == "error" and "another graph webhook secret or push address" in shown["last_error"]
    await rotated.tick(now + 10)
    [live] = fake.subscriptions.values()
    assert live["clientState"] == NEW and old not in fake.subscriptions, "a new one, the old deleted"
    assert fake.patches == 0, "a PATCH would keep the old clientState"
    assert [c["state"] for c in await rotated.status()] == ["active"]
    assert [c["last_error"] for c in rotated.status_now()] == [None]

    await rotated.tick(now + 20)  # nothing changed since: left alone
    assert list(fake.subscriptions.values()) == [live] and fake.patches == 0


async def test_a_moved_push_address_replaces_the_subscription(tmp_path: Path) -> None:
    fake, store = FakeGraph(), Store(tmp_path / "calendar-events.sqlite", [])
    now = time.time()
    await graph_keeper(store, fake, OLD).tick(now)
    moved = "https://hub.example/webhooks/calendar/graph"  # a standalone server moved behind the hub
    await graph_keeper(store, fake, OLD, moved).tick(now + 10)
    [live] = fake.subscriptions.values()
    assert live["notificationUrl"] == moved and fake.patches == 0


async def test_a_changed_google_token_replaces_the_channel_at_once(tmp_path: Path) -> None:
    fake, store = FakeGoogle(), Store(tmp_path / "calendar-events.sqlite", [])
    now = time.time()
    await ChannelKeeper(store, GoogleChannels(http(GOOGLE, fake), ADDRESS, "tok-old"), ["primary"]).tick(now)
    [first] = fake.open
    keeper = ChannelKeeper(store, GoogleChannels(http(GOOGLE, fake), ADDRESS, "tok-new"), ["primary"])
    await keeper.tick(now + 10)  # days before its renewal would be due
    assert [w["token"] for w in fake.watches] == ["tok-old", "tok-new"] and fake.stopped == [first]
    assert len(fake.open) == 1 and [c["state"] for c in await keeper.status()] == ["active"]


async def test_a_graph_subscription_whose_old_one_cannot_be_deleted_still_moves_on(tmp_path: Path) -> None:
    """The new subscription is what counts; an old one that cannot be deleted ends at its expiry."""
    class NoDelete(FakeGraph):
        def handler(self, request: httpx.Request) -> httpx.Response:
            if request.method == "DELETE":
                return httpx.Response(403, json={"error": {"code": "Forbidden", "message": "not allowed"}})
            return super().handler(request)

    fake, store = NoDelete(), Store(tmp_path / "calendar-events.sqlite", [])
    now = time.time()
    await graph_keeper(store, fake, OLD).tick(now)
    keeper = graph_keeper(store, fake, NEW)
    await keeper.tick(now + 10)
    assert [s["clientState"] for s in fake.subscriptions.values()] == [OLD, NEW], "the old one left to expire"
    assert [c["state"] for c in await keeper.status()] == ["active"]


async def test_a_channel_kept_from_before_fingerprints_is_replaced_once(tmp_path: Path) -> None:
    """A state file written by an earlier version (no `made_with` column): what made it is unknown."""
    path = tmp_path / "calendar-events.sqlite"
    store = Store(path, [])
    fake = FakeGraph()
    now = time.time()
    await graph_keeper(store, fake, NEW).tick(now)
    [sid] = fake.subscriptions

    def to_old_schema(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE old AS SELECT provider, resource, channel_id, remote_id, expires_at, state, last_error,"
                   " failures, next_try_at, renewed_at FROM push_channels")
        db.execute("DROP TABLE push_channels")
        db.execute("ALTER TABLE old RENAME TO push_channels")

    await store.run(to_old_schema)
    keeper = graph_keeper(store, fake, NEW)
    assert [c["state"] for c in keeper.status_now()] == ["error"], "not known to be right"
    await keeper.tick(now + 10)
    [replaced] = fake.subscriptions
    assert replaced != sid and fake.subscriptions[replaced]["clientState"] == NEW
    await keeper.tick(now + 20)
    assert list(fake.subscriptions) == [replaced], "once"


async def test_the_state_file_keeps_a_fingerprint_never_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "calendar-events.sqlite"
    store = Store(path, [])
    await graph_keeper(store, FakeGraph(), NEW).tick(time.time())
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # noqa: SLF001 — everything in the main file
    raw = path.read_bytes()
    assert NEW.encode() not in raw and ADDRESS.encode() not in raw
    [made_with] = store._db.execute("SELECT made_with FROM push_channels").fetchone()  # noqa: SLF001
    assert made_with and NEW not in made_with


async def test_healthz_shows_a_channel_whose_deliveries_keep_being_refused(tmp_path: Path) -> None:
    """A Graph subscription made elsewhere with another clientState (this server's fingerprint matches
    its own record): every notification is refused; /healthz says so, and one accepted clears it."""
    from tests.webhook_support import signed

    fake = FakeGraph()
    log = EventLog(events_path(tmp_path, "calendar"))
    intake = Intake("calendar", ("graph",), log, Processor(log, None), secrets=lambda provider: NEW)
    intake.keepers = [graph_keeper(log.store, fake, NEW)]
    await intake.keepers[0].tick(time.time())
    app = with_webhooks(Starlette(), type("Server", (), {"webhooks": intake})())
    [sid] = fake.subscriptions

    def note(state: str) -> bytes:
        return (b'{"value": [{"subscriptionId": "%s", "clientState": "%s", "changeType": "updated",'
                b' "resource": "Users/u1/Events/AAMk1", "resourceData": {"id": "AAMk1"}}]}' % (sid.encode(), state.encode()))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        for _ in range(5):
            refused = await client.post("/webhooks/graph", content=note(OLD), headers={"content-type": "application/json"})
            assert refused.status_code == 401
        health = (await client.get("/healthz")).json()
        assert health["status"] == "degraded"
        [channel] = health["webhooks"]["channels"]
        assert channel["state"] == "error" and "5 graph deliveries" in channel["last_error"]
        assert OLD not in str(health) and NEW not in str(health)
        assert [c["state"] for c in intake.channels_now()] == ["error"], "the hub's /healthz too"

        good = note(NEW)
        accepted = await client.post("/webhooks/graph", content=good, headers={"content-type": "application/json",
                                                                              **signed("graph", good)})
        assert accepted.status_code == 200, accepted.text
        health = (await client.get("/healthz")).json()
    assert health["status"] == "ok" and health["webhooks"]["channels"][0]["state"] == "active"
