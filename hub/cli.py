"""`mcp-hub` command line: serve, check, status, tools, call, keys, audit, and the subcommands
installed packages contribute (`server`, `events`, `memory` from the domains; `hub.domains`).

The config comes from `--config`, else `$MCP_HUB_CONFIG`, else the built-in default (every
built-in domain server mounted in-process on its embedded backend).
"""

from __future__ import annotations

import os
import sys

from hub import prestart

# Before anything heavy: the config's stdio children start importing while the hub does (`hub.prestart`).
if __name__ == "__main__" or os.path.basename(sys.argv[0]) == "mcp-hub":
    prestart.prestart_serve(sys.argv[1:])

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

import anyio  # noqa: E402

from hub.config import ConfigError, HubConfig, load_config, parse_config  # noqa: E402
from hub.domains import RegistryError, command_names, domain_names, load_command  # noqa: E402
from hub.logsetup import configure_logging  # noqa: E402

if TYPE_CHECKING:
    from hub.auth.keys import KeyStore


def default_config() -> HubConfig:
    """Every registered domain (`hub.domains`), in-process, on its embedded defaults."""
    return parse_config({"mcpServers": {name: {"builtin": name} for name in domain_names()}})


def resolve_config(path: str | None) -> HubConfig:
    path = path or os.environ.get("MCP_HUB_CONFIG")
    return load_config(path) if path else default_config()


