"""Faults through a real `mcp-hub serve` process (issue 18, items 1, 2 and 6): how the hub stops
on SIGTERM / SIGINT / stdin close without leaving a process behind, how its stdio front answers
malformed lines, and how it relays large and overlong results."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

from tests.conftest import FIXTURES, PY, ROOT, free_port, write_config

FAULTS = str(FIXTURES / "fault_server.py")


def fault_server(*args: str) -> dict[str, Any]:
    return {"command": PY, "args": [FAULTS, *args]}


def wait_for(predicate: Any, timeout: float = 30.0, what: str = "a state") -> Any:
    """Poll until `predicate()` is truthy (a generous deadline, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie no longer does)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


class RawHub:
    """`mcp-hub serve` on stdio, spoken to in raw bytes; every line it writes lands in `lines`."""

    def __init__(self, config: Path, env: dict[str, str] | None = None, log: IO[str] | None = None) -> None:
        """`log`: where the hub's stderr goes (at info level), else nowhere (warnings only)."""
        self.popen = subprocess.Popen(
            [PY, "-m", "hub.cli", "serve", "--config", str(config), "--log-level", "info" if log else "warning"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log or subprocess.DEVNULL, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.seen: list[Any] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line)

    def send(self, data: bytes) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(data if data.endswith(b"\n") else data + b"\n")
        self.popen.stdin.flush()

    def request(self, request_id: Any, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(json.dumps(message).encode())

    def answer(self, match: Any, timeout: float = 60.0) -> Any:
        """The next message (seen earlier or arriving) that `match` accepts."""
        for index, message in enumerate(self.seen):
            if match(message):
                return self.seen.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            message = json.loads(line)
            if match(message):
                return message
            self.seen.append(message)

    def by_id(self, request_id: Any, timeout: float = 60.0) -> Any:
        return self.answer(lambda m: isinstance(m, dict) and m.get("id") == request_id and "method" not in m, timeout)

    def start(self, tools: set[str], version: str = "2025-11-25") -> None:
        """Handshake (at protocol `version`), then wait until `tools` are listed."""
        self.request(0, "initialize", {"protocolVersion": version, "capabilities": {},
                                       "clientInfo": {"name": "raw", "version": "1"}})
        assert self.by_id(0)["result"]["protocolVersion"] == version
        self.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        counter = iter(range(10_000, 20_000))

        def listed() -> bool:
            ident = next(counter)
            self.request(ident, "tools/list")
            return tools <= {t["name"] for t in self.by_id(ident)["result"]["tools"]}

        wait_for(listed, what=f"tools {sorted(tools)}")

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


# -- item 1: stopping -------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["sigterm", "sigint", "stdin-closed", "http-sigterm", "sigkill", "http-sigkill"])
def test_no_process_survives_the_hub(tmp_path: Path, how: str) -> None:
    """A server that outlives its stdin and a helper of it that ignores SIGTERM both go — also when
    the hub itself is killed with SIGKILL (the orphan watcher, `hub.downstream.reaper`)."""
    pidfile = tmp_path / "helper.pid"
    config = write_config(tmp_path, {"f": fault_server("--helper", str(pidfile), "--linger-at-exit")})
    argv = [PY, "-m", "hub.cli", "serve", "--config", str(config), "--log-level", "warning"]
    if how.startswith("http-"):
        argv += ["-t", "http", "--port", str(free_port())]
    hub = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    helper = server = None
    try:
        helper = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), what="the helper's pid"))
        server = parent_of(helper)
        assert alive(server) and parent_of(server) == hub.pid
        if how == "stdin-closed":
            assert hub.stdin is not None
            hub.stdin.close()
        else:
            hub.send_signal({"sigint": signal.SIGINT, "sigkill": signal.SIGKILL, "http-sigkill": signal.SIGKILL}.get(how, signal.SIGTERM))
        status = hub.wait(60)
        if how in ("sigterm", "http-sigterm"):
            assert status == 143, "SIGTERM ends the hub as SIGINT does, with 128 + 15"
        wait_for(lambda: not alive(server) and not alive(helper), what="the server and its helper to be gone")
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.wait(10)
        for pid in (helper, server):
            if pid is not None and alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_crashed_servers_helpers_are_reaped_while_the_hub_runs(tmp_path: Path) -> None:
    """Killed with its server's group and re-parented to the hub (a subreaper), a helper must not stay
    a zombie of the hub until it exits: one more at every crash or restart of such a server."""
    pidfile = tmp_path / "helper.pid"
    config = write_config(tmp_path, {"f": fault_server("--helper", str(pidfile))})
    hub = RawHub(config)
    try:
        hub.start({"f__echo"})
        helper = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), what="the helper's pid"))
        server = parent_of(helper)
        assert alive(server) and parent_of(server) == hub.popen.pid
        pidfile.unlink()
        os.kill(server, signal.SIGKILL)  # a crash: the hub stops the group and starts the server again
        wait_for(lambda: not Path(f"/proc/{helper}").exists(), timeout=30,
                 what="the dead helper to be reaped (not left a zombie of the hub)")
        wait_for(lambda: pidfile.exists() and pidfile.read_text(), what="the restarted server's helper")
        calls = iter(range(1, 10_000))

        def answered() -> bool:
            """Call the server once: True when it answered; False while the hub still restarts it
            (its helper can be up before its handshake is done, on a loaded machine)."""
            number = next(calls)
            hub.request(number, "tools/call", {"name": "f__echo", "arguments": {"text": "back"}})
            result = hub.by_id(number)["result"]
            if result.get("isError"):  # the echo's outputSchema keeps the hub's error body out of structuredContent
                error = result.get("structuredContent") or json.loads(result["content"][0]["text"])
                assert error.get("retryable") is True, error  # down or starting: calling again helps
                return False
            body = result["structuredContent"]
            assert body == {"result": "back"}, body
            return True

        wait_for(answered, what="the restarted server to answer")
    finally:
        hub.close()


