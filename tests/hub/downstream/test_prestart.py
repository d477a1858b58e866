"""`mcp-hub serve` starts its stdio children before its own imports and adopts them (`hub.prestart`);
a pre-started child never adopted, or caught by a stop during the start, is killed with its group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import ECHO, PY, ROOT, echo_stdio, processes_with, write_config

pytestmark = pytest.mark.anyio

# Runs `python -m hub.cli` with an import hook that writes, at the moment the hub first imports the
# SDK (`mcp`), the pids of the processes the hub has started so far.
LAUNCHER = r"""
import os, runpy, sys
out = sys.argv.pop(1)

def parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1

class AtSdkImport:
    def find_spec(self, name, path=None, target=None):
        if name == "mcp":
            sys.meta_path.remove(self)
            children = [p for p in os.listdir("/proc") if p.isdigit() and parent_of(p) == os.getpid()]
            with open(out, "w") as file:
                file.write(" ".join(children))
        return None

sys.meta_path.insert(0, AtSdkImport())
runpy.run_module("hub.cli", run_name="__main__", alter_sys=True)
"""


def _processes_with(marker: str) -> list[int]:
    return processes_with(marker, ("hub.cli", "hub.prestart"))


def _wait_gone(marker: str, timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _group_leader(marker: str) -> list[str]:
    """A stdio server that starts a helper in its process group, both named by `marker`."""
    code = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', "
            "sys.argv[1]]); time.sleep(300)")
    return ["-c", code, marker]


@pytest.mark.parametrize("variables", [False, True], ids=["literal", "variables"])
async def test_child_started_before_the_sdk_import_is_the_one_the_hub_talks_to(tmp_path: Path, variables: bool) -> None:
    """Also with `${VAR}` in `command` and `cwd`, which the config expands (outside review newuser19 #9):
    the pre-start expands them the same way, so such a child still starts early and is adopted."""
    marker = f"prestart-adopt-{os.getpid()}-{variables}"
    entry = echo_stdio("--name", marker)
    extra = {}
    if variables:
        entry |= {"command": "${PRESTART_PY}", "cwd": "${PRESTART_CWD}"}
        extra = {"PRESTART_PY": PY, "PRESTART_CWD": str(ROOT)}
    config = write_config(tmp_path, {"e": entry})
    seen = tmp_path / "children-at-sdk-import"
    params = StdioServerParameters(command=PY, args=["-c", LAUNCHER, str(seen), "serve", "--config", str(config),
                                                     "--log-level", "warning"], cwd=str(ROOT),
                                   env={"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"],
                                        "MCP_HUB_DATA_DIR": os.environ["MCP_HUB_DATA_DIR"],
                                        "MCP_HUB_CACHE_DIR": os.environ["MCP_HUB_CACHE_DIR"], **extra})
    async with Client(params) as client:
        answer = await client.call_tool("e__echo", {"text": "hi"})
        assert answer.structured_content == {"result": "hi"}
        [talking] = _processes_with(marker)  # the only child with that marker: the one that answered
        started_early = {int(pid) for pid in seen.read_text().split()}
        assert talking in started_early, "the hub's child was spawned after the hub imported the SDK"
        # The caller channel's secret is the one the pre-started child holds (its tokens check out).
        assert (await client.call_tool("e__env_has", {"name": "MCP_HUB_CALLER_SECRET"})).structured_content == {"result": True}
    assert _wait_gone(marker) == []


def test_a_child_the_hub_does_not_adopt_is_killed_with_its_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hub import prestart

    monkeypatch.setenv("MCP_HUB_CACHE_DIR", str(tmp_path / "cache"))  # no listing remembered: each child starts at once

    marker = f"prestart-unadopted-{os.getpid()}"
    config = tmp_path / "hub.json"
    config.write_text(json.dumps({"mcpServers": {
        "kept": {"command": PY, "args": _group_leader(marker + "-kept")},
        "other": {"command": PY, "args": _group_leader(marker + "-other")},
        "mismatch": {"command": PY, "args": _group_leader(marker + "-mismatch")},
        "off": {"command": PY, "args": _group_leader(marker + "-off"), "disabled": True},
        "unset": {"command": PY, "args": [ECHO], "env": {"K": "${PRESTART_TEST_UNSET_VARIABLE}"}},
        "remote": {"url": "http://127.0.0.1:9/mcp"},
    }}))
    started = prestart.start_config(str(config), os.environ)
    try:
        assert sorted(child.name for child in started) == ["kept", "mismatch", "other"]
        for name in ("kept", "other", "mismatch"):  # each leader has started its helper
            deadline = time.monotonic() + 60
            while len(_processes_with(f"{marker}-{name}")) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(_processes_with(f"{marker}-{name}")) == 2
        prestart.keep_only({"kept", "mismatch"})  # "other" is not a stdio server of this hub
        assert _wait_gone(f"{marker}-other") == []
        mismatch = prestart.claim("mismatch")
        assert mismatch is not None and not mismatch.matches([PY, "something", "else"], mismatch.env, mismatch.cwd)
        mismatch.kill()  # what stdio_child does before spawning anew
        assert _wait_gone(f"{marker}-mismatch") == []
        assert prestart.claim("mismatch") is None  # a restart spawns normally
        assert len(_processes_with(f"{marker}-kept")) == 2
    finally:
        prestart.discard_all()  # at exit
    assert _wait_gone(marker) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_during_the_start_leaves_nothing_behind(tmp_path: Path, sig: signal.Signals) -> None:
    marker = f"prestart-stop-{sig.name}-{os.getpid()}"
    config = write_config(tmp_path, {"a": {"command": PY, "args": _group_leader(marker + "a")},
                                     "b": {"command": PY, "args": _group_leader(marker + "b")}})
    hub = subprocess.Popen([PY, "-m", "hub.cli", "serve", "--config", str(config)], stdin=subprocess.PIPE,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not _processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _processes_with(marker), "the hub never started its children"
        hub.send_signal(sig)  # most likely while the hub still imports; whenever it lands, nothing may stay
        hub.wait(30)
        assert _wait_gone(marker) == []
    finally:
        hub.kill()
        for pid in _processes_with(marker):
            os.kill(pid, signal.SIGKILL)


# Sends itself `sig` the instant a spawn of a child holding `marker` returns, once that child has
# started its helper: the window between a spawn and the child's registration, made certain.
SIGNAL_AFTER_SPAWN = r"""
import os, signal, subprocess, sys, time
from hub import prestart
sig, marker, config = int(sys.argv[2]), sys.argv[3], sys.argv[4]
real = subprocess.Popen

def count(word):
    found = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            found += word in open(f"/proc/{pid}/cmdline").read() and "SIGNAL_AFTER_SPAWN" not in open(f"/proc/{pid}/cmdline").read()
        except OSError:
            pass
    return found

class SignalAfterSpawn(real):
    def __init__(self, args, *rest, **options):
        super().__init__(args, *rest, **options)
        if any(marker in str(arg) for arg in args):
            deadline = time.monotonic() + 60
            while count(marker) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(os.getpid(), sig)

subprocess.Popen = SignalAfterSpawn
prestart.prestart_serve(["serve", "--config", config])
print("the start went on after the signal")
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_right_after_a_spawn_still_stops_that_child_and_its_group(tmp_path: Path,
                                                                                 sig: signal.Signals) -> None:
    marker = f"prestart-window-{sig.name}-{os.getpid()}"
    config = write_config(tmp_path, {"a": {"command": PY, "args": _group_leader(marker)},
                                     "b": {"command": PY, "args": _group_leader(marker + "-never")}})
    try:
        done = subprocess.run([PY, "-c", SIGNAL_AFTER_SPAWN, "SIGNAL_AFTER_SPAWN", str(int(sig)), marker, str(config)],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert done.returncode == 128 + sig, done.stderr
        assert "went on" not in done.stdout
        assert _wait_gone(marker) == []  # the leader, and the helper its parent-death signal never reaches
    finally:
        for pid in _processes_with(marker):
            os.kill(pid, signal.SIGKILL)


def test_prestart_imports_nothing_heavy() -> None:
    code = "import sys, hub.prestart; print(sorted(m for m in ('pydantic', 'mcp', 'anyio') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


# Runs `python -m hub.cli serve` held inside its imports (at its first `import anyio`, right after
# the pre-start), with a thread that never ends, as an import may leave: a stop that unwinds from
# there (SystemExit, KeyboardInterrupt) then waits for that thread at the interpreter's exit forever.
HELD_IN_THE_IMPORTS = r"""
import os, runpy, sys, threading, time
ready, config = sys.argv[1], sys.argv[2]
threading.Thread(target=threading.Event().wait, name="never-ends").start()

class HoldAtAnyio:
    def find_spec(self, name, path=None, target=None):
        if name == "anyio":
            open(ready, "w").close()
            while True:
                time.sleep(0.05)
        return None

sys.meta_path.insert(0, HoldAtAnyio())
sys.argv = ["mcp-hub", "serve", "--config", config]
runpy.run_module("hub.cli", run_name="__main__")
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_during_the_imports_ends_the_hub_at_once(tmp_path: Path, sig: signal.Signals) -> None:
    """Between the pre-start and the hub's own handler nothing needs a clean stop: the signal kills
    the waiting children and exits with 128 + the signal, whatever the imports were doing."""
    marker = f"prestart-gap-{sig.name}-{os.getpid()}"
    ready = tmp_path / "held"
    daemon = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    leaves_its_group = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]], "
                        "start_new_session=True); time.sleep(300)")
    config = write_config(tmp_path, {"a": {"command": PY, "args": _group_leader(marker)},
                                     "d": {"command": PY, "args": ["-c", leaves_its_group, daemon, marker + "-daemon"]}})
    hub = subprocess.Popen([PY, "-c", HELD_IN_THE_IMPORTS, str(ready), str(config)], stdin=subprocess.PIPE,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not (ready.exists() and len(_processes_with(marker)) == 4) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ready.exists() and len(_processes_with(marker)) == 4, "the hub never reached its imports with its children up"
        hub.send_signal(sig)
        try:
            code = hub.wait(20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the hub outlived a {sig.name} sent during its imports")
        assert code == 128 + sig
        assert _wait_gone(marker) == []  # the children, the helper in a group, the daemon that left its group
    finally:
        hub.kill()
        hub.wait()
        assert hub.stderr is not None
        hub.stderr.close()
        for pid in _processes_with(marker):
            os.kill(pid, signal.SIGKILL)


def test_prestart_expands_variables_as_the_config_does() -> None:
    """VS Code's `${env:NAME}` was left as its literal text (a child started early with it, then thrown
    away), and a `${input:...}` the config refuses still started one. Now as `hub.config.expand_env`."""
    from hub.prestart import _expand

    environ = {"HOME": "/home/u", "TOKEN": "t0k"}
    assert _expand("${env:HOME}/data and ${TOKEN} and ${MISSING:-x}", environ) == "/home/u/data and t0k and x"
    assert _expand("${input:apiKey}", environ) is None and _expand("${env:MISSING}", environ) is None
