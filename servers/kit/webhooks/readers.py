"""What a verified delivery announces, per provider: the record changes of this server's account, named
with the kinds and ids the domain's tools use (so `<domain>://<kind>s/<id>` of an id a tool gave shows
the change). Only ids and kinds are read from a payload; nothing else leaves it.

A reader answers one of three ways:
- changes: what the feed records;
- nothing (`[]`): the delivery is about something this domain does not read — an event type it does
  not take (GitHub `push`, Jira `project_created`, a Zendesk user event), a pull request, another
  company of the same Intuit/Xero app — so the intake acknowledges it (2xx) and counts it `ignored`;
- `Malformed`: an event type it reads, without the ids it needs; processing fails and is dead-lettered.

Decided (outside review, events round 18): before, every unread type was `Malformed` and dead-lettered
(GitHub's default `push` webhook kept a domain `degraded`), other companies' changes reached the feed,
and ids were the provider's (`acme/app#42`, a ServiceNow sys_id, QuickBooks `145`) rather than the
tools' (`42`, `INC0012345`, `invoice:145`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

Action = Literal["created", "updated", "deleted"]
Headers = Mapping[str, str]


class Malformed(ValueError):
    """A verified payload this processor cannot read; processing fails and is retried, then dead-lettered."""


class UnusableId(Malformed):
    """A signed delivery naming a record by an id no store or tool can hold (a lone surrogate, a control character, over
    `MAX_ID` characters): refused at intake, never logged (outside review attack53 F3: acknowledged, then dead-lettered)."""


MAX_ID = 1024


class Mismatched(Malformed):
    """A signed body without the shape of what an unsigned header says it is (GitHub signs the body only,
    not `X-GitHub-Event`): refused at the intake (400, counted rejected), never logged — else a captured
    body re-sent under another event name would be read as another kind of change (outside review events
    round 27). The message names the header and what the body lacks; it quotes nothing of the body."""


@dataclass(frozen=True)
class ChangeSpec:
    kind: str
    record_id: str
    action: Action


@dataclass(frozen=True)
class Account:
    """Which account of a provider this server's backend reads, from the variables its connector reads
    (`servers/<domain>/providers/`): deliveries for another are not this server's. Unset: every one is."""

    github_repo: str = ""
    """`GITHUB_REPO` (owner/name): its issues are `42` to the tools, any other repository's `owner/name#42`."""
    github_repos: tuple[str, ...] = ()
    """`GITHUB_REPOS` (comma-separated owner/name): the other repositories the connector may use
    (`servers.ticketing.providers.github_scope`); a delivery for any repository outside these and
    `GITHUB_REPO` is not this server's (its tools would refuse the id)."""
    quickbooks_realm: str = ""
    """`QUICKBOOKS_REALM_ID`: one Intuit app delivers every connected company's changes to one URL."""
    xero_tenant: str = ""
    """`XERO_TENANT_ID`: one Xero app's webhook carries every connected organisation's events."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Account:
        env = os.environ if environ is None else environ
        return cls(github_repo=env.get("GITHUB_REPO", "").strip(),
                   github_repos=tuple(r.strip() for r in env.get("GITHUB_REPOS", "").split(",") if r.strip()),
                   quickbooks_realm=env.get("QUICKBOOKS_REALM_ID", "").strip(),
                   xero_tenant=env.get("XERO_TENANT_ID", "").strip())


def action_of(text: Any) -> Action:
    word = str(text or "").lower()
    if "creat" in word or word in ("opened", "insert", "add"):
        return "created"
    if "delet" in word or word in ("remove", "removed", "not_exists"):
        return "deleted"
    return "updated"


def need(value: Any, what: str) -> str:
    if value is None or value == "" or isinstance(value, (dict, list)):
        raise Malformed(f"payload has no {what}")
    return str(value)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _objects(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _mine(given: Any, configured: str) -> bool:
    return not configured or str(given or "") == configured


# -- ticketing ---------------------------------------------------------------------------------

GITHUB_READ = ("issues", "issue_comment")
"""GitHub events about issues; every other one (`push`, `pull_request`, `star`, …) is not a ticket change."""


GITHUB_COMMENT_ACTIONS = ("created", "edited", "deleted")


def github_shape(event: str, data: dict[str, Any]) -> None:
    """Refuse (`Mismatched`) a body that is not what `X-GitHub-Event` claims: an `issues` body has an
    `issue` and an `action` and no `comment`; an `issue_comment` body has an `issue`, a `comment` and a
    comment's action. The other events are not read, whatever their body."""
    claim = f"X-GitHub-Event says {event!r}, but the signed body"
    if not isinstance(data.get("action"), str):
        raise Mismatched(f"{claim} has no action")
    if not isinstance(data.get("issue"), dict):
        raise Mismatched(f"{claim} has no issue object")
    if event == "issues" and "comment" in data:
        raise Mismatched(f"{claim} is an issue_comment's (it has a comment)")
    if event == "issue_comment" and (not isinstance(data.get("comment"), dict) or data["action"] not in GITHUB_COMMENT_ACTIONS):
        raise Mismatched(f"{claim} has no comment object or a comment action (created, edited, deleted)")