# -- item 2: malformed lines on the stdio front ------------------------------------------------

def test_malformed_lines_are_answered_and_the_session_goes_on(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"f": fault_server()})
    hub = RawHub(config, {"MCP_HUB_MAX_LINE_BYTES": "65536"})
    try:
        hub.start({"f__echo", "f__sleep"})
        hub.send(b"this is not json")
        assert hub.by_id(None)["error"]["code"] == -32700
        hub.send(b'{"jsonrpc":"2.0","id":1,"method":"tools/list","x":"\xff\xfe"}')
        assert hub.by_id(1)["error"]["code"] == -32700  # not UTF-8, but its request id is readable: answered to it
        hub.send(b'[{"jsonrpc":"2.0","id":2,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/x"}]')
        batch = hub.answer(lambda m: isinstance(m, list))
        assert [(e["id"], e["error"]["code"]) for e in batch] == [(2, -32600)]
        hub.send(b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":"f__echo"}')
        assert hub.by_id(3)["error"]["code"] == -32602
        hub.send(b'{"id":4,"method":"tools/list"}')
        missing = hub.by_id(4)["error"]
        assert missing["code"] == -32600 and "jsonrpc" in missing["message"]
        hub.send(b'{"jsonrpc":"1.0","id":"five","method":"tools/list"}')
        assert hub.by_id("five")["error"]["code"] == -32600
        hub.send(b'{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"f__echo","arguments":{"text":"'
                 + b"x" * 100_000 + b'"}}}')
        overlong = hub.by_id(6)["error"]
        assert overlong["code"] == -32600 and "65536" in overlong["message"]
        hub.send(b'{"jsonrpc":"2.0","method":"notifications/nonsense","params":[1]}')  # never answered
        # An id reused while its request is in flight: an error for the second, one answer for the first.
        hub.request(7, "tools/call", {"name": "f__sleep", "arguments": {"seconds": 1.0}})
        hub.request(7, "tools/call", {"name": "f__echo", "arguments": {"text": "second"}})
        first = hub.by_id(7)
        assert first["error"]["code"] == -32600 and "already in use" in first["error"]["message"]
        assert hub.by_id(7)["result"]["structuredContent"] == {"result": "slept"}
        # Reused by a request the SDK serves: both lines in one write, so the second is read while
        # the first is surely in flight (a quick tools/list may otherwise be answered in between).
        hub.send(json.dumps({"jsonrpc": "2.0", "id": 8, "method": "tools/list"}).encode() + b"\n"
                 + json.dumps({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                               "params": {"name": "f__echo", "arguments": {"text": "x"}}}).encode())
        answers = [hub.by_id(8), hub.by_id(8)]
        assert sorted("error" in a for a in answers) == [False, True]
        assert any("tools" in a.get("result", {}) for a in answers)
        # And the session goes on: every line so far had its answer, nothing else came.
        hub.request(9, "tools/call", {"name": "f__echo", "arguments": {"text": "still here"}})
        assert hub.by_id(9)["result"]["structuredContent"] == {"result": "still here"}
        assert [m for m in hub.seen if not (isinstance(m, dict) and m.get("method", "").startswith("notifications/"))] == []
    finally:
        hub.close()


def test_lines_that_are_json_but_no_peer_can_read_are_answered_both_ways(tmp_path: Path) -> None:
    """JSON that `json` reads but no MCP peer can use — an unpaired UTF-16 surrogate escape, nesting
    deeper than the parsers go — is answered by its id on the front (the SDK used to drop such a
    line, leaving the client waiting), and from a server it fails the call it answers at once, not
    at its deadline."""
    deep = b"[" * 5000 + b"]" * 5000
    config = write_config(tmp_path, {"b": {"command": PY, "args": [str(FIXTURES / "big_server.py")],
                                           "breaker": {"failure_threshold": 100}}},  # unreadable answers count
                          {"timeout_s": 20})
    hub = RawHub(config)
    try:
        hub.start({"b__broken", "b__echo"})
        hub.send(b'{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"name":"b__echo","arguments":{"text":"\\ud800"}}}')
        hub.send(b'{"jsonrpc":"2.0","id":21,"method":"tools/list","params":{"cursor":"\\udc00x"}}')  # the SDK's path
        hub.send(b'{"jsonrpc":"2.0","id":22,"method":"\\ud800"}')
        hub.send(b'{"jsonrpc":"2.0","id":23,"method":"tools/call","params":{"name":"b__echo","arguments":{"x":' + deep + b"}}}")
        hub.send(b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"\\ud800"}}')  # not answered
        for ident in (20, 21, 22):
            error = hub.by_id(ident)["error"]
            assert error["code"] == -32700 and "surrogate" in error["message"]
        assert hub.by_id(23)["error"]["code"] == -32700
        hub.request(24, "tools/call", {"name": "b__echo", "arguments": {"text": "paired \ud83d\ude00 is fine"}})
        assert hub.by_id(24)["result"]["structuredContent"] == {"result": "paired \U0001f600 is fine"}
        hub.send(b'{"jsonrpc":"2.0","id":"\\ud800","method":"ping"}')  # an id that is no text: answered to null
        assert hub.by_id(None)["error"]["code"] == -32700
        for ident, kind in enumerate(("cut", "surrogate", "deep", "late-surrogate", "late-deep"), start=30):
            hub.request(ident, "tools/call", {"name": "b__broken", "arguments": {"kind": kind}})
            result = hub.by_id(ident)["result"]
            assert result["isError"] is True and "could not be read" in result["content"][0]["text"], (kind, result)
            assert "dropped by the hub" in result["content"][0]["text"]
        hub.request(40, "tools/call", {"name": "b__echo", "arguments": {"text": "still here"}})
        assert hub.by_id(40)["result"]["structuredContent"] == {"result": "still here"}
        assert [m for m in hub.seen if not (isinstance(m, dict) and m.get("method", "").startswith("notifications/"))] == []
    finally:
        hub.close()


