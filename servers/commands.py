"""The `mcp-hub` subcommands this distribution's domains contribute (entry-point group
`mcp_hub.commands`, read by `hub.domains`): `server`, `events`, `memory`.

Kept light: argparse set-up only; each command imports its domain code when it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator

from hub.domains import Command, domain_names
from hub.logsetup import configure_logging
from servers.memory.chunking import CHUNK_OVERLAP, CHUNK_SIZE

DATA_DIR_HELP = "(default: $MCP_HUB_DATA_DIR or ~/.local/share/mcp-hub)"


def _server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("domain", help=(", ".join(domain_names()) or "a registered domain") + "; all, with --seed-only")
    parser.add_argument("--backend", help="embedded (default) or a provider, e.g. jira; default $<DOMAIN>_BACKEND")
    parser.add_argument("--transport", "-t", choices=["stdio", "http", "sse"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", "-p", type=int, default=8766)
    parser.add_argument("--demo", action="store_true", help="seed the embedded store with demo data first")
    parser.add_argument("--seed-only", action="store_true",
                        help="seed the demo data (an empty store only) and exit, without serving: `server all --seed-only` "
                             "gives every built-in domain the hub mounts sample data in the same data dir")
    parser.add_argument("--data-dir", help="where the embedded store lives")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")


def _server(args: argparse.Namespace) -> int:
    from servers.kit.runner import run_domain

    if args.data_dir:
        os.environ["MCP_HUB_DATA_DIR"] = args.data_dir
    configure_logging(args.log_level)
    try:
        if args.seed_only:
            return _seed_only(args.domain, args.backend)
        if args.domain == "all":
            raise ValueError("`all` serves nothing: it seeds every domain's demo data with --seed-only (or run "
                             "`mcp-hub serve`, which mounts every domain)")
        run_domain(args.domain, args.backend, args.transport, args.host, args.port, args.demo)
    except (ValueError, KeyError, LookupError) as exc:
        print(f"mcp-hub: {exc}", file=sys.stderr)
        return 2
    return 0


def _seed_only(domain: str, backend: str | None) -> int:
    """Demo data into each named domain's embedded store (one that already holds data is left as it is). With `all`, a
    domain configured for a provider (`$<DOMAIN>_BACKEND`) is skipped and said so, before anything needs its
    credentials: the others are still seeded (outside review r35 #4: one Google calendar left HRIS empty). Each
    domain's check-and-seed holds a lock in the data dir, so runs at once seed it once (r35 #3)."""
    import anyio

    from hub.datadir import default_data_dir
    from servers.kit.runner import load_domain, seed_demo

    if domain == "all" and backend is not None and backend.lower() != "embedded":
        raise ValueError(f"--seed-only seeds embedded stores: `all --backend {backend}` would seed none; leave --backend out")
    plan = []
    for name in domain_names() if domain == "all" else [domain]:  # every backend checked before anything is seeded (r37 #2)
        module = load_domain(name)
        providers = getattr(module, "PROVIDERS", None)
        chosen = providers.chosen(backend) if providers is not None else "embedded"
        if providers is not None and chosen not in providers.names:  # a typo in $<DOMAIN>_BACKEND is no provider (r36 #3)
            raise ValueError(f"unknown {name} backend {chosen!r} (from {'--backend' if backend else name.upper() + '_BACKEND'}); "
                             f"choose one of {', '.join(providers.names)}")
        plan.append((name, module, chosen))
    for name, module, chosen in plan:
        if chosen != "embedded":
            if domain != "all":
                raise ValueError(f"--seed-only seeds the embedded store; {name} is set to its {chosen} backend, which has "
                                 "its own data (pass --backend embedded to seed the embedded one anyway)")
            print(f"{name}: uses its {chosen} backend, not seeded", file=sys.stderr)
            continue
        data_dir = default_data_dir()
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in its place, no permission (outside review r36 #5: a traceback)
            raise ValueError(f"cannot use the data dir {data_dir}: {exc.strerror or exc}; pass --data-dir a folder") from None
        with _held(data_dir / f"{name}.seed.lock"):
            anyio.run(seed_demo, module.__name__, module.make_backend(backend))
        print(f"{name}: demo data in place", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _held(path: os.PathLike[str]) -> Iterator[None]:
    """An exclusive lock on `path` for a `with` block (another process waits for it)."""
    import fcntl

    with open(path, "a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse `type`: a whole number in [low, high], else a usage error saying so (an event id past
    SQLite's 64-bit integers was an OverflowError blamed on PostgreSQL; `--limit -1` listed everything)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text[:40]} is outside {low}..{high}")
        return value

    return parse


def _events_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("events_command", choices=["list", "dead-letter", "replay"])
    parser.add_argument("event_id", nargs="?", type=_whole_number(1, 2**63 - 1),
                        help="the event to reprocess (replay; its id in `mcp-hub events list`)")
    parser.add_argument("--domain", help="ticketing, hris, calendar or accounting (default: all; replay needs it or --namespace)")
    parser.add_argument("--namespace", help="one hub namespace's (tenant's) events only, e.g. acme (default: every one)")
    parser.add_argument("--data-dir", help=f"where <domain>-events.sqlite lives {DATA_DIR_HELP}")
    parser.add_argument("--limit", type=_whole_number(1, 100_000), default=50, help="at most this many rows (default 50)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--store-url", help="the hub's shared PostgreSQL store (`hub.store.url`; default "
                        "$MCP_HUB_STORE_URL): read the event log there instead of the data dir's SQLite")


def _events(args: argparse.Namespace) -> int:
    from hub.datadir import resolve_data_dir
    from servers.kit.webhooks.cli import run
    from servers.kit.webhooks.log import STORE_URL_ENV

    if args.store_url:
        os.environ[STORE_URL_ENV] = args.store_url  # this process only: the log reads it (`shared_store_url`)

    if args.events_command == "replay" and args.event_id is None:
        print("mcp-hub: events replay needs the event id (see `mcp-hub events list`)", file=sys.stderr)
        return 2
    return run(args.events_command, resolve_data_dir(args.data_dir), args.domain, args.event_id, args.json, args.limit,
               args.namespace)


def _memory_args(parser: argparse.ArgumentParser) -> None:
    memory_sub = parser.add_subparsers(dest="memory_command", required=True)
    ingest = memory_sub.add_parser("ingest", help="index markdown, text, HTML and PDF files (folders recursively)")
    ingest.add_argument("paths", nargs="+")
    ingest.add_argument("--tag", action="append", default=[], help="tag every document (repeatable)")
    ingest.add_argument("--chunk-size", type=int, default=CHUNK_SIZE)
    ingest.add_argument("--chunk-overlap", type=int, default=CHUNK_OVERLAP)
    graph = memory_sub.add_parser("import-graph", help="load a @modelcontextprotocol/server-memory JSONL file")
    graph.add_argument("paths", nargs=1, metavar="FILE")
    for command in (ingest, graph):
        command.add_argument("--data-dir", help=f"where memory.sqlite lives {DATA_DIR_HELP}")
        command.add_argument("--log-level", default="warning")


def _memory(args: argparse.Namespace) -> int:
    from hub.datadir import resolve_data_dir
    from servers.memory.cli import run

    configure_logging(args.log_level)
    return run(args.memory_command, args.paths, resolve_data_dir(args.data_dir), getattr(args, "tag", []),
               getattr(args, "chunk_size", CHUNK_SIZE), getattr(args, "chunk_overlap", CHUNK_OVERLAP))


SERVER = Command("run one built-in domain server on its own", _server_args, _server)
EVENTS = Command("webhook events of the domains: list, dead-letter, replay ID", _events_args, _events)
MEMORY = Command("feed the memory domain: ingest documents, import a server-memory graph", _memory_args, _memory)
