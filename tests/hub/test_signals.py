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