def _add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="hub config file (JSON or TOML); default: $MCP_HUB_CONFIG or built-ins")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None)
    parser.add_argument("--data-dir", help="keys and audit log live here (default: $MCP_HUB_DATA_DIR or ~/.local/share/mcp-hub)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcp-hub", description="An MCP server hub for AI agents.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the hub as one MCP server")
    _add_config_arg(serve)
    serve.add_argument("--transport", "-t", choices=["stdio", "http", "sse"], default="stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", "-p", type=int, default=8765, help="HTTP port (0 picks a free one)")
    serve.add_argument("--profile", help="stdio: serve this profile's view (over HTTP each is at /mcp/<profile>)")

    check = sub.add_parser("check", help="validate a config file and print every problem")
    check.add_argument("config")

    tools = sub.add_parser("tools", help="list the tools the hub exposes")
    _add_config_arg(tools)
    tools.add_argument("--json", action="store_true", help="print JSON instead of a table")
    tools_sub = tools.add_subparsers(dest="tools_command")
    search = tools_sub.add_parser("search", help="rank the tools for a task, best first (as search_tools does)")
    search.add_argument("query", nargs="+", help="the task in plain words")
    search.add_argument("--limit", "-k", type=int, default=10, help="how many tools (default 10)")
    search.add_argument("--profile", help="rank within this profile's view")
    search.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="a JSON array of {name, score, ...}")
    search.add_argument("--config", "-c", default=argparse.SUPPRESS, help="hub config file (default: built-ins)")
    search.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=argparse.SUPPRESS)
    search.add_argument("--data-dir", default=argparse.SUPPRESS, help="where keys and the audit log live")

    status = sub.add_parser("status", help="health of a running HTTP hub, per server")
    status.add_argument("--url", default="http://127.0.0.1:8765", help="the hub's base URL (default %(default)s)")
    status.add_argument("--json", action="store_true", help="print the raw /healthz JSON")

    keys = sub.add_parser("keys", help="manage API keys for the HTTP endpoint")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--name", required=True, help="principal (tenant/user) the key acts as")
    create.add_argument("--scopes", required=True, help='space-separated, e.g. "ticketing:read hris:read"')
    create.add_argument("--expires", help="lifetime such as 30d, 12h (default: never)")
    keys_sub.add_parser("list", help="list keys (never the secrets)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    for sub_parser in keys_sub.choices.values():
        _add_config_arg(sub_parser)

    audit = sub.add_parser("audit", help="read the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    tail = audit_sub.add_parser("tail", help="the most recent calls")
    tail.add_argument("-n", type=int, default=20)
    query = audit_sub.add_parser("query", help="calls matching filters")
    query.add_argument("--principal")
    query.add_argument("--tool")
    query.add_argument("--outcome", choices=["ok", "tool_error", "error", "denied", "cancelled"])
    query.add_argument("--since", help="a duration back from now (1h, 2d) or an ISO time")
    query.add_argument("--limit", type=int, default=200)
    for sub_parser in audit_sub.choices.values():
        _add_config_arg(sub_parser)
        sub_parser.add_argument("--json", action="store_true", help="one JSON object per line")

    call = sub.add_parser("call", help="call one exposed tool and print its result")
    _add_config_arg(call)
    call.add_argument("name")
    call.add_argument("arguments", nargs="?", default="{}", help="JSON object of arguments")
    _add_contributed_commands(sub)
    return parser


def _add_contributed_commands(sub: Any) -> None:
    """`mcp-hub <name>` for each registered command; one that cannot be loaded fails only when run."""
    for name in command_names():
        if name in sub.choices:  # the hub's own commands come first
            continue
        try:
            command = load_command(name)
        except RegistryError as exc:
            broken = sub.add_parser(name, help=f"(unavailable: {exc})", add_help=False)
            broken.add_argument("rest", nargs=argparse.REMAINDER)
            broken.set_defaults(contributed=None, registry_error=str(exc))
            continue
        parser = sub.add_parser(name, help=command.help)
        command.configure(parser)
        parser.set_defaults(contributed=command)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check":
            return _check(args.config)
        if args.command == "status":
            return _status(args.url, args.json)
        if hasattr(args, "contributed"):
            if args.contributed is None:
                print(f"mcp-hub: {args.registry_error}", file=sys.stderr)
                return 2
            return int(args.contributed.run(args))
        config = resolve_config(args.config)
        if getattr(args, "data_dir", None):
            config.hub.data_dir = args.data_dir
        if args.command == "keys":
            return _keys(config, args)
        if args.command == "audit":
            return _audit(config, args)
    except ConfigError as exc:
        print(f"mcp-hub: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_level or ("warning" if args.command in ("tools", "call") else config.hub.log_level))
    try:
        if args.command == "serve":
            prestart.keep_only({s.name for s in config.enabled_servers() if s.transport == "stdio"})
            if args.profile is not None and (problem := _profile_problem(config, args.profile, args.transport)):
                print(f"mcp-hub: {problem}", file=sys.stderr)
                return 2
            return anyio.run(_serve, config, args.transport, args.host, args.port, args.profile,
                             backend_options=loop_options())
        if args.command == "tools" and args.tools_command == "search":
            from hub.search.cli import run_search

            return anyio.run(run_search, config, " ".join(args.query), args.limit, args.json, args.profile)
        if args.command == "tools":
            return anyio.run(_tools, config, args.json)
        return anyio.run(_call, config, args.name, args.arguments)
    except ConfigError as exc:
        print(f"mcp-hub: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except (asyncio.CancelledError, Exception) as exc:
        from hub.signals import stop_status

        if (status := stop_status()) is not None:
            # A stop signal cancelled everything: what the cancel broke on its way out (the SDK's
            # streams closing under a request it was replaying, say) is part of the stop, not an error.
            logging.getLogger("hub").debug("stopped by a signal while %s", type(exc).__name__, exc_info=True)
            return status
        if isinstance(exc, OSError):
            print(f"mcp-hub: {exc}", file=sys.stderr)
            return 1
        raise


def loop_options() -> dict[str, Any]:
    """anyio's asyncio options for `serve`: uvloop where it is installed (a dependency except on
    Windows) unless `$MCP_HUB_LOOP` is `asyncio`. Its C event loop and pipe and socket transports
    take about a tenth off the hub's own CPU per relayed call; the hub's code is the same on either."""
    from importlib.util import find_spec

    wanted = os.environ.get("MCP_HUB_LOOP", "uvloop")
    return {"use_uvloop": True} if wanted != "asyncio" and find_spec("uvloop") is not None else {}


def _check(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        errors = sum(p.severity == "error" for p in exc.problems)
        print(f"{path}: {errors} error(s)")
        return 1
    for warning in config.warnings:
        print(warning)
    enabled = config.enabled_servers()
    print(f"{path}: OK — {len(enabled)} enabled server(s): " + ", ".join(f"{s.name} ({s.transport})" for s in enabled))
    return 0


def _keys(config: HubConfig, args: argparse.Namespace) -> int:
    from hub.auth.keys import KeyStore
    from hub.datadir import resolve_data_dir
    from hub.store import StoreUnavailable, open_shared_store

    shared = open_shared_store(config.hub.store)  # PostgreSQL when hub.store.url is set (docs/deploy.md)
    try:
        return _keys_command(KeyStore(resolve_data_dir(config.hub.data_dir), shared), args)
    except StoreUnavailable as exc:
        print(f"mcp-hub: {exc}; nothing was changed. Check hub.store.url and that PostgreSQL is running.", file=sys.stderr)
        return 2
    finally:
        if shared is not None:
            shared.close()


def _keys_command(store: KeyStore, args: argparse.Namespace) -> int:
    import time

    from hub.auth.keys import parse_duration

    if args.keys_command == "create":
        try:
            expires = parse_duration(args.expires) if args.expires else None
        except ValueError as exc:
            print(f"mcp-hub: {exc}", file=sys.stderr)
            return 2
        key, record = store.create(args.name, args.scopes.split(), expires)
        print(key)
        print(f"id {record.key_id} for {record.principal}; scopes: {' '.join(record.scopes)}; "
              f"expires: {time.strftime('%Y-%m-%d %H:%M', time.gmtime(record.expires_at)) + ' UTC' if record.expires_at else 'never'}."
              " Store it now: it is not shown again.", file=sys.stderr)
        return 0
    if args.keys_command == "list":
        now = time.time()
        for r in store.list():
            state = "revoked" if r.revoked_at else ("expired" if r.expires_at and r.expires_at <= now else "active")
            expires = time.strftime("%Y-%m-%d", time.gmtime(r.expires_at)) if r.expires_at else "never"
            print(f"{r.key_id}  {r.principal:<20}  {state:<8}  expires {expires:<10}  {' '.join(r.scopes)}")
        return 0
    if store.revoke(args.key_id):
        print(f"revoked {args.key_id}")
        return 0
    print(f"mcp-hub: no active key with id {args.key_id!r}; see `mcp-hub keys list`", file=sys.stderr)
    return 1


def _audit(config: HubConfig, args: argparse.Namespace) -> int:
    from hub.datadir import resolve_data_dir
    from hub.store import StoreUnavailable, open_shared_store

    data_dir = resolve_data_dir(config.hub.data_dir)
    shared = open_shared_store(config.hub.store)  # one audit table for every replica (docs/deploy.md)
    try:
        return _audit_command(data_dir, shared, args)
    except StoreUnavailable as exc:
        print(f"mcp-hub: {exc}. Check hub.store.url and that PostgreSQL is running.", file=sys.stderr)
        return 2
    finally:
        if shared is not None:
            shared.close()


def _audit_command(data_dir: Path, shared: Any, args: argparse.Namespace) -> int:
    import time
    from datetime import datetime

    from hub.audit.log import query
    from hub.auth.keys import parse_duration

    if args.audit_command == "tail":
        rows = query(data_dir, limit=args.n, table=shared)
    else:
        since = None
        if args.since:
            try:
                since = time.time() - parse_duration(args.since)
            except ValueError:
                try:
                    since = datetime.fromisoformat(args.since).timestamp()
                except ValueError:
                    print(f"mcp-hub: --since {args.since!r} is neither a duration (1h, 2d) nor an ISO time", file=sys.stderr)
                    return 2
        rows = query(data_dir, args.principal, args.tool, since, args.outcome, args.limit, table=shared)
    for row in rows:
        if args.json:
            print(json.dumps(row))
        else:
            stamp = datetime.fromtimestamp(row["ts"]).isoformat(timespec="seconds")
            ms = f"{row['latency_ms']:.1f}ms" if row["latency_ms"] is not None else "-"
            print(f"{stamp}  {row['request_id'][:12]}  {row['principal']:<12}  {row['tool']:<32}  "
                  f"{row['outcome']:<10}  {row['error_code'] or '':<16}  {ms:>9}  {row['args']}")
    return 0


def _status(url: str, as_json: bool) -> int:
    import httpx

    base = url.rstrip("/").removesuffix("/mcp").removesuffix("/sse")
    try:
        response = httpx.get(f"{base}/healthz", timeout=5)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        print(f"mcp-hub: no hub answered at {base}/healthz ({exc}); is `mcp-hub serve -t http` running?", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(body, indent=2))
    else:
        print(f"hub: {body['status']} ({body['tools']} tools)")
        rows = [("SERVER", "HEALTH", "BREAKER", "IN-FLIGHT", "RESTARTS", "P50 MS", "P95 MS", "LAST ERROR")]
        for name, s in body["servers"].items():
            rows.append((name, s["health"], s["breaker"], str(s["in_flight"]), str(s["restarts"]),
                         str(s["p50_ms"] if s["p50_ms"] is not None else "-"),
                         str(s["p95_ms"] if s["p95_ms"] is not None else "-"), (s["last_error"] or "")[:80]))
        widths = [max(len(r[i]) for r in rows) for i in range(7)]
        for r in rows:
            print("  ".join(f"{r[i]:<{widths[i]}}" for i in range(7)) + "  " + r[7])
    return 0 if response.status_code == 200 else 1


def _profile_problem(config: HubConfig, profile: str, transport: str) -> str | None:
    """Why `serve --profile` cannot run: a profile the config lacks, or a transport other than stdio."""
    from hub.profiles import UnknownProfile, profile_settings

    if transport != "stdio":
        return f"--profile is for stdio; over HTTP every profile is served at /mcp/<profile> (here /mcp/{profile})"
    try:
        profile_settings(config, profile)
    except UnknownProfile as exc:
        return str(exc)
    return None


async def _serve(config: HubConfig, transport: str, host: str, port: int, profile: str | None = None) -> int:
    """Serve until stdin closes (stdio), SIGINT or SIGTERM (`hub.signals`); `profile`: that view on stdio."""
    from hub.hub import Hub
    from hub.frontends.server import build_server
    from hub.signals import stop_on_sigterm
    from hub.frontends.stdio.stdio_pipes import serve_stdio  # the HTTP stack loads only for an HTTP front

    with stop_on_sigterm():
        async with Hub(config, wait_at_start=False) as hub:  # initialize is answered at once (`hub.catalog.first_listing`)
            if profile is not None:  # the view renames and filters tools/call: no stdio fast path for it
                from hub.profiles import profile_view

                await serve_stdio(build_server(hub, profile_view(hub, profile)), None)
                return 0
            server = build_server(hub)
            if transport == "stdio":
                await serve_stdio(server, hub if config.hub.fast_calls else None)
            else:
                from hub.frontends.http.transports import serve_http

                await serve_http(hub, server, transport, host, port)  # type: ignore[arg-type]
    return 0


async def _tools(config: HubConfig, as_json: bool) -> int:
    from hub.hub import Hub

    async with Hub(config) as hub:
        routes = hub.catalog.routes()
        if as_json:
            print(json.dumps([{"name": r.exposed, "server": r.server, "original": r.original,
                               "read_only": r.read_only, "description": r.tool.description or ""} for r in routes], indent=2))
        else:
            _print_table(routes)
        for name, status in hub.status().items():
            if status["state"] != "ready":
                print(f"server {name} unavailable: {status['last_error']}", file=sys.stderr)
    return 0


def _print_table(routes: list[Any]) -> None:
    rows = [("NAME", "SERVER", "READ-ONLY", "DESCRIPTION")]
    for r in routes:
        first_line = (r.tool.description or "").strip().splitlines()[0:1]
        rows.append((r.exposed, r.server, "yes" if r.read_only else "no", (first_line[0] if first_line else "")[:70]))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}".rstrip())


async def _call(config: HubConfig, name: str, raw_arguments: str) -> int:
    from hub.hub import Hub, UnknownTool

    try:
        arguments = json.loads(raw_arguments)
    except json.JSONDecodeError as exc:
        print(f"mcp-hub: arguments are not valid JSON ({exc.msg} at column {exc.colno}); "
              "pass an object such as '{\"text\": \"hi\"}'", file=sys.stderr)
        return 2
    if not isinstance(arguments, dict):
        print("mcp-hub: arguments must be a JSON object", file=sys.stderr)
        return 2
    async with Hub(config) as hub:
        try:
            result = await hub.route_call(name, arguments)
        except UnknownTool:
            print(f"mcp-hub: unknown tool {name!r}; run `mcp-hub tools` to see the exposed names", file=sys.stderr)
            return 2
    if result.structured_content is not None:
        print(json.dumps(result.structured_content, indent=2))
    else:
        for block in result.content:
            print(getattr(block, "text", None) or block.model_dump_json(by_alias=True, exclude_none=True))
    return 1 if result.is_error else 0


if __name__ == "__main__":
    sys.exit(main())
