"""One scope syntax everywhere (`hub.auth.scope_syntax`), and no zero key lifetime (outside review newuser19 #2, #3)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.auth.keys import KeyStore
from hub.settings import AuthSettings
from tests.conftest import PY, ROOT, echo_stdio, write_config


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "hub.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, **(env or {})})


def test_comma_separated_mcp_hub_scopes_grant_like_spaces(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"e": echo_stdio()})
    for scopes in ("e:read other:read", "e:read,other:read", "e:read, other:read"):
        ok = run("call", "-c", str(config), "e__add", '{"a": 1, "b": 2}', env={"MCP_HUB_SCOPES": scopes})
        assert ok.returncode == 0 and json.loads(ok.stdout) == {"total": 3}, (scopes, ok.stderr[-400:])


@pytest.mark.parametrize("value", ["", "  ", "ticketing: read", "e:read,,bad scope:x:"])
def test_malformed_or_empty_mcp_hub_scopes_is_refused_with_what_to_write(tmp_path: Path, value: str) -> None:
    config = write_config(tmp_path, {"e": echo_stdio()})
    refused = run("call", "-c", str(config), "e__add", '{"a": 1, "b": 2}', env={"MCP_HUB_SCOPES": value})
    assert refused.returncode == 2
    assert "$MCP_HUB_SCOPES" in refused.stderr and "separated by spaces or commas" in refused.stderr
    checked = run("check", str(config), env={"MCP_HUB_SCOPES": value})
    assert checked.returncode == 1 and "$MCP_HUB_SCOPES" in checked.stdout


def test_config_stdio_scopes_follow_the_same_rule() -> None:
    assert AuthSettings.model_validate({"stdio_scopes": ["a:read,b:read"]}).stdio_scopes == ["a:read", "b:read"]
    assert AuthSettings.model_validate({"stdio_scopes": "a:read b:write"}).stdio_scopes == ["a:read", "b:write"]
    with pytest.raises(ValidationError, match="separated by spaces or commas"):
        AuthSettings.model_validate({"stdio_scopes": ["ticketing:", "read"]})


@pytest.mark.parametrize("text", ["0s", "0m", "0d", "00d"])
def test_zero_lifetime_is_refused(tmp_path: Path, text: str) -> None:
    from hub.auth.keys import parse_lifetime

    with pytest.raises(ValueError, match="more than 0 seconds"):
        parse_lifetime(text)
    with pytest.raises(ValueError, match="more than 0 seconds"):
        KeyStore(tmp_path).create("p", ["a:read"], 0)
    created = run("keys", "create", "--data-dir", str(tmp_path), "--name", "p", "--scopes", "a:read", "--expires", text)
    assert created.returncode == 2 and "more than 0 seconds" in created.stderr and "never" not in created.stdout
    assert "never" not in run("keys", "list", "--data-dir", str(tmp_path)).stdout


def test_a_hub_built_directly_reads_comma_separated_mcp_hub_scopes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the CLI rewrote the variable: a `Hub` built in-process (an embedding program, a test harness)
    read `a:read,b:read` as one scope that grants nothing."""
    from hub.config import parse_config
    from hub.policies.access import AccessControl

    monkeypatch.setenv("MCP_HUB_SCOPES", "a:read, b:write")
    config = parse_config({"mcpServers": {}})
    assert AccessControl(config).local.scopes == ("a:read", "b:write")
