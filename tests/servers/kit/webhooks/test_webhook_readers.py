"""Outside review, events round 18 #2, #3, #5–#8: what a verified delivery puts in the feed. Both current
formats of QuickBooks (CloudEvents arrays) and BambooHR (Event-Based); only the configured company's
changes (QUICKBOOKS_REALM_ID, XERO_TENANT_ID); record ids as the domain's tools give them; Zendesk
non-ticket events and event types a domain does not read acknowledged and ignored, never dead-lettered.
Payloads are the providers' documented ones; signatures come from tests/webhook_support.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from servers.kit.webhooks.readers import Account, read
from tests.webhook_support import Served, make_intake, serve, set_secrets, signed

pytestmark = pytest.mark.anyio
ACCOUNT = {"QUICKBOOKS_REALM_ID": "111111", "XERO_TENANT_ID": "tenant-acme", "GITHUB_REPO": "acme/app"}


@pytest.fixture
async def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    set_secrets(monkeypatch)
    for name, value in ACCOUNT.items():
        monkeypatch.setenv(name, value)
    intake, feed = make_intake(tmp_path)
    async for url in serve(Starlette(routes=intake.routes())):
        served = Served(intake, feed, url)
        async with served.http:
            yield served


async def post(served: Served, provider: str, data: Any, **extra: str) -> Any:
    body = json.dumps(data).encode()
    answer = await served.post(provider, body, signed(provider, body) | {"Content-Type": "application/json"} | extra)
    assert answer.status_code == 200, answer.text
    return answer.json() if answer.content else None


async def fed(served: Served) -> list[tuple[str, str, str]]:
    await served.intake.processor.drain()
    return [(c.kind, c.record_id, c.action) for c in (await served.feed.page(None, None, 100, None)).changes]


def cloud_event(kind: str, entity: str, realm: str) -> dict[str, Any]:
    """Intuit's CloudEvents item (blogs.intuit.com, 2025-11-12, "Upcoming change to webhooks payload structure")."""
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
            "type": f"qbo.{kind}.v1", "datacontenttype": "application/json", "time": "2026-12-05T05:00:00.179851517Z",
            "intuitentityid": entity, "intuitaccountid": realm, "data": {}}


# -- #2 QuickBooks CloudEvents, #6 BambooHR Event-Based ------------------------------------------


async def test_quickbooks_cloudevents_array_is_accepted_and_fed(served: Served) -> None:
    answer = await post(served, "quickbooks", [cloud_event("invoice.created", "95", "111111"),
                                               cloud_event("customer.updated", "5", "111111"),
                                               cloud_event("billpayment.deleted", "8", "111111")])
    assert answer["accepted"] is True and answer["duplicate"] is False
    assert await fed(served) == [("invoice", "invoice:95", "created"), ("contact", "customer:5", "updated"),
                                 ("payment", "billpayment:8", "deleted")]


async def test_quickbooks_legacy_notifications_still_read(served: Served) -> None:
    await post(served, "quickbooks", {"eventNotifications": [{"realmId": "111111", "dataChangeEvent": {"entities": [
        {"name": "Bill", "id": "3", "operation": "Create", "lastUpdated": "2026-12-05T05:00:00Z"},
        {"name": "JournalEntry", "id": "9", "operation": "Update", "lastUpdated": "2026-12-05T05:00:00Z"}]}}]})
    assert await fed(served) == [("invoice", "bill:3", "created"), ("journal", "journalentry:9", "updated")]


async def test_a_json_array_is_still_refused_where_no_provider_sends_one(served: Served) -> None:
    body = b"[]"
    answer = await served.post("github", body, signed("github", body) | {"Content-Type": "application/json"})
    assert answer.status_code == 400 and await served.intake.log.list() == []


@pytest.mark.parametrize(("event", "action"), [("employee.created", "created"), ("employee.updated", "updated"),
                                                ("employee.deleted", "deleted")])
