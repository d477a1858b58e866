"""`hub.signals`: a stop signal always ends the process, even when the clean stop and the clean-up
before a forced exit both get stuck."""

from __future__ import annotations

import signal
import subprocess

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
