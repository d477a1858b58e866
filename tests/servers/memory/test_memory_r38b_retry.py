"""Outside review r38b #3: `update_memory` with `version`, repeated after its answer was lost (the tool is
annotated idempotent, so a client or the hub may repeat it), answered `conflict` though the memory held exactly
what the call asked. A call that would change nothing now answers the memory as it is, whatever `version`
says; one that would still change something keeps the `conflict`."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from servers.memory.server import create_server
from servers.memory.service import MemoryService
from tests.fixtures.word_embedder import WordEmbedder
from tests.servers.memory.test_memory_writes28 import call

pytestmark = pytest.mark.anyio
SCOPE = {"agent": "r38b"}


async def test_a_repeated_versioned_update_answers_the_memory_it_made(tmp_path: Path) -> None:
    async with Client(create_server(MemoryService(tmp_path / "data", WordEmbedder()))) as client:
        made = (await call(client, "remember", content="The standup is on Monday at 10am.", scope=SCOPE))["memory"]
        asked = {"id": made["id"], "scope": SCOPE, "version": made["version"], "content": "The standup is on Tuesday at 10am.",
                 "kind": "fact", "tags": ["team", "ops"], "metadata": {"room": "Zephyr"}}
        first = await call(client, "update_memory", **asked)
        assert first.get("version") == "2" and first["content"] == asked["content"], first

        again = await call(client, "update_memory", **asked)  # the retry, with the version the first call was sent with
        assert again.get("code") is None, f"a repeat of an update that landed must answer the memory, not {again}"
        assert again == first, "answered as it is: nothing written, the version kept"
        reordered = await call(client, "update_memory", **{**asked, "tags": ["ops", "team", "ops"]})
        assert reordered.get("version") == "2", f"tags are kept as a sorted set: the same tags change nothing ({reordered})"
        stored = (await call(client, "get_memories", ids=[made["id"]], scope=SCOPE, include_history=True))["memories"][0]
        assert stored["version"] == "2" and len(stored["history"]) == 1, "one edit in the history, not three"

        for change in ({"content": "The standup is on Wednesday at 10am."}, {"tags": ["team"]}, {"metadata": {"room": None}},
                       {"kind": "note"}):
            stale = await call(client, "update_memory", id=made["id"], scope=SCOPE, version=made["version"], **change)
            assert stale.get("code") == "conflict", f"{change} would still change the memory: conflict, not {stale}"
            assert stale["details"] == {"current_version": "2"} and "get it again" in stale["message"], stale
        kept = (await call(client, "get_memories", ids=[made["id"]], scope=SCOPE))["memories"][0]
        assert (kept["version"], kept["content"], kept["kind"]) == ("2", asked["content"], "fact"), "nothing written"


async def test_an_unchanged_update_with_any_version_leaves_the_memory_alone(tmp_path: Path) -> None:
    """Any version, even one never issued: a call that changes nothing writes nothing, so it cannot lose an edit."""
    async with Client(create_server(MemoryService(tmp_path / "data", WordEmbedder()))) as client:
        made = (await call(client, "remember", content="Ada prefers green tea.", scope=SCOPE, tags=["drinks"]))["memory"]
        same = await call(client, "update_memory", id=made["id"], scope=SCOPE, version="41", content=made["content"],
                          tags=["drinks"], metadata={"absent": None})
        assert same.get("code") is None and same["version"] == made["version"] == "1", same
        assert (await call(client, "update_memory", id=made["id"], scope=SCOPE, version="1", content="Ada prefers black tea."))[
            "version"] == "2", "the right version still writes"
