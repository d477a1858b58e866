"""Domains and CLI commands that installed packages register with the hub (entry points).

The hub never imports a domain's code by name. A package declares, in its `pyproject.toml`:

- `[project.entry-points."mcp_hub.domains"]` `<name> = "pkg.module:factory"` — a zero-argument
  callable returning an MCP server (or the server object itself); `{"builtin": "<name>"}` in a hub
  config mounts it in-process, and the default config mounts every registered domain;
- `[project.entry-points."mcp_hub.commands"]` `<name> = "pkg.module:COMMAND"` — a `Command`
  that adds `mcp-hub <name> ...` (e.g. `server`, `events`, `memory` from this distribution).

Entry points are read once per process (`importlib.metadata`, one scan of the installed
distributions, ~20 ms) and loaded only when used. An unknown name or an entry point that fails to
import is a `RegistryError` naming what is known, what failed and what to do.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

DOMAINS_GROUP = "mcp_hub.domains"
COMMANDS_GROUP = "mcp_hub.commands"


class RegistryError(LookupError):
    """A domain or command name nobody registered, or a registered one that cannot be loaded."""


@dataclass(frozen=True)
class Command:
    """An `mcp-hub` subcommand contributed by a package: `configure` adds its arguments to the
    subcommand's parser, `run` executes it and returns the exit status."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


@functools.cache
def _installed() -> Any:
    return entry_points()  # one scan of every installed distribution, shared by both groups


def _registered(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in _installed().select(group=group)}


def domain_names() -> list[str]:
    """The registered domains' names, sorted (no domain code is imported)."""
    return sorted(_registered(DOMAINS_GROUP))


def command_names() -> list[str]:
    """The contributed subcommands' names, sorted."""
    return sorted(_registered(COMMANDS_GROUP))


def domain_target(name: str) -> str:
    """`"module:attribute"` of the registered domain `name`."""
    return _entry(DOMAINS_GROUP, name, "built-in domain").value


def load_domain(name: str) -> Any:
    """The factory (or server object) the domain `name` registered."""
    return _load(DOMAINS_GROUP, name, "built-in domain")


def load_command(name: str) -> Command:
    """The `Command` registered as `name`."""
    command = _load(COMMANDS_GROUP, name, "command")
    if not isinstance(command, Command):
        raise RegistryError(f"command {name!r} ({_entry(COMMANDS_GROUP, name, 'command').value}) is a "
                            f"{type(command).__name__}, not a hub.domains.Command")
    return command


def _entry(group: str, name: str, kind: str) -> EntryPoint:
    found = _registered(group).get(name)
    if found is None:
        known = ", ".join(sorted(_registered(group))) or "none"
        raise RegistryError(f"unknown {kind} {name!r} (known: {known}); a package registers one under the "
                            f"{group!r} entry-point group (reinstall it if it should be there: pip install -e .)")
    return found


def _load(group: str, name: str, kind: str) -> Any:
    entry = _entry(group, name, kind)
    try:
        return entry.load()
    except (ImportError, AttributeError) as exc:
        raise RegistryError(f"{kind} {name!r} is registered as {entry.value!r} but cannot be loaded "
                            f"({type(exc).__name__}: {exc}); check that its package is installed and up to date") from exc
