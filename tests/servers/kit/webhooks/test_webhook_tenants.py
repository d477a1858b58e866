"""Two namespaces (tenants) of one domain on one hub (outside review cluster round 7): each keeps its
own webhook deliveries (rows, dedupe, claims, change feed, `mcp-hub events`) on SQLite and on
PostgreSQL, with its own secret (`<NAMESPACE>_<PROVIDER>_WEBHOOK_SECRET`; the provider-wide one only
for a domain's only server), at the route of its namespace (not of its server name)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from servers.kit.webhooks import EventLog, Processor
from servers.kit.webhooks.log import events_path
from tests.conftest import PY, ROOT
from tests.webhook_support import SECRETS, deliver, http_hub, payload, signed

pytestmark = pytest.mark.anyio
ALL = "*"
"""`servers.kit.webhooks.log.ALL`: a log over every namespace of its file (checked below)."""
TENANT_SECRETS = {"acme": "acme-github-secret-0123456789", "globex": "globex-github-secret-0123456789"}


def issue(tenant: str, number: int) -> bytes:
    return json.dumps({"action": "opened", "issue": {"number": number}, "repository": {"full_name": f"{tenant}/app"}}).encode()


async def drain_into(log: Any) -> list[int]:
    """Process everything `log` may claim; the seqs its processor saw."""
    seen: list[int] = []

    async def handler(event: dict[str, Any]) -> None:
        seen.append(event["seq"])

    await Processor(log, None, handler=handler).drain()
    return seen


# -- the log ------------------------------------------------------------------------------------


async def test_namespaces_sharing_a_sqlite_log_claim_only_their_own(tmp_path: Path) -> None:
    path = events_path(tmp_path, "ticketing")  # two servers of one domain on one data dir share this file
    acme, globex = EventLog(path, "acme"), EventLog(path, "globex")
    mine = [(await acme.record("github", f"d-{i}", {}, b"{}"))[0] for i in range(3)]
    theirs = [(await globex.record("github", f"d-{i}", {}, b"{}"))[0] for i in range(2)]
    assert len(set(mine + theirs)) == 5, "the same delivery id in two namespaces is no duplicate"
    assert await drain_into(globex) == theirs
    assert await drain_into(acme) == mine
    assert [r.namespace for r in await EventLog(path, ALL).list()] == ["globex"] * 2 + ["acme"] * 3
    assert await globex.replay(mine[0]) is None, "another namespace's event"
    assert (await acme.counts())["processed"] == 3 and (await globex.counts())["processed"] == 2


async def test_an_event_log_from_before_namespaces_is_migrated_to_the_domains_name(tmp_path: Path) -> None:
    path = events_path(tmp_path, "hris")
    db = sqlite3.connect(path)  # version 1 of the schema, as a hub before this change left it
    db.executescript("""CREATE TABLE webhook_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, provider TEXT NOT NULL,
        delivery_id TEXT NOT NULL, received_at REAL NOT NULL, state TEXT NOT NULL DEFAULT 'received',
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, last_error TEXT, processed_at REAL,
        headers TEXT NOT NULL DEFAULT '{}', payload BLOB, duplicates INTEGER NOT NULL DEFAULT 0,
        UNIQUE (provider, delivery_id));
        CREATE INDEX webhook_events_due ON webhook_events (state, next_attempt_at);
        INSERT INTO webhook_events (provider, delivery_id, received_at, next_attempt_at, payload)
            VALUES ('bamboohr', 'old-1', 1.0, 1.0, X'7B7D');
        PRAGMA user_version = 1;""")
    db.close()
    log = EventLog(path)
    [row] = await log.list()
    assert (row.namespace, row.delivery_id, row.state) == ("hris", "old-1", "received")
    assert await log.record("bamboohr", "old-1", {}, b"{}") == (row.seq, True), "still a duplicate in its namespace"
    assert (await EventLog(path, "people").record("bamboohr", "old-1", {}, b"{}"))[1] is False
    assert await drain_into(log) == [row.seq]


async def test_namespaces_on_postgresql_claim_only_their_own_and_old_rows_keep_their_domain(pg: Any) -> None:
    import psycopg

    from hub.store.postgres import apply_migrations
    from servers.kit.webhooks.log_pg import MIGRATIONS, PgEventLog, close_pools

    url = pg.new_database()
    with psycopg.connect(url, autocommit=True) as conn:  # the table as version 1 left it, with a pending row
        apply_migrations(conn, MIGRATIONS[:1], "mcp_hub_event_migrations", 0x6D63_7068_6576)
        conn.execute("INSERT INTO webhook_events (domain, provider, delivery_id, received_at, next_attempt_at, payload)"
                     " VALUES ('ticketing', 'github', 'old-1', 1.0, 1.0, '\\x7b7d')")
    try:
        acme, globex = PgEventLog(url, "ticketing", namespace="acme"), PgEventLog(url, "ticketing", namespace="globex")
        mine = [(await acme.record("github", f"d-{i}", {}, b"{}"))[0] for i in range(3)]
        theirs = [(await globex.record("github", f"d-{i}", {}, b"{}"))[0] for i in range(2)]
        assert len(set(mine + theirs)) == 5, "the same delivery id in two namespaces is no duplicate"
        assert await drain_into(globex) == theirs
        assert await drain_into(acme) == mine
        old = PgEventLog(url, "ticketing")  # a hub whose namespace is the domain's name (the default config)
        [row] = await old.list()
        assert (row.namespace, row.delivery_id) == ("ticketing", "old-1")
        assert await old.record("github", "old-1", {}, b"{}") == (row.seq, True)
        assert await acme.replay(row.seq) is None and await globex.list() != []
        every = await PgEventLog(url, "ticketing", namespace=ALL).list()
        assert sorted(r.namespace for r in every) == ["acme"] * 3 + ["globex"] * 2 + ["ticketing"]
    finally:
        close_pools()


# -- secrets ------------------------------------------------------------------------------------


def test_each_namespace_has_its_own_secret_and_the_provider_wide_one_serves_a_domains_only_server() -> None:
    from servers.kit.webhooks import log
    from servers.kit.webhooks.verify import Secrets, namespace_variable

    assert log.ALL == ALL
    env = {"GITHUB_WEBHOOK_SECRET": "shared", "ACME_GITHUB_WEBHOOK_SECRET": "acme's", "EU_WEST_JIRA_WEBHOOK_SECRET": "eu's"}
    assert namespace_variable("eu-west", "jira") == "EU_WEST_JIRA_WEBHOOK_SECRET"
    assert Secrets("acme", lambda: True, env)("github") == "acme's", "the namespace's own comes first"
    assert Secrets("acme", lambda: False, env)("github") == "acme's"
    assert Secrets("eu-west", lambda: False, env)("jira") == "eu's"
    assert Secrets("globex", lambda: True, env)("github") == "shared", "a domain's only server: as before"
    tenant = Secrets("globex", lambda: False, env)
    assert tenant("github") is None, "two servers of one domain: the shared secret opens neither"
    assert "GLOBEX_GITHUB_WEBHOOK_SECRET" in tenant.missing("github") and "shared" not in tenant.missing("github")

    # Re-check: `acme-eu` and `acme_eu` both read ACME_EU_GITHUB_WEBHOOK_SECRET, so one secret opened both.
    env = {"ACME_EU_GITHUB_WEBHOOK_SECRET": "one for two"}
    for mine, other in (("acme-eu", "acme_eu"), ("acme_eu", "acme-eu")):
        clashing = Secrets(mine, lambda: False, env, lambda other=other, mine=mine: [mine, other])
        assert clashing("github") is None
        assert "ACME_EU_GITHUB_WEBHOOK_SECRET" in clashing.missing("github") and repr(other) in clashing.missing("github")
    assert Secrets("acme-eu", lambda: False, env, lambda: ["acme-eu", "globex"])("github") == "one for two"


# -- through the HTTP hub -----------------------------------------------------------------------


def events_cli(url: str, *args: str) -> list[dict[str, Any]]:
    done = subprocess.run([PY, "-m", "hub.cli", "events", *args, "--json"], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, env={**os.environ, "MCP_HUB_STORE_URL": url})
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


async def records(client: Client, namespace: str) -> list[str]:
    page = await client.call_tool(f"{namespace}__list_changes", {"limit": 200})
    assert not page.is_error, page.content
    return [c["record_id"] for c in page.structured_content["changes"]]  # type: ignore[index]


async def test_two_tenants_on_postgresql_keep_their_own_deliveries_and_secrets(pg: Any, tmp_path: Path) -> None:
    url = pg.new_database()
    servers = {t: {"builtin": "ticketing", "data_dir": str(tmp_path / t)} for t in TENANT_SECRETS}
    env = {"GITHUB_WEBHOOK_SECRET": SECRETS["github"]} | {
        f"{t.upper()}_GITHUB_WEBHOOK_SECRET": secret for t, secret in TENANT_SECRETS.items()}
    async with http_hub(tmp_path, servers, env, hub={"store": {"url": url}}) as (mcp_url, http):
        count = 8
        for tenant, secret in TENANT_SECRETS.items():
            for number in range(count):
                body = issue(tenant, number)
                answer = await deliver(http, f"/webhooks/{tenant}/github", body, signed("github", body, secret))
                assert answer.status_code == 200 and not answer.json()["duplicate"], answer.text
        same = payload("github", "99")  # one body, sent to both: a duplicate in neither
        for tenant, secret in TENANT_SECRETS.items():
            answer = await http.post(f"/webhooks/{tenant}/github", content=same, headers=signed("github", same, secret))
            assert answer.status_code == 200 and not answer.json()["duplicate"], answer.text

        forged = issue("globex", 100)
        for key in (TENANT_SECRETS["globex"], SECRETS["github"]):  # the other tenant's, the provider-wide one
            refused = await http.post("/webhooks/acme/github", content=forged, headers=signed("github", forged, key))
            assert refused.status_code == 401, refused.text
        assert "ACME_GITHUB_WEBHOOK_SECRET" not in refused.text, "the secret is right there, it just is not acme's"

        async with Client(mcp_url) as client:
            with anyio.fail_after(60):
                for tenant in TENANT_SECRETS:
                    wanted = {f"{tenant}/app#{n}" for n in range(count)} | {"acme/app#99"}
                    while not wanted <= set(await records(client, tenant)):
                        await anyio.sleep(0.1)  # waiting for the state "processed into this tenant's feed"
            for tenant in TENANT_SECRETS:
                foreign = [r for r in await records(client, tenant) if not r.startswith(f"{tenant}/") and r != "acme/app#99"]
                assert foreign == [], f"{tenant}'s feed has another tenant's changes"

    rows = events_cli(url, "list", "--namespace", "globex", "--limit", "100")
    assert len(rows) == count + 1 and {(r["domain"], r["namespace"]) for r in rows} == {("ticketing", "globex")}
    assert {r["namespace"] for r in events_cli(url, "list", "--limit", "100")} == {"acme", "globex"}


async def test_two_tenants_sharing_a_data_dir_keep_their_own_change_feeds(tmp_path: Path) -> None:
    """Outside review, events round 10: two tenants without a data dir of their own (the default) share
    one store, and so one change feed: a delivery signed with acme's secret reached globex's
    `list_changes`, its changes resource and its subscribers. Each feed shows its own namespace's
    webhook changes (and the records both share: embedded writes)."""
    servers = {t: {"builtin": "ticketing", "namespace": t} for t in TENANT_SECRETS}
    env = {f"{t.upper()}_GITHUB_WEBHOOK_SECRET": secret for t, secret in TENANT_SECRETS.items()}
    async with http_hub(tmp_path, servers, env) as (mcp_url, http):
        body = issue("acme", 7)
        answer = await deliver(http, "/webhooks/acme/github", body, signed("github", body, TENANT_SECRETS["acme"]))
        assert answer.status_code == 200, answer.text
        same = payload("github", "99")  # one delivery id sent to both: a change in each
        for tenant, secret in TENANT_SECRETS.items():
            assert (await deliver(http, f"/webhooks/{tenant}/github", same, signed("github", same, secret))).status_code == 200
        async with Client(mcp_url) as client:
            with anyio.fail_after(60):
                while not {"acme/app#7", "acme/app#99"} <= set(await records(client, "acme")):
                    await anyio.sleep(0.1)  # waiting for the state "processed into acme's feed"
                while "acme/app#99" not in await records(client, "globex"):
                    await anyio.sleep(0.1)
            assert "acme/app#7" not in await records(client, "globex")
            feed = await client.read_resource("mcphub://globex/ticketing://changes")
            assert "acme/app#7" not in feed.contents[0].text  # type: ignore[union-attr]
            assert not (await client.call_tool("globex__create_project", {"key": "OPS"})).is_error
            created = await client.call_tool("globex__create_ticket", {"project": "OPS", "title": "shared store"})
            assert not created.is_error, created.content
            key = created.structured_content["key"]  # type: ignore[index]
            assert key in await records(client, "acme")  # the records are shared: so are their changes

async def test_the_route_is_the_namespace_and_the_server_name_is_accepted_too(tmp_path: Path) -> None:
    servers = {"tickets-eu": {"builtin": "ticketing", "namespace": "eu"},
               "cal": {"builtin": "calendar", "namespace": ""}}  # no namespace: its server name is its route
    env = {"GITHUB_WEBHOOK_SECRET": SECRETS["github"]}  # the hub's only ticketing server: the provider-wide one
    async with http_hub(tmp_path, servers, env) as (_url, http):
        body = payload("github", "5")
        answer = await deliver(http, "/webhooks/eu/github", body, signed("github", body))
        assert answer.status_code == 200, answer.text
        alias = await http.post("/webhooks/tickets-eu/github", content=body, headers=signed("github", body))
        assert alias.status_code == 200 and alias.json()["duplicate"] is True, "the same namespace's log"
        handshake = await deliver(http, "/webhooks/cal/graph?validationToken=tok", b"", {})
        assert handshake.status_code == 200 and handshake.text == "tok"
        missing = await http.post("/webhooks/nowhere/github", content=body, headers=signed("github", body))
        assert missing.status_code == 404 and "namespace" in missing.json()["error"]
        health = (await http.get("/healthz")).json()["webhooks"]
        assert health["eu"]["server"] == "tickets-eu" and health["eu"]["providers"]["github"]["received"] == 1
    [row] = await EventLog(events_path(tmp_path, "ticketing"), ALL).list()
    assert (row.namespace, row.duplicates) == ("eu", 1)


async def test_concurrent_processors_on_one_file_each_take_all_of_their_namespaces_rows_only(tmp_path: Path) -> None:
    """Two processors on one file drain concurrently: each takes its own namespace's rows, all of them."""
    path = events_path(tmp_path, "accounting")
    logs = {ns: EventLog(path, ns) for ns in ("north", "south")}
    for i in range(40):
        for ns, log in logs.items():
            await log.record("xero", f"{ns}-{i}", {}, b"{}")
    seen: dict[str, list[str]] = {ns: [] for ns in logs}

    def handler_for(ns: str) -> Any:
        async def handler(event: dict[str, Any]) -> None:
            seen[ns].append(event["delivery_id"])
            await anyio.sleep(0)
        return handler

    async with anyio.create_task_group() as group:
        for ns, log in logs.items():
            group.start_soon(Processor(log, None, handler=handler_for(ns)).drain)
    for ns in logs:
        assert sorted(seen[ns]) == sorted(f"{ns}-{i}" for i in range(40))


