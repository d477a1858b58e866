"""The listing cache of built-in domains: written after a start, used (and corrected) by the next,
ignored when its key does not match, and calls made before the domain is up wait for it."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from hub.catalog import listing_cache
from hub.config import parse_config
from hub.datadir import audit_digest_key, default_cache_dir, default_data_dir
from hub.hub import Hub

pytestmark = pytest.mark.anyio
GHOST = {"name": "ghost", "description": "Not a real tool.", "inputSchema": {"type": "object"}}


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MCP_HUB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def hris_config() -> object:
    return parse_config({"mcpServers": {"hris": {"builtin": "hris"}}})


async def real_tools() -> list[str]:
    async with Hub(hris_config()) as hub:  # type: ignore[arg-type]
        return sorted(t.name for t in hub.catalog.tools())


async def test_first_start_writes_the_cache_and_the_next_uses_it(cache_dir: Path) -> None:
    tools = await real_tools()
    path = listing_cache.cache_path(default_cache_dir(), "hris")
    written = json.loads(path.read_text())
    cached = written["entries"][0]
    config = hris_config()
    assert cached["key"] == listing_cache.cache_key(config.enabled_servers()[0], audit_digest_key(default_data_dir()))  # type: ignore[attr-defined]
    assert sorted(f"hris__{t['name']}" for t in cached["tools"]) == tools

    # Doctor the cache under the right key: the next start lists the doctored tools at once, then
    # corrects the catalog (and says so) when the domain is up, and rewrites the cache.
    cached["tools"] = [t for t in cached["tools"] if t["name"] != "get_employee"] + [GHOST]
    path.write_text(json.dumps(written))
    changes: list[str] = []

    async def on_change(kind: str) -> None:
        changes.append(kind)

    async with Hub(config) as hub:  # type: ignore[arg-type]
        hub.add_change_listener(on_change)  # type: ignore[arg-type]
        listed = sorted(t.name for t in hub.catalog.tools())
        if hub.downstreams["hris"].state == "starting":  # not up yet: the cached listing is served
            assert "hris__ghost" in listed and "hris__get_employee" not in listed
        # A call made now waits for the domain instead of failing.
        result = await hub.route_call("hris__list_departments", {})
        assert not result.is_error, result
        with anyio.fail_after(10):
            while sorted(t.name for t in hub.catalog.tools()) != tools:
                await anyio.sleep(0.02)
    assert "tools" in changes or listed == tools
    rewritten = json.loads(path.read_text())["entries"][0]
    assert "ghost" not in [t["name"] for t in rewritten["tools"]]


async def test_a_cache_under_another_key_is_ignored(cache_dir: Path) -> None:
    tools = await real_tools()
    path = listing_cache.cache_path(default_cache_dir(), "hris")
    cached = json.loads(path.read_text())["entries"][0]
    cached["key"] = "0" * 64  # e.g. written by another version of the domains' code
    cached["tools"].append(GHOST)
    path.write_text(json.dumps(cached))  # as the first format wrote it: one listing, no "entries"
    async with Hub(hris_config()) as hub:  # type: ignore[arg-type]
        assert sorted(t.name for t in hub.catalog.tools()) == tools
    path.write_text("{not json")
    async with Hub(hris_config()) as hub:  # type: ignore[arg-type]
        assert sorted(t.name for t in hub.catalog.tools()) == tools
    assert json.loads(path.read_text())["entries"][0]["key"] == listing_cache.cache_key(hris_config().enabled_servers()[0], audit_digest_key(default_data_dir()))  # type: ignore[attr-defined]
