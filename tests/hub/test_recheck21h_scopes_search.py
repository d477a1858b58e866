"""Outside review recheck21h #4-#7: a profile's `max_tools` counts only listed tools (#4); keyword search
covers every script (#5); `hub.auth.required_scopes` follows the one scope rule (#6); stdio scopes that
grant nothing are warned about at start and by `check` (#7). In-process hubs and subprocess CLIs; no sleeps."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import mcp_types as types
import pytest

from hub.config import ConfigError, parse_config
from hub.hub import Hub
from hub.profiles import profile_view
from hub.search.documents import tool_doc
from hub.search.index import ToolIndex
from hub.search.meta import run_search
from hub.search.words import terms
from tests.conftest import PY, ROOT

TASKS = {"n": {"module": "tests.fixtures.subscribing_server:server", "protocol": "legacy"}}
"""`n__only_as_task` (task-only; the server takes no tasks), `n__subscribed`, `n__touch`."""


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MCP_HUB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MCP_HUB_SEARCH_EMBEDDER", "none")
    return tmp_path / "cache"


@pytest.mark.anyio
async def test_a_withheld_task_only_tool_uses_no_slot_of_max_tools() -> None:
    config = parse_config({"mcpServers": TASKS, "profiles": {"p": {"max_tools": 2, "tools_mode": "all"}}})
    async with Hub(config) as hub:
        view, local = profile_view(hub, "p"), hub.access.local
        assert [t.name for t in view.tools(local)] == ["n__subscribed", "n__touch"], "stdio: the task-only tool is never listed"
        for version in (None, "2025-11-25", "2026-07-28"):
            assert [t.name for t in view.tools(local, version)] == ["n__subscribed", "n__touch"], version
            assert view.resolve("n__touch", local, version) == "n__touch", version
            assert view.resolve("n__only_as_task", local, version) is None, version
            assert view.includes("n__touch", local, version) and not view.includes("n__only_as_task", local, version)
            _, found = await run_search(hub, "touch", 5, local, view, version)
            assert "n__touch" in found, (version, found)


@pytest.mark.parametrize(("query", "wanted"), [
    ("Создать счёт", "x__create_invoice"), ("Показать список сотрудников", "x__list_employees"),
    ("Διαγραφή μηνύματος", "x__delete_mail"), ("ｓｅｎｄ ｍａｉｌ", "x__send_mail"),
    ("Rechnung löschen", "x__delete_invoice"), ("rechnung loschen", "x__delete_invoice"),
    ("ลบข้อความ", "x__delete_message"), ("événement", "x__create_event"), ("evenement", "x__create_event"),
])
def test_every_script_gets_keyword_terms(query: str, wanted: str) -> None:
    tools = [("create_invoice", "Создать счёт"), ("list_employees", "Показать список сотрудников"),
             ("delete_mail", "Διαγραφή μηνύματος"), ("send_mail", "Αποστολή ηλεκτρονικού ταχυδρομείου"),
             ("delete_invoice", "Rechnung löschen"), ("delete_message", "ลบข้อความ"),
             ("create_event", "Créer un événement"), ("archive_task", "Архивировать задачу")]
    index = ToolIndex(None)
    index.update([tool_doc(types.Tool(name=f"x__{n}", description=d, input_schema={"type": "object"}), n, "x")
                  for n, d in tools])
    hits = index.search(query, 3, mode="keyword")
    assert hits[0].name == wanted and hits[0].keyword > 0, (query, [(h.name, h.score) for h in hits])


def test_words_are_folded_not_cut() -> None:
    assert terms("löschen") == ["löschen", "loschen"], "one word, plus its unaccented form; not 'l', 'schen'"
    assert terms("ＳＥＮＤ") == ["send"] and terms("Straße") == terms("strasse")
    assert terms("删除任务") == ["删除", "除任", "任务"], "CJK stays character pairs"
    assert terms("searchTickets") == ["search", "ticket"], "English stemming as before"


def test_required_scopes_follow_the_one_scope_rule() -> None:
    auth = parse_config({"hub": {"auth": {"required_scopes": ["w:read,w:write"]}}}).hub.auth
    assert auth.required_scopes == ["w:read", "w:write"]
    assert parse_config({"hub": {"auth": {"required_scopes": "w:read w:write"}}}).hub.auth.required_scopes == ["w:read", "w:write"]
    assert parse_config({}).hub.auth.required_scopes == [], "none required by default"
    with pytest.raises(ConfigError, match="required_scopes"):
        parse_config({"hub": {"auth": {"required_scopes": ["w: read"]}}})


def cli(tmp_path: Path, *args: str, scopes: str | None = None, stdio_scopes: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "hub.json"
    auth = {"stdio_scopes": stdio_scopes} if stdio_scopes is not None else {}
    path.write_text(json.dumps({"mcpServers": {"w": {"module": "tests.fixtures.subscribing_server:server"}},
                                "hub": {"data_dir": str(tmp_path / "data"), "auth": auth}}))
    env = {k: v for k, v in os.environ.items() if k != "MCP_HUB_SCOPES"} | ({"MCP_HUB_SCOPES": scopes} if scopes else {})
    command = [PY, "-m", "hub.cli", *args, *(["-c"] if args[0] != "check" else []), str(path)]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)


@pytest.mark.parametrize(("scopes", "words"), [
    ("w:READ", "'w:READ' names no action the hub grants: scopes are case-sensitive: did you mean 'w:read'?"),
    ("w:reed", "'w:reed' names no action the hub grants: did you mean 'w:read'?"),
    ("wx:read", "'wx:read': no enabled server in the config has namespace 'wx'"),
])
def test_stdio_scopes_that_grant_nothing_are_warned(tmp_path: Path, scopes: str, words: str) -> None:
    checked = cli(tmp_path, "check", scopes=scopes)
    assert checked.returncode == 0 and f"warning: $MCP_HUB_SCOPES: {words}" in checked.stdout, checked.stdout
    listed = cli(tmp_path, "tools", "--json", scopes=scopes)
    assert f"$MCP_HUB_SCOPES: {words}" in listed.stderr, listed.stderr
    configured = cli(tmp_path, "check", stdio_scopes=[scopes])
    assert f"warning: hub.auth.stdio_scopes: {words}" in configured.stdout, configured.stdout


def test_stdio_scopes_that_grant_are_not_warned(tmp_path: Path) -> None:
    checked = cli(tmp_path, "check", scopes="w:read,hub:admin")
    assert checked.returncode == 0 and "warning" not in checked.stdout, checked.stdout


def test_a_servers_per_tool_scopes_follow_the_one_scope_rule() -> None:
    """`scopes: {"*": ["x:read,x:write"]}` was one scope no key can hold (a sibling of `required_scopes`)."""
    from hub.config import ConfigError, parse_config

    server = {"command": "echo"}
    config = parse_config({"mcpServers": {"x": {**server, "scopes": {"*": ["x:read,x:write"], "ping": []}}}})
    assert config.servers[0].scopes == {"*": ["x:read", "x:write"], "ping": []}
    with pytest.raises(ConfigError, match="separated by spaces or commas"):
        parse_config({"mcpServers": {"x": {**server, "scopes": {"*": ["x: read"]}}}})
