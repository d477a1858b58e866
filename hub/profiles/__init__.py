"""Profiles: named views over the hub's catalog, each with its own tool list, names and `tools_mode`.

A profile (config `profiles.<name>`) keeps the tools whose namespace it lists (all when it lists
none), that match an `include` glob (all when none) and no `exclude` glob, read-only ones only
with `read_only`, and at most `max_tools` of them per caller (the first in exposed-name order of the
tools this caller may use and is listed: scopes and `tasks.listable` first, then the cap, so tools it
cannot see never use up its cap nor show through as its own tools coming and going; outside review
search19 #2, recheck21h #4). It is served
at `/mcp/<name>` over HTTP and by `mcp-hub serve --profile <name>` on stdio. Decisions:
- **Names.** A name longer than the profile's `name_budget` is cut and suffixed with 8 hex of
  `sha256(exposed name)`; a clash (with any other name of the view) takes the next suffix of
  `sha256(exposed name \\0 n)`. Names are worked out over the whole view in name order, never per
  caller, so they are stable across callers and restarts while the catalog is the same. Calls by
  the short name go to the tool through the reverse table; the hub-wide name is not accepted on
  the profile (it is not in its list).
- **Outside the profile** a tool does not exist: `tools/call` (plain or task-augmented), `call_tool`
  and search answer as for a name that does not exist (`not_found`), charged to the caller's rate
  limit and audited `denied` as on `/mcp` (`Hub.refuse_call`); the name is never looked up hub-wide.
- Profiles shape tools only; resources and prompts are served as on `/mcp` (scopes still apply).
- A key or token is pinned to profiles by holding `profile:<name>` scopes (`pinned_profiles`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Literal

import mcp_types as types

from hub.catalog.catalog import ToolRoute
from hub.config import HubConfig
from hub.profile_settings import ProfileSettings
from hub.relay.task_model import task_only

if TYPE_CHECKING:
    from hub.auth.principal import Principal
    from hub.hub import Hub

PIN_SCOPE_PREFIX = "profile:"
"""A scope `profile:<name>` pins the key or token holding it to that profile (several may be held)."""
_HASH_LEN = 8


class UnknownProfile(LookupError):
    """A profile name the config does not define; the message lists the defined ones."""

    def __init__(self, name: str, defined: list[str]) -> None:
        listed = ", ".join(sorted(defined)) if defined else "none (add a \"profiles\" block to the config)"
        super().__init__(f"unknown profile {name!r}; defined profiles: {listed}")
        self.name, self.defined = name, sorted(defined)


def pinned_profiles(scopes: tuple[str, ...] | list[str]) -> frozenset[str]:
    """The profiles a caller's scopes pin it to (empty: not pinned, any URL)."""
    return frozenset(s[len(PIN_SCOPE_PREFIX):] for s in scopes if s.startswith(PIN_SCOPE_PREFIX))


def short_name(exposed: str, budget: int, salt: int = 0) -> str:
    """`exposed` within `budget`: unchanged when it fits, else cut and suffixed with a stable hash."""
    if len(exposed) <= budget and not salt:
        return exposed
    seed = exposed if not salt else f"{exposed}\0{salt}"
    digest = hashlib.sha256(seed.encode()).hexdigest()[:_HASH_LEN]
    head = exposed[: budget - _HASH_LEN - 1].rstrip("_-")
    return f"{head}_{digest}"


_CallerKey = tuple[tuple[str, ...], str | None, tuple[bool, ...]]


@dataclass(frozen=True)
class _Table:
    version: int
    short: dict[str, str]
    """exposed → the profile's name."""
    exposed: dict[str, str]
    """the profile's name → exposed."""
    task_servers: tuple[str, ...] = ()
    """Servers with a task-only tool in the view: whether each takes tasks now is part of a caller's key."""
    callers: dict[_CallerKey, tuple[frozenset[str], list[types.Tool]]] = field(default_factory=dict)
    """Per caller's scopes, protocol version and `task_servers`' state: its tools in the profile (capped)
    and its `tools/list` of them, for this catalog version (outside review search19 #7: an `auto` profile
    rebuilt it on every call)."""


_CALLERS_KEPT = 256
"""Scope sets whose view of a profile is remembered per catalog version (the oldest leave first)."""