async def test_bamboohr_event_based_webhooks_are_fed(served: Served, event: str, action: str) -> None:
    """documentation.bamboohr.com/docs/event-based-webhooks ("the recommended way")."""
    await post(served, "bamboohr", {"type": event, "timestamp": "2026-01-31T18:42:00+0000",
                                    "data": {"companyId": "12345", "employeeId": "67890", "changedFields": ["firstName"]}})
    assert await fed(served) == [("employee", "67890", action)]
    assert [r.state for r in await served.intake.log.list()] == ["processed"]


async def test_bamboohr_field_based_webhooks_still_read(served: Served) -> None:
    await post(served, "bamboohr", {"employees": [{"id": "7", "action": "Created", "changedFields": ["firstName"]}]})
    assert await fed(served) == [("employee", "7", "created")]


# -- #3 another company of the same app ----------------------------------------------------------


async def test_other_quickbooks_companies_are_acknowledged_ignored_and_counted(served: Served) -> None:
    theirs = await post(served, "quickbooks", [cloud_event("invoice.updated", "145", "999999")])
    assert theirs["ignored"] is True and theirs["event"] is None
    await post(served, "quickbooks", {"eventNotifications": [
        {"realmId": "999999", "dataChangeEvent": {"entities": [{"name": "Invoice", "id": "145", "operation": "Update"}]}},
        {"realmId": "111111", "dataChangeEvent": {"entities": [{"name": "Invoice", "id": "7", "operation": "Update"}]}}]})
    assert await fed(served) == [("invoice", "invoice:7", "updated")]
    assert len(await served.intake.log.list()) == 1, "another company's delivery is not logged"
    assert served.intake.by_provider["quickbooks"]["ignored"] == 1 and served.intake.counters["ignored"] == 1


async def test_other_xero_organisations_are_dropped(served: Served) -> None:
    def event(resource: str, tenant: str) -> dict[str, Any]:
        return {"resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{resource}", "resourceId": resource,
                "eventDateUtc": "2026-12-05T05:00:00.000", "eventType": "UPDATE", "eventCategory": "INVOICE",
                "tenantId": tenant, "tenantType": "ORGANISATION"}

    await post(served, "xero", {"events": [event("inv-other", "tenant-globex"), event("inv-mine", "tenant-acme")],
                                "firstEventSequence": 1, "lastEventSequence": 2, "entropy": "QWERTYASDF"})
    assert await post(served, "xero", {"events": [event("inv-2", "tenant-globex")], "firstEventSequence": 3,
                                       "lastEventSequence": 3, "entropy": "ZXCV"}) is None
    assert await fed(served) == [("invoice", "inv-mine", "updated")]
    assert served.intake.by_provider["xero"]["ignored"] == 1


def test_without_a_configured_company_every_one_is_read() -> None:
    event = [cloud_event("invoice.updated", "145", "999999")]
    assert read("quickbooks", {}, event, Account()) == read("quickbooks", {}, event, Account(quickbooks_realm="999999"))
    assert read("quickbooks", {}, event, Account(quickbooks_realm="111111")) == []


# -- #5 record ids are the tools' ids ------------------------------------------------------------


async def test_github_issue_of_the_configured_repo_is_its_number(served: Served) -> None:
    """github.py `_ticket`: id `42` for GITHUB_REPO's issue 42; another repository's issue is not this server's
    unless `GITHUB_REPOS` allows it (its tools refuse any other: `github_scope`)."""
    await post(served, "github", {"action": "edited", "issue": {"number": 42}, "repository": {"full_name": "acme/app"}})
    await post(served, "github", {"action": "opened", "issue": {"number": 5}, "repository": {"full_name": "acme/other"}})
    assert await fed(served) == [("ticket", "42", "updated")]


