"""`mcp-hub serve` keeps its stdio server off one CPU, left to the hub and its caller
(`hub.placement`): decided from the front, the servers and the usable CPUs, done to every thread and
descendant once the server serves, never to the hub or to a server that chose its own CPUs."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from hub.placement import plan
from tests.conftest import ECHO, PY, ROOT, Proc, hub_command, processes_with, write_config

USABLE = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
needs_two_cpus = pytest.mark.skipif(len(USABLE) < 2, reason="placement needs two usable CPUs")


@pytest.mark.parametrize(("mode", "stdio_servers", "usable", "hub", "children"), [
    ("auto", 1, {0, 1}, 1, {0}),
    ("auto", 2, {0, 1, 2}, 2, {0, 1}),
    ("auto", 1, {2, 5}, 5, {2}),  # a cpuset's CPUs, whatever their numbers
    ("auto", 1, {0, 1, 2, 3}, None, None),  # caller, hub and server fit: the OS places them
    ("auto", 1, {3}, None, None),
    ("auto", 0, {0, 1}, None, None),  # no stdio server: nothing to keep apart
    ("auto", 2, {0, 1}, None, None),  # two servers would share the one CPU left
    ("auto", 3, {0, 1, 2}, None, None),
    ("separate", 6, set(range(8)), 7, set(range(7))),
    ("separate", 1, {4}, None, None),
    ("off", 1, {0, 1}, None, None),
])
def test_the_plan_follows_the_mode_the_servers_and_the_usable_cpus(
        mode: str, stdio_servers: int, usable: set[int], hub: int | None, children: set[int] | None) -> None:
    placement = plan(mode, stdio_servers, usable)  # type: ignore[arg-type]
    if hub is None:
        assert placement is None
    else:
        assert placement is not None
        assert (placement.hub, set(placement.children), set(placement.everything)) == (hub, children, usable)


# A stdio server that writes the CPUs it was started on, optionally keeps itself to one CPU, starts
# a helper process and a thread, then serves the echo fixture: all three must end up off the CPU left
# to the hub (unless it chose its own), the start on every CPU.
CHILD = r"""
import os, runpy, subprocess, sys, threading, time
out, marker, echo, own = sys.argv[1:5]
with open(out, "w") as file:
    file.write(" ".join(map(str, sorted(os.sched_getaffinity(0)))))
