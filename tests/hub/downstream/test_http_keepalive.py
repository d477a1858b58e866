"""The hub's connections to HTTP downstreams after an idle pause.

A server closes a keep-alive connection that has been idle for its timeout (uvicorn, Node: 5 s). If
the client sends its next request on that connection just as the server closes it, the request is
lost and the call fails, even though nothing is wrong with the server. The hub lets an idle
connection go before the common 5 s server timeout (`hub.downstream.http_client`), so its next call
opens a fresh one."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from hub.config import parse_config
from hub.hub import Hub
from tests.conftest import start_echo_http

pytestmark = pytest.mark.anyio


class IdleDroppingProxy:
    """A TCP proxy in front of an HTTP server, closing a connection like a server whose keep-alive
    timeout is `idle_s` in the worst case: at the moment a request arrives on a connection that has
    been idle that long, the request is dropped with the connection."""

    def __init__(self, upstream_port: int, idle_s: float) -> None:
        self.upstream_port = upstream_port
        self.idle_s = idle_s
        self.dropped = 0
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers += [client_writer, upstream_writer]
        loop = asyncio.get_running_loop()
        last = [loop.time()]

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, from_client: bool) -> None:
            try:
                while data := await reader.read(65536):
                    if from_client and loop.time() - last[0] >= self.idle_s:
                        self.dropped += 1
                        break
                    last[0] = loop.time()
                    writer.write(data)
                    await writer.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                client_writer.close()
                upstream_writer.close()

        await asyncio.gather(pump(client_reader, upstream_writer, True), pump(upstream_reader, client_writer, False))


async def test_a_call_after_an_idle_pause_does_not_reuse_a_connection_the_server_may_be_closing(procs: list) -> None:
    url = start_echo_http(procs)
    port = int(url.split(":")[2].split("/")[0])
    proxy = IdleDroppingProxy(port, idle_s=4.5)
    async with proxy as proxy_port:
        config = parse_config({"mcpServers": {"e": {"url": f"http://127.0.0.1:{proxy_port}/mcp"}}})
        async with Hub(config) as hub:
            first = await hub.route_call("e__echo", {"text": "before"})
            assert first.structured_content == {"result": "before"}
            await anyio.sleep(4.7)
            after = await hub.route_call("e__echo", {"text": "after"})
            assert not after.is_error, after
            assert after.structured_content == {"result": "after"}
            assert hub.downstreams["e"].restarts == 0
    assert proxy.dropped == 0  # no request went out on a connection idle for 4.5 s
