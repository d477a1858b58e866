"""A `tools/list_changed` storm costs the stormy server's freshness, not every caller's latency or the
disk (review search15 #1).

In-process hub with the word-hash embedder. The pacing clock is the test's (`ServerPacing.clock`), so
time is moved, not slept; every wait below waits for a state, bounded by `fail_after`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import anyio
import numpy as np
import pytest
from mcp.server import MCPServer
from mcp.server.mcpserver import Context

import hub.search.service as service
from hub.config import parse_config
from hub.hub import Hub
from hub.search import vectors
from hub.search.pacing import BURST, MAX_DELAY_S, ServerPacing
from hub.search.service import ToolSearch
from hub.search.vectors import VectorCache
from tests.fixtures.word_embedder import GatedWordEmbedder, WordEmbedder

pytestmark = pytest.mark.anyio

_revision = [0]


def storm() -> MCPServer:
    """A server whose `churn` rewords its `gizmo` tool (`revision N`) and announces the change."""
    server = MCPServer("storm")

    def add(revision: int) -> None:
        server.add_tool(lambda gizmo_id: gizmo_id, name="gizmo", description=f"Polish a gizmo, revision r{revision}x.")

    add(0)

    @server.tool(description="Reword the gizmo tool and announce the list change.")
    async def churn(ctx: Context, revision: int) -> str:
        server.remove_tool("gizmo")
        add(revision)
        await ctx.notify_tools_changed()
        return "churned"

    @server.tool(description="Remove the gizmo tool and announce the list change.")
    async def vanish(ctx: Context) -> str:
        server.remove_tool("gizmo")
        await ctx.notify_tools_changed()
        return "gone"

    return server


SERVERS = {"desk": {"module": "tests.fixtures.search_catalog:desk"},
           "storm": {"module": "tests.hub.search.test_tool_search_storm:storm"}}


def indexed_revision(search: ToolSearch) -> str:
    """The description of `storm__gizmo` the index ranks on."""
    doc = next(d for d in search.index.docs if d.name == "storm__gizmo")
    return " ".join(doc.fields["description"])


async def until(check: Callable[[], bool], seconds: float = 10) -> None:
    with anyio.fail_after(seconds):
        while not check():
            await anyio.sleep(0.01)


def listed(hub: Hub, revision: int) -> bool:
    route = hub.catalog.resolve_tool("storm__gizmo")
    return route is not None and f"r{revision}x" in (route.tool.description or "")


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MCP_HUB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


async def test_a_storm_is_paced_per_server_and_searches_do_not_wait_for_it(
        cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Were a search to wait for a paced server's re-index at all, it would wait this long: fail_after catches it.
    monkeypatch.setattr(service, "FRESH_WAIT_S", 60.0)
    now = [1000.0]
    async with Hub(parse_config({"mcpServers": SERVERS})) as hub:
        embedder = GatedWordEmbedder("r99x")
        embedder.release.set()
        search = ToolSearch(hub, embedder)
        search.pacing = ServerPacing(clock=lambda: now[0])
        assert search.search("polish a gizmo", 1)[0].name == "storm__gizmo"
        assert search.reindexed == 1
        # The storm: every change is listed by the hub; only the first BURST - 1 after the first index apply at once.
        for revision in range(1, 9):
            await hub.route_call("storm__churn", {"revision": revision})
            await until(lambda: listed(hub, revision))
            with anyio.fail_after(10):
                await anyio.to_thread.run_sync(lambda: search.search("polish a gizmo", 3))
        await until(lambda: search.reindexed >= BURST)
        assert search.reindexed == BURST, "the storm's changes past the burst wait for their turn"
        assert "r8x" not in indexed_revision(search), "the stormy server's tools rank as last applied"
        # A quiet server's change is applied at once, in the middle of the storm.
        await hub.route_call("desk__grow", {})
        await until(lambda: hub.catalog.resolve_tool("desk__archive_ticket") is not None)
        with anyio.fail_after(10):
            while "desk__archive_ticket" not in [h.name for h in search.search("archive a closed ticket", 1)]:
                await anyio.sleep(0.01)
        assert "r8x" not in indexed_revision(search), "…and keeps the stormy server's last applied tools"
        # Once the stormy server is due, its latest listing is applied; a search meanwhile does not wait for it.
        embedder.release.clear()
        await hub.route_call("storm__churn", {"revision": 99})
        await until(lambda: listed(hub, 99))
        now[0] += MAX_DELAY_S + 1
        search._kick()
        await until(embedder.entered.is_set)  # the re-index is embedding the new text, and stays there
        with anyio.fail_after(10):
            hits = await anyio.to_thread.run_sync(lambda: search.search("polish a gizmo", 3))
        assert hits[0].name == "storm__gizmo" and "r99x" not in indexed_revision(search), "ranked on the index as it stood"
        embedder.release.set()
        await until(lambda: "r99x" in indexed_revision(search))


async def test_a_tool_gone_from_the_catalog_is_not_ranked_while_its_server_is_paced(cache_dir: Path) -> None:
    now = [1000.0]
    async with Hub(parse_config({"mcpServers": SERVERS})) as hub:
        search = ToolSearch(hub, WordEmbedder())
        search.pacing = ServerPacing(clock=lambda: now[0])
        assert search.search("polish a gizmo", 1)[0].name == "storm__gizmo"
        for _ in range(BURST + 2):
            search.pacing.applied("storm")  # the server has stormed: its next change waits
        await hub.route_call("storm__vanish", {})
        await until(lambda: hub.catalog.resolve_tool("storm__gizmo") is None)
        hits = search.search("polish a gizmo", 5)
        assert "storm__gizmo" in [d.name for d in search.index.docs], "the paced server's change is not applied yet"
        assert "storm__gizmo" not in [h.name for h in hits], "…but a tool the catalog no longer has is never ranked"


def test_a_reindex_appends_its_new_vectors_instead_of_rewriting_the_cache(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)

    def rows(n: int, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}{i:06d}": rng.standard_normal(384).astype(np.float32) for i in range(n)}

    cache = VectorCache(tmp_path, "model/x")
    first = rows(3000, "a")
    cache.put_many(first, set(first))  # a cold start: compacted at once
    assert cache.path is not None and cache.path.exists()
    npz = os.stat(cache.path)
    written = cache.bytes_written
    record = 2 + len("r00-000000") + 4 + 384 * 4  # key length, key, dimensions, values
    for round_ in range(20):  # twenty re-indexes of a server rewording 10 tools
        new = rows(10, f"r{round_:02d}-")
        cache.put_many(new, set(first) | set(new))
        assert cache.bytes_written - written == 10 * record, "only the new rows are written"
        written = cache.bytes_written
    after = os.stat(cache.path)
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (npz.st_ino, npz.st_mtime_ns, npz.st_size)
    reread = VectorCache(tmp_path, "model/x")
    assert len(reread.rows) == 3200 and np.array_equal(reread.get("r19-000009"), cache.get("r19-000009"))
    # A torn last record (a hub killed mid-write) costs that row only.
    assert reread.log is not None
    with open(reread.log, "ab") as out:
        out.write(b"\x07\x00r20-000")
    assert len(VectorCache(tmp_path, "model/x").rows) == 3200


def test_the_append_log_is_compacted_once_it_outgrows_the_npz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors, "COMPACT_ROWS", 50)
    cache = VectorCache(tmp_path, "m")
    base = {f"k{i}": np.ones(4, np.float32) for i in range(100)}
    cache.put_many(base, set(base))
    for i in range(9):
        cache.put_many({f"n{i}-{j}": np.zeros(4, np.float32) for j in range(10)}, set(base))
    assert cache.logged == 90 and cache.compacted == 100, "not yet: the log is smaller than the npz"
    cache.put_many({f"n9-{j}": np.zeros(4, np.float32) for j in range(10)}, set(base))
    assert cache.logged == 0 and cache.compacted == 200
    assert cache.log is not None and cache.log.stat().st_size == 0
    assert len(VectorCache(tmp_path, "m").rows) == 200
