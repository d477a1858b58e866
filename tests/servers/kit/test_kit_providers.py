"""Each domain's `PROVIDERS` table and the kit helper that picks a backend from `--backend` /
`$<DOMAIN>_BACKEND` (servers/kit/providers.py), and the one way connectors authenticate
(servers/kit/credentials.py)."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from hub.cli import main
from servers.accounting.server import PROVIDERS as ACCOUNTING
from servers.calendar.server import PROVIDERS as CALENDAR
from servers.hris.server import PROVIDERS as HRIS
from servers.kit.credentials import Basic, Bearer, connect
from servers.kit.providers import Provider
from servers.memory.server import PROVIDERS as MEMORY
from servers.ticketing.providers.github import GitHubTicketing
from servers.ticketing.server import PROVIDERS as TICKETING
from servers.ticketing.server import make_backend
from servers.ticketing.store import EmbeddedTicketing

SECRET = "s3cr3t-value-never-shown"


def test_every_domain_declares_its_providers_in_one_table() -> None:
    assert TICKETING.names == ["embedded", "jira", "github", "servicenow", "zendesk"]
    assert HRIS.names == ["embedded", "bamboohr", "workday"]
    assert CALENDAR.names == ["embedded", "caldav", "google", "graph"]
    assert ACCOUNTING.names == ["embedded", "quickbooks", "xero"]
    assert MEMORY.names == ["embedded", "sqlite"]
    assert {table.default for table in (TICKETING, HRIS, CALENDAR, ACCOUNTING, MEMORY)} == {"embedded"}


def test_an_unknown_backend_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown hris backend 'sap' \(from --backend\); choose one of embedded, bamboohr, workday"):
        HRIS.make("sap", tmp_path, environ={})
    with pytest.raises(ValueError, match=r"unknown memory backend 'postgres' \(from MEMORY_BACKEND\)"):
        MEMORY.make(None, tmp_path, environ={"MEMORY_BACKEND": "postgres"})


def test_missing_credentials_name_the_variables_never_their_values(tmp_path: Path) -> None:
    environ = {"JIRA_BASE_URL": f"https://{SECRET}.atlassian.net", "JIRA_EMAIL": SECRET}
    with pytest.raises(ValueError) as caught:
        TICKETING.make("jira", tmp_path, environ=environ)
    assert str(caught.value) == ("the jira backend of ticketing needs one of JIRA_OAUTH_TOKEN or JIRA_EMAIL + JIRA_API_TOKEN in the "
                                 "environment (docs/domains.md lists each provider's variables)")
    with pytest.raises(ValueError, match="needs QUICKBOOKS_REALM_ID, and one of QUICKBOOKS_TOKEN or QUICKBOOKS_CLIENT_ID"):
        ACCOUNTING.make("quickbooks", tmp_path, environ={})
    with pytest.raises(ValueError, match="quickbooks backend of accounting needs QUICKBOOKS_REALM_ID in the environment") as caught:
        ACCOUNTING.make("quickbooks", tmp_path, environ={"QUICKBOOKS_TOKEN": SECRET})
    assert SECRET not in str(caught.value)
    assert Provider("x:y", ("A|B+C",)).missing({"B": "1", "C": "2"}) is None


def test_the_backend_comes_from_the_argument_then_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_backend(None, tmp_path), EmbeddedTicketing)
    monkeypatch.setenv("TICKETING_BACKEND", "GitHub")
    monkeypatch.setenv("GITHUB_REPO", "acme/app")
    monkeypatch.setenv("GITHUB_TOKEN", SECRET)
    assert isinstance(make_backend(None, tmp_path), GitHubTicketing)
    assert isinstance(make_backend("embedded", tmp_path), EmbeddedTicketing)


def test_the_cli_reports_missing_credentials(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    for name in ("WORKDAY_HOST", "WORKDAY_TENANT", "WORKDAY_CLIENT_ID", "WORKDAY_CLIENT_SECRET", "WORKDAY_REFRESH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORKDAY_CLIENT_SECRET", SECRET)
    assert main(["server", "hris", "--backend", "workday", "--data-dir", str(tmp_path), "--log-level", "error"]) == 2
    err = capsys.readouterr().err
    assert "needs WORKDAY_HOST, WORKDAY_TENANT, WORKDAY_CLIENT_ID, WORKDAY_REFRESH_TOKEN in" in err and SECRET not in err


@pytest.mark.anyio
async def test_connect_authenticates_every_connector_the_same_way() -> None:
    seen: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(400, json={"errorMessages": ["JQL is invalid"], "message": "bad"})

    for credentials in (Bearer("tok"), Basic("me@example.com", "api")):
        http = connect("P", "http://p.test", credentials, transport=httpx.MockTransport(api))
        with pytest.raises(Exception) as caught:
            await http.request("GET", "/x")
        assert "bad" in str(caught.value) and "JQL" not in str(caught.value), "Jira's shape is read by Jira's error_text only"
        await http.aclose()
    assert seen == ["Bearer tok", "Basic " + base64.b64encode(b"me@example.com:api").decode()]
    assert "tok" not in repr(Bearer("tok")) and "api" not in repr(Basic("u", "api"))
