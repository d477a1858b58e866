"""The one `subscriptions/listen` stream the hub holds on each 2026-07-28 server (a mixin of
`hub.relay.subscriptions.ResourceSubscriptions`): it names every URI the hub's clients hold there, and
is replaced — the new stream acknowledged first, then the old one closed, so no update falls in a gap —
whenever that set changes. Rules: `hub.relay.subscriptions`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from hub.downstream.request_deadline import request_deadline
from hub.downstream.serials import session_serial

if TYPE_CHECKING:
    from hub.downstream.connection import Downstream
    from hub.hub import Hub

__all__ = ["ServerStreams", "ServerStream", "hold_stream"]


@dataclass
class ServerStream:
    """The `subscriptions/listen` stream the hub holds on one 2026-07-28 server."""

    uris: set[str] = field(default_factory=set)
    scope: anyio.CancelScope | None = None
    lock: anyio.Lock = field(default_factory=anyio.Lock)


class ServerStreams:
    """The listen streams held on 2026-07-28 servers (state on `ResourceSubscriptions`)."""

    _hub: Hub
    _downstream: dict[str, tuple[str, str, int]]
    _streams: dict[str, ServerStream]

    async def _ensure_streamed(self, downstream: Downstream, items: list[tuple[str, str]]) -> None:
        """Add (exposed, original) URIs to the listen stream held on a 2026-07-28 server."""
        session = session_serial(downstream.client().session)
        fresh = [(uri, original) for uri, original in items if self._downstream.get(uri) != (downstream.name, original, session)]
        if not fresh:
            return
        stream = self._streams.setdefault(downstream.name, ServerStream())
        added = {original for _, original in fresh} - stream.uris
        stream.uris |= added
        try:
            await self._relisten(downstream, stream)
        except BaseException:
            stream.uris -= added  # not held: the next stream does not name them
            raise
        for uri, original in fresh:
            self._downstream[uri] = (downstream.name, original, session)

    async def _relisten(self, downstream: Downstream, stream: ServerStream) -> None:
        """Open a listen stream on `downstream` for `stream.uris` (acknowledged before this returns),
        then close the one it replaces; with no URIs left, just close it. If the new one cannot be
        opened, the old one stays (its holders keep their updates) and the error is raised."""
        async with stream.lock:
            previous, fresh = stream.scope, None
            if stream.uris:
                group = self._hub._task_group  # noqa: SLF001 — streams live as long as the hub's servers
                if group is None:
                    raise RuntimeError("the hub is not running")
                seconds, _ = request_deadline(self._hub.config.hub, downstream.config, "subscriptions/listen")
                with anyio.fail_after(seconds):
                    fresh = await group.start(hold_stream, downstream, sorted(stream.uris))
            stream.scope = fresh
            if previous is not None:
                previous.cancel()


async def hold_stream(downstream: Downstream, uris: list[str], *,
                      task_status: anyio.abc.TaskStatus[anyio.CancelScope] = anyio.TASK_STATUS_IGNORED) -> None:
    """Hold one `subscriptions/listen` stream on a 2026-07-28 server until cancelled. Its updates also
    reach the downstream's message handler (the SDK tees listen frames), which relays them: the
    events read here are only drained."""
    with anyio.CancelScope() as scope:
        started = False
        try:
            async with downstream.client().listen(resource_subscriptions=uris) as subscription:
                task_status.started(scope)
                started = True
                async for _event in subscription:
                    pass
        except Exception as exc:
            if not started:
                raise
            downstream.log.info("resource subscription stream ended: %s (renewed when it reconnects)", type(exc).__name__)