def github(headers: Headers, data: Any, account: Account) -> list[ChangeSpec]:
    """`issues` and `issue_comment` on an issue (not a pull request, which the backend does not list).
    The id is the backend's (`github.py: _ticket`): the number for `GITHUB_REPO`, `owner/name#n` for another
    repository the connector may use (`GITHUB_REPOS`), spelled as configured whatever case the payload's
    `full_name` has (one issue, one id); an organisation's webhook delivering any other
    repository's issues is not this server's (its tools refuse those ids: they would only be noise, or tell
    an agent of repositories it may not read). With `GITHUB_REPO` unset every repository is kept.
    The unsigned event name must match the signed body (`github_shape`)."""
    event = headers.get("x-github-event", "").strip().lower()
    if event not in GITHUB_READ:
        return []
    data = _object(data)
    issue = _object(data.get("issue"))
    if issue.get("pull_request"):
        return []  # not read, whatever the event name claims
    github_shape(event, data)
    number = need(issue.get("number"), "issue.number")
    repo = str(_object(data.get("repository")).get("full_name") or "")
    ours = not repo or (account.github_repo != "" and repo.lower() == account.github_repo.lower())
    allowed: dict[str, str] = {}
    for name in (account.github_repo, *account.github_repos):
        if name:
            allowed.setdefault(name.lower(), name)
    if not ours and allowed and repo.lower() not in allowed:
        return []
    repo = allowed.get(repo.lower(), repo)  # the configured spelling, as the tools' ids (outside review s28 #3)
    action = data.get("action") if event == "issues" else "updated"
    return [ChangeSpec("ticket", number if ours else f"{repo}#{number}", action_of(action))]


def jira(headers: Headers, data: Any, account: Account) -> list[ChangeSpec]:
    """`jira:issue_*`, and any other event carrying an issue (comments, worklogs: the issue was updated);
    events without one (`project_created`, `sprint_started`, `user_updated`, …) are not ticket changes."""
    data = _object(data)
    event = str(data.get("webhookEvent", ""))
    issue = data.get("issue")
    if not event.startswith("jira:issue_") and not isinstance(issue, dict):
        return []
    key = need(_object(issue).get("key"), "issue.key")
    return [ChangeSpec("ticket", key, action_of(event.split("_")[-1]) if event.startswith("jira:issue_") else "updated")]


_ZENDESK_EVENT = "zen:event-type:"


def zendesk(headers: Headers, data: Any, account: Account) -> list[ChangeSpec]:
    """Event subscriptions (`{type: zen:event-type:<domain>.<event>, subject: zen:<domain>:<id>, detail}`):
    only the `ticket` domain is read — users, organizations, articles and the rest are not tickets.
    A trigger's webhook (its body is whatever the trigger's template says): `detail`, `ticket` or the body's `id`."""
    data = _object(data)
    kind = str(data.get("type") or "")
    subject = str(data.get("subject") or "")
    if kind.startswith(_ZENDESK_EVENT) or subject.startswith("zen:"):
        domain = kind[len(_ZENDESK_EVENT):].split(".")[0] if kind.startswith(_ZENDESK_EVENT) else subject.split(":")[1]
        if domain != "ticket":
            return []
        ticket = _object(data.get("detail")).get("id") or subject.removeprefix("zen:ticket:") or None
        return [ChangeSpec("ticket", need(ticket, "ticket id"), action_of(kind.rsplit(".", 1)[-1]))]
    detail = _object(data.get("detail")) or _object(data.get("ticket")) or data
    return [ChangeSpec("ticket", need(detail.get("id"), "ticket id"), action_of(kind))]