async def test_push_channels_carry_their_namespaces_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Google channel tokens (Graph clientStates alike) are what the namespace's route checks: its own
    secret; a tenant with none opens no channel that its route would refuse."""
    import time

    from servers.kit.webhooks.channels import ChannelKeeper, GoogleChannels
    from tests.webhook_support import make_intake

    monkeypatch.setenv("GOOGLE_WEBHOOK_SECRET", "provider-wide")
    monkeypatch.setenv("WORK_GOOGLE_WEBHOOK_SECRET", "work's own")

    class Google:
        def __init__(self) -> None:
            self.tokens: list[str] = []

        async def json(self, method: str, path: str, idempotent: bool = False, json: Any = None) -> dict[str, str]:
            self.tokens.append(json["token"])
            return {"resourceId": "res-1", "expiration": str(int((time.time() + 7 * 86400) * 1000))}

    for namespace, expected in (("work", ["work's own"]), ("home", [])):
        intake, _ = make_intake(tmp_path / namespace, domain="calendar")
        google = Google()
        intake.keepers = [ChannelKeeper(intake.log.store, GoogleChannels(google, "https://h/webhooks/x/google",
                                                                         "provider-wide"), ["primary"])]
        intake.bind(namespace, provider_wide=lambda: False)  # two calendar servers on this hub
        await intake.keepers[0].tick()
        assert google.tokens == expected, namespace


async def test_the_unauthenticated_route_does_not_tell_which_servers_exist(tmp_path: Path) -> None:
    """A server that takes no webhooks was answered "payroll takes no webhooks through the hub" (by its
    name or its namespace) and a segment naming nothing "no namespace …": anyone could list the hub's
    servers without a credential (outside review admin17)."""
    servers = {"ticketing": {"builtin": "ticketing"},
               "payroll-secret": {"command": PY, "args": ["-c", "import time; time.sleep(600)"], "namespace": "payroll"}}
    async with http_hub(tmp_path, servers, {}) as (_url, http):
        answers = {}
        for segment in ("payroll", "payroll-secret", "zz-nothing-here"):
            answer = await http.post(f"/webhooks/{segment}/github", content=b"{}")
            answers[segment] = (answer.status_code, answer.text.replace(segment, "<segment>"))
        assert answers["payroll"] == answers["payroll-secret"] == answers["zz-nothing-here"], answers
        assert answers["payroll"][0] == 404
