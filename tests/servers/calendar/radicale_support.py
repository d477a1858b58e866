"""A real Radicale on 127.0.0.1 (ephemeral port) for CalDAV tests, with a forwarding proxy in front
of it that can fail chosen requests (the caldav library does its own HTTP: no ASGI transport)."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import caldav

from tests.conftest import PY, Proc, free_port, wait_for_port

Rule = Callable[[str, str, Any], int | None]
"""(method, path, headers) -> a status to answer instead of forwarding, or None."""


@dataclass
class Dav:
    url: str  # the proxy's principal URL (what the backend is pointed at)
    direct: str  # Radicale's own principal URL (for checks that must not go through the rule)
    calendar: str  # the "work" calendar's URL through the proxy
    rule: Rule | None = None
    log: list[tuple[str, str]] = field(default_factory=list)


def start_radicale(tmp_path: Path, procs: list[Proc]) -> Dav:
    users = tmp_path / "users"
    users.write_text("alice:secret\n")
    port = free_port()
    procs.append(Proc([PY, "-m", "radicale", "--server-hosts", f"127.0.0.1:{port}", "--storage-filesystem-folder",
                       str(tmp_path / "store"), "--auth-type", "htpasswd", "--auth-htpasswd-filename", str(users),
                       "--auth-htpasswd-encryption", "plain", "--rights-type", "owner_only"]))
    wait_for_port(port)
    direct = f"http://127.0.0.1:{port}/alice/"
    client = caldav.DAVClient(url=direct, username="alice", password="secret", require_tls=False, timeout=10)
    client.principal().make_calendar(name="Work", cal_id="work")
    return Dav(url="", direct=direct, calendar="")


@contextmanager
def proxied(dav: Dav) -> Iterator[Dav]:
    """Serve a proxy to `dav`'s Radicale for the block; `dav.rule` decides which requests fail."""
    target = http.client.urlsplit(dav.direct)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            dav.log.append((self.command, self.path))
            status = dav.rule(self.command, self.path, self.headers) if dav.rule else None
            if status:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            conn.request(self.command, self.path, body=body,
                         headers={k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")})
            answer = conn.getresponse()
            data = answer.read()
            conn.close()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_DELETE = do_PROPFIND = do_REPORT = do_OPTIONS = do_PROPPATCH = do_POST = do_HEAD = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dav.url = f"http://127.0.0.1:{server.server_address[1]}/alice/"
        dav.calendar = dav.url + "work/"
        yield dav
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def stored_uids(dav: Dav) -> list[str]:
    """The UIDs of the objects Radicale holds in the work calendar (read directly, no rule applied)."""
    client = caldav.DAVClient(url=dav.direct, username="alice", password="secret", require_tls=False, timeout=10)
    return sorted(str(e.icalendar_component["UID"]) for e in client.calendar(url=dav.direct + "work/").events())
