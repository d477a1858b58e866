"""docs/deploy.md's Kubernetes sketch works as written, and `auth.resource_url` is documented where
proxies are (outside review newuser19 #4, #5): its probe and Service traffic pass the Host guard, and
the ConfigMap's `resource_url` is what the 401 challenge and the metadata name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, start_hub_http

DEPLOY = (ROOT / "docs" / "deploy.md").read_text()
SKETCH = DEPLOY[DEPLOY.index("## Kubernetes sketch"):]

pytestmark = pytest.mark.slow


def sketch_config() -> dict:
    """The ConfigMap's hub.json, without the Redis cluster (a test has none)."""
    block = re.search(r"hub\.json: \|\n((?:    .*\n)+)", SKETCH)
    assert block, "the Kubernetes sketch has no ConfigMap with hub.json"
    config = json.loads(block.group(1))
    config["hub"].pop("cluster", None)
    return config


def test_kubernetes_sketch_probe_and_service_hosts_pass_the_guard(tmp_path: Path, procs: list) -> None:
    config = sketch_config()
    probe = re.search(r"readinessProbe:.*name: Host, value: \"([^\"]+)\"", SKETCH)
    assert probe, "the sketch's readinessProbe sends no Host header"
    path = tmp_path / "hub.json"
    path.write_text(json.dumps({**config, "hub": {**config["hub"], "data_dir": str(tmp_path / "data")}}))
    url = start_hub_http(procs, path)
    for host in (probe.group(1), "mcp-hub", "mcp-hub.default.svc.cluster.local", "hub.example.com"):
        answer = httpx.get(url.removesuffix("/mcp") + "/healthz", headers={"Host": host})
        assert answer.status_code != 421 and "status" in answer.json(), host  # 503 while the domain still starts
    challenge = httpx.post(url, headers={"Host": "hub.example.com", "Accept": "application/json, text/event-stream"},
                           json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert challenge.status_code == 401
    resource = config["hub"]["auth"]["resource_url"]
    assert resource.removesuffix("/mcp") in challenge.headers["www-authenticate"]


def test_resource_url_is_documented_where_proxies_are() -> None:
    security = (ROOT / "docs" / "security.md").read_text()
    assert "auth.resource_url" in security and "Behind a proxy" in security
    assert DEPLOY.count("resource_url") >= 3  # the HAProxy script, its notes, the Kubernetes ConfigMap
