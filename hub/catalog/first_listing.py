"""The first list answer waits, briefly, for servers still making their first connection attempt.

`mcp-hub serve` answers `initialize` at once instead of waiting up to `connect_timeout_s` for a
server hanging at its handshake (clients such as Cline give up after ~5 s). The first `tools/list`
(or a call to a name not known yet) then waits until every server has made its first attempt, or
`hub.list_wait_s` (default 2 s) has passed since that first ask; later asks never wait. A server
that arrives after that is added to the catalog and announced with `list_changed`. Servers whose
listing is already in the catalog (a built-in domain's remembered listing) are not waited for.
"""

from __future__ import annotations

from collections.abc import Iterable

import anyio

from hub.downstream.connection import Downstream


class FirstListing:
    """Bounded wait for the servers a first list answer should include."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self.settled = False
        """True once the first wait is over (everyone arrived, or the bound passed): no one waits again."""
        self._until: float | None = None

    async def wait(self, downstreams: Iterable[Downstream], wait_s: float | None = None) -> None:
        """Wait until each of `downstreams` has made its first attempt, at most `wait_s` (default
        `hub.list_wait_s`) from the first call of this method; concurrent callers share that bound."""
        if self.settled:
            return
        if self._until is None:
            self._until = anyio.current_time() + (self.wait_s if wait_s is None else wait_s)
        with anyio.move_on_after(max(0.0, self._until - anyio.current_time())):
            for downstream in downstreams:
                await downstream.first_attempt.wait()
        self.settled = True
