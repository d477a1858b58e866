"""What a new user meets wiring the hub up (outside review newuser19): `check` finds servers that can
never start (#1) and `${...}` in `command`/`cwd` (#9); a misspelt or foreign per-server key is named
with its fix (#8); `keys create` warns about scopes that grant nothing (#10); the audit table shows
request ids that tell calls apart (#7)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hub.cli_admin import audit_command
from hub.config import ConfigError, parse_config
from tests.conftest import PY, ROOT


def check(tmp_path: Path, data: dict[str, Any], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    path = tmp_path / "hub.json"
    path.write_text(json.dumps(data))
    return subprocess.run([PY, "-m", "hub.cli", "check", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize(("server", "path", "words"), [
    ({"builtin": "ticketting"}, "t.builtin", ["did you mean 'ticketing'?", "unknown built-in domain"]),
    ({"module": "no_such_pkg_xyz.server:mcp"}, "t.module", ["'no_such_pkg_xyz.server' cannot be found", "install"]),
    ({"module": "tests.fixtures.no_such_module:mcp"}, "t.module", ["cannot be found"]),
    ({"command": "no-such-binary-xyz"}, "t.command", ["not found on PATH", "absolute path"]),
    ({"command": "./missing.sh"}, "t.command", ["does not exist or is not executable"]),
    ({"command": sys.executable, "cwd": "/nonexistent/dir"}, "t.cwd", ["'/nonexistent/dir' does not exist"]),
])
def test_check_refuses_servers_that_can_never_start(tmp_path: Path, server: dict, path: str, words: list[str]) -> None:
    done = check(tmp_path, {"mcpServers": {"t": server, "ok": {"builtin": "ticketing"}}})
    assert done.returncode == 1, done.stdout
    line = next(line for line in done.stdout.splitlines() if f"$.mcpServers.{path}:" in line)
    assert line.startswith("error: ") and all(word in line for word in words), line


def test_check_passes_servers_that_can_start_and_skips_disabled_ones(tmp_path: Path) -> None:
    done = check(tmp_path, {"servers": {
        "a": {"builtin": "ticketing"}, "b": {"module": "tests.fixtures.echo_server:mcp"},
        "c": {"type": "stdio", "command": "python3", "cwd": str(tmp_path)},
        "d": {"command": "no-such-binary-xyz", "disabled": True}}})
    assert done.returncode == 0, done.stdout


def test_variables_in_command_and_cwd_are_expanded_or_named(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "PY_FOR_HUB": sys.executable}
    config = parse_config({"mcpServers": {"s": {"command": "${PY_FOR_HUB}", "cwd": "${HOME}/x", "args": []}}}, env)
    assert config.servers[0].command == sys.executable and config.servers[0].cwd == f"{tmp_path}/x"
    with pytest.raises(ConfigError) as failed:
        parse_config({"servers": {"s": {"command": "${env:NOPE_UNSET_VAR}", "cwd": "${workspaceFolder}"}}}, {})
    said = {p.path: p.message for p in failed.value.problems}
    assert "NOPE_UNSET_VAR is not set" in said["$.servers.s.command"]
    assert "VS Code variable" in said["$.servers.s.cwd"] and "write the path" in said["$.servers.s.cwd"]
    assert check(tmp_path, {"mcpServers": {"s": {"command": "${PY_FOR_HUB}", "cwd": "${HOME}"}}}, env).returncode == 0


@pytest.mark.parametrize(("data", "path", "words"), [
    ({"mcpServers": {"t": {"builtin": "ticketing", "timout_s": 5}}}, "$.mcpServers.t.timout_s", ["did you mean 'timeout_s'?"]),
    ({"mcpServers": {"t": {"command": "python3", "timeout": 60}}}, "$.mcpServers.t.timeout", ["Cline's", "`timeout_s`"]),
    ({"mcpServers": {"t": {"builtin": "ticketing", "retry": {"max_attempt": 2}}}}, "$.mcpServers.t.retry.max_attempt",
     ["did you mean 'max_attempts'?"]),
    ({"mcpServers": {"t": {"builtin": "ticketing", "tool_overrides": {"a*": {"timeout": 2}}}}},
     "$.mcpServers.t.tool_overrides.a*.timeout", ["did you mean 'timeout_s'?"]),
    ({"hub": {"nme_budget": 2}, "mcpServers": {}}, "$.hub.nme_budget", ["did you mean 'name_budget'?"]),
    ({"hub": {"auth": {"zzz": 1}}, "mcpServers": {}}, "$.hub.auth.zzz", ["known keys here are", "resource_url"]),
])
def test_unknown_keys_name_the_fix(data: dict, path: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as failed:
        parse_config(data, {})
    message = next(p.message for p in failed.value.problems if p.path == path)
    assert all(word in message for word in words), message


def test_vscode_dev_block_is_ignored_with_a_warning() -> None:
    config = parse_config({"servers": {"t": {"type": "stdio", "command": "python3", "dev": {"watch": "src/**"}}}}, {})
    assert [str(w) for w in config.warnings] == [
        "warning: $.servers.t.dev: VS Code's `dev` block (watching and debugging a server you develop) is not used by "
        "the hub: ignored"]


def test_keys_create_warns_about_scopes_that_grant_nothing(tmp_path: Path) -> None:
    path = tmp_path / "hub.json"
    path.write_text(json.dumps({"mcpServers": {"ticketing": {"builtin": "ticketing"}}, "profiles": {"p": {}}}))
    created = subprocess.run([PY, "-m", "hub.cli", "keys", "create", "-c", str(path), "--data-dir", str(tmp_path),
                              "--name", "bot", "--scopes", "ticketing:reed tickets:read profile:q"],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert created.returncode == 0 and created.stdout.startswith("mcphub_")
    assert "warning: 'ticketing:reed' names no action the hub grants: did you mean 'ticketing:read'?" in created.stderr
    assert "'tickets:read': no enabled server in the config has namespace 'tickets'" in created.stderr
    assert "did you mean 'ticketing:read'?" in created.stderr and "profile 'q'" in created.stderr
    quiet = subprocess.run([PY, "-m", "hub.cli", "keys", "create", "-c", str(path), "--data-dir", str(tmp_path),
                            "--name", "ok", "--scopes", "ticketing:read,ticketing:*,hub:admin,ticketing:sensitive,* profile:p"],
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert quiet.returncode == 0 and "warning" not in quiet.stderr, quiet.stderr


class Rows:
    """A shared audit table answering fixed rows."""

    remote = True

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def audit_query(self, flt: Any) -> list[dict[str, Any]]:
        return self.rows


def test_audit_table_shows_whole_request_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = ["426ea9c31ebc69d20000000000000001", "426ea9c31ebc69d20000000000000002"]
    rows = [{"ts": 1.0e9, "request_id": rid, "principal": "local", "tool": "t__x", "server": "t", "outcome": "ok",
             "error_code": None, "latency_ms": 1.0, "args_digest": "", "args": "{}", "auth_kind": "local",
             "credential": None} for rid in ids]
    audit_command(tmp_path, Rows(rows), argparse.Namespace(audit_command="tail", n=2, json=False))
    shown = [line.split()[1] for line in capsys.readouterr().out.splitlines()]
    assert shown == ids


def test_check_and_serve_mask_a_token_in_the_config_as_a_log_line_would(tmp_path: Path) -> None:
    """Outside review console26 #9: `check` quoted a whole pasted command line, `--token=ghp_…` and all, into
    its output (which lands in CI logs); `serve`'s refusal of a config did the same on stderr."""
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    done = check(tmp_path, {"mcpServers": {"gh": {"command": f"github-mcp-server --token={token} stdio"}}})
    assert done.returncode == 1 and "gh.command" in done.stdout, done.stdout
    assert token not in done.stdout + done.stderr and "[masked]" in done.stdout, done.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"mcpServers": {"gh": {"command": "x", "transport": f"--token={token}"}}}))  # quoted back
    served = subprocess.run([PY, "-m", "hub.cli", "tools", "--config", str(bad)], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert served.returncode == 2 and token not in served.stdout + served.stderr, served.stderr


def test_a_missing_header_variable_reads_plainly(tmp_path: Path) -> None:
    """Outside review user34 #5: the README's own GitHub example without GITHUB_TOKEN printed
    `…headers.Authorization: [masked] variable GITHUB_TOKEN is not set (export it, or write ${GITHUB_TOKEN:[masked]`:
    the whole line was masked as a log line, its path read as a credential header and its hint as NAME=value."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "GITHUB_TOKEN"}
    path = tmp_path / "hub.json"
    path.write_text(json.dumps({"mcpServers": {"github": {"url": "https://api.githubcopilot.com/mcp/",
                                                          "headers": {"Authorization": "Bearer ${GITHUB_TOKEN}"}}}}))
    done = subprocess.run([PY, "-m", "hub.cli", "check", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)
    assert done.returncode == 1, done
    assert ("error: $.mcpServers.github.headers.Authorization: the environment variable GITHUB_TOKEN is not set: export it "
            "(or give the reference a default: \"${NAME:-value}\")") in done.stdout, done.stdout
    assert "[masked]" not in done.stdout, done.stdout
    served = subprocess.run([PY, "-m", "hub.cli", "serve", "--config", str(path)], capture_output=True, text=True, cwd=ROOT,
                            timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert served.returncode == 2 and "GITHUB_TOKEN is not set" in served.stderr and "[masked]" not in served.stderr, served.stderr
    leaked = {"mcpServers": {"x": {"url": "https://example.com/mcp?token=ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                                   "timout_s": 3}}}  # a problem beside a secret in the config: the secret stays masked
    path.write_text(json.dumps(leaked))
    done = subprocess.run([PY, "-m", "hub.cli", "check", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)
    assert "ghp_abcdefghijklmnopqrstuvwxyz0123456789" not in done.stdout + done.stderr, done.stdout
