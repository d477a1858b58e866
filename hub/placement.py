"""Which CPUs the hub and its stdio children run on (`hub.cpu_placement`).

Every relayed call passes through three busy processes: the caller, the hub and a stdio server.
On a machine with two or three CPUs they do not fit one per CPU, and the kernel keeps moving them:
a server is woken on the core where the hub (or the caller) still runs and waits behind it, or
migrates and starts cold. Measured on a 2-vCPU VM (docs/performance.md, "Per call, round 7"), an SDK
client calling an SDK echo server through the hub: with 16 concurrent calls the hub's throughput
swung between 0.8x and 1.6x of direct from round to round; with the hub kept on one CPU and the
server on the other it held 1.7x, and sequential calls gained ~7%.

So `mcp-hub serve` keeps its own threads on one CPU (`apply`, the last one it may use) and moves
each stdio child, with its threads and descendants, to the others once the child has answered its
first message (`serving`): a child imports and starts on every CPU, beside the others starting.
A child spawned by the pinned hub inherits its CPU, so it is given all of them back at once, with
whatever it forked meanwhile (`spawned`). Only what placement set is changed: a server its launcher
pinned (`taskset -c 1 server`) keeps that. Threads that do heavy work of their own (the embedder's
pool, ONNX Runtime's start) release themselves (`release_this_thread`, `unpinned`).

`auto` does this on the stdio front with two or three usable CPUs when every stdio server can have
a CPU of its own beside the hub's (one server on two CPUs, two on three). Measured where it does not
(an outside review, same VM): 16 concurrent calls spread over 3–6 stdio children ran at 0.72–0.80x of
unplaced, and two children computing at once took twice as long — the hub's CPU idle meanwhile. With
four or more CPUs the three processes fit. An HTTP front serves many callers whose requests cost the
hub more than a stdio relay does, so it needs every CPU (16 concurrent HTTP calls: 0.92x of the plain
SDK server placed, 1.35x not). `separate` always places (with at least two CPUs), `off` never; the
`MCP_HUB_CPU_PLACEMENT` variable overrides the config. One stdio server that runs CPU-heavy work in
several threads or processes of its own gets one CPU on a 2-CPU machine: `off` for it.
Linux only (`os.sched_setaffinity`); elsewhere, or where a call is refused, placement is left to the OS.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger("hub.placement")

Mode = Literal["auto", "separate", "off"]
AUTO_MAX_CPUS = 3
"""`auto` separates the hub from its children on machines with at most this many usable CPUs."""


@dataclass(frozen=True)
class Placement:
    """The CPUs the hub may use (`everything`), the one it keeps to, and its children's."""

    everything: frozenset[int]
    hub: int
    children: frozenset[int]


_active: Placement | None = None


