"""The merged catalog: every enabled server's tools, resources and prompts under namespaces.

The catalog owns the lookup tables from exposed names (and URIs) back to `(server, original)`.
It is rebuilt per server whenever that server's listing changes; a name that two servers would
both expose is a `CatalogConflict`, never a silent override.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import mcp_types as types

from hub.config import ServerConfig
from hub.settings import ToolOverride
from hub.downstream.listing import Listing
from hub.catalog.links import expose_meta
from hub.catalog.uri_templates import matches_template, own_uri
from hub.catalog.naming import SEPARATOR, UI_SCHEME, exposed_name, namespaced_uri, split_uri
from hub.catalog.schema_check import FastCheck, fast_check
from hub.search.examples import split_examples
from hub.wire import without_protocol_meta

if TYPE_CHECKING:
    from jsonschema.protocols import Validator


class CatalogConflict(Exception):
    """Two servers would expose the same name."""


@dataclass(frozen=True)
class ToolRoute:
    """Where an exposed tool goes, and the call settings resolved for it from config and hints."""

    exposed: str
    server: str
    original: str
    tool: types.Tool
    """The tool as exposed (renamed, the search examples taken out of its `_meta`; everything else
    exactly as the downstream sent it)."""
    read_only: bool = False
    idempotent: bool = False
    keyed: bool = False
    """The tool's input schema declares an `idempotency_key` property: a call carrying one is safe to send
    again (the server dedupes by it). A key the tool never declared proves nothing (outside review,
    faults round 7: a plain write was run three times once the caller added `idempotency_key`)."""
    timeout_s: float | None = None
    max_timeout_s: float | None = None
    examples: tuple[str, ...] = ()
    """Example requests for tool search (`hub.search.examples`): the config's, else the server's."""
    namespace: str = ""
    """The server's namespace: its resources' URIs in the tool's results are exposed under it (`hub.catalog.links`)."""


def tool_override(config: ServerConfig, name: str) -> ToolOverride:
    """Merge every `tool_overrides` entry whose glob matches `name`, later entries winning."""
    merged: dict[str, Any] = {}
    for pattern, override in config.tool_overrides.items():
        if fnmatch.fnmatchcase(name, pattern):
            merged.update(override.model_dump(exclude_none=True))
    return ToolOverride.model_validate(merged)


def _declares_key(schema: Any) -> bool:
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return isinstance(properties, dict) and "idempotency_key" in properties


def make_route(config: ServerConfig, tool: types.Tool, exposed: str) -> ToolRoute:
    """Resolve a tool's settings: config overrides win over the server's (untrusted) hints."""
    override = tool_override(config, tool.name)
    hints = tool.annotations
    read_only = override.read_only if override.read_only is not None else bool(hints and hints.read_only_hint)
    idempotent = override.idempotent if override.idempotent is not None else bool(hints and hints.idempotent_hint)
    meta, examples = split_examples(tool.meta)
    meta = expose_meta(meta, config.namespace)  # an MCP Apps tool's UI resource, readable through the hub
    if override.examples is not None:  # cleaned and capped by `ToolOverride` itself
        examples = tuple(override.examples)
    return ToolRoute(
        exposed=exposed,
        server=config.name,
        original=tool.name,
        tool=tool.model_copy(update={"name": exposed, "meta": meta}),
        read_only=read_only,
        idempotent=idempotent,
        keyed=_declares_key(tool.input_schema),
        timeout_s=override.timeout_s or config.timeout_s,
        max_timeout_s=override.max_timeout_s or config.max_timeout_s,
        examples=examples,
        namespace=config.namespace,
    )


@dataclass
class _ServerPart:
    tools: dict[str, ToolRoute] = field(default_factory=dict)
    prompts: dict[str, tuple[str, types.Prompt]] = field(default_factory=dict)
    resources: list[types.Resource] = field(default_factory=list)
    templates: list[types.ResourceTemplate] = field(default_factory=list)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per list method: the server's list result `_meta`, without the hop keys (`hub.wire`)."""


def tool_visible(config: ServerConfig, route: ToolRoute) -> bool:
    """Apply a server's `tools.allow` / `tools.deny` globs and `read_only` switch."""
    name = route.original
    if config.tools.allow and not any(fnmatch.fnmatchcase(name, p) for p in config.tools.allow):
        return False
    if any(fnmatch.fnmatchcase(name, p) for p in config.tools.deny):
        return False
    return route.read_only or not config.read_only


