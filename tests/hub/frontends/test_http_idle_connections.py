"""A kept-alive HTTP connection with no request is closed by the hub after `hub.http.idle_connection_s`,
which by default outlasts how long HTTP clients keep an idle connection (httpx, the SDK's client: 5 s), so a
client never sends on a connection the hub is closing (uvicorn's 5 s against httpx's 5 s was a race: the
request got no answer and the SDK's client ended its whole session). Real `mcp-hub serve` over loopback."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from hub.settings import HttpSettings
from tests.conftest import Proc, start_hub_http, write_config


def healthz_once(sock: socket.socket, port: int) -> bytes:
    """One request on the connection, its whole answer read."""
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
        received += sock.recv(65536)
    return received


def test_the_hub_closes_an_idle_kept_alive_connection_after_the_configured_time(tmp_path: Path, procs: list[Proc]) -> None:
    url = start_hub_http(procs, write_config(tmp_path, {}, {"data_dir": str(tmp_path / "data"), "http": {"idle_connection_s": 0.5}}))
    port = httpx.URL(url).port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        assert healthz_once(sock, port).startswith(b"HTTP/1.1 200")
        idle_from = time.monotonic()
        assert sock.recv(65536) == b""  # waits (up to 30 s) for the hub to close it
        assert time.monotonic() - idle_from < 4.5  # its 0.5 s, not uvicorn's own 5 s nor the 10 s head deadline


def test_by_default_an_idle_connection_outlasts_the_clients_own_keep_alive() -> None:
    """httpx (the SDK's client) drops an idle connection after 5 s, Node after 4-5 s, aiohttp after 15 s."""
    assert HttpSettings().idle_connection_s > 15
    assert httpx.Limits().keepalive_expiry is not None and HttpSettings().idle_connection_s > httpx.Limits().keepalive_expiry
