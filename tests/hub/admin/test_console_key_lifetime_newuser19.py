"""The console's key form refuses a zero lifetime, as `keys create` does (outside review newuser19 #3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import start_hub_http
from tests.hub.admin.test_console_actions import signed_in
from tests.hub.admin.test_console_bounds import start
from tests.hub.auth.test_security import create_key

pytestmark = pytest.mark.slow


def test_console_refuses_a_zero_key_lifetime(tmp_path: Path, procs: list) -> None:
    hub = start(tmp_path, procs)
    admin = create_key(hub["data_dir"], "ops", "hub:admin e:*")
    base = start_hub_http(procs, hub["config"]).removesuffix("/mcp")
    http, csrf = signed_in(base, admin)
    try:
        for lifetime in ("0s", "0d"):
            answer = http.post("/admin/keys", data={"csrf": csrf, "principal": "short", "scopes": "e:read",
                                                    "expires": lifetime})
            assert answer.status_code == 400 and "a number above 0" in answer.text, lifetime
        assert "short" not in http.get("/admin/keys").text
    finally:
        http.close()
