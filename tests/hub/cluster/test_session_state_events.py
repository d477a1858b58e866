"""The events that carry a session's state between replicas (`hub.cluster.session_state`), at module
level: a `ClusterNotifier` whose Redis is never reached (`publish` captured) over an in-process hub,
and a stand-in connection of a sealed session. A change made on another replica reaches the copy
held here, under the principal held here; a task's status reaches the session's copy here; nothing
reaches a session not held here, and nothing is published for a session that never moves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hub.auth.principal import Principal
from hub.cluster.notify import ClusterNotifier
from hub.cluster.session_state import SessionState, session_digest
from hub.config import parse_config
from hub.hub import Hub

pytestmark = pytest.mark.anyio
ALICE = Principal("alice", ("*",), "api_key")
STATUS = {"taskId": "n:t1@aaaaaaaaaaaa.0123456789abcdef", "status": "completed"}


class _Connection:
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.heard: list[tuple[str, Any]] = []

    async def notify(self, method: str, params: Any) -> None:
        self.heard.append((method, params))


class _Captured(ClusterNotifier):
    def __init__(self, hub: Any) -> None:
        super().__init__(hub, "redis://127.0.0.1:9/0")  # never connected: nothing here reaches Redis
        self.events: list[dict[str, Any]] = []

    async def publish(self, event: dict[str, Any]) -> None:
        self.events.append(json.loads(json.dumps(event)))  # as it crosses Redis


async def test_changes_and_notifications_reach_the_sessions_copy_held_here(tmp_path: Path) -> None:
    config = parse_config({"hub": {"data_dir": str(tmp_path)}, "mcpServers": {"n": {"module": "tests.fixtures.inproc_server:server"}}})
    async with Hub(config) as hub:
        notifier = _Captured(hub)
        state = SessionState(hub, notifier, 60)
        here, elsewhere, local = _Connection("s1.here"), _Connection("s1.elsewhere"), _Connection("0123abcd")
        await state.hold(here, ALICE, adopted=False)  # type: ignore[arg-type]
        digest = session_digest(here)
        assert digest is not None and session_digest(local) is None

        await state._changed({"session": digest, "name": "level", "value": "loud"})  # noqa: SLF001 — not a level
        assert not hub.log_relay.listens(here)
        await state._changed({"session": digest, "name": "level", "value": "debug"})  # noqa: SLF001
        assert hub.log_relay.listens(here) and hub.log_relay._clients[here] == ("debug", ALICE)  # noqa: SLF001
        await state._changed({"session": session_digest(elsewhere), "name": "level", "value": "debug"})  # noqa: SLF001
        assert not hub.log_relay.listens(elsewhere)  # not held here

        await state.notify_elsewhere(here, "notifications/tasks/status", STATUS)
        await state.notify_elsewhere(local, "notifications/tasks/status", STATUS)  # never moves: not published
        await state.notify_elsewhere(here, "notifications/message", {"data": "x"})  # not carried this way
        assert [event["session"] for event in notifier.events] == [digest]
        await state._notified(notifier.events[0])  # noqa: SLF001 — as another replica receives it
        await state._notified({**notifier.events[0], "method": "notifications/message"})  # noqa: SLF001
        assert here.heard == [("notifications/tasks/status", STATUS)]
