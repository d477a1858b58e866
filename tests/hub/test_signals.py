"""`hub.signals`: a stop signal always ends the process, even when the clean stop and the clean-up
before a forced exit both get stuck."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import PY, ROOT

# A main task that ignores its cancellation and a last-resort action that blocks forever: only the
# watchdog, and a bounded clean-up before its exit, can end this process.
STUCK_STOP = r"""
import asyncio, os, signal, threading
from hub import signals
signals.STOP_GRACE_S = 0.5
blocked = threading.Lock()
blocked.acquire()
signals.on_last_resort(blocked.acquire)

async def main():
    with signals.stop_on_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass

asyncio.run(main())
"""


def test_a_stuck_stop_and_a_stuck_clean_up_still_end_the_process() -> None:
    done = subprocess.run([PY, "-c", STUCK_STOP], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert "forcing the exit" in done.stderr


@pytest.mark.parametrize("front", ["stdio", "http"])
def test_a_stop_signal_the_hub_was_started_ignoring_stays_ignored(tmp_path: Path, front: str) -> None:
    """`nohup` and `cmd &` in a script start a process with SIGINT ignored: it must stay so in
    every phase (the pre-start used to hold it, the hub's handler and uvicorn's to act on it);
    SIGTERM still stops."""
    import httpx

    config = tmp_path / "hub.json"
    config.write_text(json.dumps({"mcpServers": {"e": {"command": PY, "args": [str(ROOT / "tests" / "fixtures" / "echo_server.py")]}}}))
    log = tmp_path / "hub.log"
    transport = ["--transport", "http", "--port", "0"] if front == "http" else []
    with log.open("w") as err:
        hub = subprocess.Popen([PY, "-m", "hub.cli", "serve", "--config", str(config), "--log-level", "info", *transport],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, cwd=ROOT,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    ready = "listening on" if front == "http" else "serving"
    try:
        os.kill(hub.pid, signal.SIGINT)  # during the start
        deadline = time.monotonic() + 60
        while ready not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready in log.read_text()
        os.kill(hub.pid, signal.SIGINT)  # while serving
        assert hub.stdin is not None and hub.stdout is not None
        if front == "http":
            url = re.search(r"listening on (http://\S+)/mcp", log.read_text()).group(1)  # type: ignore[union-attr]
            assert httpx.get(f"{url}/healthz", timeout=30).status_code in (200, 503)
        else:
            hub.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
            hub.stdin.flush()
            assert json.loads(hub.stdout.readline()) == {"jsonrpc": "2.0", "id": 1, "result": {}}
        with pytest.raises(subprocess.TimeoutExpired):
            hub.wait(1.5)  # still up (a stop would have ended it by now)
        hub.send_signal(signal.SIGTERM)
        assert hub.wait(30) == 128 + signal.SIGTERM
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.wait()


@pytest.mark.parametrize("second", [False, True])
def test_a_stop_signal_ends_an_http_hub_with_a_call_in_flight_in_bounded_time(tmp_path: Path, second: bool) -> None:
    """Outside review (faults round 7): uvicorn took SIGTERM for itself and waited for every request
    in flight, so an HTTP hub stayed up until each call's own deadline (300 s for a tool that reports
    progress), and a second SIGTERM did nothing. Now the call is cancelled once `hub.http.drain_s`
    has passed (2 s here) and the hub exits as on stdio; a second signal exits at once."""
    import threading

    import anyio
    import httpx
    from mcp import Client

    config = tmp_path / "hub.json"
    fault = str(ROOT / "tests" / "fixtures" / "fault_server.py")
    config.write_text(json.dumps({"hub": {"data_dir": str(tmp_path / "data"), "http": {"drain_s": 2}},
                                  "mcpServers": {"f": {"command": PY, "args": [fault], "timeout_s": 300, "max_timeout_s": 300}}}))
    log = tmp_path / "hub.log"
    with log.open("w") as err:
        hub = subprocess.Popen([PY, "-m", "hub.cli", "serve", "--config", str(config), "--transport", "http", "--port", "0"],
                               stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
    answered: list[object] = []

    def call(url: str) -> None:
        async def go() -> None:
            async with Client(url, mode="legacy" if second else "auto") as client:  # 2025-11-25, or 2026-07-28
                answered.append(await client.call_tool("f__sleep", {"seconds": 120}))
        try:
            anyio.run(go)
        except BaseException as exc:  # noqa: BLE001 — the hub went away: what the client saw is kept
            answered.append(exc)

    try:
        deadline = time.monotonic() + 60
        while (found := re.search(r"listening on (http://\S+)", log.read_text())) is None:
            assert time.monotonic() < deadline and hub.poll() is None, log.read_text()
            time.sleep(0.05)
        url = found.group(1)
        caller = threading.Thread(target=call, args=(url,), daemon=True)
        caller.start()
        metrics = url.replace("/mcp", "/metrics")
        while 'mcp_hub_in_flight{server="f"} 1.0' not in httpx.get(metrics, timeout=30).text:
            assert time.monotonic() < deadline, "the call never went in flight"
            time.sleep(0.05)
        stopped = time.monotonic()
        hub.send_signal(signal.SIGTERM)
        if second:
            time.sleep(0.2)
            hub.send_signal(signal.SIGTERM)
        assert hub.wait(30) == 128 + signal.SIGTERM
        assert time.monotonic() - stopped < (5 if second else 15), time.monotonic() - stopped
        caller.join(30)
        assert answered, "the client was left waiting"
        if not second:  # a routine stop: the request ends quietly (re-check: a ~40-line traceback per request)
            assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.wait()
