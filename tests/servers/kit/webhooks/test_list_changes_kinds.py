"""`list_changes` `kinds` (outside review user34 #9): free text, so `tickets` for `ticket` answered an empty feed for
ever, and every domain's description named other domains' kinds. Now each domain's schema lists its own kinds and a
near miss is `invalid_argument` naming them."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from mcp import Client

pytestmark = pytest.mark.anyio

KINDS = {"ticketing": ["ticket"], "hris": ["employee", "time_off_request"], "calendar": ["event", "calendar"],
         "accounting": ["invoice", "contact", "payment", "journal"]}


@pytest.mark.parametrize("domain", sorted(KINDS))
async def test_each_domain_names_its_kinds_and_refuses_a_near_miss(domain: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    server = importlib.import_module(f"servers.{domain}.server").create_server()
    async with Client(server) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "list_changes")
        described = tool.input_schema["properties"]["kinds"]["description"]
        assert all(kind in described for kind in KINDS[domain]), described
        assert not any(kind in described for other in KINDS if other != domain for kind in KINDS[other]
                       if kind not in KINDS[domain] and kind != "event"), described  # no other domain's kinds
        near = await client.call_tool("list_changes", {"kinds": [KINDS[domain][0] + "s"]})
        assert near.is_error and "invalid_argument" in near.content[0].text, near  # type: ignore[union-attr]
        for kind in KINDS[domain]:
            fine = await client.call_tool("list_changes", {"kinds": [kind]})
            assert not fine.is_error, fine
