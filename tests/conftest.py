"""Shared helpers: fixture servers as real subprocesses, the hub over stdio and HTTP."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ECHO = str(FIXTURES / "echo_server.py")
PY = sys.executable


@pytest.fixture(autouse=True, scope="session")
def isolated_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keys, audit logs and listing caches of every hub the tests start go to temporary dirs."""
    path = tmp_path_factory.mktemp("hub-data")
    saved = {name: os.environ.get(name) for name in ("MCP_HUB_DATA_DIR", "MCP_HUB_CACHE_DIR")}
    os.environ["MCP_HUB_DATA_DIR"] = str(path)
    os.environ["MCP_HUB_CACHE_DIR"] = str(tmp_path_factory.mktemp("hub-cache"))
    yield path
    for name, previous in saved.items():
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


@pytest.fixture(autouse=True)
def no_remembered_listings() -> None:
    """Every test starts its hubs as a first start: no stdio or domain listing remembered by an
    earlier test of this worker (the same server entry in two tests has the same key, and a hub that
    lists a remembered tool before its server is up breaks a test that takes "listed" for "ready").
    Tests of remembered listings make their own in a test of their own."""
    for remembered in Path(os.environ["MCP_HUB_CACHE_DIR"]).glob("listing-*.json"):
        remembered.unlink(missing_ok=True)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg() -> Iterator[Any]:
    """One throwaway PostgreSQL server per test process (per xdist worker), shared by every test that
    needs one (`initdb` + start cost seconds): each test takes a fresh database (`pg.new_database()`)
    so no state is shared. A test that stops it to stage an outage must start it again (in a finally)."""
    from tests.cluster_support import PgServer

    server = PgServer()
    yield server
    server.close()


def echo_stdio(*args: str, **extra: Any) -> dict[str, Any]:
    """Config entry for the echo fixture as a stdio child."""
    return {"command": PY, "args": [ECHO, *args], **extra}


def write_config(tmp_path: Path, servers: dict[str, Any], hub: dict[str, Any] | None = None) -> Path:
    """A hub config file. `mcp-hub serve` answers before its servers are up, and its first list waits
    for them only `hub.list_wait_s` (2 s): on a loaded machine a Python server can take longer, so
    tests that expect every server in their first list get a bound they will not hit."""
    path = tmp_path / "hub.json"
    path.write_text(json.dumps({"hub": {"list_wait_s": 30, **(hub or {})}, "mcpServers": servers}))
    return path


def hub_command(config: Path, *extra: str) -> list[str]:
    return [PY, "-m", "hub.cli", "serve", "--config", str(config), *extra]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


TEST_PROCESSES: list[Proc] = []
"""The processes the running test started: their stderr is shown when it fails (`pytest_runtest_makereport`)."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test shows the last stderr lines of the processes it started (a hub's log says what it did)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for number, proc in enumerate(TEST_PROCESSES):
            tail = "".join(proc.stderr_lines[-80:])
            if tail:
                report.sections.append((f"stderr of process {number}: {' '.join(map(str, proc.popen.args[1:3]))}", tail))
    if call.when == "teardown":
        TEST_PROCESSES.clear()


class Proc:
    """A background subprocess that is always stopped (and its group killed) at the end."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})}, cwd=ROOT, start_new_session=True, text=True,
        )
        self.stderr_lines: list[str] = []
        TEST_PROCESSES.append(self)

    def wait_for_line(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        assert self.popen.stderr is not None
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            line = self.popen.stderr.readline()
            if not line:
                raise RuntimeError("process ended before printing %r:\n%s" % (pattern, "".join(self.stderr_lines)))
            self.stderr_lines.append(line)
            match = regex.search(line)
            if match:
                threading.Thread(target=self._drain, daemon=True).start()
                return match
        raise TimeoutError(pattern)

    def _drain(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.stderr_lines.append(line)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, 9)
                self.popen.wait(5)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop()


def start_echo_http(procs: list[Proc], mode: str = "http", *args: str) -> str:
    """Start the echo fixture over Streamable HTTP (`http`) or legacy SSE (`sse`); return its URL."""
    port = free_port()
    procs.append(Proc([PY, ECHO, mode, str(port), *args]))
    wait_for_port(port)
    return f"http://127.0.0.1:{port}/mcp" if mode == "http" else f"http://127.0.0.1:{port}/sse"


def start_hub_http(procs: list[Proc], config: Path, transport: str = "http") -> str:
    """Start `mcp-hub serve` over HTTP on a free port; return the endpoint URL it prints."""
    proc = Proc(hub_command(config, "--transport", transport, "--port", "0"))
    procs.append(proc)
    return proc.wait_for_line(r"mcp-hub listening on (\S+)").group(1)


def processes_with(marker: str, exclude: tuple[str, ...] = ("hub.cli",)) -> list[int]:
    """Pids of live processes whose command line holds `marker` and none of `exclude` (the hub itself)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline and not any(word in cmdline for word in exclude):
                found.append(int(entry))
    return found


@contextmanager
def json_http_server(body: bytes) -> Iterator[str]:
    """A loopback HTTP server answering every GET with `body` as JSON (a JWKS, a `/healthz`); yields
    its base URL and stops when the block ends."""

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def error_body(result: Any) -> dict[str, Any]:
    """The hub's error body `{code, message, retryable, …}` of an `isError` result: its `structuredContent`,
    or the JSON of its text where the tool's `outputSchema` kept it out (`hub.errors.error_result`)."""
    import json

    if result.structured_content is not None:
        return result.structured_content  # type: ignore[no-any-return]
    assert result.is_error, f"not an error result: {result}"
    return json.loads(result.content[0].text)  # type: ignore[no-any-return]
