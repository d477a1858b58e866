"""Signature checks for inbound provider webhooks: one verifier per provider, each the provider's
documented scheme, every comparison constant-time (`hmac.compare_digest`).

A verifier takes the raw body, the request headers (lower-cased names), the query string and the
secret, and either returns (the delivery is authentic) or raises `Rejected` with the HTTP status to
answer. Secrets come from `<NAMESPACE>_<PROVIDER>_WEBHOOK_SECRET`, else `<PROVIDER>_WEBHOOK_SECRET`
while the namespace is its domain's only one (`Secrets`); a provider with no secret configured
accepts nothing. Timestamps outside the replay window (default 300 s either side of now) are refused.
Bodies are parsed with a nesting bound and a size-of-structure budget (`parse_json`): a deeper or
busier one is refused 400, never a 500. Graph alone must parse before it can authenticate (its proof,
`clientState`, is inside the body), so its unauthenticated parse gets the tight `UNVERIFIED` budget.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Headers = Mapping[str, str]
REPLAY_WINDOW_S = 300.0
MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a webhook body may have; every provider's is under 10."""


@dataclass(frozen=True)
class Budget:
    """How much structure a body may have before it is parsed: arrays + objects, and separators (`,` and `:`),
    counted on the raw bytes (C speed; text inside strings counts too, so it over-counts). Parsing cost
    follows these, not the byte count: 1 MiB of `[[],[],…]` took 0.53 s in `json.loads` alone and 1.4 s
    with the depth walk, on the event loop (outside review, events round 18)."""

    containers: int
    separators: int


SIGNED = Budget(containers=32_768, separators=262_144)
"""For a body whose signature was checked: ~10 ms of parsing at most. A real delivery under the 1 MiB cap
has fewer than 12,000 arrays/objects (QuickBooks' biggest batches: one object per ~100 bytes)."""
UNVERIFIED = Budget(containers=8_192, separators=65_536)
"""For a body parsed before it is authenticated (Graph's clientState): ~3 ms at most. A Graph notification
item (no resource data, as our subscriptions ask) is ~700 bytes with 2 objects and ~22 separators, so
every real batch under the 1 MiB cap (~1,500 items) fits."""


