"""What a verified delivery means: its delivery id (for deduplication) and the record changes it
announces, per provider. Only ids and kinds are read from a payload; nothing else leaves it.

Delivery ids (the deduplication key): the SHA-256 of what the signature covers — the raw body, with
the signed timestamp for Zendesk, ServiceNow and BambooHR — so a provider's retry of the same bytes is
a duplicate and so is a captured delivery replayed under a new, unsigned id header (`X-GitHub-Delivery`
and the like are not signed). Google, whose messages have no body, uses channel id + message number.

A provider that signs a timestamp signs each retry anew, so a retry's key differs from its first
attempt's. Where such a provider also sends an id that stays the same across the attempts of one
delivery (Zendesk's invocation id, our ServiceNow script's delivery id), the delivery has a second
key, its alias: that id with the body. A delivery matching either key is a duplicate — a retry by
its alias, a captured attempt re-sent under a new id by its signed key — while two deliveries with
equal bodies (a trigger's fixed template) stay two, having both different ids and timestamps.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Action = Literal["created", "updated", "deleted"]

_ID_HEADERS = {"google": ("x-goog-channel-id", "x-goog-message-number")}
_SIGNED_TIMESTAMPS = {"zendesk": "x-zendesk-webhook-signature-timestamp", "servicenow": "x-servicenow-timestamp",
                      "bamboohr": "x-bamboohr-timestamp"}
"""Providers whose signature covers a timestamp header too: it is part of the deduplication key."""
_RETRY_IDS = {"zendesk": "x-zendesk-webhook-invocation-id", "servicenow": "x-servicenow-delivery"}
"""Of those, the ones sending an id that all attempts of one delivery share (the alias's id)."""
# Headers kept with an event because processing needs them (never a signature or a token).
KEPT_HEADERS = ("x-github-event", "x-goog-resource-state", "x-goog-resource-id", "x-goog-resource-uri",
                "x-goog-channel-id")


class Malformed(ValueError):
    """A verified payload this processor cannot read; processing fails and is retried, then dead-lettered."""


@dataclass(frozen=True)
class ChangeSpec:
    kind: str
    record_id: str
    action: Action


def delivery_id(provider: str, headers: Mapping[str, str], body: bytes) -> str:
    """The deduplication key of a verified delivery: what the provider's signature covers, so a captured
    delivery re-sent with a new (unsigned) id header is still a duplicate. Google alone has no signed body
    (its messages are headers, checked by the channel token): its channel id + message number."""
    if provider == "google":
        values = [headers.get(name, "").strip() for name in _ID_HEADERS["google"]]
        if all(values):
            return ":".join(values)[:200]
    stamp = headers.get(_SIGNED_TIMESTAMPS.get(provider, ""), "").encode()
    return "sha256:" + hashlib.sha256(stamp + b"\n" + body if stamp else body).hexdigest()


def delivery_alias(provider: str, headers: Mapping[str, str], body: bytes) -> str | None:
    """The second deduplication key of a delivery whose provider re-signs its retries (module docstring):
    the SHA-256 of its retry id and body; None for other providers, or when the id is missing."""
    retry_id = headers.get(_RETRY_IDS.get(provider, ""), "").strip()
    if not retry_id:
        return None
    return "alias:" + hashlib.sha256(retry_id.encode(errors="replace") + b"\n" + body).hexdigest()


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name][:300] for name in KEPT_HEADERS if name in headers}


def _action(text: Any) -> Action:
    word = str(text or "").lower()
    if "creat" in word or word in ("opened", "insert", "add"):
        return "created"
    if "delet" in word or word in ("remove", "removed", "not_exists"):
        return "deleted"
    return "updated"


def _json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise Malformed("payload is not JSON") from None


def _need(value: Any, what: str) -> str:
    if value is None or value == "":
        raise Malformed(f"payload has no {what}")
    return str(value)


def changes(provider: str, headers: Mapping[str, str], body: bytes) -> list[ChangeSpec]:
    """The record changes a delivery announces (empty for pings and handshakes); `Malformed` if the
    payload does not have the provider's documented shape."""
    data = _json(body)
    if provider == "google":  # resource state and ids travel in headers; "sync" starts a channel
        state = headers.get("x-goog-resource-state", "")
        if state == "sync":
            return []
        resource = headers.get("x-goog-resource-uri") or headers.get("x-goog-resource-id")
        return [ChangeSpec("calendar", _need(resource, "X-Goog-Resource-URI"), _action(state))]
    if not isinstance(data, dict):
        raise Malformed("payload is not a JSON object")
    if provider == "github":
        event = headers.get("x-github-event", "")
        if event == "ping":
            return []
        issue = data.get("issue") or {}
        repo = (data.get("repository") or {}).get("full_name")
        number = _need(issue.get("number"), "issue.number")
        action = data.get("action") if event == "issues" else "updated"
        return [ChangeSpec("ticket", f"{repo}#{number}" if repo else number, _action(action))]
    if provider == "jira":
        issue = data.get("issue") or {}
        event = str(data.get("webhookEvent", ""))
        return [ChangeSpec("ticket", _need(issue.get("key"), "issue.key"),
                           _action(event.split("_")[-1]) if event.startswith("jira:issue_") else "updated")]
    if provider == "zendesk":
        detail = data.get("detail") or data.get("ticket") or data
        return [ChangeSpec("ticket", _need(detail.get("id"), "ticket id"), _action(data.get("type", "")))]
    if provider == "servicenow":
        return [ChangeSpec(str(data.get("table") or "incident"), _need(data.get("sys_id"), "sys_id"),
                           _action(data.get("operation")))]
    if provider == "bamboohr":
        employees = data.get("employees")
        if not isinstance(employees, list):
            raise Malformed("payload has no employees list")
        return [ChangeSpec("employee", _need(e.get("id"), "employee id"), _action(e.get("action"))) for e in employees]
    if provider == "graph":
        return [ChangeSpec("event", _need((i.get("resourceData") or {}).get("id") or i.get("resource"), "resource"),
                           _action(i.get("changeType"))) for i in data.get("value") or []]
    if provider == "quickbooks":
        out = []
        for note in data.get("eventNotifications") or []:
            for entity in (note.get("dataChangeEvent") or {}).get("entities") or []:
                out.append(ChangeSpec(_need(entity.get("name"), "entity name").lower(), _need(entity.get("id"), "entity id"),
                                      _action(entity.get("operation"))))
        return out
    if provider == "xero":
        return [ChangeSpec(_need(e.get("eventCategory"), "eventCategory").lower(), _need(e.get("resourceId"), "resourceId"),
                           _action(e.get("eventType"))) for e in data.get("events") or []]
    raise Malformed(f"no reader for provider {provider!r}")