class ProfileView:
    """One profile over one hub's catalog: which tools, under which names, in which mode."""

    def __init__(self, hub: Hub, name: str, settings: ProfileSettings) -> None:
        self.hub, self.name, self.settings = hub, name, settings
        self.name_budget = settings.name_budget or hub.config.hub.name_budget
        self.tools_mode: Literal["all", "search", "auto"] = settings.tools_mode or hub.config.hub.tools_mode
        self._table = _Table(-1, {}, {})

    def admits(self, route: ToolRoute) -> bool:
        """Whether the profile's filters (not `max_tools`) keep this tool."""
        s = self.settings
        namespace = self._namespace(route)
        if s.namespaces and namespace not in s.namespaces:
            return False
        if s.include and not any(fnmatchcase(route.exposed, g) for g in s.include):
            return False
        if any(fnmatchcase(route.exposed, g) for g in s.exclude):
            return False
        return route.read_only or not s.read_only

    def shows_server(self, server: str) -> bool:
        """Whether a client of this profile sees `server` at all: one of its tools is kept, or (a server with no
        tools) its namespace is one the profile names. What a server sends, or asks of a client, crosses only there."""
        routes = [route for route in self.hub.catalog.routes() if route.server == server]
        if routes:
            return any(self.admits(route) for route in routes)
        downstream = self.hub.downstreams.get(server)
        namespace = downstream.config.namespace if downstream is not None else server
        return not self.settings.namespaces or namespace in self.settings.namespaces

    def _namespace(self, route: ToolRoute) -> str:
        downstream = self.hub.downstreams.get(route.server)
        return downstream.config.namespace if downstream is not None else route.server

    def table(self) -> _Table:
        """Names for the current catalog (rebuilt when its version moves), over the whole view: `max_tools`
        is applied per caller (`_caller`), never to the names."""
        catalog = self.hub.catalog
        if self._table.version == catalog.version:
            return self._table
        version = catalog.version
        kept = sorted((r.exposed for r in catalog.routes() if self.admits(r)))
        short: dict[str, str] = {}
        taken = {e for e in kept if len(e) <= self.name_budget}
        for exposed in kept:
            name, salt = short_name(exposed, self.name_budget), 0
            while name != exposed and name in taken:
                salt += 1
                name = short_name(exposed, self.name_budget, salt)
            taken.add(name)
            short[exposed] = name
        task_servers = tuple(sorted({r.server for r in catalog.routes() if r.exposed in short and task_only(r.tool)}))
        self._table = _Table(version, short, {v: k for k, v in short.items()}, task_servers)
        return self._table

    def includes(self, exposed: str, principal: Principal | None = None, protocol_version: str | None = None) -> bool:
        """Whether the hub-wide name `exposed` is in this profile (for `principal`: within its `max_tools`, as
        counted for a client of `protocol_version`, see `_caller`)."""
        if principal is None or self.settings.max_tools is None:
            return exposed in self.table().short
        return exposed in self._caller(principal, protocol_version)[0]

    def resolve(self, name: str, principal: Principal | None = None, protocol_version: str | None = None) -> str | None:
        """The hub-wide name of the profile's tool `name`, or None outside the profile (for `principal`:
        also None past its `max_tools`, as counted for a client of `protocol_version`)."""
        exposed = self.table().exposed.get(name)
        if exposed is None or principal is None or self.settings.max_tools is None:
            return exposed
        return exposed if exposed in self._caller(principal, protocol_version)[0] else None

    def rename(self, exposed: str) -> str:
        """The profile's name for a hub-wide name it includes."""
        return self.table().short.get(exposed, exposed)

    def tools(self, principal: Principal, protocol_version: str | None = None) -> list[types.Tool]:
        """What `tools/list` answers in `all` mode: the caller's listable tools in the profile, renamed."""
        return list(self._caller(principal, protocol_version)[1])

    def _caller(self, principal: Principal, protocol_version: str | None = None) -> tuple[frozenset[str], list[types.Tool]]:
        """The caller's tools in the profile: the ones its scopes let it use and its `tools/list` lists
        (`hub.request_relay.tasks.listable` for `protocol_version`: no task-only tool of a server taking no
        tasks, none at all for a 2026-07-28 client), then the first `max_tools` of those in exposed-name order
        (hub-wide names), and its renamed, sorted list of them. A tool the caller is never listed never uses
        up its cap (outside review recheck21h #4: a withheld task-only tool took a slot, so the caller was
        listed one tool fewer and the next one answered not_found). `None` (a caller that does not say)
        counts as a 2025-11-25 client, as stdio is. Remembered per scope set, protocol version and whether
        each server with a task-only tool takes tasks now, until the catalog moves."""
        table = self.table()
        tasks = self.hub.request_relay.tasks
        key = (tuple(principal.scopes), protocol_version,
               tuple(self._task_ready(server) for server in table.task_servers))
        known = table.callers.get(key)
        if known is not None:
            return known
        visible = sorted((t for t in self.hub.visible_tools(principal) if t.name in table.short), key=lambda t: t.name)
        visible = tasks.offer.listable(visible, protocol_version)  # hub-wide names here: no resolve needed
        if self.settings.max_tools is not None:
            visible = visible[: self.settings.max_tools]
        out = []
        for tool in visible:
            name = table.short[tool.name]
            out.append(tool if name == tool.name else tool.model_copy(update={"name": name}))
        known = (frozenset(t.name for t in visible), sorted(out, key=lambda t: t.name))
        if len(table.callers) >= _CALLERS_KEPT:  # searches read this from a worker thread: never raise
            table.callers.pop(next(iter(table.callers), None), None)
        table.callers[key] = known
        return known

    def _task_ready(self, server: str) -> bool:
        """Whether `server`'s task-only tools are listed to a 2025-11-25 client now (`tasks.listable`'s rule)."""
        downstream = self.hub.downstreams.get(server)
        return (downstream is not None and downstream.state == "starting"
                or self.hub.request_relay.tasks.offer.server_takes_tasks(server))


def profile_view(hub: Hub, name: str) -> ProfileView:
    """The view of profile `name`; `UnknownProfile` (listing the defined ones) when the config has none such."""
    return ProfileView(hub, name, profile_settings(hub.config, name))


def profile_settings(config: HubConfig, name: str) -> ProfileSettings:
    """The settings of profile `name`, or `UnknownProfile`."""
    settings = config.profiles.get(name)
    if settings is None:
        raise UnknownProfile(name, list(config.profiles))
    return settings