class Rejected(Exception):
    """The delivery is refused: `status` is the HTTP answer, `reason` a short text without payload,
    `retry_after` (seconds) when the refusal is temporary (503)."""

    def __init__(self, status: int, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


def parse_json(body: bytes, max_depth: int = MAX_JSON_DEPTH, budget: Budget = SIGNED) -> Any:
    """`json.loads(body)`, and a body nesting arrays and objects deeper than `max_depth` `Rejected`
    400 — also one too deep for the parser itself (its RecursionError, at ~1,000 levels) — and so is one
    over `budget`, checked on the bytes before anything is built. Linear in the body: the depth is
    measured on the parsed value, without recursion (re-check: a scan with a regex for strings took 40 s
    on a 96 KB unclosed string of escaped quotes, before any signature check). Not JSON: ValueError."""
    _within(body, budget)
    try:
        value = json.loads(body)
    except RecursionError:
        raise Rejected(400, _TOO_DEEP.format(max_depth)) from None
    pending = [(value, 1)] if isinstance(value, (dict, list)) else []
    while pending:
        item, depth = pending.pop()
        if depth > max_depth:
            raise Rejected(400, _TOO_DEEP.format(max_depth))
        children = item.values() if isinstance(item, dict) else item
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return value


_TOO_DEEP = "the JSON body nests deeper than {} levels, which no provider sends: check what posts to this URL"


def _within(body: bytes, budget: Budget) -> None:
    containers = body.count(b"[") + body.count(b"{")
    if containers > budget.containers:
        raise Rejected(400, f"the JSON body has over {budget.containers} arrays and objects, which no provider "
                            "sends in one delivery: check what posts to this URL")
    if body.count(b",") + body.count(b":") > budget.separators:
        raise Rejected(400, f"the JSON body has over {budget.separators} values, which no provider sends in one "
                            "delivery: check what posts to this URL")


def secret_for(provider: str, environ: Mapping[str, str] | None = None) -> str | None:
    """`<PROVIDER>_WEBHOOK_SECRET` (e.g. GITHUB_WEBHOOK_SECRET), or None when unset or empty."""
    value = (environ if environ is not None else os.environ).get(f"{provider.upper()}_WEBHOOK_SECRET", "")
    return value or None


def namespace_variable(namespace: str, provider: str) -> str:
    """`<NAMESPACE>_<PROVIDER>_WEBHOOK_SECRET`, the namespace upper-cased with `-` as `_`
    (`eu-west` + github: EU_WEST_GITHUB_WEBHOOK_SECRET)."""
    return f"{re.sub(r'[^A-Za-z0-9]', '_', namespace).upper()}_{provider.upper()}_WEBHOOK_SECRET"


@dataclass
class Secrets:
    """One namespace's webhook secrets: `<NAMESPACE>_<PROVIDER>_WEBHOOK_SECRET` first, else the
    provider-wide `<PROVIDER>_WEBHOOK_SECRET`, but only while `provider_wide()` says this namespace
    is its domain's only one on the hub: with two tenants of one domain, each needs its own, and
    neither's secret opens the other's route."""

    namespace: str
    provider_wide: Callable[[], bool] = lambda: True
    environ: Mapping[str, str] | None = None
    namespaces: Callable[[], list[str]] = lambda: []
    """The hub's other namespaces: one whose variable is this one's (`acme-eu` and `acme_eu`, `Acme` and
    `acme`) makes the variable open neither route — one secret would open both (re-check)."""

    def __call__(self, provider: str) -> str | None:
        env = os.environ if self.environ is None else self.environ
        if self._sharing(provider):
            return None
        own = env.get(namespace_variable(self.namespace, provider), "")
        if own:
            return own
        return secret_for(provider, env) if self.provider_wide() else None

    def _sharing(self, provider: str) -> list[str]:
        own = namespace_variable(self.namespace, provider)
        return sorted(n for n in self.namespaces() if n != self.namespace and namespace_variable(n, provider) == own)

    def missing(self, provider: str) -> str:
        """Why nothing is accepted for `provider`, naming the variable to set (never a value)."""
        own = namespace_variable(self.namespace, provider)
        if sharing := self._sharing(provider):
            return (f"namespaces {self.namespace!r} and {', '.join(map(repr, sharing))} would both read {own}, so it "
                    "opens neither: give one of them another namespace")
        if self.provider_wide():
            return f"neither {own} nor {provider.upper()}_WEBHOOK_SECRET is configured: nothing is accepted unsigned"
        return (f"{own} is not configured: this hub has several servers of this domain, so the provider-wide "
                f"{provider.upper()}_WEBHOOK_SECRET is not used for any of them")


def _hmac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def _header(headers: Headers, name: str) -> str:
    value = headers.get(name)
    if not value:
        raise Rejected(401, f"missing {name} header: the delivery is not signed")
    return value.strip()


def _same(given: str, expected: str) -> None:
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Rejected(401, "signature does not match: check the webhook secret configured at the provider")


def _fresh(at: float, now: float, window_s: float) -> None:
    if not abs(now - at) <= window_s:  # `not <=`: a NaN is never fresh
        raise Rejected(401, f"timestamp is outside the {window_s:g}s replay window: stale or replayed delivery")


_UNIX_TIME = re.compile(r"[0-9]{1,16}(?:\.[0-9]{1,9})?")


def _unix(text: str) -> float:
    """Unix seconds (or milliseconds), ASCII digits with an optional fraction. `float()` also took `nan`
    — which no window refuses (outside review, events round 10) — `inf`, signs, `_` and other scripts' digits."""
    if not _UNIX_TIME.fullmatch(text):
        raise Rejected(401, "timestamp header is not a unix time (digits, e.g. 1796419200)")
    value = float(text)
    return value / 1000 if value > 1e11 else value  # milliseconds are accepted too


def _iso(text: str) -> float:
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Rejected(401, "timestamp header is not an ISO 8601 instant") from None
    return (instant if instant.tzinfo else instant.replace(tzinfo=UTC)).timestamp()  # no offset: UTC


def github(body: bytes, headers: Headers, query: Headers, secret: str, now: float, window_s: float) -> None:
    """`X-Hub-Signature-256: sha256=` + hex(HMAC-SHA256(secret, raw body)). No timestamp: a replayed body
    is a duplicate by its hash (`normalize.delivery_id`); `X-GitHub-Event` is not signed, so the body must
    have the shape of the event it claims (`readers.github_shape`)."""
    _same(_header(headers, "x-hub-signature-256"), "sha256=" + _hmac(secret, body).hex())


def jira(body: bytes, headers: Headers, query: Headers, secret: str, now: float, window_s: float) -> None:
    """Jira Cloud webhook secret: `X-Hub-Signature: sha256=` + hex(HMAC-SHA256(secret, raw body))."""
    _same(_header(headers, "x-hub-signature"), "sha256=" + _hmac(secret, body).hex())


def zendesk(body: bytes, headers: Headers, query: Headers, secret: str, now: float, window_s: float) -> None:
    """`X-Zendesk-Webhook-Signature` = base64(HMAC-SHA256(secret, timestamp + raw body)), where
    timestamp is the `X-Zendesk-Webhook-Signature-Timestamp` header text (ISO 8601) exactly as sent."""
    stamp = _header(headers, "x-zendesk-webhook-signature-timestamp")
    signature = _header(headers, "x-zendesk-webhook-signature")
    _same(signature, base64.b64encode(_hmac(secret, stamp.encode() + body)).decode())
    _fresh(_iso(stamp), now, window_s)


def servicenow(body: bytes, headers: Headers, query: Headers, secret: str, now: float, window_s: float) -> None:
    """Our documented scheme for a ServiceNow outbound REST message (ServiceNow has no built-in one):
    `X-ServiceNow-Timestamp` = unix seconds, `X-ServiceNow-Signature: sha256=` +
    hex(HMAC-SHA256(secret, timestamp + "." + raw body)) — computed in the business rule with
    `GlideCertificateEncryption`/`GlideDigest`; timestamp-bound so a captured delivery cannot be replayed."""
    stamp = _header(headers, "x-servicenow-timestamp")
    signature = _header(headers, "x-servicenow-signature")
    _same(signature, "sha256=" + _hmac(secret, stamp.encode() + b"." + body).hex())
    _fresh(_unix(stamp), now, window_s)


def bamboohr(body: bytes, headers: Headers, query: Headers, secret: str, now: float, window_s: float) -> None:
    """`X-BambooHR-Signature` = hex(HMAC-SHA256(secret, raw body + timestamp)), where timestamp is the
    `X-BambooHR-Timestamp` header text (unix seconds)."""
    stamp = _header(headers, "x-bamboohr-timestamp")
    signature = _header(headers, "x-bamboohr-signature")
    _same(signature.lower(), _hmac(secret, body + stamp.encode()).hex())
    _fresh(_unix(stamp), now, window_s)


def google(body: bytes, headers: Headers, query: Headers, secret: str, now: float, window_s: float) -> None:
    """Google Calendar push channels are not signed: the `X-Goog-Channel-Token` we set when creating
    the channel must come back equal to the secret (constant-time)."""
    _same(_header(headers, "x-goog-channel-token"), secret)


def graph_items(body: bytes, secret: str) -> list[dict[str, Any]]:
    """`graph_collection`'s items alone."""
    return graph_collection(body, secret)[0]


def graph_collection(body: bytes, secret: str) -> tuple[list[dict[str, Any]], int]:
    """The items of a Graph notification collection that carry `secret` as their `clientState`
    (constant-time), in order; `Rejected` 401 when none does. Each item is proven on its own: Microsoft
    documents that one POST "can contain a mix of items for various apps and tenants that subscribed using
    the same notification URL" — and our own replaced subscription, still live until it expires, is one
    (outside review, events round 26: a mixed batch was refused whole, our own items with it). An item
    without our clientState is skipped, never read. Parsed within `UNVERIFIED`: a few milliseconds at most.
    Also the number of items the collection had."""
    try:
        items = parse_json(body, budget=UNVERIFIED).get("value")
    except (ValueError, AttributeError):
        raise Rejected(401, "notification body is not a Graph notification collection") from None
    if not isinstance(items, list) or not items:
        raise Rejected(401, "notification has no items to verify")
    ours = []
    for item in items:
        state = item.get("clientState") if isinstance(item, dict) else None
        if isinstance(state, str) and hmac.compare_digest(state.encode(), secret.encode()):
            ours.append(item)
    if not ours:
        raise Rejected(401, "no notification item carries this server's clientState: check the webhook secret the "
                            "subscription was created with (the channel upkeep uses this server's)")
    return ours, len(items)


def graph(body: bytes, headers: Headers, query: Headers, secret: str, now: float, window_s: float) -> None:
    """Microsoft Graph change notifications: at least one item of `value` carries `clientState` equal to
    the secret given when subscribing (`graph_items`; the intake reads those items only). The
    `validationToken` handshake is answered before verification (see `app.py`)."""
    graph_items(body, secret)


def quickbooks(body: bytes, headers: Headers, query: Headers, secret: str, now: float, window_s: float) -> None:
    """`intuit-signature` = base64(HMAC-SHA256(verifier token, raw body))."""
    _same(_header(headers, "intuit-signature"), base64.b64encode(_hmac(secret, body)).decode())


def xero(body: bytes, headers: Headers, query: Headers, secret: str, now: float, window_s: float) -> None:
    """`x-xero-signature` = base64(HMAC-SHA256(webhook key, raw body)); the intent-to-receive check is
    the same request shape with no events (401 when the signature is wrong, 200 with an empty body
    when right — `app.py` answers Xero with empty bodies always)."""
    _same(_header(headers, "x-xero-signature"), base64.b64encode(_hmac(secret, body)).decode())


Verifier = Callable[[bytes, Headers, Headers, str, float, float], None]
VERIFIERS: dict[str, Verifier] = {
    "github": github, "jira": jira, "zendesk": zendesk, "servicenow": servicenow, "bamboohr": bamboohr,
    "google": google, "graph": graph, "quickbooks": quickbooks, "xero": xero,
}
