"""The CLI shows untrusted text inert, and refuses an empty search query (outside review search15 #5, #8).

Real `mcp-hub` processes over a config with `evil` (`tests.fixtures.hostile_text`: escapes in a tool's
title, description and result) and `broken` (a stdio server that writes escapes to stderr and dies):
`tools`, `tools search`, `call`, `audit tail` and `status` must write no control character a server or
caller sent, keep ordinary Unicode, and still say what was there (`\\x1b`).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from hub.terminal import inert
from tests.conftest import PY, ROOT, json_http_server, write_config

EMBEDDER = "tests.fixtures.word_embedder:create"
BROKEN = {"command": PY, "args": ["-c", "import sys; sys.stderr.write('\\x1b]0;pwned\\x07\\x1b[2Jboom\\n'); sys.exit(3)"]}
SERVERS = {"evil": {"module": "tests.fixtures.hostile_text:evil"}, "broken": BROKEN}
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]")
"""What no plain output may hold (line feeds and tabs lay text out; `call` keeps them)."""


def env(tmp_path: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT), "MCP_HUB_DATA_DIR": str(tmp_path / "data"),
            "MCP_HUB_CACHE_DIR": str(tmp_path / "cache"), "MCP_HUB_SEARCH_EMBEDDER": EMBEDDER, "PATH": "/usr/bin:/bin"}


def hub_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "hub.cli", *args], capture_output=True, text=True, env=env(tmp_path), cwd=ROOT,
                          timeout=120)


def test_inert_escapes_controls_and_keeps_ordinary_unicode() -> None:
    assert inert("a\x1b[2Jb\x07\x7f\x9b\u202ec") == "a\\x1b[2Jb\\x07\\x7f\\x9b\\u202ec"
    assert inert("line\nnext\ttab\r") == "line\\nnext\\ttab\\r"
    assert inert("one\ntwo\tcol\rback", multiline=True) == "one\ntwo\tcol\\rback"
    assert inert("café 東京 👩‍💻 ß") == "café 東京 👩‍💻 ß", "accents, CJK, emoji with their zero-width joiner"


def test_tools_search_and_call_print_server_text_inert(tmp_path: Path) -> None:
    config = str(write_config(tmp_path, SERVERS))
    listed = hub_cli(tmp_path, "tools", "--config", config)
    assert listed.returncode == 0, listed.stderr
    assert not CONTROL.search(listed.stdout) and not CONTROL.search(listed.stderr), (listed.stdout, listed.stderr)
    assert "Track a parcel.\\x1b[2J\\x1b[H\\x1b[31mhub: all servers verified OK" in listed.stdout
    assert "server broken unavailable:" in listed.stderr and "\\x1b]0;pwned\\x07\\x1b[2Jboom" in listed.stderr

    found = hub_cli(tmp_path, "tools", "search", "track a parcel", "--config", config)
    assert found.returncode == 0, found.stderr
    assert not CONTROL.search(found.stdout + found.stderr), (found.stdout, found.stderr)
    assert re.search(r"^ 1\. evil__track_parcel +\d\.\d{3}  Track a parcel\.\\x1b\[2J", found.stdout, re.M), found.stdout
    assert "\\x1b]0;pwned" in found.stderr, "the unavailable server's error, inert"
    as_json = json.loads(hub_cli(tmp_path, "tools", "search", "track a parcel", "--config", config, "--json").stdout)
    assert as_json[0]["description"].startswith("Track a parcel.\x1b[2J"), "--json carries the text itself, escaped by JSON"

    called = hub_cli(tmp_path, "call", "evil__track_parcel", '{"parcel": "P-1"}', "--config", config)
    assert called.returncode == 0, called.stderr
    assert not CONTROL.search(called.stdout), called.stdout
    assert called.stdout.startswith("parcel P-1: in transit\\x1b[2J")
    assert "\\u202eevil\nline two\tafter a tab\\rcarriage" in called.stdout, "lines and tabs kept, \\r escaped"


def test_audit_tail_shows_a_callers_tool_name_inert(tmp_path: Path) -> None:
    config = str(write_config(tmp_path, {"evil": SERVERS["evil"]}))
    refused = hub_cli(tmp_path, "call", "\x1b]0;pwned\x07nope", '{"a": "b"}', "--config", config)
    assert refused.returncode == 2
    tail = hub_cli(tmp_path, "audit", "tail", "--config", config)
    assert tail.returncode == 0, tail.stderr
    assert "\\x1b]0;pwned\\x07nope" in tail.stdout and not CONTROL.search(tail.stdout), tail.stdout


def test_status_shows_what_healthz_answered_inert(tmp_path: Path) -> None:
    """`--url` may point anywhere, and a server's error is its own words: every cell of the table is inert."""
    evil = "\x1b]0;pwned\x07\x1b[2Jboom"
    body = json.dumps({"status": f"ok{evil}", "tools": 1, "servers": {f"s{evil}": {
        "health": "down", "breaker": "closed", "in_flight": 0, "restarts": 0, "p50_ms": None, "p95_ms": None,
        "last_error": f"exited{evil}"}}}).encode()

    with json_http_server(body) as url:
        shown = hub_cli(tmp_path, "status", "--url", url)
    assert shown.returncode == 0, shown.stderr
    assert not CONTROL.search(shown.stdout), shown.stdout
    assert shown.stdout.count("\\x1b]0;pwned\\x07\\x1b[2Jboom") == 3, shown.stdout
    status_only = json.dumps({"status": f"ok{evil}"}).encode()  # what a hub answers a key it did not take
    with json_http_server(status_only) as url:
        refused = hub_cli(tmp_path, "status", "--url", url, "--key", "mcphub_000000000000_not-a-key-at-all-0000")
    assert refused.returncode == 1 and not CONTROL.search(refused.stderr), refused.stderr  # re-check 15 #11
    assert "\\x1b]0;pwned" in refused.stderr


@pytest.mark.parametrize("query", ["", "   ", "?!", "the a of"])
def test_tools_search_refuses_a_query_that_says_nothing_as_search_tools_does(tmp_path: Path, query: str) -> None:
    """Re-check 15: `?!` or `the a of` ranked the first tools by name at score 0, a delete among them."""
    config = str(write_config(tmp_path, {"evil": SERVERS["evil"]}))
    refused = hub_cli(tmp_path, "tools", "search", query, "--config", config, "--json")
    assert refused.returncode == 2 and refused.stdout == "", refused.stdout
    assert "the query says nothing to search by" in refused.stderr


def test_a_query_in_any_script_is_searched() -> None:
    from hub.search.meta import blank_query
    assert not blank_query("東京の天気") and not blank_query("überweisung prüfen") and not blank_query("who is out")
