"""The console behind a TLS ingress (outside review console26 #3): the browser's same-origin sign-in POST
carries the public origin, which the hub accepts as the origin of `hub.auth.resource_url`, and the
console's cookies are `Secure` there although the ingress speaks http to the hub; a foreign origin is
refused with an answer naming `hub.allowed_origins`."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import echo_stdio, start_hub_http, write_config
from tests.hub.auth.test_security import create_key

pytestmark = pytest.mark.slow

PROXIED = {"Host": "hub.example.com", "X-Forwarded-Proto": "https"}


def test_the_console_signs_in_through_a_tls_ingress_and_a_foreign_origin_is_told_the_setting(
        tmp_path: Path, procs: list) -> None:
    data_dir = tmp_path / "data"
    config = write_config(tmp_path, {"e": echo_stdio()}, hub={
        "data_dir": str(data_dir), "allowed_hosts": ["127.0.0.1:*", "hub.example.com"],
        "auth": {"enabled": True, "resource_url": "https://hub.example.com/mcp"}})
    admin = create_key(data_dir, "ops", "hub:admin")
    base = start_hub_http(procs, config).removesuffix("/mcp")
    with httpx.Client(base_url=base, headers=PROXIED, follow_redirects=False, timeout=30) as http:
        form = http.get("/admin/login")
        assert form.status_code == 200 and "secure" in form.headers["set-cookie"].lower()
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        cookie = "; ".join(f"{k}={v}" for k, v in form.cookies.items())  # a browser sends it: it is on https
        http.cookies.clear()
        signed = http.post("/admin/login", data={"csrf": csrf, "key": admin},
                           headers={"Origin": "https://hub.example.com", "Cookie": cookie})
        assert signed.status_code == 303 and "secure" in signed.headers["set-cookie"].lower(), signed.text[:300]
        foreign = http.post("/admin/login", data={"csrf": csrf, "key": admin},
                            headers={"Origin": "https://evil.example", "Cookie": cookie})
        assert foreign.status_code == 403 and "hub.allowed_origins" in foreign.text
