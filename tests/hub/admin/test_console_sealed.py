"""Console sessions sealed into their cookie and console actions signed for the other replicas
(outside review, cluster round 18 #3): what any replica sharing `hub.cluster.session_secrets` accepts,
and what it refuses (altered, foreign, too old, idle, signed out, unsigned). No processes."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from starlette.requests import Request

from hub.admin.actions import ActionResult
from hub.admin.cluster_actions import ACTION, PRESENCE, ClusterActions, Outcome
from hub.admin.session import COOKIE, MAX_AGE_S, AdminSession, LoginTokens, SealedSessionStore, SessionStore
from hub.cluster.ended_sessions import EndedSessions

A, B, C = "a" * 40, "b" * 40, "c" * 40


def request_with(cookie: str | None) -> Request:
    headers = [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie else []
    return Request({"type": "http", "method": "GET", "path": "/admin/servers", "headers": headers})


def session(**kw: Any) -> AdminSession:
    return AdminSession("ops", "api_key", "k1", None, ("hub:admin",), **kw)


def test_a_sealed_session_opens_on_every_replica_sharing_a_secret_and_only_there() -> None:
    async def run() -> None:
        a = SealedSessionStore([A, B], EndedSessions(None), idle_s=60)
        b = SealedSessionStore([B, A], EndedSessions(None), idle_s=60)  # a rotation in progress
        stranger = SealedSessionStore([C], EndedSessions(None), idle_s=60)
        made = session(notice="Done")
        cookie = a.create(made)
        opened = await b.get(request_with(cookie))
        assert opened is not None and (opened.sid, opened.csrf, opened.notice) == (made.sid, made.csrf, "Done")
        assert await stranger.get(request_with(cookie)) is None
        altered = cookie[:-3] + ("A" if cookie[-3] != "A" else "B") + cookie[-2:]
        for bad in (altered, "c1." + "A" * 60, made.sid, ""):
            assert await b.get(request_with(bad)) is None
        # Idle and max age hold as they did in memory.
        assert await b.get(request_with(a.create(session(seen=time.time() - 61)))) is None
        assert await b.get(request_with(a.create(session(created=time.time() - MAX_AGE_S - 1)))) is None
        assert await b.get(request_with(a.create(session(notice="x" * 5000)))) is not None  # sheds its notice to fit
        # Signed out on A: refused on A at once (and on B through Redis: tests/hub/cluster/test_cluster_console.py).
        await a.end(made)
        assert await a.get(request_with(cookie)) is None

    anyio.run(run)


def test_without_shared_secrets_sessions_and_login_forms_stay_per_process() -> None:
    async def run() -> None:
        store = SessionStore(60)
        sid = store.create(session())
        assert store.cookie(session()) is None  # nothing re-sent: the session is held here
        assert await store.get(request_with(sid)) is not None
        assert await SessionStore(60).get(request_with(sid)) is None

    anyio.run(run)
    assert not LoginTokens().issued(LoginTokens().issue())
    assert LoginTokens([A, B]).issued(LoginTokens([B]).issue())  # any replica's form, mid-rotation
    assert not LoginTokens([C]).issued(LoginTokens([A]).issue())


class Notifier:
    """Stands in for `ClusterNotifier`: what was published, and the handlers registered."""

    def __init__(self, reached: int | Exception = 0) -> None:
        self.reached, self.sent, self.handlers = reached, [], {}  # type: ignore[var-annotated]

    def on_event(self, kind: str, handler: Any) -> None:
        self.handlers[kind] = handler

    async def publish_counted(self, event: dict[str, Any]) -> int:
        if isinstance(self.reached, Exception):
            raise self.reached
        self.sent.append(event)
        return self.reached


class Local:
    def __init__(self) -> None:
        self.hub = SimpleNamespace(downstreams={"e": object()})
        self.done: list[tuple[str, str]] = []

    async def perform(self, name: str, verb: str, principal: str) -> ActionResult:
        self.done.append((name, verb))
        return ActionResult(verb, name, True, "stopped", "it is stopped and its tools are withdrawn.")  # type: ignore[arg-type]


def test_an_action_from_redis_is_applied_only_when_signed_with_the_shared_secret_and_fresh() -> None:
    async def run() -> None:
        sender_notifier, receiver_notifier = Notifier(reached=1), Notifier()
        # mid-rotation: the sender signs with A, the receiver with B; each verifies with both
        sender = ClusterActions(Local(), sender_notifier, [A, B], reply_wait_s=0.2)  # type: ignore[arg-type]
        local = Local()
        receiver = ClusterActions(local, receiver_notifier, [B, A])  # type: ignore[arg-type]
        await receiver.announce_once()  # the sender knows the receiver alive (console26 #4: only such are counted)
        await sender_notifier.handlers[PRESENCE](receiver_notifier.sent.pop())
        outcome = await sender.perform("e", "disable", "ops")
        assert outcome.reached == 1 and outcome.remote == ()  # nobody answered within 0.2 s: said so
        assert "1 other replica did not answer" in outcome.text()
        event = next(e for e in sender_notifier.sent if e["type"] == ACTION)
        apply = receiver_notifier.handlers[ACTION]
        forged = {**event, "action": {**event["action"], "verb": "restart"}}
        stale = {**event, "action": {**event["action"], "at": time.time() - 600}}
        for bad in (forged, stale, {**event, "sig": "0" * 64}, {k: v for k, v in event.items() if k != "sig"}):
            await apply(bad)
        assert local.done == []
        await apply(event)
        await apply(event)  # a repeat is applied once
        assert local.done == [("e", "disable")]
        assert receiver_notifier.sent[0]["done"]["result"] == "stopped"

    anyio.run(run)


@pytest.mark.parametrize(("reached", "expected"), [
    (None, "Done: disable e — it is stopped and its tools are withdrawn."),  # one replica: as it always was
    (OSError("down"), "Done on this replica only: disable e — it is stopped and its tools are withdrawn. Redis"),
])
def test_the_answer_says_where_the_action_applied(reached: Any, expected: str) -> None:
    async def run() -> Outcome:
        notifier = None if reached is None else Notifier(reached)
        return await ClusterActions(Local(), notifier, [A] if notifier else []).perform("e", "disable", "ops")  # type: ignore[arg-type]

    assert anyio.run(run).text().startswith(expected)


class FakeRedis:
    """What `EndedSessions` asks of Redis, with an outage switch and a restart that forgets everything."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("redis is down")

    async def ttl(self, key: str) -> int:
        self._check()
        return self.keys.get(key, -2)

    def pipeline(self, transaction: bool = False) -> Any:
        redis, writes = self, []

        class Pipe:
            def set(self, key: str, value: bytes, ex: int) -> None:
                writes.append((key, ex))

            async def execute(self) -> None:
                redis._check()
                redis.keys.update(writes)

        return Pipe()


