"""Which CPUs the hub and its stdio children run on (`hub.cpu_placement`).

Every relayed call passes through three busy processes: the caller, the hub and a stdio server.
On a machine with two or three CPUs they do not fit one per CPU, and the kernel keeps moving them:
a server is woken on the core where the hub (or the caller) still runs and waits behind it, or
migrates and starts cold. Measured on a 2-vCPU VM (docs/performance.md, "Per call, round 7"), an SDK
client calling an SDK echo server through the hub: with 16 concurrent calls the hub's throughput
swung between 0.8x and 1.6x of direct from round to round; with the server kept on one CPU it held
1.7x, and sequential calls gained up to ~10%.

So `mcp-hub serve` keeps its stdio server off one CPU (the last usable one): once the server has
answered its first message (`serving`) it is moved, with its threads and descendants, to the other
CPUs; the hub and the caller are left to the OS, which then runs them on the CPU the server leaves
free. A server imports and starts on every CPU, beside the others starting. Only what placement
set is changed: a server its launcher pinned to fewer than every CPU (`taskset -c 1 server`) keeps
that. Keeping the hub itself on the free CPU as well measured the same (0.91x / 1.68x against 0.91x /
1.66x, interleaved rounds), so the hub is not pinned: its threads, in-process domains and libraries
that size their thread pools from the CPUs they see (ONNX Runtime, BLAS) keep every CPU.

`auto` does this, on any front, with two or three usable CPUs when every stdio server can have a
CPU of its own beside the one left free (one server on two CPUs, two on three). Measured where it
does not (an outside review, same VM): 16 concurrent calls spread over 3–6 stdio children ran at
0.72–0.80x of unplaced, and two children computing at once took twice as long. With four or more
CPUs the three processes fit. Over HTTP it pays once the front's own cost per request is small
(2026-12-03, after "HTTP front, round 2" in docs/performance.md; interleaved rounds against the
plain SDK server): 2026-07-28 calls 0.85x / 1.00x placed against 0.78x / 0.97x not (sequential /
16 concurrent), 2025-11-25 sessions 1.16x against 1.11x sequential; before that round it gained
nothing measurable, and HTTP was left out. `separate` always places (with at least two CPUs),
`off` never; the `MCP_HUB_CPU_PLACEMENT` variable overrides the config. One stdio
server that runs CPU-heavy work in several threads or processes of its own gets one CPU on a 2-CPU
machine: `off` for it.
Linux only (`os.sched_setaffinity`); elsewhere, or where a call is refused, placement is left to the OS.
"""

from __future__ import annotations

import logging
import os
from contextlib import suppress
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger("hub.placement")

Mode = Literal["auto", "separate", "off"]
AUTO_MAX_CPUS = 3
"""`auto` places stdio servers only on machines with at most this many usable CPUs."""


@dataclass(frozen=True)
class Placement:
    """The CPUs the hub may use (`everything`), the one its stdio servers leave free (`hub`: the hub
    and its caller run there), and the servers' (`children`)."""

    everything: frozenset[int]
    hub: int
    children: frozenset[int]


_active: Placement | None = None


def plan(mode: Mode, stdio_servers: int, usable: set[int] | None = None) -> Placement | None:
    """The placement `mode` asks for, for a hub with `stdio_servers` stdio children on a machine whose
    usable CPUs are `usable` (this process's affinity by default); None: leave it to the OS."""
    if mode == "off" or not hasattr(os, "sched_setaffinity"):
        return None
    cpus = frozenset(usable if usable is not None else os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    if mode == "auto" and (len(cpus) > AUTO_MAX_CPUS or not 1 <= stdio_servers < len(cpus)):
        return None
    hub = max(cpus)
    return Placement(everything=cpus, hub=hub, children=cpus - {hub})


def apply(placement: Placement | None) -> None:
    """From now on, move each stdio server off the placement's free CPU once it serves (`serving`).
    None changes nothing."""
    global _active
    if placement is None:
        return
    _active = placement
    logger.info("CPU placement: stdio servers on CPU %s once serving, CPU %d left to the hub and its caller "
                "(hub.cpu_placement or MCP_HUB_CPU_PLACEMENT=off leaves it to the OS)",
                ",".join(map(str, sorted(placement.children))), placement.hub)


def serving(pid: int) -> None:
    """A stdio server answered its first message: move it, its threads and its descendants (the
    server a launcher such as `npx` or `uvx` started) to the servers' CPUs — every thread that runs on
    every usable CPU; one pinned otherwise (by its launcher, or by itself) keeps its own choice. `pid`
    first: what it forks from then on inherits the new CPUs; what it forked before is found below it."""
    if _active is None:
        return
    _set_tasks(pid, _active.children, only_from=_active.everything)
    for each in _descendants(pid):
        _set_tasks(each, _active.children, only_from=_active.everything)


def _set_tasks(pid: int, cpus: frozenset[int], only_from: frozenset[int]) -> None:
    """Set the affinity of every thread of `pid` that runs on exactly `only_from`. The main thread
    goes first: threads it starts meanwhile inherit."""
    try:
        if os.sched_getaffinity(pid) == only_from:
            os.sched_setaffinity(pid, cpus)
    except OSError as exc:  # gone, or not ours to change (a setuid program): placement stays the OS's
        logger.debug("affinity of pid %d not set: %s", pid, exc)
        return
    with suppress(OSError):
        for name in os.listdir(f"/proc/{pid}/task"):
            if int(name) != pid:
                with suppress(OSError):
                    if os.sched_getaffinity(int(name)) == only_from:
                        os.sched_setaffinity(int(name), cpus)


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
    from hub.downstream.reaper import process_stats

    children: dict[int, list[int]] = {}
    for pid, fields in process_stats():
        children.setdefault(int(fields[1]), []).append(pid)
    return children
