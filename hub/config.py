"""Hub configuration: Claude Desktop's `mcpServers` block plus per-server hub settings.

A config file is JSON (or TOML). Its `mcpServers` block is exactly what Claude Desktop reads
(`command`/`args`/`env`/`cwd` for stdio, `url`/`headers`/`transport` for remote), so a user can
paste an existing Claude Desktop config. Hub settings for a server sit beside those keys;
hub-wide settings live under `hub`. `load_config` collects *every* problem (with the JSON path
of each) before failing, so `mcp-hub check` can print them all at once.
"""

from __future__ import annotations

import base64
import difflib
import json
import os
import re
import tomllib
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hub.config_models import (  # the models live there; importers keep taking them from here
    NAMESPACE_RE,
    RESERVED_NAMESPACES,
    ConfigError,
    ConfigProblem,
    HubConfig,
    HubSettings,
    ServerConfig,
    ToolFilter,
    TransportName,
)
from hub.profile_settings import namespace_problems, parse_profiles
from hub.config_keys import key_error_message
from hub.redact import remember_secrets

__all__ = ["NAMESPACE_RE", "ConfigError", "ConfigProblem", "HubConfig", "HubSettings", "ServerConfig", "ToolFilter",
           "TransportName", "default_namespace", "expand_env", "load_config", "parse_config"]

_ENV_REF = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
"""`${VAR}`, `${VAR:-default}`, and VS Code's `${env:VAR}`."""
_CLIENT_REF = re.compile(r"\$\{(input|config|command):([^}]*)\}")
"""VS Code variables the hub cannot resolve: `${input:id}` is a prompt, the others are the editor's."""
_EDITOR_VARS = ("workspaceFolder", "workspaceRoot", "userHome")
"""VS Code's own paths: unless the environment sets them, named as such when missing."""

SERVER_BLOCKS = ("mcpServers", "servers")
"""Where servers are listed: the hub's and Claude Desktop's block, or VS Code's (`mcp.json`)."""
TOP_LEVEL_KEYS = ("hub", *SERVER_BLOCKS, "profiles")
_FOREIGN_TOP_LEVEL = {
    "$schema": "a JSON schema reference",
    "inputs": "VS Code's prompts (the hub has none: a `${input:...}` reference is an error where it is used)",
    "globalShortcut": "a Claude Desktop setting",
    "preferences": "a Claude Desktop setting",
}
"""Top-level keys other clients' files hold; accepted and ignored (`inputs` with a warning)."""

_TRANSPORT_ALIASES: dict[str, TransportName] = {
    "stdio": "stdio",
    "streamable_http": "streamable_http",
    "streamable-http": "streamable_http",
    "streamableHttp": "streamable_http",
    "http": "streamable_http",
    "sse": "sse",
    "inprocess": "inprocess",
    "in-process": "inprocess",
}

# Keys other MCP clients put in their copies of this block; accepted and ignored.
_FOREIGN_SERVER_KEYS = {"disabled", "alwaysAllow", "autoApprove", "description", "type", "transportType"}
_UNSUPPORTED_SERVER_KEYS = {
    "envFile": "VS Code's `envFile` is not read by the hub: list the variables under `env` (values may be ${VAR})",
    "timeout": "Cline's `timeout` is not read by the hub: its equivalent is `timeout_s` (seconds), so rename the key",
}
_IGNORED_SERVER_KEYS = {
    "dev": "VS Code's `dev` block (watching and debugging a server you develop) is not used by the hub: ignored",
}
"""Other clients' per-server keys with no hub meaning that a pasted file keeps: ignored, with a warning."""


def default_namespace(key: str) -> str:
    """The namespace a server key gets when none is set: invalid characters become `_`."""
    cleaned = re.sub(r"[^A-Za-z0-9-]+", "_", key).strip("_")
    return re.sub(r"_{2,}", "_", cleaned) or "server"


def expand_env(value: str, env: Mapping[str, str], path: str, problems: list[ConfigProblem]) -> str:
    """Expand `${VAR}`, `${VAR:-default}` and `${env:VAR}`; a missing variable, or a VS Code variable the
    hub cannot resolve (`${input:id}`, `${workspaceFolder}`, ...), is a problem naming it."""
    for match in _CLIENT_REF.finditer(value):
        problems.append(ConfigProblem(path=path, message=_client_ref_message(match)))

    def replace(match: re.Match[str]) -> str:
        var, default = match.group(1), match.group(2)
        if var in env:
            return env[var]
        if default is not None:
            return default
        message = (f"${{{var}}} is a VS Code variable the hub does not know: write the path itself (or ${{HOME}})"
                   if var in _EDITOR_VARS else
                   f"the environment variable {var} is not set: export it (or give the reference a default: "
                   f"\"${{NAME:-value}}\")")
        problems.append(ConfigProblem(path=path, message=message))
        return ""

    return _ENV_REF.sub(replace, value)


