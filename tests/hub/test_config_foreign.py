"""Config files of other clients (outside review interop16 #4): VS Code's `mcp.json` (`servers`, `type`,
`${env:...}`, `${input:...}`, `envFile`) is read or refused with a fix, a misspelt top-level key is an
error naming the key it resembles, and `mcp-hub check` warns when no server is enabled."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import ConfigError, parse_config
from tests.conftest import ROOT

VSCODE = {
    "inputs": [{"type": "promptString", "id": "api-key", "description": "API key", "password": True}],
    "servers": {
        "memory": {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"],
                   "env": {"MEMORY_FILE_PATH": "${env:HOME}/memory.jsonl"}},
        "remote": {"type": "http", "url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${env:API_KEY}"}},
        "old": {"type": "sse", "url": "https://example.com/sse"},
    },
}


def problems(data: dict, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, env=env or {})
    return [str(p) for p in caught.value.problems]


def check(tmp_path: Path, data: dict) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(data))
    return subprocess.run([sys.executable, "-m", "hub.cli", "check", str(path)], capture_output=True, text=True, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "API_KEY": "k1"})


def test_a_vscode_mcp_json_loads_its_servers_with_type_as_transport_and_env_expanded() -> None:
    config = parse_config(VSCODE, env={"HOME": "/home/me", "API_KEY": "k1"})
    by_name = {s.name: s for s in config.servers}
    assert {name: s.transport for name, s in by_name.items()} == {"memory": "stdio", "remote": "streamable_http", "old": "sse"}
    assert by_name["memory"].env == {"MEMORY_FILE_PATH": "/home/me/memory.jsonl"}
    assert by_name["remote"].headers == {"Authorization": "Bearer k1"}
    assert [str(w) for w in config.warnings] == [
        "warning: $.inputs: ignored: VS Code's prompts (the hub has none: a `${input:...}` reference is an error "
        "where it is used)"]
    # the hub's own syntax is unchanged, `${env:NAME}` takes a default like `${NAME}`
    assert parse_config({"servers": {"s": {"url": "https://x/${env:P:-mcp}"}}}, env={}).servers[0].url == "https://x/mcp"


def test_vscode_references_the_hub_cannot_resolve_are_errors_with_the_fix() -> None:
    data = {"servers": {
        "remote": {"type": "http", "url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${input:api-key}"}},
        "local": {"command": "node", "args": ["${workspaceFolder}/server.js"], "env": {"T": "${env:MISSING_TOKEN}"}},
    }}
    found = problems(data)
    assert ("error: $.servers.remote.headers.Authorization: ${input:api-key} is a VS Code prompt, and the hub has no "
            "prompt: export the value in an environment variable and write ${API_KEY} instead") in found
    assert ("error: $.servers.local.args[0]: ${workspaceFolder} is a VS Code variable the hub does not know: write the "
            "path itself (or ${HOME})") in found
    assert ("error: $.servers.local.env.T: the environment variable MISSING_TOKEN is not set: export it (or give the "
            "reference a default: \"${NAME:-value}\")") in found
    # a disabled server's unresolvable reference is only a warning, as a missing variable is
    disabled = {"servers": {"r": {"url": "https://x/mcp", "headers": {"A": "${input:k}"}, "disabled": True}}}
    assert [w.severity for w in parse_config(disabled, env={}).warnings] == ["warning"]


def test_env_file_is_refused_with_what_to_write_instead() -> None:
    found = problems({"servers": {"s": {"type": "stdio", "command": "node", "envFile": "${workspaceFolder}/.env"}}})
    assert found == ["error: $.servers.s.envFile: VS Code's `envFile` is not read by the hub: list the variables under "
                     "`env` (values may be ${VAR})"]


def test_servers_and_mcp_servers_together_are_refused() -> None:
    found = problems({"mcpServers": {"a": {"command": "x"}}, "servers": {"b": {"command": "y"}}})
    assert found == ["error: $.servers: both `mcpServers` and `servers` (VS Code's name for it) are given: list every "
                     "server in one of them"]


def test_an_unknown_top_level_key_is_an_error_naming_the_closest_known_one() -> None:
    found = problems({"mcpservers": {"memory": {"command": "npx"}}, "profile": {}, "zzz": 1})
    assert found[0].startswith("error: $.mcpservers: unknown top-level key 'mcpservers': did you mean 'mcpServers'?")
    assert found[1].startswith("error: $.profile: unknown top-level key 'profile': did you mean 'profiles'?")
    assert found[2] == ("error: $.zzz: unknown top-level key 'zzz': the known keys are hub, mcpServers, servers, profiles "
                        "(`servers` is VS Code's name for `mcpServers`)")
    # other clients' own settings are ignored: a pasted Claude Desktop file keeps loading
    config = parse_config({"$schema": "https://x", "globalShortcut": "Ctrl+Space", "mcpServers": {"a": {"command": "x"}}})
    assert [s.name for s in config.servers] == ["a"]
    assert config.warnings == []


def test_check_reads_a_vscode_file_refuses_a_typo_and_warns_when_nothing_is_enabled(tmp_path: Path) -> None:
    vscode = check(tmp_path, VSCODE)
    assert vscode.returncode == 0, vscode.stdout
    assert "OK — 3 enabled server(s): memory (stdio), remote (streamable_http), old (sse)" in vscode.stdout
    typo = check(tmp_path, {"mcpservers": {"memory": {"command": "npx"}}})
    assert typo.returncode == 1
    assert "error: $.mcpservers: unknown top-level key 'mcpservers': did you mean 'mcpServers'?" in typo.stdout
    for empty in ({}, {"mcpServers": {"a": {"command": "x", "enabled": False}}}):
        nothing = check(tmp_path, empty)
        assert nothing.returncode == 0
        assert "warning: $.mcpServers: no enabled server: the hub would serve no tools" in nothing.stdout
