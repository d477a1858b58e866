"""`mcp-hub` subcommands that run a hub: serve (one MCP server on stdio or HTTP), tools (list what
it exposes), call (one tool call)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from hub.config import HubConfig
from hub.terminal import first_line, inert


def profile_problem(config: HubConfig, profile: str, transport: str) -> str | None:
    """Why `serve --profile` cannot run: a profile the config lacks, or a transport other than stdio."""
    from hub.profiles import UnknownProfile, profile_settings

    if transport != "stdio":
        return f"--profile is for stdio; over HTTP every profile is served at /mcp/<profile> (here /mcp/{profile})"
    try:
        profile_settings(config, profile)
    except UnknownProfile as exc:
        return str(exc)
    return None


def placement_mode(config: HubConfig) -> Any:
    """`hub.cpu_placement`, or `$MCP_HUB_CPU_PLACEMENT` when set (no config file needed to turn it off)."""
    from typing import get_args

    from hub.config_models import ConfigError, ConfigProblem
    from hub.placement import Mode

    value = os.environ.get("MCP_HUB_CPU_PLACEMENT", "").strip()
    if not value:
        return config.hub.cpu_placement
    if value not in get_args(Mode):
        raise ConfigError([ConfigProblem(path="$MCP_HUB_CPU_PLACEMENT", message=f"{value[:40]!r} is not one of: auto, separate, off")],
                          source="the environment")
    return value


def stdio_scopes_env() -> list[str] | None:
    """`$MCP_HUB_SCOPES`, checked and rewritten space-separated, as `keys create --scopes` takes scopes
    (`hub.auth.scope_syntax`): spaces or commas. None when unset.

    Rewritten in place because the access policy reads the variable itself and splits it at spaces
    only: `"ticketing:read,hris:read"` granted nothing and the stdio hub served 0 tools, silently
    (outside review newuser19). Set but empty, or holding something that is no scope, is an error:
    an empty value used to fall back to `auth.stdio_scopes` (`*` by default), failing open."""
    from hub.auth.scope_syntax import parse_scopes
    from hub.config_models import ConfigError, ConfigProblem

    raw = os.environ.get("MCP_HUB_SCOPES")
    if raw is None:
        return None
    try:
        scopes = parse_scopes(raw)
    except ValueError as exc:
        hint = " (unset it to use hub.auth.stdio_scopes from the config)" if not raw.strip() else ""
        raise ConfigError([ConfigProblem(path="$MCP_HUB_SCOPES", message=f"{exc}{hint}")], source="the environment") from None
    os.environ["MCP_HUB_SCOPES"] = " ".join(scopes)
    return scopes


async def serve(config: HubConfig, transport: str, host: str, port: int, profile: str | None = None) -> int:
    """Serve until stdin closes (stdio), SIGINT or SIGTERM (`hub.signals`); `profile`: that view on stdio."""
    from hub.hub import Hub
    from hub.frontends.server import build_server
    from hub.signals import stop_on_sigterm
    from hub.frontends.stdio.stdio_pipes import serve_stdio  # the HTTP stack loads only for an HTTP front
    from hub import placement

    if transport == "stdio":
        config = config.single_client()
    placement.apply(placement.plan(placement_mode(config),
                                   sum(1 for server in config.enabled_servers() if server.transport == "stdio")))
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


async def tools(config: HubConfig, as_json: bool) -> int:
    from hub.hub import Hub

    async with Hub(config) as hub:
        routes = hub.catalog.routes()
        if as_json:
            print(json.dumps([{"name": r.exposed, "server": r.server, "original": r.original,
                               "read_only": r.read_only, "description": r.tool.description or ""} for r in routes], indent=2))
        else:
            print_table(routes)
        print_unavailable(hub.status(), every_state=True)
    return 0


def print_unavailable(statuses: dict[str, dict[str, Any]], every_state: bool = False) -> None:
    """On stderr, each server that is not ready (`every_state`; else only those with an error) and its
    last error: the server's own words, so shown inert (`hub.terminal`)."""
    for name, status in statuses.items():
        if status["state"] != "ready" and (every_state or status["last_error"]):
            print(f"server {inert(name)} unavailable: {inert(status['last_error'])}", file=sys.stderr)


def print_table(routes: list[Any]) -> None:
    """`mcp-hub tools`: names and descriptions come from the servers, so every cell is inert (`hub.terminal`)."""
    rows = [("NAME", "SERVER", "READ-ONLY", "DESCRIPTION")]
    for r in routes:
        rows.append((inert(r.exposed), inert(r.server), "yes" if r.read_only else "no", first_line(r.tool.description, 70)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}".rstrip())


async def call(config: HubConfig, name: str, raw_arguments: str) -> int:
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
        print(json.dumps(result.structured_content, indent=2))  # JSON: every control character escaped
    else:  # the server's text, inert but for its lines and tabs (`hub.terminal`)
        for block in result.content:
            print(inert(getattr(block, "text", None) or block.model_dump_json(by_alias=True, exclude_none=True), multiline=True))
    return 1 if result.is_error else 0