if own != "-":
    os.sched_setaffinity(0, {int(own)})
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", marker + "-helper"])
threading.Thread(target=time.sleep, args=(300,), daemon=True).start()
sys.argv = [echo, "--name", marker]
runpy.run_path(echo, run_name="__main__")
"""
HUB_CPU = max(USABLE) if USABLE else -1


def _affinities(pid: int) -> set[frozenset[int]]:
    """The distinct CPU sets of every thread of `pid`."""
    return {frozenset(os.sched_getaffinity(int(tid))) for tid in os.listdir(f"/proc/{pid}/task")}


def _hub_env(prestart: str = "1", **extra: str) -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"], "MCP_HUB_PRESTART": prestart,
            "MCP_HUB_DATA_DIR": os.environ["MCP_HUB_DATA_DIR"], "MCP_HUB_CACHE_DIR": os.environ["MCP_HUB_CACHE_DIR"], **extra}


def _child(as_started: Path, marker: str, own: str = "-", shell: bool = False) -> dict[str, object]:
    args = ["-c", CHILD, str(as_started), marker, ECHO, own]
    if shell:  # a launcher that forks its server at once (`; exit` keeps the shell from exec-ing it)
        return {"command": "sh", "args": ["-c", '"$0" "$@"; exit $?', PY, *args]}
    return {"command": PY, "args": args}


@needs_two_cpus
@pytest.mark.anyio
@pytest.mark.parametrize(("mode", "prestart", "launcher"), [
    ("separate", "1", "none"), ("separate", "0", "none"), ("separate", "0", "shell"), ("separate", "1", "shell"),
    ("off", "1", "none"),
])
async def test_serve_keeps_its_stdio_server_off_the_cpu_it_leaves_to_itself(tmp_path: Path, mode: str, prestart: str,
                                                                      launcher: str) -> None:
    marker = f"placement-{mode}-{prestart}-{launcher}-{os.getpid()}"
    as_started = tmp_path / "as-started"
    config = write_config(tmp_path, {"p": _child(as_started, marker, shell=launcher == "shell")}, {"cpu_placement": mode})
    params = StdioServerParameters(command=PY, args=["-m", "hub.cli", "serve", "--config", str(config),
                                                     "--log-level", "warning"], cwd=str(ROOT), env=_hub_env(prestart))
    async with Client(params) as client:
        assert (await client.call_tool("p__echo", {"text": "hi"})).structured_content == {"result": "hi"}
        [hub] = processes_with(str(config), exclude=(marker,))
        [helper] = processes_with(marker + "-helper")
        servers = [pid for pid in processes_with(marker) if pid != helper]  # the server, and its shell launcher
        assert _affinities(hub) == {frozenset(USABLE)}  # the hub itself is never pinned
        if mode == "off":
            assert {a for pid in (helper, *servers) for a in _affinities(pid)} == {frozenset(USABLE)}
        else:
            for pid in (*servers, helper):  # every thread of the server, its launcher and what it started
                assert _affinities(pid) == {frozenset(USABLE - {HUB_CPU})}
        # Pre-started or spawned by the hub, behind a launcher or not: it started on every CPU.
        assert {int(cpu) for cpu in as_started.read_text().split()} == USABLE


@needs_two_cpus
@pytest.mark.anyio
async def test_a_server_that_chose_its_cpus_keeps_them(tmp_path: Path) -> None:
    marker = f"placement-own-{os.getpid()}"
    config = write_config(tmp_path, {"p": _child(tmp_path / "as-started", marker, own=str(HUB_CPU))},
                          {"cpu_placement": "separate"})
    params = StdioServerParameters(command=PY, args=["-m", "hub.cli", "serve", "--config", str(config),
                                                     "--log-level", "warning"], cwd=str(ROOT), env=_hub_env())
    async with Client(params) as client:
        assert (await client.call_tool("p__echo", {"text": "hi"})).structured_content == {"result": "hi"}
        [helper] = processes_with(marker + "-helper")
        [server] = [pid for pid in processes_with(marker) if pid != helper]
        assert _affinities(server) == _affinities(helper) == {frozenset({HUB_CPU})}  # as it set, not moved


@pytest.mark.skipif(len(USABLE) != 2, reason="auto's choice is checked on a 2-CPU machine")
@pytest.mark.anyio
@pytest.mark.parametrize(("second", "configured", "variable", "placed"), [
    (None, "auto", None, True),
    ("disabled", "auto", None, True),  # only servers that run count
    ("enabled", "auto", None, False),  # two servers would share the one CPU left
    (None, "separate", "off", False),  # the variable beats the config
    ("enabled", "auto", "separate", True),
])
async def test_auto_places_one_stdio_server_on_two_cpus_and_the_variable_overrides(
        tmp_path: Path, second: str | None, configured: str, variable: str | None, placed: bool) -> None:
    marker = f"placement-auto-{second}-{variable}-{os.getpid()}"
    servers: dict[str, object] = {"p": _child(tmp_path / "as-started", marker)}
    if second is not None:
        servers["q"] = {**_child(tmp_path / "q-started", marker + "-q"), "enabled": second == "enabled"}
    config = write_config(tmp_path, servers, {"cpu_placement": configured})
    env = _hub_env(**({"MCP_HUB_CPU_PLACEMENT": variable} if variable else {}))
    params = StdioServerParameters(command=PY, args=["-m", "hub.cli", "serve", "--config", str(config),
                                                     "--log-level", "warning"], cwd=str(ROOT), env=env)
    async with Client(params) as client:
        assert (await client.call_tool("p__echo", {"text": "hi"})).structured_content == {"result": "hi"}
        [helper] = processes_with(marker + "-helper")
        [server] = [pid for pid in processes_with(marker) if pid not in (helper, *processes_with(marker + "-q"))]
        assert _affinities(server) == {frozenset(USABLE - {HUB_CPU} if placed else USABLE)}


@pytest.mark.skipif(len(USABLE) != 2, reason="auto's choice is checked on a 2-CPU machine")
@pytest.mark.anyio
async def test_auto_places_the_stdio_server_behind_an_http_front_too(tmp_path: Path) -> None:
    marker = f"placement-http-{os.getpid()}"
    config = write_config(tmp_path, {"p": _child(tmp_path / "as-started", marker)})
    hub = Proc(hub_command(config, "--transport", "http", "--port", "0", "--log-level", "info"), env=_hub_env())
    try:
        url = hub.wait_for_line(r"mcp-hub listening on (\S+)").group(1)
        async with Client(streamable_http_client(url)) as client:  # 2026-07-28: the fast path's first call
            assert (await client.call_tool("p__echo", {"text": "hi"})).structured_content == {"result": "hi"}
        [helper] = processes_with(marker + "-helper")
        [server] = [pid for pid in processes_with(marker) if pid != helper]
        assert _affinities(server) == _affinities(helper) == {frozenset(USABLE - {HUB_CPU})}
        assert _affinities(hub.popen.pid) == {frozenset(USABLE)}
        assert any("CPU placement" in line for line in hub.stderr_lines)
    finally:
        hub.stop()


def test_an_unknown_placement_in_the_variable_is_a_clear_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, {})
    done = subprocess.run([PY, "-m", "hub.cli", "serve", "--config", str(config)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env=_hub_env(MCP_HUB_CPU_PLACEMENT="sideways"))
    assert done.returncode == 2
    assert "MCP_HUB_CPU_PLACEMENT" in done.stderr and "'sideways' is not one of: auto, separate, off" in done.stderr
    checked = subprocess.run([PY, "-m", "hub.cli", "check", str(config)], cwd=ROOT, capture_output=True, text=True,
                             timeout=120, env=_hub_env(MCP_HUB_CPU_PLACEMENT="sideways"))
    assert checked.returncode == 1, "`mcp-hub check` passes what `serve` refuses"
    assert "'sideways' is not one of: auto, separate, off" in checked.stdout and "1 error(s)" in checked.stdout
    assert subprocess.run([PY, "-m", "hub.cli", "check", str(config)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=_hub_env(MCP_HUB_CPU_PLACEMENT="off")).returncode == 0


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
@pytest.mark.parametrize("children_files", [True, False])
def test_descendants_are_found_with_or_without_the_kernels_children_files(
        children_files: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from hub import placement

    if not children_files:  # a kernel without CONFIG_PROC_CHILDREN: every process's parent id is read
        monkeypatch.setattr(placement, "_children_of", lambda pid: None)
    tree = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
            "'import subprocess, time; subprocess.Popen([\"sleep\", \"60\"]); time.sleep(60)']); time.sleep(60)")
    top = subprocess.Popen([PY, "-c", tree])
    try:
        def sleeping_below() -> bool:
            found = placement._descendants(top.pid)
            return len(found) == 2 and Path(f"/proc/{found[1]}/stat").read_text().split()[1] == "(sleep)"

        deadline = time.monotonic() + 60
        while not sleeping_below() and time.monotonic() < deadline:
            time.sleep(0.01)  # until the child has started its own, and that one is `sleep`
        assert sleeping_below(), placement._descendants(top.pid)
        middle, bottom = placement._descendants(top.pid)
        assert placement._descendants(bottom) == [] and placement._descendants(middle) == [bottom]
    finally:
        for pid in placement._descendants(top.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        top.kill()
        top.wait()