# -- item 6: large results ---------------------------------------------------------------------

def test_a_big_result_arrives_whole_and_a_small_call_is_not_held_up(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"f": fault_server(), "g": fault_server()})
    hub = RawHub(config)
    try:
        hub.start({"f__blob", "g__echo"})
        size = 6_000_000  # text and structuredContent: a 12 MB line, parsed and written off the loop
        hub.request(1, "tools/call", {"name": "f__blob", "arguments": {"size": size}})
        hub.request(2, "tools/call", {"name": "g__echo", "arguments": {"text": "small"}})
        order = [hub.answer(lambda m: m.get("id") in (1, 2), timeout=120) for _ in range(2)]
        assert [m["id"] for m in order] == [2, 1], "the small call must not wait for the big one"
        big = order[1]["result"]
        assert big["content"][0]["text"] == "x" * size and big["structuredContent"] == {"result": "x" * size}
        hub.request(3, "tools/call", {"name": "f__echo", "arguments": {"text": "after"}})
        assert hub.by_id(3)["result"]["structuredContent"] == {"result": "after"}
    finally:
        hub.close()


def test_a_result_over_the_line_cap_fails_that_call_naming_the_cap(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"f": fault_server()})
    hub = RawHub(config, {"MCP_HUB_MAX_LINE_BYTES": "2000000"})
    try:
        hub.start({"f__blob", "f__echo"})
        hub.request(1, "tools/call", {"name": "f__blob", "arguments": {"size": 3_000_000}})
        result = hub.by_id(1)["result"]
        assert result["isError"] is True
        error = result.get("structuredContent") or json.loads(result["content"][0]["text"])
        assert "2000000 bytes" in error["message"] and "MCP_HUB_MAX_LINE_BYTES" in error["message"]
        assert "exited" not in error["message"] and "rejected" not in error["message"]
        assert "was dropped by the hub" in error["message"]  # the server answered; the hub could not pass it on
        # The server stays connected: the next call on it just works.
        hub.request(2, "tools/call", {"name": "f__echo", "arguments": {"text": "fine"}})
        assert hub.by_id(2)["result"]["structuredContent"] == {"result": "fine"}
    finally:
        hub.close()


