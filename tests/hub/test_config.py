"""Config: Claude Desktop's mcpServers block, hub settings, env expansion, `mcp-hub check`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import ConfigError, load_config, parse_config

CLAUDE_DESKTOP = {
    "mcpServers": {
        "filesystem": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"],
            "env": {"TOKEN": "${GH_TOKEN}"},
        },
        "remote": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${API_KEY}"}},
        "legacy": {"url": "https://example.com/sse", "transport": "sse"},
        "cc.style": {"type": "http", "url": "https://example.com/mcp2"},
    },
    "globalShortcut": "Ctrl+Space",
}


def test_pasted_claude_desktop_config_loads_with_env_expanded() -> None:
    config = parse_config(CLAUDE_DESKTOP, env={"GH_TOKEN": "ghp_x", "API_KEY": "k1"})
    by_name = {s.name: s for s in config.servers}
    assert by_name["filesystem"].transport == "stdio"
    assert by_name["filesystem"].env == {"TOKEN": "ghp_x"}
    assert by_name["remote"].transport == "streamable_http"
    assert by_name["remote"].headers == {"Authorization": "Bearer k1"}
    assert by_name["legacy"].transport == "sse"
    assert by_name["cc.style"].transport == "streamable_http"
    # Namespaces default to the key, made safe for tool names.
    assert by_name["filesystem"].namespace == "filesystem"
    assert by_name["cc.style"].namespace == "cc_style"


def test_missing_env_variable_names_server_and_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(CLAUDE_DESKTOP, env={"API_KEY": "k"})
    (problem,) = caught.value.problems
    assert problem.path == "$.mcpServers.filesystem.env.TOKEN"
    assert "GH_TOKEN" in problem.message
    assert "ghp" not in str(caught.value)


def test_env_default_syntax() -> None:
    config = parse_config({"mcpServers": {"a": {"command": "x", "env": {"V": "${NOPE:-fallback}"}}}}, env={})
    assert config.servers[0].env == {"V": "fallback"}


def test_hub_settings_beside_the_claude_block() -> None:
    config = parse_config(
        {
            "hub": {"timeout_s": 5, "name_budget": 48},
            "mcpServers": {
                "jira": {
                    "command": "jira-mcp",
                    "namespace": "tickets",
                    "enabled": True,
                    "tools": {"allow": ["search_*", "get_*"], "deny": ["*_admin"]},
                    "read_only": True,
                    "timeout_s": 12.5,
                },
                "off": {"command": "x", "enabled": False},
            },
        },
        env={},
    )
    jira = config.servers[0]
    assert (jira.namespace, jira.read_only, jira.timeout_s) == ("tickets", True, 12.5)
    assert jira.tools.allow == ["search_*", "get_*"] and jira.tools.deny == ["*_admin"]
    assert [s.name for s in config.enabled_servers()] == ["jira"]
    assert config.hub.timeout_s == 5 and config.hub.name_budget == 48


def test_every_problem_is_reported_with_its_path() -> None:
    bad = {
        "hub": {"timeout_s": -1},
        "mcpServers": {
            "a": {"command": "x", "namespace": "bad__ns"},
            "b": {"url": "http://h/mcp", "transport": "carrier-pigeon"},
            "c": {"args": ["no command"]},
            "d": {"command": "x", "timeout_s": "soon"},
            "e": {"command": "x", "namespace": "shared"},
            "f": {"command": "x", "namespace": "shared"},
            "g": {"command": "x", "env": {"K": "${MISSING_ONE}"}},
        },
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(bad, env={})
    paths = {p.path for p in caught.value.problems}
    assert paths == {
        "$.hub.timeout_s",
        "$.mcpServers.a.namespace",
        "$.mcpServers.b.transport",
        "$.mcpServers.c",
        "$.mcpServers.d.timeout_s",
        "$.mcpServers.f.namespace",
        "$.mcpServers.g.env.K",
    }


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub.cli", "check", str(path)], capture_output=True, text=True)


def test_check_command_prints_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"mcpServers": {"a": {"command": "x", "env": {"T": "${NOT_SET_ANYWHERE}"}}, "b": {}}}))
    done = _check(path)
    assert done.returncode == 1
    assert "$.mcpServers.a.env.T" in done.stdout and "NOT_SET_ANYWHERE" in done.stdout
    assert "$.mcpServers.b" in done.stdout
    assert "2 error(s)" in done.stdout


def test_check_command_reports_malformed_json_and_accepts_good(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"mcpServers": {')
    done = _check(broken)
    assert done.returncode == 1 and "not valid json" in done.stdout
    good = tmp_path / "good.toml"
    good.write_text('[mcpServers.echo]\ncommand = "python3"\nargs = ["server.py"]\n')
    done = _check(good)
    assert done.returncode == 0, done.stdout
    assert "echo (stdio)" in done.stdout
    assert load_config(good).servers[0].args == ["server.py"]


def test_session_mode_defaults_per_transport_and_can_be_set() -> None:
    config = parse_config({"mcpServers": {
        "web": {"url": "http://127.0.0.1:9/mcp"},
        "old": {"url": "http://127.0.0.1:9/sse", "transport": "sse"},
        "child": {"command": "true"},
        "pinned": {"url": "http://127.0.0.1:9/mcp", "session": "shared", "max_sessions": 2, "session_idle_s": 5},
    }})
    modes = {s.name: s.session_mode for s in config.servers}
    assert modes == {"web": "per_client", "old": "per_client", "child": "shared", "pinned": "shared"}
    pinned = next(s for s in config.servers if s.name == "pinned")
    assert (pinned.max_sessions, pinned.session_idle_s) == (2, 5)
    with pytest.raises(ConfigError):
        parse_config({"mcpServers": {"web": {"url": "http://127.0.0.1:9/mcp", "session": "per_user"}}})


def test_namespaces_that_would_be_the_hubs_own_scopes_are_refused_by_check(tmp_path: Path) -> None:
    """A server's tool scopes are `<namespace>:read|write|admin|*`: namespace `hub` would make them the
    hub's own (`hub:*` meant for that server opens the console), `profile` its profile pins. The
    namespace is the server's name unless set, and its name again when set to "" (outside review console 15, #7)."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"mcpServers": {
        "hub": {"command": "x"},                                  # the name is the namespace
        "pins": {"command": "x", "namespace": "profile"},         # set explicitly
        "profile": {"command": "x", "namespace": ""},             # no prefix: the name is the scope prefix
        "fine": {"command": "x", "namespace": "hub-tools"},       # a namespace only containing the word is fine
    }}))
    done = _check(path)
    assert done.returncode == 1, done.stdout
    lines = done.stdout.splitlines()
    hub_line = next(line for line in lines if "$.mcpServers.hub.namespace" in line)
    assert "'hub' is reserved" in hub_line and "hub:admin" in hub_line and 'set another "namespace"' in hub_line
    pins_line = next(line for line in lines if "$.mcpServers.pins.namespace" in line)
    assert "'profile' is reserved" in pins_line and "profile:" in pins_line
    renamed = next(line for line in lines if "$.mcpServers.profile.namespace" in line)
    assert "rename the server" in renamed
    assert "fine" not in done.stdout and "3 error(s)" in done.stdout
    with pytest.raises(ConfigError):
        parse_config({"mcpServers": {"x": {"command": "x", "namespace": "hub"}}})
    assert parse_config({"mcpServers": {"hub": {"command": "x", "namespace": "ops"}}}).servers[0].namespace == "ops"
