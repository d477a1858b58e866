"""Hygiene between callers and toward the operator (issue 17, items 3, 7 and 10): unknown tool
names stay bounded in metrics, audit and logs and cost rate limit; audit rows tell API keys and
JWTs apart; databases are private; crafted cursors and huge strings are the caller's error."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from mcp import Client
from mcp.shared.exceptions import MCPError

from hub.audit.log import query
from hub.config import parse_config
from hub.hub import Hub
from servers.hris.store import EmbeddedHris
from tests.conftest import echo_stdio, start_hub_http, write_config, error_body
from tests.hub.auth.test_security import ISSUER, PUBLIC_JWKS, client, create_key, make_jwt

pytestmark = pytest.mark.anyio
SECRET_IN_NAME = "AKIAIOSFODNN7EXAMPLE"


async def outcome(c: Client, name: str, arguments: dict[str, Any]) -> str:
    """`ok`, `unknown` (the `not_found` answer to an unknown or hidden tool, `hub.unknown_tool`), or the isError code."""
    result = await c.call_tool(name, arguments)
    if not result.is_error:
        return "ok"
    code = error_body(result)["code"]
    return "unknown" if code == "not_found" else code


def wait_ready(url: str) -> None:
    """Wait until the hub at `url` reports every server connected (`/healthz` status `ok`)."""
    import time

    deadline = time.monotonic() + 30
    while httpx.get(url.replace("/mcp", "/healthz")).json()["status"] != "ok":
        assert time.monotonic() < deadline, "the hub's servers never all connected"
        time.sleep(0.05)


def wait_for_audit(data_dir: Path, rows: int, **filters: Any) -> list[dict[str, Any]]:
    """The audit rows once at least `rows` match (the writer batches; waits for the state)."""
    import time

    deadline = time.monotonic() + 20
    while True:
        found = query(data_dir, limit=10_000, **filters)
        if len(found) >= rows or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


async def test_unknown_tool_names_are_bounded_masked_and_rate_limited(tmp_path: Path, procs: list) -> None:
    data_dir = tmp_path / "data"
    hub = {"auth": {"enabled": True}, "data_dir": str(data_dir),
           "rate_limit": {"per_principal": {"burst": 40, "per_second": 0.01}}}
    url = start_hub_http(procs, write_config(tmp_path, {"e": echo_stdio()}, hub=hub))
    wait_ready(url)
    prober = create_key(data_dir, "prober", "unrelated:read")  # no scope for anything that exists
    bystander = create_key(data_dir, "bystander", "e:read")
    metrics_url = url.replace("/mcp", "/metrics")
    before = len(httpx.get(metrics_url).content)

    outcomes = []
    async with client(url, prober, mode="legacy") as c:
        for index in range(300):
            name = f"x{index}_{SECRET_IN_NAME}_" + "n" * 10_000
            outcomes.append(await outcome(c, name, {"k" * 5000: "v"}))
        # A hidden tool (it exists, the caller lacks its scope) answers like a made-up name.
        assert await outcome(c, "e__add", {"a": 1, "b": 1}) == "rate_limited"
    assert outcomes[:40] == ["unknown"] * 40
    assert set(outcomes[40:]) == {"rate_limited"}
    async with client(url, bystander, mode="legacy") as c:  # another principal is not affected
        assert await outcome(c, "e__add", {"a": 1, "b": 1}) == "ok"

    metrics = httpx.get(metrics_url).text
    assert len(metrics) < before + 8_000, len(metrics)  # was 5.9 MB for 300 such calls
    assert 'mcp_hub_calls_total{outcome="denied",server="",tool="_unknown"} 300.0' in metrics
    assert 'mcp_hub_rate_limited_total{tool="_unknown"} 260.0' in metrics
    assert "nnnn" not in metrics

    rows = wait_for_audit(data_dir, 301, principal="prober")
    assert len(rows) == 301
    assert all(len(r["tool"]) <= 150 and SECRET_IN_NAME not in r["tool"] for r in rows), rows[0]["tool"]
    assert rows[0]["tool"].startswith("x0_[masked]_nnn") and "…#" in rows[0]["tool"]
    assert all(len(r["args"]) < 400 for r in rows)
    assert [r["error_code"] for r in rows[:40]] == ["not_found"] * 40 and rows[-1]["error_code"] == "rate_limited"
    stored = sum(len(r["tool"]) + len(r["args"]) for r in rows)
    assert stored < 150_000, stored  # was 4.5 MB of names and argument names (9.7 MB of audit files)

    procs[-1].stop()
    logs = "".join(procs[-1].stderr_lines)
    assert SECRET_IN_NAME not in logs and "n" * 200 not in logs


async def test_jwt_subject_equal_to_an_api_key_name_is_another_identity(tmp_path: Path, procs: list) -> None:
    data_dir = tmp_path / "data"
    hub = {"data_dir": str(data_dir), "rate_limit": {"per_principal": {"burst": 3, "per_second": 0.01}},
           "auth": {"enabled": True, "jwt": {"issuer": ISSUER, "keys": PUBLIC_JWKS["keys"], "leeway_s": 5}}}
    url = start_hub_http(procs, write_config(tmp_path, {"e": echo_stdio()}, hub=hub))
    wait_ready(url)
    key = create_key(data_dir, "alice", "e:read")
    async with client(url, key, mode="legacy") as c:
        assert [await outcome(c, "e__add", {"a": 1, "b": 1}) for _ in range(4)] == ["ok", "ok", "ok", "rate_limited"]
    async with client(url, make_jwt(url, sub="alice", scope="e:read"), mode="legacy") as c:
        assert await outcome(c, "e__add", {"a": 1, "b": 1}) == "ok"  # its own bucket, not the API key's

    rows = wait_for_audit(data_dir, 5, principal="alice")
    kinds = [(r["auth_kind"], r["credential"]) for r in rows]
    key_id = key.split("_")[1]
    assert kinds == [("api_key", key_id)] * 4 + [("jwt", ISSUER)]


def test_databases_are_private_whatever_the_umask(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from hub.auth.keys import KeyStore
    from hub.audit.log import AuditLog

    data_dir = tmp_path / "open"
    data_dir.mkdir(mode=0o777)
    os.chmod(data_dir, 0o777)
    old = data_dir / "keys.sqlite"
    old.write_bytes(b"")  # written by an older version (an empty file is an empty database)
    os.chmod(old, 0o644)
    previous = os.umask(0)
    try:
        with caplog.at_level(logging.WARNING, logger="hub.datadir"):
            keys = KeyStore(data_dir)
            keys.create("someone", ["e:read"])
            audit = AuditLog(data_dir, b"k" * 32)
            audit.close()
            EmbeddedHris(data_dir)
    finally:
        os.umask(previous)
    files = sorted(p for p in data_dir.iterdir() if ".sqlite" in p.name)
    names = {p.name for p in files}
    assert {"keys.sqlite", "keys.sqlite-wal", "audit.sqlite", "audit.sqlite-wal", "hris.sqlite"} <= names, names
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {p.name: "0o600" for p in files}
    shared = [r for r in caplog.records if "readable or writable by group/others" in r.getMessage()]
    assert len(shared) == 1 and str(data_dir) in shared[0].getMessage()


@pytest.fixture
async def domains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    await EmbeddedHris(tmp_path).seed_demo()
    config = {"mcpServers": {"hris": {"builtin": "hris"}, "calendar": {"builtin": "calendar"}}}
    async with Hub(parse_config(config)) as running:
        yield running


async def test_megabyte_strings_are_invalid_arguments_never_internal(domains: Hub) -> None:
    huge = "x" * 1_000_000
    for tool, arguments in [("hris__search_employees", {"query": huge}), ("calendar__now", {"zone": huge}),
                            ("hris__search_employees", {"cursor": huge})]:
        result = await domains.route_call(tool, arguments)
        assert result.is_error and error_body(result)["code"] == "invalid_argument", (tool, result.structured_content)
        assert len(result.content[0].text) < 5_000


def _cursor(state: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=6)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=st.dictionaries(st.sampled_from(["offset", "after", "page", "start"]), json_values, min_size=1, max_size=2))
async def test_crafted_domain_cursors_are_invalid_argument(domains: Hub, state: dict[str, Any]) -> None:
    for tool in ("hris__search_employees", "hris__list_time_off_requests"):
        result = await domains.route_call(tool, {"cursor": _cursor(state)})
        code = error_body(result).get("code") if result.is_error else "ok"
        assert code in ("ok", "invalid_argument"), (tool, state, result.structured_content)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cursor=st.text(max_size=60) | st.binary(max_size=40).map(lambda b: base64.urlsafe_b64encode(b).decode()))
async def test_crafted_hub_list_cursors_are_invalid_params(domains: Hub, cursor: str) -> None:
    from hub.frontends.server import build_server

    async with Client(build_server(domains)) as c:
        try:
            await c.list_tools(cursor=cursor)
        except MCPError as exc:
            assert exc.code == -32602, (cursor, exc)
