"""`mcp-hub events list | dead-letter | replay ID [--domain D] [--namespace N]`: inspect the webhook
logs and queue a delivery for reprocessing. Every row names its namespace (the hub namespace whose
route took it; a domain server on its own: the domain's name); `--namespace` shows (or replays) one
tenant's only. Replay only marks the event due again (attempts reset); the
domain server's running processor (its own HTTP app, or the HTTP hub) picks it up within a moment (an idle processor looks at its log every `Policy.poll_s`, 5 s).
With `$MCP_HUB_STORE_URL` set (the hub's `hub.store.url`), the logs read are the shared PostgreSQL
ones (`log_pg`), else the SQLite files in the data dir.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio

from servers.kit.webhooks.log import ALL, STORE_URL_ENV, EventLog, EventRow, events_path, shared_store_url

DOMAINS_WITH_WEBHOOKS = ("ticketing", "hris", "calendar", "accounting")


def _line(row: EventRow) -> str:
    error = f"  {row.last_error}" if row.last_error else ""
    return (f"{row.seq:>6}  {row.state:<9} {row.provider:<10} attempts={row.attempts} dup={row.duplicates}"
            f"{' purged' if row.purged else ''}  {row.delivery_id[:48]}{error}")


def _log(data_dir: Path, domain: str, url: str | None, namespace: str | None) -> Any:
    """The domain's log in PostgreSQL (`url`), else its SQLite file if there is one (else None), over
    `namespace`'s rows (every namespace's when None)."""
    if url is not None:
        from servers.kit.webhooks.log_pg import PgEventLog

        return PgEventLog(url, domain, namespace=namespace or ALL)
    path = events_path(data_dir, domain)
    return EventLog(path, namespace or ALL) if path.exists() else None


async def _run(command: str, data_dir: Path, domains: list[str], event_id: int | None, as_json: bool, limit: int,
               namespace: str | None) -> int:
    url = shared_store_url()
    whose = f"namespace {namespace}" if namespace else None
    for domain in domains:
        log = _log(data_dir, domain, url, namespace)
        if log is None:
            if command == "replay" and len(domains) == 1:
                print(f"mcp-hub: {domain} has no webhook log at {events_path(data_dir, domain)}")
                return 1
            continue
        if command == "replay":
            assert event_id is not None
            try:
                row = await log.replay(event_id)
            except ValueError as exc:
                print(f"mcp-hub: {exc}")
                return 1
            if row is None:
                continue
            print(json.dumps({"domain": domain, **row.model_dump()}) if as_json
                  else f"{domain}/{row.namespace}: queued again\n{_line(row)}")
            return 0
        rows = await log.list("dead" if command == "dead-letter" else None, limit)
        for row in rows:
            print(json.dumps({"domain": domain, **row.model_dump()}) if as_json
                  else f"{domain:<11}{row.namespace:<16}{_line(row)}")
    if command == "replay":  # not found in any log
        option = f"--namespace {namespace}" if namespace else f"--domain {domains[0]}"
        print(f"mcp-hub: {whose or domains[0]} has no event {event_id} (see `mcp-hub events list {option}`)")
        return 1
    return 0


def run(command: str, data_dir: Path, domain: str | None, event_id: int | None, as_json: bool = False, limit: int = 50,
        namespace: str | None = None) -> int:
    if domain is not None and domain not in DOMAINS_WITH_WEBHOOKS:
        print(f"mcp-hub: {domain!r} is not a domain that takes webhooks ({', '.join(DOMAINS_WITH_WEBHOOKS)}); "
              f"for a hub namespace (tenant) use --namespace {domain}")
        return 2
    if command == "replay" and domain is None and namespace is None:
        print("mcp-hub: replay needs --domain or --namespace (event ids are per domain)")
        return 2
    domains = [domain] if domain else list(DOMAINS_WITH_WEBHOOKS)
    try:
        return anyio.run(_run, command, data_dir, domains, event_id, as_json, limit, namespace)
    except ValueError as exc:  # a bad MCP_HUB_STORE_URL
        print(f"mcp-hub: {exc}")
        return 2
    except Exception as exc:  # noqa: BLE001 — PostgreSQL unreachable, say so without a traceback
        print(f"mcp-hub: the event log could not be read ({type(exc).__name__}); is the store at "
              f"${STORE_URL_ENV} up?")
        return 1
