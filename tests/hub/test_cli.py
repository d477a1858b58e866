"""`mcp-hub tools` and `mcp-hub call` for people at a terminal."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import PY, ROOT, echo_stdio, write_config


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "hub.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_tools_table_and_json(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"e": echo_stdio(), "gone": {"command": "no-such-binary-here"}})
    table = run("tools", "-c", str(config))
    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAME", "SERVER", "READ-ONLY", "DESCRIPTION"]
    add_row = next(r for r in rows if r.startswith("e__add "))
    assert add_row.split()[1:3] == ["e", "yes"] and "Add two integers." in add_row
    assert "server gone unavailable: command 'no-such-binary-here' was not found on PATH" in table.stderr
    listed = json.loads(run("tools", "-c", str(config), "--json").stdout)
    assert {"name": "e__echo", "server": "e", "original": "echo", "read_only": False,
            "description": "Echo the text back."} in listed


def test_call_prints_structured_result_and_errors(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"e": echo_stdio()})
    ok = run("call", "-c", str(config), "e__add", '{"a": 4, "b": 5}')
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"total": 9}
    bad_args = run("call", "-c", str(config), "e__add", '{"a": "x", "b": 5}')
    assert bad_args.returncode == 1 and json.loads(bad_args.stdout)["code"] == "invalid_argument"
    unknown = run("call", "-c", str(config), "e__nope", "{}")
    assert unknown.returncode == 2 and "mcp-hub tools" in unknown.stderr
    not_json = run("call", "-c", str(config), "e__add", "{a: 1}")
    assert not_json.returncode == 2 and "not valid JSON" in not_json.stderr
    assert ok.stdout == "{\n  \"total\": 9\n}\n"  # only the result on stdout; logs went to stderr


def test_in_process_domains_keep_their_data_in_the_configured_data_dir(tmp_path: Path) -> None:
    """Outside review: keys and audit went to the configured data dir while the built-in domains'
    databases went to `$MCP_HUB_DATA_DIR` (or the default), so two hubs with separate data dirs
    shared one memory and one ticket database."""
    import os

    elsewhere = tmp_path / "env-dir"
    env = {**os.environ, "MCP_HUB_DATA_DIR": str(elsewhere)}
    for name, extra in (("config", []), ("flag", ["--data-dir", str(tmp_path / "flag-dir")])):
        folder = tmp_path / name
        folder.mkdir()
        config = write_config(folder, {"ticketing": {"builtin": "ticketing"}},
                              {"data_dir": str(folder / "config-dir")} if name == "config" else None)
        done = subprocess.run([PY, "-m", "hub.cli", "tools", "-c", str(config), "--json", *extra], capture_output=True,
                              text=True, cwd=ROOT, timeout=120, env=env)
        assert done.returncode == 0, done.stderr
        assert any(t["name"].startswith("ticketing__") for t in json.loads(done.stdout))
        wanted = folder / "config-dir" if name == "config" else tmp_path / "flag-dir"
        assert (wanted / "ticketing.sqlite").exists(), sorted(p.name for p in wanted.glob("*")) if wanted.exists() else "no dir"
    assert not (elsewhere / "ticketing.sqlite").exists()
