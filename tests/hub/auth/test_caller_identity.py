"""Issue #17.2: a domain server learns who is calling from the hub — in-process directly, over stdio
and HTTP as a signed `_meta` token — never from a tool argument; memory scopes are bound to it.

Principals are qualified by how they authenticated (`api_key:alice` is not the JWT subject `alice`).
A caller's memories are its own; naming another user's needs `memory:admin`. A domain server that
holds a caller secret refuses every call without a valid token from the hub.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from hub.auth.principal import Principal
from hub.config import parse_config
from hub.hub import Hub
from tests.conftest import PY, ROOT, Proc, free_port, start_hub_http, wait_for_port, write_config, error_body

pytestmark = pytest.mark.anyio
EMBEDDER = "tests.fixtures.word_embedder:create"
ALICE = Principal("alice", ("memory:write",), "api_key")
BOB = Principal("bob", ("memory:write",), "api_key")
ALICE_JWT = Principal("alice", ("memory:write",), "jwt")
AUDITOR = Principal("auditor", ("memory:admin",), "api_key")
META_KEY = "io.mcp-hub/caller"


def ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def refused(result: Any) -> str:
    assert result.is_error, result.structured_content
    return error_body(result)["code"]


def forged_token(principal: str = "api_key:alice") -> str:
    """What a client that does not know the hub's secret could send: right shape, wrong signature."""
    claims = {"v": 1, "sub": principal, "kind": "api_key", "name": "alice", "scopes": ["*"], "ns": "memory",
              "aud": "memory", "exp": time.time() + 60}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{body}.{base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b'=').decode()}"


def memory_stdio(data_dir: Path) -> dict[str, Any]:
    """The memory domain as a stdio child of the hub (`mcp-hub server memory --transport stdio`)."""
    return {"command": PY, "args": ["-m", "hub.cli", "server", "memory", "--transport", "stdio", "--data-dir", str(data_dir),
                                    "--log-level", "warning"],
            "env": {"PYTHONPATH": str(ROOT), "MEMORY_EMBEDDER": EMBEDDER}, "cwd": str(ROOT)}