def test_github_repos_allowed_beside_the_default_are_read_under_their_full_id() -> None:
    other = {"action": "opened", "issue": {"number": 5}, "repository": {"full_name": "Acme/Other"}}
    headers = {"x-github-event": "issues"}
    assert ids("github", headers, other, Account(github_repo="acme/app")) == []
    assert ids("github", headers, other, Account(github_repo="acme/app", github_repos=("acme/other",))) == [
        ("ticket", "acme/other#5", "created")]  # as configured (review s28 #3)
    assert ids("github", headers, other, Account()) == [("ticket", "Acme/Other#5", "created")]  # nothing configured: all
    assert Account.from_env({"GITHUB_REPO": "acme/app", "GITHUB_REPOS": " acme/other, ,acme/lib "}).github_repos == (
        "acme/other", "acme/lib")


def ids(provider: str, headers: dict[str, str], data: Any, account: Account = Account()) -> list[tuple[str, str, str]]:
    return [(c.kind, c.record_id, c.action) for c in read(provider, headers, data, account)]


def test_servicenow_records_the_incident_number_as_the_ticket() -> None:
    """servicenow.py: a ticket's id is the incident number; the sys_id (what bodies sent before) still reads."""
    assert ids("servicenow", {}, {"table": "incident", "sys_id": "a" * 32, "number": "INC0012345", "operation": "insert"}) == [
        ("ticket", "INC0012345", "created")]
    assert ids("servicenow", {}, {"table": "incident", "sys_id": "a" * 32, "operation": "update"}) == [("ticket", "a" * 32, "updated")]
    assert ids("servicenow", {}, {"table": "problem", "sys_id": "b" * 32, "number": "PRB1", "operation": "update"}) == []


def test_google_records_the_watched_calendar_id() -> None:
    uri = "https://www.googleapis.com/calendar/v3/calendars/ada%40example.com/events?alt=json&maxResults=250"
    headers = {"x-goog-resource-state": "exists", "x-goog-resource-uri": uri, "x-goog-resource-id": "opaque-1"}
    assert ids("google", headers, None) == [("calendar", "ada@example.com", "updated")]


def test_graph_records_the_event_id() -> None:
    item = {"changeType": "deleted", "resource": "Users/u-1/Events/AAMk-1", "clientState": "x"}
    assert ids("graph", {}, {"value": [item, item | {"resourceData": {"id": "AAMk-2"}}]}) == [
        ("event", "AAMk-1", "deleted"), ("event", "AAMk-2", "deleted")]
    assert ids("graph", {}, {"value": [{"lifecycleEvent": "reauthorizationRequired", "clientState": "x"}]}) == []


# -- #7 Zendesk events about users and organizations, #8 unread event types ---------------------


def zendesk_event(kind: str, subject: str, record: str) -> dict[str, Any]:
    """developer.zendesk.com, "Webhook event types": the event-subscription envelope."""
    return {"account_id": 12345, "detail": {"id": record}, "event": {}, "id": str(uuid.uuid4()), "subject": subject,
            "time": "2026-12-05T05:00:00Z", "type": f"zen:event-type:{kind}", "zendesk_event_version": "2022-11-06"}


async def test_zendesk_user_and_organization_events_are_not_ticket_changes(served: Served) -> None:
    for kind, subject, record in (("user.created", "zen:user:456", "456"), ("organization.created", "zen:organization:789", "789"),
                                  ("ticket.status_changed", "zen:ticket:5", "5"), ("ticket.created", "zen:ticket:6", "6")):
        await post(served, "zendesk", zendesk_event(kind, subject, record))
    assert await fed(served) == [("ticket", "5", "updated"), ("ticket", "6", "created")]
    assert served.intake.by_provider["zendesk"]["ignored"] == 2


