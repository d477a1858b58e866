"""SIGTERM and SIGINT stop `mcp-hub serve` cleanly, and always.

Without a handler, SIGTERM ends the process on the spot: no call is cancelled, no child is stopped,
and a stdio server's helpers (its own children, which `setpriv --pdeathsig` does not reach) are
left running. Here both signals do what asyncio does for SIGINT: cancel the main task, so calls in
flight are cancelled and every stdio child is stopped by process group
(`hub.downstream.stdio.stop_process`) on the way out; `mcp-hub` then exits with 128 + the signal
number, as a shell reports it.

Something can still hold that stop up (a worker thread blocked in a call that cannot be
cancelled, a child that never answers its stop). So a signal also arms a watchdog: if the process
is still alive `STOP_GRACE_S` after it, the hub stops its children's process groups and exits at
once. A second signal does the same without waiting. The clean-up before such an exit
(killing children, flushing logs) gets `LAST_RESORT_S`, then the exit happens regardless. Before
this handler is installed, `hub.prestart` stops the process at once (no unwinding); so from the
first instruction on, a stop signal ends `mcp-hub serve` within a bounded time.

Over HTTP, uvicorn takes SIGTERM (and SIGINT) for itself while it serves: the hub's server tells
`uvicorn_took` of it, which arms the same watchdog (and exits at once on a second signal), and
uvicorn's graceful wait for requests in flight is bounded (`hub.http.drain_s`; the watchdog then
allows that drain on top of `STOP_GRACE_S`), so calls still running then are cancelled; once it has
shut down, uvicorn raises the signal again, and that delivery reaches this handler as the same stop (not a second one) and stops the hub (outside
review, faults round 7: a call in flight held an HTTP hub up to its own deadline, 300 s, and a
second SIGTERM did nothing).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOP_GRACE_S = 10.0
SIGTERM_EXIT_STATUS = 128 + signal.SIGTERM
logger = logging.getLogger("hub")
_received: int | None = None
_last_resort: list[Callable[[], None]] = []


def sigterm_received() -> bool:
    """Whether `stop_on_sigterm` saw a SIGTERM in this process."""
    return _received == signal.SIGTERM


def stop_status() -> int | None:
    """128 + the stop signal `stop_on_sigterm` saw, or None."""
    return None if _received is None else 128 + _received


def on_last_resort(action: Callable[[], None]) -> None:
    """Run `action` (synchronously, from any thread) before a watchdog exit: e.g. kill children."""
    _last_resort.append(action)


LAST_RESORT_S = 3.0
"""How long the clean-up before a forced exit may take; the exit happens then whatever it waits for."""


def _last_resort_clean_up() -> None:
    for action in list(_last_resort):
        try:
            action()
        except Exception:  # boundary: the exit must happen whatever a clean-up step does
            logger.exception("clean-up before exit failed")
    logging.shutdown()


def _exit_now(status: int) -> None:
    """Run the last-resort actions and flush the logs, for at most `LAST_RESORT_S`, then exit: a step
    that blocks (a lock the stuck main thread holds, say) must not keep the process alive."""
    clean_up = threading.Thread(target=_last_resort_clean_up, name="last-resort", daemon=True)
    clean_up.start()
    clean_up.join(LAST_RESORT_S)
    os._exit(status)


def _overdue_stop(status: int) -> None:
    logger.warning("the clean stop took over %.0f s (a read of stdin that cannot be cancelled?); forcing the "
                   "exit: stdio children's process groups are killed", STOP_GRACE_S)
    _exit_now(status)


_relayed: int | None = None
"""A stop signal uvicorn took (`uvicorn_took`), which it raises again once it has shut down."""


def _noted(signum: int, drain_s: float = 0.0) -> None:
    """A stop signal: arm the watchdog (`drain_s` on top of `STOP_GRACE_S`), or, for a second one, exit now."""
    global _received
    if _received is not None:  # a second signal: stop now
        _exit_now(128 + signum)
    _received = signum
    watchdog = threading.Timer(STOP_GRACE_S + drain_s, _overdue_stop, (128 + signum,))
    watchdog.daemon = True
    watchdog.start()


def uvicorn_took(signum: int, drain_s: float = 0.0) -> None:
    """uvicorn caught a stop signal for itself (it drains for up to `drain_s`, shuts down, then raises
    it again): the watchdog is armed from now, and a second signal exits at once, as for a signal the hub caught."""
    global _relayed
    _noted(signum, drain_s)
    _relayed = signum


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """While the body runs, SIGTERM and SIGINT cancel the current (main) task, with a watchdog
    that guarantees the exit; call from the main thread."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def on_signal(signum: int, frame: object) -> None:
        global _relayed
        if _relayed == signum:  # uvicorn's own delivery again of the stop it took: the same stop
            _relayed = None
        else:
            _noted(signum)
        loop.call_soon_threadsafe(task.cancel)

    # A signal the process was started ignoring (SIGINT under `nohup`, or `cmd &` in a script) stays ignored.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
                if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
