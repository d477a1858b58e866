"""Wider pipes for big answers (`hub.pipe_size`): each stdio child's stdout and the hub's own stdout hold
1 MiB, so a 48 MB line wakes each side ~50 times, not ~750; at most `MAX_WIDE` open pipes are widened
(a user's pipes share a kernel budget)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from hub import pipe_size
from tests.conftest import FIXTURES, PY, write_config
from tests.hub.test_hub_faults import RawHub, wait_for

F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
WIDE = min(pipe_size.PIPE_BYTES, int(Path("/proc/sys/fs/pipe-max-size").read_text()))


def test_a_pipe_is_widened_once_per_open_slot_and_a_closed_one_frees_its_slot(tmp_path: Path) -> None:
    pipes = [os.pipe() for _ in range(pipe_size.MAX_WIDE + 2)]
    files = [os.fdopen(read, "rb") for read, _ in pipes]
    try:
        sizes = [pipe_size.widen_pipe(f) for f in files]
        assert sizes[:pipe_size.MAX_WIDE] == [WIDE] * pipe_size.MAX_WIDE and sizes[pipe_size.MAX_WIDE:] == [None, None]
        assert fcntl.fcntl(pipes[0][1], F_GETPIPE_SZ) == WIDE and fcntl.fcntl(pipes[-1][1], F_GETPIPE_SZ) == 65536
        files[0].close()
        assert pipe_size.widen_pipe(files[-1]) == WIDE
        regular = open(tmp_path / "plain", "wb")  # noqa: SIM115
        with regular:
            assert pipe_size.widen_pipe(regular) is None
    finally:
        for f in files:
            f.close()
        for _, write in pipes:
            os.close(write)


def test_the_hub_widens_its_stdout_and_its_childs(tmp_path: Path) -> None:
    hub = RawHub(write_config(tmp_path, {"raw": {"command": PY, "args": [str(FIXTURES / "raw_log_server.py")]}}))
    try:
        hub.start({"raw__note"})
        assert hub.popen.stdout is not None
        assert fcntl.fcntl(hub.popen.stdout.fileno(), F_GETPIPE_SZ) == WIDE  # the hub's stdout, from our end

        def child_stdout_size() -> int | None:  # a server without the SDK keeps its stdout on fd 1
            for task in Path(f"/proc/{hub.popen.pid}/task").iterdir():
                for pid in (task / "children").read_text().split():
                    if "raw_log_server" in Path(f"/proc/{pid}/cmdline").read_text():
                        fd = os.open(f"/proc/{pid}/fd/1", os.O_WRONLY | os.O_NONBLOCK)  # the same pipe, our own fd
                        try:
                            return int(fcntl.fcntl(fd, F_GETPIPE_SZ))
                        finally:
                            os.close(fd)
            return None

        wait_for(lambda: child_stdout_size() == WIDE, what="the child's stdout widened")
    finally:
        hub.close()


@pytest.fixture(autouse=True)
def _fresh_slots() -> None:
    pipe_size._wide.clear()  # noqa: SLF001 — each test counts its own pipes
