"""The hub's stdio front when stdin or stdout is no pipe: stdout to a file or /dev/null (a CI log, a
wrapper script), stdin a terminal (someone runs `mcp-hub serve` by hand) or a file (a replay)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import PY, ROOT, echo_stdio, processes_with, write_config


@pytest.mark.parametrize("stdout", ["file", "devnull"])
def test_a_hub_whose_stdout_is_no_pipe_still_serves_and_stops_cleanly(tmp_path: Path, stdout: str) -> None:
    """Only stdin decides the thread-free front: stdout to a file or /dev/null (a CI log, a wrapper
    script) is written directly, so a SIGTERM stops the hub at once, not by the watchdog."""
    config = write_config(tmp_path, {"e": echo_stdio()})
    out_path = tmp_path / "out.jsonl" if stdout == "file" else Path(os.devnull)
    with out_path.open("wb") as out, (tmp_path / "hub.log").open("w") as log:
        hub = subprocess.Popen([PY, "-m", "hub.cli", "serve", "--config", str(config), "--log-level", "info"],
                               stdin=subprocess.PIPE, stdout=out, stderr=log, cwd=ROOT)
        try:
            assert hub.stdin is not None
            hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
            hub.stdin.write(json.dumps(hello).encode() + b"\n")
            hub.stdin.flush()
            deadline = time.monotonic() + 60
            # Serving: the answer is in the file, or (to /dev/null) the hub has logged its first listing.
            def serving() -> bool:
                if stdout == "file":
                    return b'"id":1' in out_path.read_bytes()
                return "serving" in (tmp_path / "hub.log").read_text()
            while not serving() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert serving(), (tmp_path / "hub.log").read_text()
            hub.send_signal(signal.SIGTERM)
            assert hub.wait(30) == 128 + signal.SIGTERM, (tmp_path / "hub.log").read_text()[-3000:]
            assert "forcing the exit" not in (tmp_path / "hub.log").read_text()
        finally:
            if hub.poll() is None:
                hub.kill()
                hub.wait()


def test_a_client_that_stops_reading_never_blocks_the_hub(tmp_path: Path) -> None:
    """stdout a pipe and stderr a file (a client that logs the hub's stderr): the hub writes answers
    without blocking, so when the client stops reading a big answer and closes stdin, the hub still
    sees the close and exits, instead of hanging in a write nobody will read."""
    config = write_config(tmp_path, {"e": echo_stdio()})
    with (tmp_path / "hub.log").open("w") as log:
        hub = subprocess.Popen([PY, "-m", "hub.cli", "serve", "--config", str(config)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=ROOT)
        try:
            assert hub.stdin is not None and hub.stdout is not None
            hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
            hub.stdin.write(json.dumps(hello).encode() + b"\n")
            hub.stdin.flush()
            assert b'"id":1' in hub.stdout.readline()
            hub.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
            big = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                   "params": {"name": "e__echo", "arguments": {"text": "x" * 2_000_000}}}
            hub.stdin.write(json.dumps(big).encode() + b"\n")
            hub.stdin.flush()
            assert hub.stdout.read(1) == b"{"  # the answer has begun; nobody reads the rest
            hub.stdin.close()
            assert hub.wait(60) is not None
        finally:
            if hub.poll() is None:
                hub.kill()
                hub.wait()


HELLO = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_hub_on_a_terminal_stops_at_once_on_ctrl_c(tmp_path: Path, sig: signal.Signals) -> None:
    """Someone runs `mcp-hub serve` in a terminal and presses Ctrl-C: the clean stop, not the 10 s
    watchdog (the SDK's reader of a non-pipe stdin held the stop until it forced the exit)."""
    import pty
    marker = f"tty-stop-{sig.name}-{os.getpid()}"
    config = write_config(tmp_path, {"e": echo_stdio("--name", marker)})
    master, slave = pty.openpty()
    log_path = tmp_path / "hub.log"
    with log_path.open("w") as log:
        hub = subprocess.Popen([PY, "-m", "hub.cli", "serve", "--config", str(config), "--log-level", "info"],
                               stdin=slave, stdout=subprocess.PIPE, stderr=log, cwd=ROOT)
    os.close(slave)
    try:
        os.write(master, json.dumps(HELLO).encode() + b"\n")  # typed (pasted) at the terminal
        assert hub.stdout is not None
        assert json.loads(hub.stdout.readline())["id"] == 1
        deadline = time.monotonic() + 60
        while "serving" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        hub.send_signal(sig)
        assert hub.wait(30) == 128 + sig
        assert "forcing the exit" not in log_path.read_text()
        assert "stopped (returncode=" in log_path.read_text(), "the child was stopped by the clean stop"
    finally:
        os.close(master)
        if hub.poll() is None:
            hub.kill()
            hub.wait()
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)


def test_a_hub_reading_requests_from_a_file_answers_them_as_from_a_pipe(tmp_path: Path) -> None:
    """stdin redirected from a file (a script, a replay): the same front as a pipe, the malformed-line
    guard included, and the hub stops at the end of the file."""
    config = write_config(tmp_path, {"e": echo_stdio()})
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(json.dumps(HELLO).encode() + b"\nnot json at all\n"
                         + b'{"jsonrpc":"2.0","id":3,"method":"ping","params":[1]}\n')
    with requests.open("rb") as stdin:
        done = subprocess.run([PY, "-m", "hub.cli", "serve", "--config", str(config)], stdin=stdin,
                              capture_output=True, cwd=ROOT, timeout=120)
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, done.stderr[-2000:]
    assert any(a["id"] == 1 and "result" in a for a in answers)  # the guard's errors may be written first
    assert {"id": None, "code": -32700} in [{"id": a["id"], "code": a["error"]["code"]} for a in answers if "error" in a]
    assert {"id": 3, "code": -32602} in [{"id": a["id"], "code": a["error"]["code"]} for a in answers if "error" in a]