@pytest.mark.anyio
async def test_a_sign_out_survives_a_redis_restart_and_one_made_during_an_outage_is_shared_once_it_is_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-check 20 #2 and #3: a sign-out read from Redis was accepted again on another replica once Redis
    restarted without persistence; one made while Redis was down reached Redis only on this replica's next
    console request, so other replicas accepted the signed-out cookie meanwhile."""
    import hub.admin.session as session_module

    monkeypatch.setattr(session_module, "FLUSH_EVERY_S", 0.05, raising=False)
    redis = FakeRedis()
    here, there = EndedSessions(None), EndedSessions(None)
    here._redis = there._redis = redis  # noqa: SLF001 — two replicas on one Redis
    mine = session()
    cookie = SealedSessionStore(["k" * 32], here).create(mine)
    replica_b = SealedSessionStore(["k" * 32], there)
    assert await replica_b.get(request_with(cookie)) is not None
    redis.down = True
    await SealedSessionStore(["k" * 32], here).end(mine)  # signed out on A while Redis is down
    assert here.unshared == 1
    redis.down = False
    with anyio.fail_after(10):  # written by A on its own, with no further console request there
        while here.unshared:
            await anyio.sleep(0.02)
    assert await replica_b.get(request_with(cookie)) is None, "B learnt the sign-out from Redis"
    redis.keys.clear()  # Redis restarted without persistence
    assert await replica_b.get(request_with(cookie)) is None, "B remembers what it learnt"


async def run_lifespan(app: Any) -> None:
    """Start and stop an ASGI app's lifespan, as uvicorn does."""
    sent = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    heard: list[str] = []

    async def receive() -> dict[str, Any]:
        return sent.pop(0)

    async def send(message: dict[str, Any]) -> None:
        heard.append(message["type"])

    with anyio.fail_after(30):
        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    assert heard == ["lifespan.startup.complete", "lifespan.shutdown.complete"], heard


@pytest.mark.anyio
async def test_the_http_hubs_stop_closes_the_consoles_redis_client_and_writes_an_unshared_sign_out(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The console's sealed sessions kept a Redis client (and a retry loop for sign-outs Redis missed)
    that nothing closed when the hub stopped."""
    from hub.config import parse_config
    from hub.frontends.http.transports import build_http_app
    from hub.frontends.server import build_server
    from hub.hub import Hub

    made: list[EndedSessions] = []
    closed: list[EndedSessions] = []
    real_init = EndedSessions.__init__

    def init(self: EndedSessions, redis_url: str | None) -> None:
        real_init(self, redis_url)
        made.append(self)

    monkeypatch.setattr(EndedSessions, "__init__", init)
    flushed: list[EndedSessions] = []
    real_flush = EndedSessions.flush

    async def aclose(self: EndedSessions) -> None:
        closed.append(self)

    async def flush(self: EndedSessions) -> None:
        flushed.append(self)
        await real_flush(self)

    monkeypatch.setattr(EndedSessions, "aclose", aclose)
    monkeypatch.setattr(EndedSessions, "flush", flush)
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    config = parse_config({"hub": {"cluster": {"session_secrets": [A]}}, "mcpServers": {}})
    async with Hub(config) as hub:
        app = build_http_app(hub, build_server(hub), "http", "127.0.0.1", 8765)
        assert len(made) == 2, made  # the console's and the MCP sessions' (`hub.cluster.sessions`)
        for ended in made:
            ended._unshared["pending"] = time.time() + 60  # a sign-out Redis did not take yet
        await run_lifespan(app)
    assert [e for e in made if e not in closed] == [], "a Redis client was not closed at the stop"
    assert [e for e in made if e not in flushed] == [], "an end Redis had not taken got no last write at the stop"