def _client_ref_message(match: re.Match[str]) -> str:
    """What to write instead of VS Code's `${input:id}` (a prompt) or `${config:...}` / `${command:...}`."""
    var = re.sub(r"[^A-Za-z0-9]+", "_", match.group(2)).strip("_").upper() or "VALUE"
    if match.group(1) == "input":
        return (f"{match.group(0)} is a VS Code prompt, and the hub has no prompt: export the value in an environment "
                f"variable and write ${{{var}}} instead")
    return (f"{match.group(0)} is a VS Code variable the hub does not resolve: export the value in an environment "
            f"variable and write ${{{var}}} instead")


def _credentials(data: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(name, value) of every value of a server entry that may be a credential, for masking by value
    (`hub.redact.remember_secrets`, which keeps only those that look like one): `env` and `headers`
    values (and each part of a header value: `Bearer <token>`, a cookie's `name=value; …`), the URL's
    password, query values (as written and decoded) and path segments (`/hooks/<token>`), `args` (named
    by the flag before them, `--api-key <key>`, or in them, `--token=<key>`), and `caller_secret`."""
    for field in ("env", "headers"):
        block = data.get(field)
        for name, value in block.items() if isinstance(block, dict) else ():
            if isinstance(value, str):
                yield str(name), value
                if field == "headers":
                    yield from ((str(name), part) for part in re.split(r"[\s;,=]+", value) if part)
    if isinstance(url := data.get("url"), str):
        parts = urllib.parse.urlsplit(url)
        if parts.password:
            yield "password", urllib.parse.unquote(parts.password)
            # The Basic token the client sends for it, which a server or proxy may repeat (with and without `=`).
            token = base64.b64encode(f"{urllib.parse.unquote(parts.username or '')}:{urllib.parse.unquote(parts.password)}".encode()).decode()
            yield from (("password", spelled) for spelled in {token, token.rstrip("=")})
        if parts.username:  # a token as the user name (`https://<token>@host`)
            yield "user", urllib.parse.unquote(parts.username)
        for pair in parts.query.split("&"):
            name, _, raw = pair.partition("=")
            yield from ((name, value) for value in {raw, urllib.parse.unquote(raw), urllib.parse.unquote_plus(raw)})
        yield from (("path", segment) for segment in parts.path.split("/") if segment)
    if isinstance(args := data.get("args"), list):
        strings = [a for a in args if isinstance(a, str)]
        for before, arg in zip(["", *strings], strings):
            flag, equals, inner = arg.partition("=")
            if equals:  # `--token=<key>`, or `-e GITHUB_TOKEN=<key>` as docker takes it
                yield flag.lstrip("-"), inner
            yield (before.lstrip("-") if before.startswith("-") else "arg"), arg
    if isinstance(secret := data.get("caller_secret"), str):
        yield "caller_secret", secret


def _parse_server(
    key: str, raw: Any, env: Mapping[str, str], problems: list[ConfigProblem], block: str = "mcpServers"
) -> ServerConfig | None:
    base = f"$.{block}.{key}"
    if not isinstance(raw, dict):
        problems.append(ConfigProblem(path=base, message="must be an object"))
        return None
    data = dict(raw)
    unsupported = [ConfigProblem(path=f"{base}.{name}", message=_UNSUPPORTED_SERVER_KEYS[name])
                   for name in _UNSUPPORTED_SERVER_KEYS if name in data]
    if unsupported:
        problems.extend(unsupported)
        return None
    for ignored in _IGNORED_SERVER_KEYS.keys() & data.keys():
        data.pop(ignored)
        problems.append(ConfigProblem(path=f"{base}.{ignored}", severity="warning", message=_IGNORED_SERVER_KEYS[ignored]))
    for foreign in _FOREIGN_SERVER_KEYS & data.keys():
        value = data.pop(foreign)
        if foreign in ("type", "transportType") and "transport" not in data:
            data["transport"] = value
        if foreign == "disabled" and "enabled" not in data and isinstance(value, bool):
            data["enabled"] = not value

    declared = data.get("transport")
    if declared is not None:
        transport = _TRANSPORT_ALIASES.get(str(declared))
        if transport is None:
            problems.append(
                ConfigProblem(
                    path=f"{base}.transport",
                    message=f"unknown transport {declared!r}; use stdio, streamable_http, sse or inprocess",
                )
            )
            return None
    elif "command" in data:
        transport = "stdio"
    elif "url" in data:
        transport = "streamable_http"
    elif "module" in data or "builtin" in data:
        transport = "inprocess"
    else:
        problems.append(
            ConfigProblem(
                path=base,
                message="cannot tell how to reach this server: give `command` (stdio), `url` (HTTP/SSE) "
                "or `module`/`builtin` (in-process)",
            )
        )
        return None
    data["transport"] = transport
    required = {"stdio": "command", "streamable_http": "url", "sse": "url"}.get(transport)
    if required and not data.get(required):
        problems.append(ConfigProblem(path=f"{base}.{required}", message=f"required for transport {transport}"))
        return None
    if transport == "inprocess" and not (data.get("module") or data.get("builtin")):
        problems.append(ConfigProblem(path=base, message="in-process servers need `module` or `builtin`"))
        return None
    if transport != "inprocess" and data.get("data_dir") is not None:
        problems.append(ConfigProblem(path=f"{base}.data_dir", message="only in-process servers take `data_dir`; a child "
                                      "process keeps its data where its own settings say (e.g. `env`: MCP_HUB_DATA_DIR)"))
        return None

    # A disabled server may reference variables that are not set; report those as warnings.
    disabled = data.get("enabled") is False
    expand_problems: list[ConfigProblem] = [] if disabled else problems
    for field in ("env", "headers"):
        block = data.get(field)
        if isinstance(block, dict):
            data[field] = {
                k: expand_env(v, env, f"{base}.{field}.{k}", expand_problems) if isinstance(v, str) else v
                for k, v in block.items()
            }
    # `command` and `cwd` too (decided for outside review newuser19 #9): `"cwd": "${HOME}/proj"` is what a
    # user means, and left as written it became "<config dir>/${HOME}/proj does not exist" at start.
    for field in ("url", "caller_secret", "command", "cwd"):
        if isinstance(data.get(field), str):
            data[field] = expand_env(data[field], env, f"{base}.{field}", expand_problems)
    if transport == "stdio" and isinstance(data.get("command"), str) and not data["command"].strip() \
            and not any(p.path == f"{base}.command" for p in expand_problems):
        expand_problems.append(ConfigProblem(path=f"{base}.command", message="is empty once its ${...} variables are "
                                             "expanded: set the variable, or write the command itself"))
    if isinstance(data.get("args"), list):
        data["args"] = [
            expand_env(a, env, f"{base}.args[{i}]", expand_problems) if isinstance(a, str) else a
            for i, a in enumerate(data["args"])
        ]
    if disabled:
        problems.extend(p.model_copy(update={"severity": "warning"}) for p in expand_problems)
    remember_secrets(_credentials(data))

    namespace = data.get("namespace")
    if namespace is None:
        data["namespace"] = default_namespace(key)
    elif not isinstance(namespace, str) or (namespace != "" and not NAMESPACE_RE.match(namespace)):
        problems.append(
            ConfigProblem(
                path=f"{base}.namespace",
                message=f"{namespace!r} is not a valid namespace: use letters, digits, '-' and single '_' "
                "(no '__', which separates namespace and tool), or \"\" for no prefix",
            )
        )
        return None
    prefix = data["namespace"] or key  # the tools' scope prefix (`hub.auth.scopes.scope_prefix`)
    reserved = RESERVED_NAMESPACES.get(prefix)
    if reserved is not None:
        what = ("its namespace" if namespace else "its name (the namespace when none is set)" if namespace is None
                else "its name (its scope prefix when the namespace is \"\")")
        fix = (f"set another \"namespace\" for this server (for example \"{prefix}-tools\")" if namespace != ""
               else "rename the server")
        problems.append(ConfigProblem(
            path=f"{base}.namespace",
            message=f"{prefix!r} is reserved: with it as {what}, this server's tool scopes ({prefix}:read, "
                    f"{prefix}:write, {prefix}:admin, {prefix}:*) would be {reserved}; {fix}"))
        return None

    try:
        return ServerConfig.model_validate({"name": key, **data})
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"] if p != "name")
            problems.append(ConfigProblem(path=f"{base}.{loc}" if loc else base, message=key_error_message(ServerConfig, err)))
        return None


def parse_config(data: Any, env: Mapping[str, str] | None = None, source: str = "config") -> HubConfig:
    """Validate a decoded config document; raise `ConfigError` listing every problem found."""
    env = os.environ if env is None else env
    problems: list[ConfigProblem] = []
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(path="$", message="the config must be a JSON object")], source)

    hub = HubSettings()
    try:
        hub = HubSettings.model_validate(data.get("hub") or {})
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            problems.append(ConfigProblem(path=f"$.hub.{loc}", message=key_error_message(HubSettings, err)))

    _check_top_level(data, problems)
    block = _servers_block(data, problems)
    servers_raw = data.get(block, {})
    servers: list[ServerConfig] = []
    if not isinstance(servers_raw, dict):
        problems.append(ConfigProblem(path=f"$.{block}", message="must be an object keyed by server name"))
        servers_raw = {}
    for key, raw in servers_raw.items():
        server = _parse_server(key, raw, env, problems, block)
        if server is not None:
            servers.append(server)

    owners: dict[str, str] = {}
    for server in servers:
        if not server.enabled:
            continue
        other = owners.setdefault(server.namespace, server.name)
        if other != server.name:
            problems.append(
                ConfigProblem(
                    path=f"$.{block}.{server.name}.namespace",
                    message=f"namespace {server.namespace!r} is already used by server {other!r}; "
                    "two servers cannot share a namespace",
                )
            )

    _warn_shared_domain_data(servers, problems, block)
    profiles = parse_profiles(data.get("profiles", {}),
                              lambda path, message: problems.append(ConfigProblem(path=path, message=message)))
    for path, severity, message in namespace_problems((s.namespace for s in servers), profiles):
        problems.append(ConfigProblem(path=path, severity=severity, message=message))  # type: ignore[arg-type]
    if any(p.severity == "error" for p in problems):
        raise ConfigError(problems, source)
    return HubConfig(hub=hub, servers=servers, profiles=profiles, warnings=problems)


def _check_top_level(data: Mapping[str, Any], problems: list[ConfigProblem]) -> None:
    """An unknown top-level key is an error naming the closest known one (a misspelt `mcpservers` would
    otherwise leave the hub with no servers); other clients' own keys are ignored with a warning."""
    for key in data:
        if key in TOP_LEVEL_KEYS:
            continue
        name = str(key)
        if name in _FOREIGN_TOP_LEVEL:
            if name == "inputs":
                problems.append(ConfigProblem(path=f"$.{name}", severity="warning",
                                              message=f"ignored: {_FOREIGN_TOP_LEVEL[name]}"))
            continue
        lowered = {known.lower(): known for known in TOP_LEVEL_KEYS}
        close = difflib.get_close_matches(name.lower(), lowered, n=1, cutoff=0.6)
        hint = f"did you mean {lowered[close[0]]!r}? " if close else ""
        problems.append(ConfigProblem(path=f"$.{name}", message=f"unknown top-level key {name!r}: {hint}the known keys are "
                                      + ", ".join(TOP_LEVEL_KEYS) + " (`servers` is VS Code's name for `mcpServers`)"))


def _servers_block(data: Mapping[str, Any], problems: list[ConfigProblem]) -> str:
    """`mcpServers`, or VS Code's `servers` (the same shape: `type` is the hub's `transport`); not both."""
    if "servers" not in data:
        return "mcpServers"
    if "mcpServers" in data:
        problems.append(ConfigProblem(path="$.servers", message="both `mcpServers` and `servers` (VS Code's name for it) "
                                      "are given: list every server in one of them"))
        return "mcpServers"
    return "servers"


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> HubConfig:
    """Read and validate a JSON or TOML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(path="$", message=f"cannot read {path}: {exc.strerror}")], str(path))
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([ConfigProblem(path="$", message=f"not valid {path.suffix[1:] or 'JSON'}: {exc}")], str(path))
    config = parse_config(data, env, str(path))
    for server in config.servers:
        if server.transport == "stdio" and server.cwd and not Path(server.cwd).is_absolute():
            server.cwd = str((path.parent / server.cwd).resolve())
    return config


def _warn_shared_domain_data(servers: list[ServerConfig], problems: list[ConfigProblem], block: str) -> None:
    """Two enabled servers of one built-in domain with the same data dir share its databases
    (memories, tickets, ...): allowed (one store shown twice), but rarely meant, so said."""
    seen: dict[tuple[str, str | None], str] = {}
    for server in servers:
        if not server.enabled or server.builtin is None:
            continue
        other = seen.setdefault((server.builtin, server.data_dir), server.name)
        if other != server.name:
            problems.append(ConfigProblem(
                path=f"$.{block}.{server.name}.data_dir", severity="warning",
                message=f"server {server.name!r} and server {other!r} are both the built-in {server.builtin} domain with "
                        "the same data dir, so they share one store; give one its own `data_dir` to keep them apart"))