def servicenow(headers: Headers, data: Any, account: Account) -> list[ChangeSpec]:
    """Our documented body `{table, sys_id, number, operation}`. The backend's tickets are `incident` rows
    whose id is the number (INC0012345, `servicenow.py`); a body from before `number` was documented names
    the sys_id, which `get_ticket` also reads. Other tables are not tickets."""
    data = _object(data)
    if str(data.get("table") or "incident").lower() != "incident":
        return []
    record = data.get("number") or need(data.get("sys_id"), "number or sys_id")
    return [ChangeSpec("ticket", need(record, "number"), action_of(data.get("operation")))]


# -- HRIS --------------------------------------------------------------------------------------


def bamboohr(headers: Headers, data: Any, account: Account) -> list[ChangeSpec]:
    """Both of BambooHR's data structures: Event-Based (the recommended one: `{type: employee.created|
    updated|deleted, data: {employeeId}}`) and Field-Based (`{employees: [{id, action}]}`)."""
    data = _object(data)
    if isinstance(data.get("employees"), list):
        return [ChangeSpec("employee", need(e.get("id"), "employee id"), action_of(e.get("action")))
                for e in _objects(data["employees"])]
    kind = data.get("type")
    if not isinstance(kind, str):
        raise Malformed("payload is neither Event-Based (type, data.employeeId) nor Field-Based (employees list)")
    if not kind.startswith("employee."):
        return []
    return [ChangeSpec("employee", need(_object(data.get("data")).get("employeeId"), "data.employeeId"),
                       action_of(kind.removeprefix("employee.")))]


# -- calendar ----------------------------------------------------------------------------------

_GOOGLE_CALENDAR = re.compile(r"/calendars/([^/?#]+)/events")


def google(headers: Headers, data: Any, account: Account) -> list[ChangeSpec]:
    """A channel message: state and ids travel in headers ("sync" starts a channel: nothing changed).
    The calendar is the one the channel watches, read from `X-Goog-Resource-URI`
    (`…/calendars/<id>/events…`): the id `list_calendars` gives (the raw URI if it has none)."""
    state = headers.get("x-goog-resource-state", "")
    if state == "sync":
        return []
    uri = headers.get("x-goog-resource-uri", "")
    found = _GOOGLE_CALENDAR.search(uri)
    resource = unquote(found.group(1)) if found else uri or headers.get("x-goog-resource-id")
    return [ChangeSpec("calendar", need(resource, "X-Goog-Resource-URI"), action_of(state))]


_GRAPH_EVENT = re.compile(r"/events(?:/|\(')([^/()']+)", re.IGNORECASE)


def graph(headers: Headers, data: Any, account: Account) -> list[ChangeSpec]:
    """Change notifications: the event id (`resourceData.id`, else the last id of `resource`, e.g.
    `Users/{u}/Events/{id}`). Lifecycle notifications (`lifecycleEvent`) change no record."""
    out = []
    for item in _objects(_object(data).get("value")):
        if item.get("lifecycleEvent"):
            continue
        resource = str(item.get("resource") or "")
        found = _GRAPH_EVENT.search("/" + resource)
        event = _object(item.get("resourceData")).get("id") or (found.group(1) if found else resource)
        out.append(ChangeSpec("event", need(event, "resource"), action_of(item.get("changeType"))))
    return out


# -- accounting --------------------------------------------------------------------------------

QUICKBOOKS_KINDS = {"invoice": "invoice", "bill": "invoice", "customer": "contact", "vendor": "contact",
                    "payment": "payment", "billpayment": "payment", "journalentry": "journal"}