def create_key(data_dir: Path, name: str, scopes: str) -> str:
    import subprocess

    done = subprocess.run([PY, "-m", "hub.cli", "keys", "create", "--data-dir", str(data_dir), "--name", name, "--scopes", scopes],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    return done.stdout.strip()


def http_client(url: str, token: str | None = None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Client(streamable_http_client(url, http_client=create_mcp_http_client(headers=headers)))


@pytest.fixture
def memory_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MEMORY_EMBEDDER", EMBEDDER)
    monkeypatch.delenv("MCP_HUB_CALLER_SECRET", raising=False)
    return tmp_path


# -- in-process: the hub hands the caller over directly -----------------------------------------


@pytest.mark.parametrize("fast_calls", [True, False], ids=["direct-path", "dispatcher-path"])
async def test_in_process_memory_belongs_to_the_authenticated_caller(memory_env: Path, fast_calls: bool) -> None:
    config = parse_config({"hub": {"fast_calls": fast_calls}, "mcpServers": {"memory": {"builtin": "memory"}}})
    async with Hub(config) as hub:

        async def call(principal: Principal | None, tool: str, **args: Any) -> Any:
            return await hub.route_call(f"memory__{tool}", args, principal=principal)

        memory = ok(await call(ALICE, "remember", content="Alice's locker code is 4711", scope={"project": "apollo"}))["memory"]
        assert memory["scope"] == {"user": "api_key:alice", "agent": None, "project": "apollo"}, "omitted user = the caller"
        for own in ({"project": "apollo"}, {"user": "alice", "project": "apollo"}, {"user": "api_key:alice", "project": "apollo"}):
            hits = ok(await call(ALICE, "recall", query="locker code", scope=own))["hits"]
            assert [h["memory"]["id"] for h in hits] == [memory["id"]], own

        for user in ("alice", "api_key:alice"):
            theirs = {"user": user, "project": "apollo"}
            for tool, args in (("recall", {"query": "locker code"}), ("list_recent", {}), ("get_memories", {"ids": [memory["id"]]}),
                               ("remember", {"content": "planted by bob"}), ("update_memory", {"id": memory["id"], "content": "0000"}),
                               ("forget", {"ids": [memory["id"]], "confirm": True})):
                assert refused(await call(BOB, tool, scope=theirs, **args)) == "forbidden", (tool, user)
        assert ok(await call(BOB, "recall", query="locker code", scope={"project": "apollo"}))["hits"] == []
        jwt_view = ok(await call(ALICE_JWT, "recall", query="locker code", scope={"user": "alice", "project": "apollo"}))
        assert jwt_view["hits"] == [], "a JWT subject 'alice' is not the API key 'alice'"

        audited = ok(await call(AUDITOR, "recall", query="locker code", scope={"user": "api_key:alice", "project": "apollo"}))
        assert [h["memory"]["content"] for h in audited["hits"]] == ["Alice's locker code is 4711"], "bob changed nothing"

        # The hub's local operator (stdio, auth off) keeps the user-less scopes and, holding `*`, may name anyone.
        mine = ok(await call(None, "remember", content="Operator note", scope={"project": "apollo"}))["memory"]
        assert mine["scope"]["user"] is None
        alices = {"user": "api_key:alice", "project": "apollo"}
        assert ok(await call(None, "get_memories", ids=[memory["id"]], scope=alices))["memories"]


# -- a real HTTP hub with API keys, memory as its stdio child ------------------------------------


async def test_http_hub_gives_each_key_only_its_own_memories(tmp_path: Path, procs: list[Proc]) -> None:
    data_dir = tmp_path / "hub"
    config = write_config(tmp_path, {"memory": memory_stdio(tmp_path / "memory")},
                          hub={"data_dir": str(data_dir), "auth": {"enabled": True}})
    alice, bob = create_key(data_dir, "alice", "memory:write"), create_key(data_dir, "bob", "memory:write")
    auditor = create_key(data_dir, "auditor", "memory:admin")
    url = start_hub_http(procs, config)

    async with http_client(url, alice) as client:
        stored = ok(await client.call_tool("memory__remember",
                                           {"content": "Alice's locker code is 4711", "scope": {"project": "apollo"}}))
        assert stored["memory"]["scope"]["user"] == "api_key:alice"
    memory_id = stored["memory"]["id"]

    async with http_client(url, bob) as client:
        for user in ("alice", "api_key:alice"):
            asked = await client.call_tool("memory__recall", {"query": "locker code", "scope": {"user": user, "project": "apollo"}})
            assert refused(asked) == "forbidden"
        # A caller token bob writes into _meta himself is not the hub's: it is dropped, bob stays bob.
        forged = {META_KEY: forged_token(), "io.mcp-hub/anything": "x"}
        own = ok(await client.call_tool("memory__recall", {"query": "locker code", "scope": {"project": "apollo"}}, meta=forged))
        assert own["hits"] == []
        named = await client.call_tool("memory__get_memories", {"ids": [memory_id], "scope": {"user": "alice", "project": "apollo"}},
                                       meta=forged)
        assert refused(named) == "forbidden"

    async with http_client(url, auditor) as client:
        alices = {"user": "api_key:alice", "project": "apollo"}
        hits = ok(await client.call_tool("memory__recall", {"query": "locker code", "scope": alices}))
        assert [h["memory"]["id"] for h in hits["hits"]] == [memory_id]


async def test_stdio_hub_signs_calls_on_the_express_path_too(tmp_path: Path) -> None:
    """The hub's stdio front end relays most calls without a task (hub.express): the token must ride
    along there as well — the child holds a secret and would refuse an unsigned call."""
    config = write_config(tmp_path, {"memory": memory_stdio(tmp_path / "memory")}, hub={"data_dir": str(tmp_path / "hub")})
    params = StdioServerParameters(command=PY, args=["-m", "hub.cli", "serve", "--config", str(config), "--log-level", "warning"],
                                   env={"PYTHONPATH": str(ROOT), "MCP_HUB_SCOPES": "memory:write"}, cwd=str(ROOT))
    async with Client(params) as client:
        for _ in range(3):
            stored = ok(await client.call_tool("memory__remember", {"content": "Operator prefers tea", "scope": {"project": "p"}}))
            assert stored["memory"]["scope"]["user"] is None, "the local operator keeps the user-less scopes"
            hits = ok(await client.call_tool("memory__recall", {"query": "tea", "scope": {"project": "p"}}))["hits"]
            assert [h["memory"]["id"] for h in hits] == [stored["memory"]["id"]]
        other = await client.call_tool("memory__recall", {"query": "tea", "scope": {"user": "ada", "project": "p"}})
        assert refused(other) == "forbidden", "without memory:admin the operator cannot name a user"


# -- a domain server holding a secret trusts only the hub's tokens --------------------------------


def token_for(secret: str, *, audience: str = "calendar", expires_in: float = 60.0, principal: str = "api_key:alice") -> str:
    from hub.auth.caller_channel import CallerClaims, sign

    kind, _, name = principal.partition(":")
    claims = CallerClaims(principal=principal, kind=kind, name=name, scopes=("calendar:read",), namespace="calendar",
                          audience=audience, expires_at=time.time() + expires_in)
    return sign(claims, secret.encode())


async def test_domain_server_with_a_secret_refuses_calls_without_a_valid_token(tmp_path: Path) -> None:
    secret = secrets.token_urlsafe(32)
    params = StdioServerParameters(
        command=PY, args=["-m", "hub.cli", "server", "calendar", "--data-dir", str(tmp_path), "--log-level", "warning"],
        env={"PYTHONPATH": str(ROOT), "MCP_HUB_CALLER_SECRET": secret, "MCP_HUB_CALLER_AUDIENCE": "calendar"}, cwd=str(ROOT))
    async with Client(params) as client:
        unsigned = await client.call_tool("now", {})
        assert refused(unsigned) == "unauthorized"
        # A hub configured without `caller_secret` for it sends no token: the refusal names what to set.
        assert "`caller_secret`" in unsigned.content[0].text and "MCP_HUB_CALLER_SECRET" in unsigned.content[0].text  # type: ignore[union-attr]
        bad = {
            "garbage": "not-a-token",
            "forged": forged_token(),
            "other secret": token_for(secrets.token_urlsafe(32)),
            "expired": token_for(secret, expires_in=-1),
            "other server": token_for(secret, audience="hris"),
            "not a string": 42,
        }
        for label, token in bad.items():
            result = await client.call_tool("now", {}, meta={META_KEY: token})
            assert refused(result) == "unauthorized", label
            assert secret not in json.dumps(result.structured_content)
        good = await client.call_tool("now", {"zone": "Europe/Berlin"}, meta={META_KEY: token_for(secret)})
        assert ok(good)["zone"] == "Europe/Berlin"

    # The same server without a secret refuses a token it cannot check, rather than ignore it.
    params.env = {"PYTHONPATH": str(ROOT)}
    async with Client(params) as client:
        assert ok(await client.call_tool("now", {}))["zone"] == "UTC", "standalone: the local operator"
        assert refused(await client.call_tool("now", {}, meta={META_KEY: token_for(secret)})) == "unauthorized"


async def test_http_domain_server_and_hub_share_a_configured_secret(memory_env: Path, procs: list[Proc],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    secret = secrets.token_urlsafe(32)
    port = free_port()
    server = Proc([PY, "-m", "hub.cli", "server", "memory", "--transport", "http", "--port", str(port), "--data-dir",
                   str(memory_env / "memory"), "--log-level", "warning"], env={"MCP_HUB_CALLER_SECRET": secret, "MEMORY_EMBEDDER": EMBEDDER})
    procs.append(server)
    threading.Thread(target=server._drain, daemon=True).start()  # a full stderr pipe would stall the server
    wait_for_port(port)
    url = f"http://127.0.0.1:{port}/mcp"

    async with http_client(url) as direct:
        asked = await direct.call_tool("recall", {"query": "code", "scope": {"user": "api_key:alice"}})
        assert refused(asked) == "unauthorized", "reaching the domain server around the hub gets nothing"

    async def hub_with(value: str) -> Hub:
        monkeypatch.setenv("MEMORY_CALLER_SECRET", value)
        return Hub(parse_config({"mcpServers": {"memory": {"url": url, "caller_secret": "${MEMORY_CALLER_SECRET}"}}}))

    async with await hub_with(secret) as hub:
        stored = ok(await hub.route_call("memory__remember", {"content": "Alice's code is 4711", "scope": {}}, principal=ALICE))
        assert stored["memory"]["scope"]["user"] == "api_key:alice"
        theirs = await hub.route_call("memory__recall", {"query": "code", "scope": {"user": "alice"}}, principal=BOB)
        assert refused(theirs) == "forbidden"
        mine = ok(await hub.route_call("memory__recall", {"query": "code", "scope": {}}, principal=ALICE))
        assert [h["memory"]["id"] for h in mine["hits"]] == [stored["memory"]["id"]]
    async with await hub_with(secrets.token_urlsafe(32)) as hub:
        wrong = await hub.route_call("memory__recall", {"query": "code", "scope": {}}, principal=ALICE)
        assert refused(wrong) == "unauthorized"


def test_a_caller_secret_is_config_and_must_be_long_enough() -> None:
    from hub.config import ConfigError

    good = "k" * 32
    config = parse_config({"mcpServers": {"m": {"url": "http://127.0.0.1:1/mcp", "caller_secret": "${SECRET}"}}}, env={"SECRET": good})
    assert config.servers[0].caller_secret is not None and config.servers[0].caller_secret.get_secret_value() == good
    assert good not in repr(config), "the secret stays out of reprs and logs"
    with pytest.raises(ConfigError) as caught:
        parse_config({"mcpServers": {"m": {"url": "http://127.0.0.1:1/mcp", "caller_secret": "tiny-secret"}}})
    assert "caller_secret" in str(caught.value) and "32" in str(caught.value) and "tiny-secret" not in str(caught.value)


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(from_end=st.integers(min_value=0, max_value=400), flip=st.integers(min_value=1, max_value=63))
@example(from_end=0, flip=1).via("the signature's last character: base64 decoders ignore its 2 spare bits")
@example(from_end=0, flip=2).via("the signature's last character")
@example(from_end=0, flip=3).via("the signature's last character")
async def test_any_change_to_a_signed_token_is_refused(from_end: int, flip: int, signed_server: Any) -> None:
    client, secret = signed_server
    token = token_for(secret)
    position = len(token) - 1 - from_end % len(token)
    old = token[position]
    new = B64[B64.index(old) ^ flip] if old in B64 else "A"
    tampered = token[:position] + new + token[position + 1:]
    result = await client.call_tool("now", {}, meta={META_KEY: tampered})
    assert refused(result) == "unauthorized", tampered


@pytest.fixture
async def signed_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The calendar domain in-process, with the caller boundary a standalone server gets and a secret."""
    from servers.calendar.server import create_server, make_backend
    from servers.kit.caller import install_caller_boundary

    secret = secrets.token_urlsafe(32)
    monkeypatch.setenv("MCP_HUB_CALLER_SECRET", secret)
    monkeypatch.setenv("MCP_HUB_CALLER_AUDIENCE", "calendar")
    server = create_server(make_backend("embedded", tmp_path))
    install_caller_boundary(server)
    async with Client(server) as client:
        yield client, secret
