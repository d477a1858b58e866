"""One scope rule everywhere a scope is checked (outside review console round 7): `/healthz` details,
`/metrics` (`hub.metrics.access: scope`) and the console's login match scopes as tools do
(`hub.auth.scopes.grants`: `*`, `<ns>:*`, admin ⊇ write ⊇ read), so `hub:*` is an admin everywhere
or nowhere, never only where a literal comparison happens to see it."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_hub_http, write_config
from tests.hub.auth.test_security import create_key

pytestmark = pytest.mark.slow

#           scopes         /healthz details, /metrics, console
EXPECTED = {"hub:*": (True, True, True), "*": (True, True, True), "hub:admin": (True, False, True),
            "hub:metrics": (False, True, False), "e:*": (False, False, False)}


def test_healthz_metrics_and_console_match_scopes_alike(tmp_path: Path, procs: list) -> None:
    data_dir = tmp_path / "data"
    config = write_config(tmp_path, {}, hub={"data_dir": str(data_dir), "auth": {"enabled": True},
                                             "metrics": {"access": "scope"}})
    keys = {scopes: create_key(data_dir, f"k{i}", scopes) for i, scopes in enumerate(EXPECTED)}
    base = start_hub_http(procs, config).removesuffix("/mcp")
    seen = {}
    for scopes, key in keys.items():
        bearer = {"Authorization": f"Bearer {key}"}
        details = "servers" in httpx.get(f"{base}/healthz", headers=bearer).json()
        metrics = httpx.get(f"{base}/metrics", headers=bearer).status_code
        with httpx.Client(base_url=base) as console:
            token = re.search(r'name="csrf" value="([^"]+)"', console.get("/admin/login").text).group(1)  # type: ignore[union-attr]
            login = console.post("/admin/login", data={"key": key, "csrf": token}).status_code
        assert metrics in (200, 403) and login in (303, 403)
        seen[scopes] = (details, metrics == 200, login == 303)
    assert seen == EXPECTED
