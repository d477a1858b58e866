"""Security over real HTTP: API keys, JWTs, 401/403 exactly as the MCP authorization spec says,
per-tool scopes that hide what a caller may not use, no token pass-through, and no secret or
sample PII in any log or the audit database."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.conftest import PY, ROOT, echo_stdio, json_http_server, start_echo_http, start_hub_http, write_config, error_body

pytestmark = pytest.mark.anyio
ISSUER = "https://auth.example.test"
SIGNING = RSAKey.generate_key(2048, parameters={"kid": "good"})
OTHER = RSAKey.generate_key(2048, parameters={"kid": "good"})  # same kid, different key: a forgery
PUBLIC_JWKS = KeySet([SIGNING]).as_dict(private=False)
PII = {"email": "ada.lovelace@example.com", "ssn": "078-05-1120", "card": "4111 1111 1111 1111",
       "phone": "+44 20 7946 0958", "iban": "GB82 WEST 1234 5698 7654 32"}
DOWNSTREAM_SECRET = "downstream-s3cr3t-value-123456"


def make_jwt(resource: str, key: RSAKey = SIGNING, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": resource, "sub": "user-42", "iat": now, "exp": now + 300, "scope": "e:read", **claims}
    return jwt.encode({"alg": "RS256", "kid": key.kid}, {k: v for k, v in payload.items() if v is not None}, key)


def create_key(data_dir: Path, name: str, scopes: str, *extra: str) -> str:
    done = subprocess.run(
        [PY, "-m", "hub.cli", "keys", "create", "--data-dir", str(data_dir), "--name", name, "--scopes", scopes, *extra],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    return done.stdout.strip()


def hub_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "hub.cli", *args, "--data-dir", str(data_dir)], capture_output=True, text=True, cwd=ROOT)


def client(url: str, token: str | None, mode: str = "auto") -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Client(streamable_http_client(url, http_client=create_mcp_http_client(headers=headers)), mode=mode)


def post_initialize(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    return httpx.post(url, json=body, headers={"Accept": "application/json, text/event-stream", **(headers or {})})


@pytest.fixture
def secured(tmp_path: Path, procs: list) -> dict[str, Any]:
    """An HTTP hub with auth on, a stdio server `e` and an HTTP server `web` that needs its own credential."""
    data_dir = tmp_path / "data"
    web = start_echo_http(procs, "http", "--name", "web")
    config = write_config(
        tmp_path,
        {
            "e": echo_stdio(),
            "web": {"url": web, "headers": {"Authorization": "Bearer ${WEB_TOKEN}"}},
        },
        hub={
            "data_dir": str(data_dir),
            "auth": {"enabled": True, "jwt": {"issuer": ISSUER, "keys": PUBLIC_JWKS["keys"], "leeway_s": 5},
                     "admin_for_destructive": False},
            "rate_limit": {"per_principal": {"burst": 40, "per_second": 20}},
            "audit": {"keep_fields": {"e__echo": ["text"]}},
            "log_level": "debug",  # every line the hub can write, the per-call ones too, is checked for secrets
        },
    )
    import os

    os.environ["WEB_TOKEN"] = DOWNSTREAM_SECRET
    try:
        url = start_hub_http(procs, config)
    finally:
        os.environ.pop("WEB_TOKEN")
    return {"url": url, "data_dir": data_dir, "proc": procs[-1], "base": url.removesuffix("/mcp")}


def test_unauthenticated_requests_get_401_with_resource_metadata(secured: dict[str, Any]) -> None:
    url, base = secured["url"], secured["base"]
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = post_initialize(url, headers)
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer ")
        assert f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"' in challenge
    metadata = httpx.get(f"{base}/.well-known/oauth-protected-resource/mcp").json()
    assert metadata["resource"] == url
    assert metadata["authorization_servers"] == [ISSUER + "/"] or metadata["authorization_servers"] == [ISSUER]
    assert metadata["bearer_methods_supported"] == ["header"]
    # /healthz tells anonymous callers only whether the hub is up (once its servers have connected).
    deadline = time.monotonic() + 30
    while (health := httpx.get(f"{base}/healthz").json()) != {"status": "ok"} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert health == {"status": "ok"}
    # `mcp-hub status` says what it needs instead of failing on the short answer (second outside review).
    anonymous = subprocess.run([PY, "-m", "hub.cli", "status", "--url", base], capture_output=True, text=True, cwd=ROOT)
    assert anonymous.returncode == 0 and "need a key with the hub:admin scope" in anonymous.stdout, anonymous.stderr
    reader = create_key(secured["data_dir"], "status-reader", "e:read")
    for wrong in ("not-a-key", reader):  # a key that is not taken says so, instead of the anonymous summary
        refused = subprocess.run([PY, "-m", "hub.cli", "status", "--url", base, "--key", wrong], capture_output=True,
                                 text=True, cwd=ROOT)
        assert refused.returncode == 1 and "did not accept the key given" in refused.stderr, refused
        assert wrong not in refused.stderr + refused.stdout, "the key is never echoed"
    admin = create_key(secured["data_dir"], "status-admin", "hub:admin")
    detailed = subprocess.run([PY, "-m", "hub.cli", "status", "--url", base, "--key", admin], capture_output=True, text=True,
                              cwd=ROOT)
    assert detailed.returncode == 0, detailed.stderr
    assert detailed.stdout.splitlines()[1].split()[:6] == ["SERVER", "HEALTH", "BREAKER", "IN-FLIGHT", "QUEUED", "CALLERS"]


async def test_api_keys_scopes_and_revocation(secured: dict[str, Any]) -> None:
    url, data_dir = secured["url"], secured["data_dir"]
    reader = create_key(data_dir, "reader", "e:read")
    writer = create_key(data_dir, "writer", "e:write web:read")
    async with client(url, reader, mode="legacy") as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert names == {"e__add", "e__flaky_read"}
        assert (await c.call_tool("e__add", {"a": 1, "b": 2})).structured_content == {"total": 3}
        # A write tool, a tool of another server, a tampered name: all refused exactly like an unknown tool.
        for name in ("e__echo", "web__add", "e__add ", "E__add", "e__get_thing_00000000", "e__nonexistent"):
            refused = await c.call_tool(name, {"text": "x", "a": 1, "b": 1})
            assert refused.is_error and error_body(refused)["details"] == {"tool": name}
            assert error_body(refused)["code"] == "not_found"
    async with client(url, writer) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert "e__echo" in names and "e__add" in names and "web__add" in names and "web__echo" not in names
        assert (await c.call_tool("e__echo", {"text": "hi"})).structured_content == {"result": "hi"}

    key_id = reader.split("_")[1]
    listed = hub_cli(data_dir, "keys", "list").stdout
    assert key_id in listed and "reader" in listed and reader not in listed
    assert hub_cli(data_dir, "keys", "revoke", key_id).returncode == 0
    assert post_initialize(url, {"Authorization": f"Bearer {reader}"}).status_code == 401

    short = create_key(data_dir, "brief", "e:read", "--expires", "10s")  # room for a slow CLI on a loaded machine
    assert post_initialize(url, {"Authorization": f"Bearer {short}"}).status_code == 200
    deadline = time.monotonic() + 60
    while post_initialize(url, {"Authorization": f"Bearer {short}"}).status_code != 401:  # the state "expired"
        assert time.monotonic() < deadline, "the key never expired"
        time.sleep(0.2)


async def test_jwt_validation(secured: dict[str, Any]) -> None:
    url = secured["url"]
    now = int(time.time())
    good = make_jwt(url, scope="e:read e:write")
    async with client(url, good) as c:
        assert (await c.call_tool("e__echo", {"text": "jwt"})).structured_content == {"result": "jwt"}
    async with client(url, make_jwt(url, scope=None, scp=["e:read"]), mode="legacy") as c:
        assert {t.name for t in (await c.list_tools()).tools} == {"e__add", "e__flaky_read"}
    rejected = {
        "wrong signature": make_jwt(url, key=OTHER),
        "wrong audience": make_jwt(url, aud="https://other.example/mcp"),
        "wrong issuer": make_jwt(url, iss="https://evil.example"),
        "expired": make_jwt(url, exp=now - 60),
        "not yet valid": make_jwt(url, nbf=now + 600),
        "no expiry": make_jwt(url, exp=None),
        "malformed": good[:-10] + "AAAAAAAAAA",
        "no subject and no client": make_jwt(url, sub=None),  # was one shared principal, `unknown`
        "a subject spelling a client": make_jwt(url, sub="client:app-one"),  # would be application app-one
        "an integer scope": make_jwt(url, scope=5),  # answered 500 (review round 5)
        "a scope list of numbers": make_jwt(url, scope=None, scp=[1, 2]),
    }
    # Scopes are split on the space character only: a no-break space or a tab does not make two scopes.
    async with client(url, make_jwt(url, scope="e:read\u00a0e:write\te:admin"), mode="legacy") as c:
        assert (await c.list_tools()).tools == [], "one unknown scope, not three"
    # A token for an application alone (no `sub`) is that client: principal `client:<id>`.
    async with client(url, make_jwt(url, sub=None, client_id="app-one", scope="e:read e:write")) as c:
        assert (await c.call_tool("e__echo", {"text": "app"})).structured_content == {"result": "app"}
    for why, token in rejected.items():
        assert post_initialize(url, {"Authorization": f"Bearer {token}"}).status_code == 401, why


async def test_jwks_url_and_required_scopes(tmp_path: Path, procs: list) -> None:
    with json_http_server(json.dumps(PUBLIC_JWKS).encode()) as jwks_base:
        config = write_config(
            tmp_path,
            {"e": echo_stdio()},
            hub={"data_dir": str(tmp_path / "d"),
                 "auth": {"enabled": True, "api_keys": False, "required_scopes": ["mcp:use"],
                          "jwt": {"issuer": ISSUER, "jwks_url": f"{jwks_base}/jwks.json"}}},
        )
        url = start_hub_http(procs, config)
        ok = make_jwt(url, scope="mcp:use e:read")
        async with client(url, ok) as c:
            assert (await c.call_tool("e__add", {"a": 2, "b": 2})).structured_content == {"total": 4}
        lacking = post_initialize(url, {"Authorization": f"Bearer {make_jwt(url, scope='e:read')}"})
        assert lacking.status_code == 403
        assert 'error="insufficient_scope"' in lacking.headers["www-authenticate"]
        assert "mcp:use" in lacking.headers["www-authenticate"]


async def test_no_token_pass_through(secured: dict[str, Any]) -> None:
    key = create_key(secured["data_dir"], "admin", "*")
    async with client(secured["url"], key) as c:
        seen = await c.call_tool("web__seen_auth", {})
        assert seen.structured_content == {"result": f"Bearer {DOWNSTREAM_SECRET}"}
        assert key not in json.dumps(seen.model_dump())


async def test_rate_limits_per_principal_without_double_execution(tmp_path: Path, procs: list) -> None:
    config = write_config(
        tmp_path,
        {"e": echo_stdio()},
        hub={"auth": {"enabled": True}, "data_dir": str(tmp_path / "d"),
             "rate_limit": {"per_principal": {"burst": 3, "per_second": 1}}},
    )
    url = start_hub_http(procs, config)
    alice, bob = create_key(tmp_path / "d", "alice", "*"), create_key(tmp_path / "d", "bob", "*")
    async with client(url, alice) as a, client(url, bob) as b:
        outcomes = [await a.call_tool("e__ping", {}) for _ in range(5)]
        assert [o.structured_content.get("result") for o in outcomes[:3]] == [1, 2, 3]
        for refused in outcomes[3:]:
            assert refused.is_error and error_body(refused)["code"] == "rate_limited"
            assert 0.1 < error_body(refused)["retry_after_s"] <= 1.01
        # Bob has his own bucket; the refused calls never reached the server (count goes on at 4).
        assert (await b.call_tool("e__ping", {})).structured_content == {"result": 4}
        time.sleep(error_body(outcomes[-1])["retry_after_s"])
        assert (await a.call_tool("e__ping", {})).structured_content == {"result": 5}


async def test_audit_rows_request_ids_and_no_secrets_anywhere(secured: dict[str, Any]) -> None:
    url, data_dir, base = secured["url"], secured["data_dir"], secured["base"]
    key = create_key(data_dir, "auditor", "e:read e:write")
    token = make_jwt(url, scope="e:read")
    async with client(url, key) as c:
        echoed = await c.call_tool("e__echo", {"text": f"call me at {PII['phone']} or {PII['email']}"})
        request_id = echoed.meta["mcp-hub/request_id"]
        await c.call_tool("e__env_has", {"name": PII["ssn"]})
        await c.call_tool("e__add", {"a": "not a number", "b": 1})
        await c.call_tool("e__fail", {"reason": PII["card"] + " " + PII["iban"]})
        hidden = await c.call_tool("web__seen_auth", {})  # out of scope: answered like an unknown tool
        assert hidden.is_error and error_body(hidden)["code"] == "not_found"
    async with client(url, token) as c:
        await c.call_tool("e__add", {"a": 1, "b": 1})
    # The audit writer batches rows: wait (bounded) until the JWT caller's row, written last, is there,
    # instead of a fixed 0.3 s that a loaded machine can outlast.
    deadline = time.monotonic() + 20
    while not hub_cli(data_dir, "audit", "query", "--principal", "user-42", "--json").stdout.strip():
        assert time.monotonic() < deadline, "the JWT caller's audit row never appeared"
        time.sleep(0.1)

    rows = [json.loads(line) for line in hub_cli(data_dir, "audit", "query", "--principal", "auditor", "--json").stdout.splitlines()]
    by_tool = {r["tool"]: r for r in rows}
    assert by_tool["e__echo"]["request_id"] == request_id and by_tool["e__echo"]["outcome"] == "ok"
    assert by_tool["e__fail"]["outcome"] == "tool_error"
    assert by_tool["e__add"]["outcome"] == "error" and by_tool["e__add"]["error_code"] == "invalid_argument"
    assert by_tool["web__seen_auth"]["outcome"] == "denied"
    assert json.loads(by_tool["e__env_has"]["args"]) == {"name": "[redacted]"}
    assert "[masked]" in json.loads(by_tool["e__echo"]["args"])["text"]  # a kept field, still masked
    assert len(by_tool["e__echo"]["args_digest"]) == 64
    jwt_rows = hub_cli(data_dir, "audit", "query", "--principal", "user-42", "--json").stdout.splitlines()
    assert len(jwt_rows) == 1
    # the one call of a request id, as the client got it (outside review newuser19 #7)
    [one] = hub_cli(data_dir, "audit", "query", "--request-id", request_id, "--json").stdout.splitlines()
    assert json.loads(one)["tool"] == "e__echo"
    tail = hub_cli(data_dir, "audit", "tail", "-n", "3").stdout.splitlines()
    assert len(tail) == 3 and "user-42" in tail[-1]

    metrics = httpx.get(f"{base}/metrics").text
    assert 'mcp_hub_calls_total{outcome="ok",server="e",tool="e__echo"}' in metrics
    assert 'mcp_hub_breaker_state{server="e"} 0.0' in metrics

    secured["proc"].stop()
    logs = "".join(secured["proc"].stderr_lines)
    assert "call tool=e__echo" in logs and request_id in logs
    audit_bytes = (data_dir / "audit.sqlite").read_bytes() + (data_dir / "audit.sqlite-wal").read_bytes() \
        if (data_dir / "audit.sqlite-wal").exists() else (data_dir / "audit.sqlite").read_bytes()
    for secret in (key, token, DOWNSTREAM_SECRET, *PII.values()):
        assert secret not in logs, secret
        assert secret.encode() not in audit_bytes, secret


def test_scopes_given_with_commas_are_each_granted_and_a_malformed_scope_is_refused(tmp_path: Path) -> None:
    """`--scopes "memory:read,memory:write"` made a key with the one scope `memory:read,memory:write`,
    which grants nothing: every call then said "no tool named …" (outside review domains18)."""
    data_dir = tmp_path / "data"
    assert create_key(data_dir, "ops", "memory:read, memory:write,hris:read")
    listed = hub_cli(data_dir, "keys", "list")
    assert "memory:read memory:write hris:read" in listed.stdout, listed.stdout
    for bad in ("", "memory:read;drop", "a" * 65, "ticketing: read", "ticketing :read", "ticketing : read", "a::b"):
        refused = hub_cli(data_dir, "keys", "create", "--name", "x", "--scopes", bad)
        assert refused.returncode == 2 and "scopes:" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
