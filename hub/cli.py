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
import logging  # noqa: E402
from typing import Any  # noqa: E402

import anyio  # noqa: E402

from hub.config import ConfigError, HubConfig, load_config, parse_config  # noqa: E402
from hub.domains import RegistryError, command_names, domain_names, load_command  # noqa: E402
from hub.logsetup import configure_logging  # noqa: E402
from hub.cli_admin import audit, check, keys, status  # noqa: E402
from hub.cli_run import call, profile_problem, serve, stdio_scopes_env, tools  # noqa: E402


def default_config() -> HubConfig:
    """Every registered domain (`hub.domains`), in-process, on its embedded defaults."""
    return parse_config({"mcpServers": {name: {"builtin": name} for name in domain_names()}})


def _log_config_warnings(config: HubConfig) -> None:
    """What `mcp-hub check` warns about, in the log of a hub that starts anyway."""
    log = logging.getLogger("hub.config")
    for warning in config.warnings:
        log.warning("config %s", warning)
    if not config.enabled_servers():
        log.warning("no enabled server in the config: the hub serves no tools (list servers under \"mcpServers\")")


def _log_scope_warnings(config: HubConfig, transport: str = "stdio") -> None:
    """Stdio scopes that grant nothing (`w:READ`, `w:reed`, a namespace no server has), said at start as
    `check` and `keys create` say them: they gave 0 tools silently (outside review recheck21h #7). Only where
    they apply: stdio, or HTTP with auth off."""
    from hub.auth.scope_warnings import stdio_scope_warnings

    if transport == "stdio" or not config.hub.auth.enabled:
        for warning in stdio_scope_warnings(config):
            logging.getLogger("hub.config").warning("%s", warning)


def resolve_config(path: str | None) -> HubConfig:
    path = path or os.environ.get("MCP_HUB_CONFIG")
    return load_config(path) if path else default_config()


def _add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="hub config file (JSON or TOML); default: $MCP_HUB_CONFIG or built-ins")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None)
    parser.add_argument("--data-dir", help="keys, audit log and the built-in domains' databases live here (default: $MCP_HUB_DATA_DIR or ~/.local/share/mcp-hub)")


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
    status.add_argument("--key", help="an API key with hub:admin, for the per-server details when auth is on "
                                      "(default $MCP_HUB_ADMIN_KEY)")

    keys = sub.add_parser("keys", help="manage API keys for the HTTP endpoint")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--name", required=True, help="principal (tenant/user) the key acts as")
    create.add_argument("--scopes", required=True, help='separated by spaces or commas, e.g. "ticketing:read hris:read"')
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
    query.add_argument("--request-id", help="the call with this request id (the whole id, as `audit tail` shows it)")
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
            return check(args.config)
        if args.command == "status":
            return status(args.url, args.json, args.key)
        if hasattr(args, "contributed"):
            if args.contributed is None:
                print(f"mcp-hub: {args.registry_error}", file=sys.stderr)
                return 2
            return int(args.contributed.run(args))
        config = resolve_config(args.config)
        if args.command in ("serve", "tools", "call"):
            stdio_scopes_env()  # checked, and made space-separated for the access policy
        if getattr(args, "data_dir", None):
            config.hub.data_dir = args.data_dir
        if config.hub.data_dir:
            # One data dir for everything this process runs: the in-process domains (memory, tickets,
            # HR...) find theirs through this variable, as keys and audit use the configured one (an
            # outside review saw two hubs with separate data dirs share one memory database).
            from hub.datadir import resolve_data_dir

            os.environ["MCP_HUB_DATA_DIR"] = str(resolve_data_dir(config.hub.data_dir))
        if args.command == "keys":
            return keys(config, args)
        if args.command == "audit":
            return audit(config, args)
    except ConfigError as exc:  # masked as a log line is: a config's values may hold a token (console26 #9)
        print(f"mcp-hub: {exc.masked()}", file=sys.stderr)
        return 2
    configure_logging(args.log_level or ("warning" if args.command in ("tools", "call") else config.hub.log_level))
    try:
        if args.command in ("serve", "tools", "call"):
            _log_scope_warnings(config, getattr(args, "transport", "stdio"))
        if args.command == "serve":
            _log_config_warnings(config)
            prestart.keep_only({s.name for s in config.enabled_servers() if s.transport == "stdio"})
            if args.profile is not None and (problem := profile_problem(config, args.profile, args.transport)):
                print(f"mcp-hub: {problem}", file=sys.stderr)
                return 2
            return anyio.run(serve, config, args.transport, args.host, args.port, args.profile,
                             backend_options=loop_options())
        if args.command == "tools" and args.tools_command == "search":
            from hub.search.cli import run_search

            return anyio.run(run_search, config, " ".join(args.query), args.limit, args.json, args.profile)
        if args.command == "tools":
            return anyio.run(tools, config, args.json)
        return anyio.run(call, config, args.name, args.arguments)
    except ConfigError as exc:  # masked as a log line is: a config's values may hold a token (console26 #9)
        print(f"mcp-hub: {exc.masked()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except (asyncio.CancelledError, Exception) as exc:
        from hub.signals import stop_status

        if (code := stop_status()) is not None:
            # A stop signal cancelled everything: what the cancel broke on its way out (the SDK's
            # streams closing under a request it was replaying, say) is part of the stop, not an error.
            logging.getLogger("hub").debug("stopped by a signal while %s", type(exc).__name__, exc_info=True)
            return code
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




if __name__ == "__main__":
    sys.exit(main())
