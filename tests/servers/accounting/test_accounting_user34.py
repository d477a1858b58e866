"""Outside review user34: a contact updated with the values it holds bumped its version (#7: another writer's version
went stale for nothing, and the retry itself, carrying the version it read, was refused `conflict`); an invoice dated
9999 answered `internal` and year 0001 was posted to the ledger (#2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from servers.accounting.server import create_server
from servers.accounting.store import EmbeddedAccounting

pytestmark = pytest.mark.anyio


async def test_a_contact_update_that_changes_nothing_keeps_its_version(tmp_path: Path) -> None:
    async with Client(create_server(EmbeddedAccounting(tmp_path))) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            result = await client.call_tool(tool, args)
            return result.structured_content or {"text": result.content[0].text}  # type: ignore[union-attr]

        acme = await call("upsert_contact", name="Acme Corp", email="ap@acme.test")
        renamed = await call("upsert_contact", id=acme["id"], name="Acme Corporation", version=acme["version"])
        assert renamed["version"] == "2", renamed
        retried = await call("upsert_contact", id=acme["id"], name="Acme Corporation", version=acme["version"])  # answer lost
        assert retried.get("version") == "2" and retried["name"] == "Acme Corporation", retried  # was: conflict
        again = await call("upsert_contact", id=acme["id"], name="Acme Corporation", email="ap@acme.test", version="2")
        assert again["version"] == "2", again
        other = await call("upsert_contact", id=acme["id"], name="Acme Corporation", email="billing@acme.test", version="2")
        assert other["version"] == "3" and other["email"] == "billing@acme.test", other
        stale = await call("upsert_contact", id=acme["id"], name="Acme Ltd", version="2")
        assert stale.get("code") == "conflict", stale  # a real change on a stale version is still refused


@pytest.mark.parametrize("args", [{"issue_date": "9999-12-20"}, {"issue_date": "0001-01-01"}, {"due_date": "9999-12-31"},
                                  {"issue_date": "9999-12-20", "dry_run": True}])
async def test_an_invoice_dated_outside_the_years_is_a_clear_refusal(args: dict[str, Any], tmp_path: Path) -> None:
    async with Client(create_server(EmbeddedAccounting(tmp_path))) as client:
        acme = (await client.call_tool("upsert_contact", {"name": "Acme"})).structured_content
        answer = await client.call_tool("create_invoice", {"contact_id": acme["id"], "lines": [  # type: ignore[index]
            {"description": "Work", "quantity": "1", "unit_price": "100.00", "account_code": "4000"}], **args})
        assert answer.is_error, answer
        said = answer.structured_content or {}
        assert said.get("code") == "invalid_argument" and "1900" in said.get("message", ""), said
        listed = (await client.call_tool("search_invoices", {})).structured_content
        assert listed["invoices"] == [], listed  # type: ignore[index]
