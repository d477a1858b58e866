"""`mcp-hub events list | dead-letter | replay ID [--domain D]`: inspect a domain's webhook log and
queue a delivery for reprocessing. Replay only marks the event due again (attempts reset); the
domain server's running processor (its own HTTP app, or the HTTP hub) picks it up within a moment.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio

from servers.kit.webhooks.log import EventLog, EventRow, events_path

DOMAINS_WITH_WEBHOOKS = ("ticketing", "hris", "calendar", "accounting")


def _line(row: EventRow) -> str:
    error = f"  {row.last_error}" if row.last_error else ""
    return (f"{row.seq:>6}  {row.state:<9} {row.provider:<10} attempts={row.attempts} dup={row.duplicates}"
            f"{' purged' if row.purged else ''}  {row.delivery_id[:48]}{error}")


async def _run(command: str, data_dir: Path, domains: list[str], event_id: int | None, as_json: bool, limit: int) -> int:
    status = 0
    for domain in domains:
        path = events_path(data_dir, domain)
        if not path.exists():
            if command == "replay" and len(domains) == 1:
                print(f"mcp-hub: {domain} has no webhook log at {path}")
                return 1
            continue
        log = EventLog(path)
        if command == "replay":
            assert event_id is not None
            try:
                row = await log.replay(event_id)
            except ValueError as exc:
                print(f"mcp-hub: {exc}")
                return 1
            if row is None:
                print(f"mcp-hub: {domain} has no event {event_id} (see `mcp-hub events list --domain {domain}`)")
                status = 1
                continue
            print(json.dumps({"domain": domain, **row.model_dump()}) if as_json else f"{domain}: queued again\n{_line(row)}")
            return 0
        rows = await log.list("dead" if command == "dead-letter" else None, limit)
        for row in rows:
            print(json.dumps({"domain": domain, **row.model_dump()}) if as_json else f"{domain:<11}{_line(row)}")
    return status


def run(command: str, data_dir: Path, domain: str | None, event_id: int | None, as_json: bool = False, limit: int = 50) -> int:
    if domain is not None and domain not in DOMAINS_WITH_WEBHOOKS:
        print(f"mcp-hub: {domain!r} takes no webhooks; choose one of {', '.join(DOMAINS_WITH_WEBHOOKS)}")
        return 2
    if command == "replay" and domain is None:
        print("mcp-hub: replay needs --domain (event ids are per domain)")
        return 2
    return anyio.run(_run, command, data_dir, [domain] if domain else list(DOMAINS_WITH_WEBHOOKS), event_id, as_json, limit)