UNREAD = [
    ("github", {"X-GitHub-Event": "push"}, {"ref": "refs/heads/main", "repository": {"full_name": "acme/app"}, "commits": []}),
    ("github", {"X-GitHub-Event": "pull_request"}, {"action": "opened", "number": 7, "pull_request": {"number": 7},
                                                    "repository": {"full_name": "acme/app"}}),
    ("github", {"X-GitHub-Event": "issue_comment"}, {"action": "created", "issue": {"number": 8, "pull_request": {"url": "u"}},
                                                     "repository": {"full_name": "acme/app"}}),
    ("jira", {}, {"timestamp": 1796000000000, "webhookEvent": "project_created", "project": {"id": 10001, "key": "NEW"}}),
    ("servicenow", {}, {"table": "change_request", "sys_id": "c" * 32, "number": "CHG1", "operation": "insert"}),
    ("quickbooks", {}, [cloud_event("item.created", "4", "111111")]),
    ("xero", {}, {"events": [{"resourceId": "s-1", "eventCategory": "SUBSCRIPTION", "eventType": "UPDATE",
                              "tenantId": "tenant-acme"}], "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "E"}),
    ("bamboohr", {}, {"type": "company.updated", "timestamp": "2026-01-31T18:42:00+0000", "data": {"companyId": "1"}}),
]


@pytest.mark.parametrize(("provider", "extra", "data"), UNREAD, ids=[f"{p}-{i}" for i, (p, _, _) in enumerate(UNREAD)])
async def test_event_types_the_domain_does_not_read_are_acknowledged_and_ignored(
        served: Served, provider: str, extra: dict[str, str], data: Any) -> None:
    answer = await post(served, provider, data, **extra)
    assert answer is None if provider == "xero" else answer["ignored"] is True
    assert await served.intake.log.list() == [], "not logged, so never retried nor dead-lettered"
    assert await fed(served) == []
    assert served.intake.by_provider[provider]["ignored"] == 1 and served.intake.by_provider[provider]["received"] == 0


async def test_an_event_type_the_domain_reads_without_its_id_is_still_dead_lettered(served: Served) -> None:
    await post(served, "github", {"action": "opened", "issue": {}, "repository": {"full_name": "acme/app"}})
    [row] = await served.intake.log.list()
    assert row.state == "received", "logged: processing fails, retries, then dead-letters it"


# -- BambooHR's Form Post encoding (documentation.bamboohr.com: Event-Based and Field-Based webhooks) ------------


async def post_form(served: Served, provider: str, body: bytes) -> Any:
    return await served.post(provider, body, signed(provider, body) | {"Content-Type": "application/x-www-form-urlencoded"})


async def test_bamboohr_form_posts_are_read_as_their_json_is(served: Served) -> None:
    """BambooHR lets an admin pick "Form Post" for either data structure; both were refused 415 ("send JSON")."""
    event = b"type=employee.updated&timestamp=2026-01-31T18%3A42%3A00%2B0000&data%5BcompanyId%5D=1&data%5BemployeeId%5D=67890&data%5BchangedFields%5D%5B0%5D=firstName"
    assert (await post_form(served, "bamboohr", event)).status_code == 200
    fields = (b"employees%5B12345%5D%5BchangedFields%5D%5B0%5D=First+name&employees%5B12345%5D%5BFirst+name%5D=John"
              b"&employees%5B777%5D%5Baction%5D=Deleted")
    assert (await post_form(served, "bamboohr", fields)).status_code == 200
    assert (await post_form(served, "bamboohr", event)).json()["duplicate"] is True  # the same delivery again
    assert await fed(served) == [("employee", "67890", "updated"), ("employee", "12345", "updated"),
                                 ("employee", "777", "deleted")]


@pytest.mark.parametrize("body", [b"type=employee.updated&data%5BemployeeId%5D=1&data%5BemployeeId%5D%5Bx%5D=2",
                                  b"a%5Bb%5D%5Bc%5D%5Bd%5D%5Be%5D%5Bf%5D=1", b"\xff\xfe=1", b"no-equals-sign"])
async def test_a_bamboohr_form_that_cannot_be_read_is_refused_not_logged(served: Served, body: bytes) -> None:
    answer = await post_form(served, "bamboohr", body)
    assert answer.status_code == 400, answer.text
    assert await served.intake.log.list() == []


async def test_other_providers_still_refuse_a_form(served: Served) -> None:
    body = b"type=employee.updated"
    answer = await served.post("jira", body, signed("jira", body) | {"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 415 and "application/json" in answer.text
