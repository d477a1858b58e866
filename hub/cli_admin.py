"""`mcp-hub` subcommands that look after a hub rather than run one: check (a config), keys (API
keys), audit (the audit log), status (a running hub's /healthz)."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.auth.scope_warnings import scope_warnings, stdio_scope_warnings  # one judgement for keys and stdio
from hub.config import ConfigError, ConfigProblem, HubConfig, load_config
from hub.terminal import inert

if TYPE_CHECKING:
    from hub.auth.keys import KeyStore


def check(path: str) -> int:
    """Validate the config at `path` and the environment `serve` reads beside it; print every problem."""
    from hub.cli_run import placement_mode, stdio_scopes_env

    try:
        config = load_config(path)
        placement_mode(config)  # `$MCP_HUB_CPU_PLACEMENT`, as `serve` would refuse it
        stdio_scopes_env()  # `$MCP_HUB_SCOPES`, likewise
        startup = startup_problems(config, _servers_block_of(path))
        if startup:
            raise ConfigError([*config.warnings, *startup], path)
    except ConfigError as exc:
        for problem in exc.problems:  # masked as a log line is: `check` output lands in CI logs (console26 #9)
            print(problem.masked())
        errors = sum(p.severity == "error" for p in exc.problems)
        print(f"{path}: {errors} error(s)")
        return 1
    for warning in config.warnings:
        print(warning.masked())
    for warning in stdio_scope_warnings(config):  # what serve says at start (outside review recheck21h #7); scopes, no secret
        print(f"warning: {warning}")
    enabled = config.enabled_servers()
    if not enabled:
        print("warning: $.mcpServers: no enabled server: the hub would serve no tools; list servers under "
              "\"mcpServers\" (or VS Code's \"servers\"), or set \"enabled\": true on one")
    print(f"{path}: OK — {len(enabled)} enabled server(s): " + ", ".join(f"{s.name} ({s.transport})" for s in enabled))
    return 0


def startup_problems(config: HubConfig, block: str = "mcpServers") -> list[ConfigProblem]:
    """What would keep each enabled server from ever starting, found without starting it: an unknown
    `builtin`, a `module` the hub's Python cannot find (`find_spec`: nothing is imported but its parent
    packages), a `command` not on the child's PATH, a `cwd` that does not exist.

    These are the checks the starters make (`hub.downstream`), made here too because a config `check`
    called OK then served as a down server (outside review newuser19 #1); each names the fix."""
    from importlib.util import find_spec

    from hub.domains import RegistryError, domain_names, domain_target

    problems: list[ConfigProblem] = []
    for server in config.enabled_servers():
        base = f"$.{block}.{server.name}"
        if server.builtin is not None:
            try:
                domain_target(server.builtin)
            except RegistryError as exc:
                close = difflib.get_close_matches(server.builtin, domain_names(), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                problems.append(ConfigProblem(path=f"{base}.builtin", message=f"{hint}{exc}"))
        elif server.module is not None:
            module_name, _, attribute = server.module.partition(":")
            try:
                found = bool(module_name) and find_spec(module_name) is not None
            except (ImportError, ValueError):
                found = False
            if not attribute:
                problems.append(ConfigProblem(path=f"{base}.module", message=f"{server.module!r} must look like "
                                              "'package.module:attribute' (the MCP server object or a factory for it)"))
            elif not found:
                problems.append(ConfigProblem(path=f"{base}.module", message=f"module {module_name!r} cannot be found by "
                                              f"the hub's Python ({sys.executable}): install its package into the hub's "
                                              "environment (pip install ...), or correct the name"))
        if server.transport == "stdio" and server.command:
            problems.extend(_child_problems(server.command, server.env, server.cwd, base))
    return problems


def _child_problems(command: str, env: dict[str, str], cwd: str | None, base: str) -> list[ConfigProblem]:
    """A stdio server's `cwd` and `command`, looked up as `hub.downstream.stdio` will (the child's PATH)."""
    from mcp.client.stdio import get_default_environment

    from hub.prestart import ChildStartError, resolve_command

    if cwd is not None and not os.path.isdir(cwd):
        return [ConfigProblem(path=f"{base}.cwd", message=f"working directory {cwd!r} does not exist: create it, or "
                              "set `cwd` to an existing folder (a relative one is taken from the config file's folder)")]
    try:
        resolve_command(command, get_default_environment() | env, cwd)
    except ChildStartError as exc:
        fix = ("install it, or write its absolute path, or put its folder on PATH (in this server's `env` too)"
               if os.sep not in command else "correct the path, or make the file executable (chmod +x)")
        return [ConfigProblem(path=f"{base}.command", message=f"{exc}: {fix}")]
    return []


def _servers_block_of(path: str) -> str:
    """`servers` for a VS Code file, else `mcpServers`: where the JSON paths of server problems point."""
    import tomllib

    try:
        text = Path(path).read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.endswith(".toml") else json.loads(text)
    except (OSError, ValueError):
        return "mcpServers"
    return "servers" if isinstance(data, dict) and "servers" in data and "mcpServers" not in data else "mcpServers"


def keys(config: HubConfig, args: argparse.Namespace) -> int:
    from hub.auth.keys import KeyStore
    from hub.datadir import resolve_data_dir

    return _on_shared_store(config, lambda shared: keys_command(KeyStore(resolve_data_dir(config.hub.data_dir), shared), args,
                                                                config), "; nothing was changed")


def _on_shared_store(config: HubConfig, work: Callable[[Any], int], unavailable: str = "") -> int:
    """`work(shared)` with the config's shared store (PostgreSQL when hub.store.url is set, else
    None; docs/deploy.md), closed after; exit status 2, saying what to check, if it is unreachable."""
    from hub.store import StoreUnavailable, open_shared_store

    shared = open_shared_store(config.hub.store)
    try:
        return work(shared)
    except StoreUnavailable as exc:
        advice = "" if "refused the login" in str(exc) else ". Check hub.store.url and that PostgreSQL is running"
        print(f"mcp-hub: {exc}{unavailable}{advice}.", file=sys.stderr)
        return 2
    finally:
        if shared is not None:
            shared.close()


def keys_command(store: KeyStore, args: argparse.Namespace, config: HubConfig | None = None) -> int:
    import time

    from hub.auth.keys import parse_lifetime

    if args.keys_command == "create":
        try:
            expires = parse_lifetime(args.expires) if args.expires is not None else None
            key, record = store.create(args.name, [args.scopes], expires)
        except ValueError as exc:
            print(f"mcp-hub: {exc}", file=sys.stderr)
            return 2
        for warning in scope_warnings(config, list(record.scopes)) if config is not None else ():
            print(f"mcp-hub: warning: {inert(warning)}", file=sys.stderr)
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
            print(f"{r.key_id}  {inert(r.principal):<20}  {state:<8}  expires {expires:<10}  {inert(' '.join(r.scopes))}")
        return 0
    if store.revoke(args.key_id):
        print(f"revoked {args.key_id}")
        return 0
    print(f"mcp-hub: no active key with id {args.key_id!r}; see `mcp-hub keys list`", file=sys.stderr)
    return 1


def audit(config: HubConfig, args: argparse.Namespace) -> int:
    from hub.datadir import resolve_data_dir

    data_dir = resolve_data_dir(config.hub.data_dir)
    return _on_shared_store(config, lambda shared: audit_command(data_dir, shared, args))  # one table for every replica


def audit_command(data_dir: Path, shared: Any, args: argparse.Namespace) -> int:
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
        rows = query(data_dir, args.principal, args.tool, since, args.outcome, args.limit, table=shared,
                     request_id=args.request_id)
    try:
        for row in rows:
            if args.json:
                print(json.dumps(row))
            else:
                stamp = datetime.fromtimestamp(row["ts"]).isoformat(timespec="seconds")
                ms = f"{row['latency_ms']:.1f}ms" if row["latency_ms"] is not None else "-"
                # The whole request id, as the client got it in `_meta` and the log has it: its first 12
                # characters are the hub run's prefix, the same for every call of that run (newuser19 #7).
                # A caller chose the tool name and arguments (and an identity provider the principal): inert.
                print(f"{stamp}  {inert(row['request_id'])}  {inert(row['principal']):<12}  {inert(row['tool']):<32}  "
                      f"{row['outcome']:<10}  {inert(row['error_code'] or ''):<16}  {ms:>9}  {inert(row['args'])}")
        sys.stdout.flush()
    except BrokenPipeError:  # `audit query | head`: the reader has enough; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def status(url: str, as_json: bool, key: str | None = None) -> int:
    import httpx

    base = url.rstrip("/").removesuffix("/mcp").removesuffix("/sse")
    key = key or os.environ.get("MCP_HUB_ADMIN_KEY")
    try:
        response = httpx.get(f"{base}/healthz", timeout=5, headers={"Authorization": f"Bearer {key}"} if key else {})
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        print(f"mcp-hub: no hub answered at {inert(base)}/healthz ({inert(exc)}); is `mcp-hub serve -t http` running?",
              file=sys.stderr)
        return 2
    if key and "servers" not in body:  # auth on, and the key was not taken as a hub:admin key
        print(f"mcp-hub: the hub is {inert(body.get('status', '?'))}, but it did not accept the key given (--key or "
              "MCP_HUB_ADMIN_KEY) for per-server details: the key is unknown, revoked or expired, or lacks the "
              "hub:admin scope. Create one with `mcp-hub keys create --name <you> --scopes hub:admin`.", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(body, indent=2))
    elif "servers" not in body:  # auth on, and no key with hub:admin: only the overall state is shown
        print(f"hub: {inert(body.get('status', '?'))} (per-server details need a key with the hub:admin scope: pass --key "
              "or set MCP_HUB_ADMIN_KEY)")
    else:  # whatever answered at --url, and the servers' own errors: every cell inert (`hub.terminal`)
        print(f"hub: {inert(body['status'])} ({inert(body['tools'])} tools)")
        rows = [("SERVER", "HEALTH", "BREAKER", "IN-FLIGHT", "QUEUED", "CALLERS PAUSED", "RESTARTS", "P50 MS", "P95 MS",
                 "LAST ERROR")]
        for name, s in body["servers"].items():
            rows.append(tuple(inert(cell) for cell in (
                name, s["health"], s["breaker"], s["in_flight"], s.get("queued", 0), s.get("callers_paused", 0),
                s["restarts"], s["p50_ms"] if s["p50_ms"] is not None else "-",
                s["p95_ms"] if s["p95_ms"] is not None else "-", (s["last_error"] or "")[:80])))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for r in rows:
            print("  ".join(f"{r[i]:<{widths[i]}}" for i in range(len(widths))) + "  " + r[-1])
    return 0 if response.status_code == 200 else 1
