"""A raw 2025-11-25 Streamable HTTP client session for relay tests: every message the hub sends it, on a
call's stream or on its GET stream (opened and closed when the test says), is read; a `roots/list` is
answered with `roots` (when it declared them) and counted in `asked`."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def sse_messages(text: str) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an event-stream text."""
    blocks = text.replace("\r\n", "\n").split("\n\n")
    datas = ("\n".join(line[5:].lstrip() for line in block.splitlines() if line.startswith("data:")) for block in blocks)
    return [json.loads(data) for data in datas if data.strip()]


class RawSession:
    """One client session; `roots` None: it declares no roots."""

    def __init__(self, http: httpx.AsyncClient, url: str, roots: list[str] | None = None, key: str | None = None) -> None:
        self.http, self.url, self.roots = http, url, roots
        self.headers = {**ACCEPT, **({"Authorization": f"Bearer {key}"} if key else {})}
        self.asked = 0
        self._ids = iter(range(1, 1_000_000))
        self._get: anyio.CancelScope | None = None

    async def open(self) -> RawSession:
        capabilities = {"roots": {"listChanged": True}} if self.roots is not None else {}
        await self.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": capabilities,
                                          "clientInfo": {"name": "raw", "version": "1"}})
        await self.notify("notifications/initialized")
        return self

    async def notify(self, method: str) -> None:
        response = await self.http.post(self.url, json={"jsonrpc": "2.0", "method": method}, headers=self.headers)
        assert response.status_code == 202, response.text

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send a request; its answer (`result` or `error`), answering what the hub asks on its stream meanwhile."""
        ident = next(self._ids)
        body = {"jsonrpc": "2.0", "id": ident, "method": method, "params": params}
        async with self.http.stream("POST", self.url, json=body, headers=self.headers) as response:
            assert response.status_code == 200, await response.aread()
            if "mcp-session-id" in response.headers:
                self.headers = {**self.headers, "Mcp-Session-Id": response.headers["mcp-session-id"],
                                "Mcp-Protocol-Version": "2025-11-25"}
            if not response.headers["content-type"].startswith("text/event-stream"):
                return json.loads(await response.aread())  # type: ignore[no-any-return]
            buffer = ""
            async for chunk in response.aiter_text():
                buffer += chunk.replace("\r\n", "\n")
                *blocks, buffer = buffer.split("\n\n")
                for message in sse_messages("\n\n".join(blocks)):
                    if message.get("id") == ident and "method" not in message:
                        return message
                    await self._heard(message)
        raise AssertionError(f"{method}: the stream ended unanswered")

    async def call(self, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """A tool's JSON text answer (the roots tracking fixture's state)."""
        answer = await self.request("tools/call", {"name": tool, "arguments": arguments or {}})
        return json.loads(answer["result"]["content"][0]["text"])  # type: ignore[no-any-return]

    async def _heard(self, message: dict[str, Any]) -> None:
        if message.get("method") == "roots/list" and "id" in message:
            self.asked += 1
            result = {"roots": [{"uri": uri} for uri in self.roots or []]}
            response = await self.http.post(self.url, json={"jsonrpc": "2.0", "id": message["id"], "result": result},
                                            headers=self.headers)
            assert response.status_code == 202, response.text

    async def open_get(self, group: anyio.abc.TaskGroup) -> None:
        """Open the GET stream (in `group`), back once the hub answered it."""
        opened = anyio.Event()

        async def listen() -> None:
            with anyio.CancelScope() as self._get:
                async with self.http.stream("GET", self.url, headers={**self.headers, "Accept": "text/event-stream"}) as stream:
                    assert stream.status_code == 200
                    opened.set()
                    buffer = ""
                    async for chunk in stream.aiter_text():
                        buffer += chunk.replace("\r\n", "\n")
                        *blocks, buffer = buffer.split("\n\n")
                        for message in sse_messages("\n\n".join(blocks)):
                            await self._heard(message)

        group.start_soon(listen)
        await opened.wait()

    def close_get(self) -> None:
        assert self._get is not None
        self._get.cancel()
