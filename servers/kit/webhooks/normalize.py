"""What a verified delivery means: its delivery id (for deduplication) and the record changes it
announces, per provider (`readers`: kinds and ids as the domain's tools name them, for this server's
account only). Only ids and kinds are read from a payload; nothing else leaves it.

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
from typing import Any

from servers.kit.webhooks.readers import Account, ChangeSpec, Malformed, read

__all__ = ["Account", "ChangeSpec", "Malformed", "changes", "delivery_alias", "delivery_id", "kept_headers"]

_ID_HEADERS = {"google": ("x-goog-channel-id", "x-goog-message-number")}
_SIGNED_TIMESTAMPS = {"zendesk": "x-zendesk-webhook-signature-timestamp", "servicenow": "x-servicenow-timestamp",
                      "bamboohr": "x-bamboohr-timestamp"}
"""Providers whose signature covers a timestamp header too: it is part of the deduplication key."""
_RETRY_IDS = {"zendesk": "x-zendesk-webhook-invocation-id", "servicenow": "x-servicenow-delivery"}
"""Of those, the ones sending an id that all attempts of one delivery share (the alias's id)."""
# Headers kept with an event because processing needs them (never a signature or a token).
KEPT_HEADERS = ("x-github-event", "x-goog-resource-state", "x-goog-resource-id", "x-goog-resource-uri",
                "x-goog-channel-id")


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


def _json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise Malformed("payload is not JSON") from None


def changes(provider: str, headers: Mapping[str, str], body: bytes, account: Account | None = None) -> list[ChangeSpec]:
    """The record changes a logged delivery announces for `account` (default: from the environment);
    empty for pings, handshakes and what this domain does not read; `Malformed` if the payload does not
    have the provider's documented shape (`readers`)."""
    return read(provider, headers, _json(body), account if account is not None else Account.from_env())
