"""Outside review, events round 18 #1: what an unauthenticated request may cost the intake. Graph's proof
(`clientState`) is inside the body, so its route parsed and walked any 1 MiB body on the event loop
before refusing it (~0.6 s each: every MCP call of the hub stalled). Now a body with more structure than
any provider sends is refused from byte counts, before anything is built; real batches still fit.
Costs are asserted as work done (was the body parsed?), never as timings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from servers.kit.webhooks import verify
from tests.webhook_support import SECRETS, Served, make_intake, serve, set_secrets, signed

pytestmark = pytest.mark.anyio
MIB = 1 << 20
BUSY = {  # each just under the 1 MiB cap, nesting 2 deep: what the review posted, and its siblings
    "objects": b"[" + b",".join([b"{}"] * 349_000) + b"]",
    "arrays": b"[" + b",".join([b"[]"] * 349_000) + b"]",  # 0.53 s in json.loads alone (its GC)
    "numbers": b"[" + b",".join([b"0"] * 520_000) + b"]",
}


@pytest.fixture
async def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    set_secrets(monkeypatch)
    intake, feed = make_intake(tmp_path, domain="calendar")
    async for url in serve(Starlette(routes=intake.routes())):
        served = Served(intake, feed, url)
        async with served.http:
            yield served


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every text handed to `json.loads` (the module is shared: the test's own are small)."""
    seen: list[int] = []
    real = json.loads

    def spy(text: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(len(text))
        return real(text, *args, **kwargs)

    monkeypatch.setattr(verify.json, "loads", spy)
    return seen


@pytest.mark.parametrize("shape", sorted(BUSY))
async def test_an_unauthenticated_busy_graph_body_is_refused_unparsed(served: Served, parses: list[int], shape: str) -> None:
    body = BUSY[shape]
    assert len(body) < MIB
    answer = await served.post("graph", body, {"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert "which no provider sends" in answer.json()["error"] and "check what posts to this URL" in answer.json()["error"]
    assert len(body) not in parses, "the body was parsed before it was authenticated"
    assert await served.intake.log.list() == []


async def test_a_real_graph_batch_under_the_cap_still_fits(served: Served) -> None:
    """~1,550 basic notifications (as our subscriptions ask: no resource data) fill the 1 MiB cap and fit the
    unauthenticated budget."""
    item = {"subscriptionId": "8f4f6a8e-1b1c-4b0e-9a55-" + "0" * 12, "subscriptionExpirationDateTime": "2026-12-08T10:00:00Z",
            "changeType": "updated", "clientState": SECRETS["graph"], "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
            "resource": "Users/6ea9a9c1-74d4-4a4f-9e1b-2b7e0a6b9c11/Events/AAMkAGI2TG93AAA=",
            "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.etag": 'W/"DwAAABYAAAA="',
                             "@odata.id": "Users/6ea9a9c1-74d4-4a4f-9e1b-2b7e0a6b9c11/Events/AAMkAGI2TG93AAA=",
                             "id": "AAMkAGI2TG93AAA" + "x" * 140}}
    body = json.dumps({"value": [item] * 1_550}).encode()
    assert 0.9 * MIB < len(body) < MIB
    answer = await served.post("graph", body, {"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] is True


async def test_a_signed_body_over_the_signed_budget_is_refused_before_it_is_logged(served: Served, parses: list[int]) -> None:
    body = b'{"value": ' + BUSY["arrays"][: MIB - 100].rsplit(b",", 1)[0] + b"]}"  # signed, and 349,000 arrays
    answer = await served.post("xero", body, signed("xero", body) | {"Content-Type": "application/json"})
    assert answer.status_code == 400 and len(body) not in parses
    assert await served.intake.log.list() == []


async def test_google_messages_have_no_body_so_a_large_one_is_413(served: Served) -> None:
    body = b"x" * (128 << 10)
    answer = await served.post("google", body, signed("google", b""))
    assert answer.status_code == 413, answer.text
    assert await served.intake.log.list() == []
    assert (await served.post("google", b"", signed("google", b""))).status_code == 200, "an empty message still fits"


async def test_no_secret_is_a_401_whatever_the_body(served: Served, monkeypatch: pytest.MonkeyPatch, parses: list[int]) -> None:
    monkeypatch.delenv("GRAPH_WEBHOOK_SECRET")
    answer = await served.post("graph", BUSY["objects"][:4000].rsplit(b",", 1)[0] + b"]", {"Content-Type": "application/json"})
    assert answer.status_code == 401 and not [n for n in parses if n > 1000], "nothing to verify with: the body is not even read"