def test_a_servers_own_minus_32000_error_is_its_error_not_a_lost_connection(tmp_path: Path) -> None:
    """-32000 opens JSON-RPC's server-error range and servers use it for their own errors; the SDK
    also uses it for a closed connection. A server's answer with it is that server's error: at once,
    `upstream_error` with the server's message (it was `unavailable`, "lost the connection", after
    a second's wait for a loss reason), and the connection stays up. Like any JSON-RPC error answer
    it does not count against the breaker (`test_json_rpc_error_answers_do_not_open_the_breaker`)."""
    config = write_config(tmp_path, {"b": {"command": PY, "args": [str(FIXTURES / "big_server.py")],
                                           "breaker": {"failure_threshold": 100}}})
    hub = RawHub(config)
    try:
        hub.start({"b__fail", "b__echo"})
        for ident, message in enumerate(("quota exceeded for this key", "Connection closed", "x"), start=1):
            hub.request(ident, "tools/call", {"name": "b__fail", "arguments": {"code": -32000, "message": message}})
            result = hub.by_id(ident)["result"]
            assert result["isError"] is True and result["structuredContent"]["code"] == "upstream_error", result
            assert message in result["content"][0]["text"]
            assert result["structuredContent"]["details"]["jsonrpc_code"] == -32000
        hub.request(9, "tools/call", {"name": "b__echo", "arguments": {"text": "still connected"}})
        assert hub.by_id(9)["result"]["structuredContent"] == {"result": "still connected"}
    finally:
        hub.close()