"""QuickBooks entity (lower case) → the domain's kind; the id is typed as the connector types it
(`quickbooks.py`, `qbo_mapping.py`: `invoice:145`, `bill:3`, `customer:5`, `journalentry:9`). Other
entities (Account, Item, Estimate, …) are records the domain does not have."""


def _quickbooks_change(entity: str, raw_id: Any, operation: Any) -> list[ChangeSpec]:
    kind = QUICKBOOKS_KINDS.get(entity.lower())
    if kind is None:
        return []
    return [ChangeSpec(kind, f"{entity.lower()}:{need(raw_id, 'entity id')}", action_of(operation))]


def quickbooks(headers: Headers, data: Any, account: Account) -> list[ChangeSpec]:
    """Both of Intuit's formats: CloudEvents (a JSON array; mandatory since 2026: `type`
    `qbo.<entity>.<operation>.v1`, `intuitentityid`, `intuitaccountid` the realm) and the legacy
    `{eventNotifications: [{realmId, dataChangeEvent: {entities: [{name, id, operation}]}}]}`.
    Only `QUICKBOOKS_REALM_ID`'s changes: QuickBooks ids are per company, so another's "invoice 145" is not ours."""
    out: list[ChangeSpec] = []
    if isinstance(data, list):
        for event in _objects(data):
            parts = need(event.get("type"), "CloudEvent type").split(".")
            if len(parts) < 3 or parts[0] != "qbo":
                raise Malformed("CloudEvent type is not qbo.<entity>.<operation>.v<n>")
            if _mine(event.get("intuitaccountid"), account.quickbooks_realm):
                out += _quickbooks_change(parts[1], event.get("intuitentityid"), parts[2])
        return out
    for note in _objects(_object(data).get("eventNotifications")):
        if not _mine(note.get("realmId"), account.quickbooks_realm):
            continue
        for entity in _objects(_object(note.get("dataChangeEvent")).get("entities")):
            out += _quickbooks_change(need(entity.get("name"), "entity name"), entity.get("id"), entity.get("operation"))
    return out


XERO_KINDS = {"INVOICE": "invoice", "CONTACT": "contact"}
"""Xero event categories the domain reads (ids are Xero's, as the connector's: InvoiceID, ContactID)."""


def xero(headers: Headers, data: Any, account: Account) -> list[ChangeSpec]:
    """`{events: [{resourceId, eventCategory, eventType, tenantId}]}`; only `XERO_TENANT_ID`'s events."""
    out = []
    for event in _objects(_object(data).get("events")):
        kind = XERO_KINDS.get(str(event.get("eventCategory") or "").upper())
        if kind and _mine(event.get("tenantId"), account.xero_tenant):
            out.append(ChangeSpec(kind, need(event.get("resourceId"), "resourceId"), action_of(event.get("eventType"))))
    return out


Reader = Callable[[Headers, Any, Account], list[ChangeSpec]]
READERS: dict[str, Reader] = {"github": github, "jira": jira, "zendesk": zendesk, "servicenow": servicenow,
                              "bamboohr": bamboohr, "google": google, "graph": graph, "quickbooks": quickbooks,
                              "xero": xero}


def read(provider: str, headers: Headers, data: Any, account: Account) -> list[ChangeSpec]:
    """The changes a parsed delivery announces for `account` (module docstring)."""
    reader = READERS.get(provider)
    if reader is None:
        raise Malformed(f"no reader for provider {provider!r}")
    if provider != "google" and not isinstance(data, (dict, list)):
        raise Malformed("payload is not a JSON object")
    specs = reader(headers, data, account)
    for spec in specs:
        _usable(spec.record_id)
    return specs


def _usable(record_id: str) -> None:
    """`UnusableId` unless `record_id` is text a store and a tool answer can carry."""
    if len(record_id) > MAX_ID:
        raise UnusableId(f"the record id it names is over {MAX_ID} characters")
    if any(ord(c) < 32 or 127 <= ord(c) <= 159 or 0xD800 <= ord(c) <= 0xDFFF for c in record_id):  # C0, DEL, C1
        raise UnusableId("the record id it names holds a control character or an unpaired surrogate")
