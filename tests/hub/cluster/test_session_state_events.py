"""The events that carry a session's state between replicas (`hub.cluster.session_state`), at module
level: a `ClusterNotifier` whose Redis is never reached (`publish` captured) over an in-process hub,
and a stand-in connection of a sealed session. A change made on another replica reaches the copy
held here, under the principal held here; a task's status reaches the session's copy here; nothing
reaches a session not held here, and nothing is published for a session that never moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.auth.principal import Principal
from hub.cluster.session_state import SessionState, session_digest
from hub.config import parse_config
from hub.hub import Hub
from tests.cluster_support import CapturedNotifier, HeardConnection

pytestmark = pytest.mark.anyio
ALICE = Principal("alice", ("*",), "api_key")
STATUS = {"taskId": "n:t1@aaaaaaaaaaaa.0123456789abcdef", "status": "completed"}


async def test_changes_and_notifications_reach_the_sessions_copy_held_here(tmp_path: Path) -> None:
    config = parse_config({"hub": {"data_dir": str(tmp_path)}, "mcpServers": {"n": {"module": "tests.fixtures.inproc_server:server"}}})
    async with Hub(config) as hub:
        notifier = CapturedNotifier(hub)
        state = SessionState(hub, notifier, 60)
        here, elsewhere, local = HeardConnection("s1.here"), HeardConnection("s1.elsewhere"), HeardConnection("0123abcd")
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