@pytest.mark.parametrize("code", [-32603, -32000, -32602])
def test_json_rpc_error_answers_do_not_open_the_breaker(tmp_path: Path, code: int) -> None:
    """Outside review faults7 #4, again in faults15: the SDK's low-level server answers -32603 for every
    exception its handler raises on a bad input, and five of them in a row paused the whole server for
    everyone (a healthy tool refused `breaker_open`). An error the server answered with is the server
    working, as `isError` is; an unreadable answer still counts (`test_lines_that_are_json_but_no_peer_can_read_are_answered_both_ways`)."""
    config = write_config(tmp_path, {"b": {"command": PY, "args": [str(FIXTURES / "big_server.py")],
                                           "breaker": {"failure_threshold": 2, "min_calls": 2}}})
    hub = RawHub(config)
    try:
        hub.start({"b__fail", "b__echo"})
        for ident in range(1, 7):
            hub.request(ident, "tools/call", {"name": "b__fail", "arguments": {"code": code, "message": "bad input"}})
            body = hub.by_id(ident)["result"]["structuredContent"]
            assert body["code"] in ("upstream_error", "invalid_argument") and body["details"]["jsonrpc_code"] == code, body
        hub.request(9, "tools/call", {"name": "b__echo", "arguments": {"text": "healthy"}})
        assert hub.by_id(9)["result"]["structuredContent"] == {"result": "healthy"}
    finally:
        hub.close()


def test_only_the_connections_own_close_is_a_lost_connection() -> None:
    from mcp.shared.exceptions import MCPError

    from hub.calls.errors import _connection_lost
    from hub.downstream.json_channel import ConnectionLost, ErrorAnswer

    assert _connection_lost(ConnectionLost())
    assert _connection_lost(MCPError(code=-32000, message="Connection closed"))  # the SDK client's own
    assert not _connection_lost(MCPError(code=-32000, message="rate limited"))
    assert not _connection_lost(ErrorAnswer(code=-32000, message="Connection closed"))  # a server's answer, over stdio


@pytest.mark.parametrize("session", ["shared", "per_client"])
def test_an_invalid_result_is_the_servers_error_on_every_session_kind(tmp_path: Path, session: str) -> None:
    """A result that is no CallToolResult is `upstream_error` naming the invalid result, whether the
    call went over the hub's own channel or an SDK client session per client (where the SDK's
    validation error surfaced as -32602 "Invalid request parameters", blaming the caller)."""
    config = write_config(tmp_path, {"b": {"command": PY, "args": [str(FIXTURES / "big_server.py")], "session": session}})
    hub = RawHub(config)
    try:
        # An older protocol version: the call goes through the SDK's server, and for `per_client`
        # over the SDK client session the hub opens for this client.
        hub.start({"b__invalid"}, version="2025-06-18")
        hub.request(1, "tools/call", {"name": "b__invalid", "arguments": {}})
        answer = hub.by_id(1)
        assert "result" in answer, answer
        assert answer["result"]["isError"] is True and answer["result"]["structuredContent"]["code"] == "upstream_error"
        assert "invalid result" in answer["result"]["content"][0]["text"] and "content" in answer["result"]["content"][0]["text"]
    finally:
        hub.close()


@pytest.mark.parametrize("session", ["shared", "per_client"])
def test_a_servers_error_message_reaches_the_caller_masked(tmp_path: Path, session: str) -> None:
    """Outside review (console round 7): a password, an API key and a bearer token in a server's
    error message reached the caller unmasked in the hub's `upstream_error` (its log line was masked)."""
    config = write_config(tmp_path, {"b": {"command": PY, "args": [str(FIXTURES / "big_server.py")], "session": session}})
    hub = RawHub(config)
    secret = "login failed: password=hunter2-SECRETVALUE api_key=sk_live_51HxQzLkK2 Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"
    try:
        hub.start({"b__fail"}, version="2025-06-18")
        for ident, code in enumerate((-32000, -32602), start=1):
            hub.request(ident, "tools/call", {"name": "b__fail", "arguments": {"code": code, "message": secret}})
            result = hub.by_id(ident)["result"]
            text = result["content"][0]["text"]
            assert result["isError"] is True and "login failed" in text, result
            for leaked in ("hunter2-SECRETVALUE", "sk_live_51HxQzLkK2", "eyJhbGciOiJIUzI1NiJ9"):
                assert leaked not in text and leaked not in json.dumps(result), (leaked, result)
    finally:
        hub.close()


def big_server_hub(tmp_path: Path) -> tuple[RawHub, Path]:
    """A hub over `big_server.py` as `b`, and the file its log (at info level) goes to."""
    config = write_config(tmp_path, {"b": {"command": PY, "args": [str(FIXTURES / "big_server.py")]}})
    log = tmp_path / "hub.log"
    with log.open("w") as err:
        return RawHub(config, log=err), log


