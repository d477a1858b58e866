"""A downstream log message crossing replicas (`hub.cluster.notify`) carries the audience the replica
that received it judged (outside review, cluster round 12): the delivering replica has no calls in
flight to judge by, so a line a shared server wrote during alice's call on replica A reached bob's
stream on replica B. A per-client session's message is never published (it raised a TypeError in the
relay, and was lost even locally).

Module level: a `ClusterNotifier` whose Redis is never reached (`publish` is captured), and a real
`LogRelay` over an in-process hub with stand-in client connections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mcp_types as types
import pytest

from hub.auth.principal import Principal, identity
from hub.config import parse_config
from hub.hub import Hub
from tests.cluster_support import CapturedNotifier

pytestmark = pytest.mark.anyio
ALICE, BOB = Principal("alice", ("*",), "api_key"), Principal("bob", ("*",), "api_key")
LINE = types.LoggingMessageNotificationParams(level="info", data="alice-private-42", logger="fx")


class _Connection:
    """Stands for a client connection that asked for log messages."""

    def __init__(self) -> None:
        self.heard: list[Any] = []

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        self.heard.append(params["data"])


async def test_a_log_line_crosses_replicas_with_its_audience_and_a_per_client_one_stays(tmp_path: Path) -> None:
    config = parse_config({"hub": {"data_dir": str(tmp_path)}, "mcpServers": {"n": {"module": "tests.fixtures.inproc_server:server"}}})
    async with Hub(config) as hub:
        await hub.await_first_listing()
        downstream = hub.downstreams["n"]
        notifier = CapturedNotifier(hub)
        locally: list[tuple[Any, ...]] = []

        async def local(*args: Any) -> None:
            locally.append(args)

        relay = notifier._publishing(local, "log")  # noqa: SLF001
        hub.log_relay.audience = lambda *_: frozenset({identity(ALICE)})  # type: ignore[method-assign]
        await relay(downstream, LINE)
        assert notifier.events[-1]["callers"] == [["api_key", "alice"]]
        hub.log_relay.audience = lambda *_: frozenset()  # type: ignore[method-assign]
        await relay(downstream, LINE)
        assert len(notifier.events) == 1  # several callers' calls in flight: nobody's, not published
        owner = object()
        await relay(downstream, LINE, owner)
        assert locally[-1] == (downstream, LINE, owner) and len(notifier.events) == 1  # per-client: local only

        # Delivered on another replica: to alice's client only, although no call is in flight there.
        del hub.log_relay.audience
        alices, bobs = _Connection(), _Connection()
        hub.log_relay._clients[alices] = ("debug", ALICE)  # noqa: SLF001 — as `logging/setLevel` records them
        hub.log_relay._clients[bobs] = ("debug", BOB)  # noqa: SLF001
        await notifier._deliver({**notifier.events[0], "id": "x", "origin": "replica-a"})  # noqa: SLF001
        assert alices.heard == ["alice-private-42"] and bobs.heard == []
        await notifier._deliver({**notifier.events[0], "callers": None})  # noqa: SLF001 — the server's own news
        assert alices.heard == ["alice-private-42"] * 2 and bobs.heard == ["alice-private-42"]