class ToolCatalog:
    """Exposed tools, prompts and resources, with reverse lookup tables."""

    def __init__(self, name_budget: int = 64) -> None:
        self.name_budget = name_budget
        self._parts: dict[str, _ServerPart] = {}
        self._configs: dict[str, ServerConfig] = {}
        self._tools: dict[str, ToolRoute] = {}
        self._by_original: dict[str, list[ToolRoute]] = {}
        self._offered_by: dict[str, set[str]] = {}
        """A server's own tool name → every server that listed it while the hub runs, filtered out by the
        config or not (never forgotten: a server down now, or one whose tool of that name the operator
        withheld, must not leave the name to another server's tool)."""
        self._prompts: dict[str, tuple[str, str, types.Prompt]] = {}
        self._validators: dict[str, Validator] = {}
        self._fast_checks: dict[str, FastCheck | None] = {}
        self.version = 0
        """Bumped on every change; list cursors carry it so a stale cursor is detected."""

    # -- building --------------------------------------------------------------------------

    def set_server(self, config: ServerConfig, listing: Listing) -> None:
        """Replace one server's part of the catalog; raise `CatalogConflict` and change nothing on a clash."""
        ns = config.namespace
        part = _ServerPart()
        for tool in listing.tools:
            if SEPARATOR not in tool.name:  # filtered out or not: a name its own server has (`hub.own_names`)
                self._offered_by.setdefault(tool.name, set()).add(config.name)
            name = exposed_name(ns, tool.name, self.name_budget)
            route = make_route(config, tool, name)
            if not tool_visible(config, route):  # task-only tools stay: `hub.relay.tasks` decides who sees them
                continue
            if name in part.tools:
                raise CatalogConflict(
                    f"server {config.name!r} lists two tools that both map to {name!r}; deny one with tools.deny"
                )
            part.tools[name] = route
        for prompt in listing.prompts:
            name = exposed_name(ns, prompt.name, self.name_budget)
            part.prompts[name] = (prompt.name, prompt.model_copy(update={"name": name}))
        part.resources = [r.model_copy(update={"uri": namespaced_uri(ns, r.uri)}) for r in listing.resources]
        part.templates = [
            t.model_copy(update={"uri_template": namespaced_uri(ns, t.uri_template)})
            for t in listing.resource_templates
        ]
        part.meta = {kind: kept for kind, meta in listing.meta.items() if (kept := without_protocol_meta(meta))}

        for other_name, other in self._parts.items():
            if other_name == config.name:
                continue
            for kind, mine, theirs in (("tool", part.tools, other.tools), ("prompt", part.prompts, other.prompts)):
                clash = sorted(mine.keys() & theirs.keys())
                if clash:
                    raise CatalogConflict(
                        f"servers {other_name!r} and {config.name!r} both expose {kind} {clash[0]!r}"
                        f"{f' (and {len(clash) - 1} more)' if len(clash) > 1 else ''}; give one of them "
                        "another `namespace` or filter the tool out with tools.deny"
                    )
        if self._parts.get(config.name) == part:
            return  # nothing changed: keep the version, announce nothing
        self._parts[config.name] = part
        self._configs[config.name] = config
        self._reindex()

    def remove_server(self, server: str) -> None:
        if self._parts.pop(server, None) is not None:
            self._reindex()

    def _reindex(self) -> None:
        self._tools = {}
        self._prompts = {}
        for server, part in self._parts.items():
            self._tools.update(part.tools)
            self._prompts.update({name: (server, original, p) for name, (original, p) in part.prompts.items()})
        self._tools = dict(sorted(self._tools.items()))
        self._by_original = {}
        for route in self._tools.values():
            if SEPARATOR not in route.original and route.original not in self._tools:
                self._by_original.setdefault(route.original, []).append(route)
        self._prompts = dict(sorted(self._prompts.items()))
        self._validators = {}
        self._fast_checks = {}
        self.version += 1

    # -- reading ---------------------------------------------------------------------------

    def tools(self) -> list[types.Tool]:
        """All exposed tools, sorted by exposed name (a stable, deterministic order)."""
        return [route.tool for route in self._tools.values()]

    def routes(self) -> list[ToolRoute]:
        return list(self._tools.values())

    def resolve_tool(self, exposed: str) -> ToolRoute | None:
        """The route of an exposed tool name (a server's own name for it: `hub.own_names`)."""
        return self._tools.get(exposed)

    def routes_named(self, name: str) -> list[ToolRoute]:
        """The exposed tools whose server calls them `name` (a name without `__` that no tool is exposed
        under): `hub.own_names` picks the caller's one."""
        return self._by_original.get(name, [])

    def offered_by(self, name: str) -> set[str]:
        """Every server that listed a tool named `name` while the hub runs (down ones, and tools the
        config withholds, too)."""
        return self._offered_by.get(name, set())

    def serves(self, server: str) -> bool:
        """Whether `server`'s listing is in the catalog now (it is up, or listed from memory)."""
        return server in self._parts

    def prompts(self) -> list[types.Prompt]:
        return [p for _, _, p in self._prompts.values()]

    def resolve_prompt(self, exposed: str) -> tuple[str, str] | None:
        """`(server, original name)` for an exposed prompt name."""
        found = self._prompts.get(exposed)
        return (found[0], found[1]) if found else None

    def resources(self) -> list[types.Resource]:
        return [r for name in sorted(self._parts) for r in self._parts[name].resources]

    def resource_templates(self) -> list[types.ResourceTemplate]:
        return [t for name in sorted(self._parts) for t in self._parts[name].templates]

    def list_meta(self, kind: str, visible: Callable[[str], bool]) -> dict[str, Any] | None:
        """The `_meta` of a merged list result (`kind`: "tools", "resources", "resource_templates",
        "prompts"): the servers' own list `_meta` merged in server-name order, only from servers
        `visible(server)` allows; on a key two servers both set, the first in name order wins."""
        merged: dict[str, Any] = {}
        for server in sorted(self._parts):
            meta = self._parts[server].meta.get(kind)
            if meta and visible(server):
                merged.update({key: value for key, value in meta.items() if key not in merged})
        return merged or None

    def resolve_uri(self, uri: str) -> tuple[str, str] | None:
        """`(server, original uri)` for an exposed resource URI."""
        split = split_uri(uri)
        candidates = [split] if split else [("", uri)]
        if split and uri.startswith(UI_SCHEME):
            candidates.append(("", uri))  # or an unnamespaced server's own `ui://a__b/…`
        for namespace, original in candidates:
            for server, config in self._configs.items():
                if config.namespace == namespace and server in self._parts:
                    return server, original
        return None

    def servers_owning(self, uri: str, servers: set[str]) -> set[str]:
        """Of `servers`, those that list `uri` as their own resource, else those with a URI template it
        matches (`hub.own_names`)."""
        parts = {server: self._parts[server] for server in servers if server in self._parts}
        listed = {server for server, part in parts.items() if any(own_uri(str(r.uri)) == uri for r in part.resources)}
        return listed or {server for server, part in parts.items()
                          if any(matches_template(uri, own_uri(t.uri_template)) for t in part.templates)}

    def validator(self, route: ToolRoute) -> Validator:
        """A compiled validator for the tool's `inputSchema` (cached until the catalog changes)."""
        found = self._validators.get(route.exposed)
        if found is None:
            from jsonschema import Draft202012Validator, validators  # on first use: not on the start-up path
            from referencing import Registry

            schema = _input_schema(route)
            cls = validators.validator_for(schema, default=Draft202012Validator)
            # `format` is an annotation (JSON Schema 2020-12): the server judges it (interop26 #4). An empty
            # registry retrieves nothing: jsonschema's default fetched a `$ref` URL on the event loop, any
            # address, on every call (recheck26 N1); such a schema is left to its server (`hub.policies.validation`).
            found = cls(schema, registry=Registry())
            self._validators[route.exposed] = found
        return found

    def fast_check(self, route: ToolRoute) -> FastCheck | None:
        """The compiled accept-check for the tool's `inputSchema` (`hub.catalog.schema_check`), if it has one."""
        if route.exposed not in self._fast_checks:
            self._fast_checks[route.exposed] = fast_check(_input_schema(route))
        return self._fast_checks[route.exposed]


def _input_schema(route: ToolRoute) -> dict[str, Any]:
    """The tool's `inputSchema`; a tool without one takes any object."""
    return route.tool.input_schema or {"type": "object"}