def test_a_servers_stdout_chatter_is_counted_not_logged_line_by_line(tmp_path: Path) -> None:
    """Outside review (faults round 7): 100,000 lines of a child's stdout noise were 100,000 warnings
    (12 MB of log from one call) and held calls to the other servers up. The first few are warnings,
    then one every 10,000 with the count; the call's answer still comes."""
    hub, log = big_server_hub(tmp_path)
    try:
        hub.start({"b__noise"})
        hub.request(1, "tools/call", {"name": "b__noise", "arguments": {"lines": 25_000}})
        assert hub.by_id(1)["result"]["structuredContent"] == {"result": "done"}
    finally:
        hub.close()
    warnings = [line for line in log.read_text().splitlines() if "not JSON-RPC" in line]
    assert len(warnings) == 5 + 2, warnings[:10]  # five shown, then at 10,000 and 20,000
    assert "20000 stdout lines" in warnings[-1] and "stderr" in warnings[-1]


def test_a_server_that_closes_its_stdout_but_runs_on_is_reported_as_such(tmp_path: Path) -> None:
    """Outside review (faults round 7): it was reported as "process exited with code None"."""
    hub, log = big_server_hub(tmp_path)
    try:
        hub.start({"b__hangup"})
        hub.request(1, "tools/call", {"name": "b__hangup", "arguments": {}})
        message = hub.by_id(1)["result"]["structuredContent"]["message"]
        assert "closed its stdout but did not exit" in message and "code None" not in message, message
    finally:
        hub.close()
    assert "returncode=None" not in log.read_text() and "closed its stdout" in log.read_text()  # its log says so too


def test_a_server_that_closes_its_stdin_but_runs_on_is_stopped_and_restarted(tmp_path: Path) -> None:
    """Outside review (faults15): a child that closed its stdin and ran on was never marked down nor
    restarted; every later call failed "the stdin … is closed" (each attempt counted by the breaker)."""
    hub, log = big_server_hub(tmp_path)
    try:
        hub.start({"b__deaf"})
        hub.request(1, "tools/call", {"name": "b__deaf", "arguments": {}})
        assert hub.by_id(1)["result"]["content"][0]["text"] == ""
        calls = iter(range(100, 10_000))

        def echoed() -> bool:
            number = next(calls)
            hub.request(number, "tools/call", {"name": "b__echo", "arguments": {"text": "back"}})
            result = hub.by_id(number)["result"]
            return result.get("structuredContent") == {"result": "back"}

        deadline = time.monotonic() + 30
        while not echoed():  # refused (down, restarting) until the restarted child answers
            assert time.monotonic() < deadline, "the server was never restarted"
            time.sleep(0.1)  # between polls of the state "answers again"
    finally:
        hub.close()
    assert "closed its stdin but did not exit; stopping it" in log.read_text()


def test_a_servers_traceback_is_cut_to_its_exception_line(tmp_path: Path) -> None:
    """Outside review (faults round 7): an error answer's "Traceback (most recent call last): File
    "/srv/x.py" …" reached the caller verbatim."""
    hub, _ = big_server_hub(tmp_path)
    trace = ('Traceback (most recent call last):\n  File "/srv/tools/x.py", line 12, in handler\n    do(it)\n'
             "ValueError: the date is not a date")
    try:
        hub.start({"b__fail"})
        hub.request(1, "tools/call", {"name": "b__fail", "arguments": {"code": -32603, "message": trace}})
        text = hub.by_id(1)["result"]["content"][0]["text"]
        assert "ValueError: the date is not a date" in text and "/srv/tools" not in text and "do(it)" not in text, text
        one_line = trace.replace("\n", " ")  # re-check: a traceback written on one line was kept whole
        hub.request(2, "tools/call", {"name": "b__fail", "arguments": {"code": -32603, "message": one_line}})
        text = hub.by_id(2)["result"]["content"][0]["text"]
        assert "ValueError: the date is not a date" in text and "/srv/tools" not in text and "do(it)" not in text, text
    finally:
        hub.close()
