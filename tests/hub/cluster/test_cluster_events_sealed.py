"""What crosses Redis between replicas is this deployment's only (outside review, cluster round 26).

- #2 (siblings): a session's carried state (`session_state`) and a task status passed to its copies
  (`session_notify`) are sealed with the shared secret; an unsealed, foreign or replayed event is
  ignored (before, anyone publishing on Redis changed a session's log level or put a task status on
  its stream). Module level: a `ClusterNotifier` whose `publish` is captured, a stand-in connection.
- #4: deployments sharing one Redis server — another db number, or another secret — do not hear each
  other (pub/sub ignores the db). Three in-process hubs on a real `redis-server`."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import anyio
import pytest

from hub.auth.principal import Principal
from hub.cluster.notify import ClusterNotifier
from hub.cluster.session_state import SessionState, session_digest
from hub.config import parse_config
from hub.hub import Hub
from tests.haproxy_cluster import Redis
from tests.cluster_support import CapturedNotifier, HeardConnection

pytestmark = pytest.mark.anyio
ALICE = Principal("alice", ("*",), "api_key")
STATUS = {"taskId": "n:t1@aaaaaaaaaaaa.0123456789abcdef", "status": "completed"}
SERVERS = {"n": {"module": "tests.fixtures.inproc_server:server"}}


async def test_session_events_are_taken_only_when_sealed_by_a_replica_of_this_hub(tmp_path: Path) -> None:
    secret = secrets.token_urlsafe(32)
    config = parse_config({"hub": {"data_dir": str(tmp_path), "cluster": {"session_secrets": [secret]}},
                           "mcpServers": SERVERS})
    other = parse_config({"hub": {"data_dir": str(tmp_path), "cluster": {"session_secrets": ["another-" + secret]}},
                          "mcpServers": SERVERS})
    async with Hub(config) as hub, Hub(other) as foreign_hub:
        notifier = CapturedNotifier(hub)
        here_state, there_state = SessionState(hub, notifier, 60), SessionState(hub, notifier, 60)
        foreign = SessionState(foreign_hub, CapturedNotifier(foreign_hub), 60)
        here = HeardConnection("s1.here")
        await here_state.hold(here, ALICE, adopted=False)  # type: ignore[arg-type]
        digest = session_digest(here)

        await here_state._changed({"type": "session_state", "session": digest, "name": "level", "value": "debug"})  # noqa: SLF001
        assert not hub.log_relay.listens(here), "an unsealed level change from Redis was applied"
        await here_state._changed(foreign._sealed({"type": "session_state", "session": digest, "name": "level",  # noqa: SLF001
                                                   "value": "debug"}))
        assert not hub.log_relay.listens(here), "a level change not sealed by a replica of this hub was applied"
        first = there_state._sealed({"type": "session_state", "session": digest, "name": "level", "value": "debug"})  # noqa: SLF001
        await here_state._changed(first)  # noqa: SLF001 — as another replica of this hub sends it
        assert hub.log_relay._clients[here][0] == "debug"  # noqa: SLF001
        await here_state._changed(there_state._sealed({"type": "session_state", "session": digest, "name": "level",  # noqa: SLF001
                                                       "value": "error"}))
        await here_state._changed(first)  # noqa: SLF001 — replayed: ignored
        assert hub.log_relay._clients[here][0] == "error"  # noqa: SLF001

        await here_state._notified({"type": "session_notify", "session": digest,  # noqa: SLF001
                                    "method": "notifications/tasks/status", "params": {**STATUS, "status": "failed"}})
        await there_state.notify_elsewhere(HeardConnection("s1.here"), "notifications/tasks/status", STATUS)
        assert "sealed" in notifier.events[-1] and "params" not in notifier.events[-1]
        await here_state._notified(notifier.events[-1])  # noqa: SLF001
        assert here.heard == [("notifications/tasks/status", STATUS)]


async def _connected(hub: Hub) -> None:
    with anyio.fail_after(10):
        while hub.cluster_notify is None or not hub.cluster_notify.connected:
            await anyio.sleep(0.02)


async def test_deployments_on_one_redis_server_do_not_hear_each_other(tmp_path: Path) -> None:
    server = Redis()
    try:
        secret = secrets.token_urlsafe(32)

        def config(name: str, db: int, key: str) -> Any:
            return parse_config({"hub": {"data_dir": str(tmp_path / name), "cluster": {
                "redis_url": f"redis://127.0.0.1:{server.port}/{db}", "session_secrets": [key]}}, "mcpServers": SERVERS})

        async with (Hub(config("x", 0, secret)) as other_db, Hub(config("z", 1, "z-" + secret)) as other_secret,
                    Hub(config("y", 1, secret)) as y, Hub(config("y2", 1, secret)) as y2):
            for hub in (other_db, other_secret, y, y2):
                await _connected(hub)
            heard: list[str] = []

            async def sink(kind: Any) -> None:
                heard.append(kind)

            assert y.cluster_notify is not None
            y.cluster_notify.on_list_changed(sink)
            for hub, kind in ((other_db, "tools"), (other_secret, "resources"), (y2, "prompts")):
                assert hub.cluster_notify is not None
                await hub.cluster_notify.publish_list_changed(kind)  # type: ignore[arg-type]
            with anyio.fail_after(10):
                while "prompts" not in heard:  # the own deployment's, published last
                    await anyio.sleep(0.02)
            assert heard == ["prompts"], f"another deployment's events reached this one: {heard}"
    finally:
        server.stop()


async def test_every_event_crosses_redis_sealed_and_an_unsealed_one_is_dropped(tmp_path: Path) -> None:
    """Outside review recheck26 N2: a plain `log` (or `resource_updated`, `list_changed`) event anyone able to
    publish on Redis sent reached clients as a server's own, and real log lines crossed in clear. With the
    deployment's secrets every event is sealed, and one not sealed by its replicas is dropped."""
    secret = secrets.token_urlsafe(32)
    config = parse_config({"hub": {"data_dir": str(tmp_path), "cluster": {"session_secrets": [secret]}}, "mcpServers": SERVERS})
    async with Hub(config) as hub:
        here = ClusterNotifier(hub, "redis://127.0.0.1:9/0", "c", [secret])
        there = ClusterNotifier(hub, "redis://127.0.0.1:9/0", "c", [secret])
        foreign = ClusterNotifier(hub, "redis://127.0.0.1:9/0", "c", ["another-" + secret])
        heard: list[dict[str, Any]] = []

        async def handler(event: dict[str, Any]) -> None:
            heard.append(event)

        here.on_event("probe", handler)
        line = {"type": "probe", "params": {"data": "a log line the server never wrote"}}
        await here.deliver(json.dumps({**line, "id": "forged-1", "origin": "x"}))
        await here.deliver(foreign._body(line))  # noqa: SLF001 — as another deployment's replica sends it
        assert heard == [] and here.delivered == 0, "an event not sealed by this deployment's replicas was delivered"
        sealed = there._body(line)  # noqa: SLF001
        assert "never wrote" not in sealed, "the event crossed Redis in clear"
        await here.deliver(sealed)
        await here.deliver(sealed)  # replayed: dropped
        assert [event["params"] for event in heard] == [line["params"]] and here.delivered == 1
