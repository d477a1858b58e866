"""Test support: the `notifications/resources/updated` a client receives, for subscription tests."""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types


class Updates:
    """The `notifications/resources/updated` URIs a client received, in order."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self._arrived = anyio.Event()

    async def handler(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.uris.append(str(message.params.uri))
            self._arrived.set()

    async def wait_for(self, uri: str, timeout: float) -> None:
        with anyio.fail_after(timeout):
            while uri not in self.uris:
                self._arrived = anyio.Event()
                await self._arrived.wait()