def plan(mode: Mode, front: str, stdio_servers: int, usable: set[int] | None = None) -> Placement | None:
    """The placement `mode` asks for, for a hub serving `front` ("stdio", "http", "sse") with
    `stdio_servers` stdio children on a machine whose usable CPUs are `usable` (this process's
    affinity by default); None: leave it to the OS."""
    if mode == "off" or not hasattr(os, "sched_setaffinity"):
        return None
    cpus = frozenset(usable if usable is not None else os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    if mode == "auto" and (front != "stdio" or len(cpus) > AUTO_MAX_CPUS or not 1 <= stdio_servers < len(cpus)):
        return None
    hub = max(cpus)
    return Placement(everything=cpus, hub=hub, children=cpus - {hub})


def apply(placement: Placement | None) -> None:
    """Keep every thread of this process (and every thread and child it makes from now on) on the
    hub's CPU. Idempotent; None changes nothing."""
    global _active
    if placement is None:
        return
    if not _set_tasks(os.getpid(), frozenset({placement.hub})):
        logger.info("CPU placement left to the OS: this process may not set its own affinity")
        return
    _active = placement
    logger.info("CPU placement: the hub on CPU %d, its stdio servers on CPU %s once serving "
                "(hub.cpu_placement or MCP_HUB_CPU_PLACEMENT=off leaves it to the OS)", placement.hub,
                ",".join(map(str, sorted(placement.children))))


def spawned(pid: int) -> None:
    """A child the hub just spawned inherited the hub's CPU: give it, and whatever it forked
    already (a shell launcher's server), every usable CPU to start on."""
    if _active is not None:
        _move(pid, frozenset({_active.hub}), _active.everything)


def serving(pid: int) -> None:
    """A stdio child answered its first message: move it, its threads and its descendants (the
    server a launcher such as `npx` or `uvx` started) to the children's CPUs."""
    if _active is not None:
        _move(pid, _active.everything, _active.children)


def _move(pid: int, found: frozenset[int], to: frozenset[int]) -> None:
    """Every thread of `pid` and of its descendants that runs on exactly `found` now runs on `to`:
    one pinned otherwise (by its launcher, or by itself) keeps its own choice. `pid` first: what it
    forks from then on inherits `to`; what it forked before is found below it."""
    _set_tasks(pid, to, only_from=found)
    for each in _descendants(pid):
        _set_tasks(each, to, only_from=found)


def release_this_thread() -> None:
    """For a thread doing heavy work of its own (a pool's initializer): run on every usable CPU."""
    if _active is not None:
        with suppress(OSError):
            os.sched_setaffinity(0, _active.everything)


@contextmanager
def unpinned() -> Iterator[None]:
    """Run the block on every usable CPU, then go back. For setting up a library that reads the
    CPUs it may use once, when it starts (ONNX Runtime made on the hub's one CPU runs ~30% slower)."""
    if _active is None:
        yield
        return
    before = os.sched_getaffinity(0)
    release_this_thread()
    try:
        yield
    finally:
        with suppress(OSError):
            os.sched_setaffinity(0, before)


def _set_tasks(pid: int, cpus: frozenset[int], only_from: frozenset[int] | None = None) -> bool:
    """Set the affinity of every thread of `pid` (`only_from`: of those running on exactly that set);
    whether its main thread has it now. The main thread goes first: threads it starts meanwhile inherit."""
    try:
        if only_from is None or os.sched_getaffinity(pid) == only_from:
            os.sched_setaffinity(pid, cpus)
    except OSError as exc:  # gone, or not ours to change (a setuid program): placement stays the OS's
        logger.debug("affinity of pid %d not set: %s", pid, exc)
        return False
    with suppress(OSError):
        for name in os.listdir(f"/proc/{pid}/task"):
            if int(name) != pid:
                with suppress(OSError):
                    if only_from is None or os.sched_getaffinity(int(name)) == only_from:
                        os.sched_setaffinity(int(name), cpus)
    return True


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`: from each thread's `children` file, or, on a kernel without those
    (CONFIG_PROC_CHILDREN), from every process's parent id in /proc."""
    by_parent: dict[int, list[int]] | None = None
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        kids = _children_of(parent)
        if kids is None:
            by_parent = by_parent if by_parent is not None else _parents_scanned()
            kids = by_parent.get(parent, [])
        for kid in kids:
            if kid not in found:
                found.append(kid)
                todo.append(kid)
    return found


def _children_of(pid: int) -> list[int] | None:
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as file:
                kids += [int(kid) for kid in file.read().split()]
    except FileNotFoundError:
        return None if os.path.isdir(f"/proc/{pid}") else []
    except OSError:
        return []
    return kids


def _parents_scanned() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    with suppress(OSError):
        for name in os.listdir("/proc"):
            if name.isdigit():
                with suppress(OSError, ValueError, IndexError):
                    with open(f"/proc/{name}/stat", "rb") as stat:
                        # The command sits in parentheses and may hold spaces: the fields after its last ')'.
                        parent = int(stat.read().rsplit(b")", 1)[1].split()[1])
                    children.setdefault(parent, []).append(int(name))
    return children
