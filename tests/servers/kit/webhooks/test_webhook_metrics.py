"""Issue #24, webhook metrics: received, duplicate, rejected, dead-lettered and lag per domain and
provider in the HTTP hub's Prometheus `/metrics` and in its `/healthz` (a real hub process)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.webhook_support import SECRETS, deliver, http_hub, payload, signed

pytestmark = pytest.mark.anyio


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_webhook_counters_reach_metrics_and_healthz(tmp_path: Path) -> None:
    env = {"GITHUB_WEBHOOK_SECRET": SECRETS["github"], "TICKETING_EVENTS_MAX_ATTEMPTS": "1"}
    async with http_hub(tmp_path, {"ticketing": {"builtin": "ticketing"}}, env) as (_url, http):
        good = payload("github", "42")
        headers = signed("github", good)
        answer = await deliver(http, "/webhooks/ticketing/github", good, headers)
        assert answer.status_code == 200, answer.text
        assert (await http.post("/webhooks/ticketing/github", content=good, headers=headers)).json()["duplicate"]
        forged = await http.post("/webhooks/ticketing/github", content=good, headers=signed("github", good, "wrong"))
        assert forged.status_code == 401
        made_up = await http.post("/webhooks/ticketing/not-a-provider", content=good, headers=headers)
        assert made_up.status_code == 404
        broken = b'{"action": "opened", "issue": {}}'  # signed JSON, but no issue number: dead-lettered at once
        assert (await http.post("/webhooks/ticketing/github", content=broken, headers=signed("github", broken))).status_code == 200

        def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
            return name, tuple(sorted({"server": "ticketing", **labels}.items()))

        with anyio.fail_after(30):
            while samples((await http.get("/metrics")).text).get(key("mcp_hub_webhook_dead_lettered", provider="github")) != 1:
                await anyio.sleep(0.05)  # waiting for the state "dead"
        scraped = samples((await http.get("/metrics")).text)
        health = (await http.get("/healthz")).json()

        assert scraped[key("mcp_hub_webhook_deliveries_total", provider="github", outcome="received")] == 2
        assert scraped[key("mcp_hub_webhook_deliveries_total", provider="github", outcome="duplicate")] == 1
        assert scraped[key("mcp_hub_webhook_deliveries_total", provider="github", outcome="rejected")] == 1
        assert scraped[key("mcp_hub_webhook_deliveries_total", provider="other", outcome="rejected")] == 1
        assert scraped[key("mcp_hub_webhook_deliveries_total", provider="jira", outcome="received")] == 0
        assert scraped[key("mcp_hub_webhook_pending", provider="github")] == 0
        assert scraped[key("mcp_hub_webhook_lag_seconds", provider="github")] == 0
        assert not any("not-a-provider" in str(labels) for _, labels in scraped), "no label per made-up provider"

        ticketing = health["webhooks"]["ticketing"]
        assert ticketing["status"] == "degraded" and ticketing["running"] is True
        github = ticketing["providers"]["github"]
        assert (github["received"], github["duplicate"], github["rejected"], github["dead_lettered"]) == (2, 1, 1, 1)
        assert health["status"] == "ok", "a dead-lettered event is shown, it does not degrade the hub"
