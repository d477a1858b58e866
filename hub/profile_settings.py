"""The config's `profiles` block: one `ProfileSettings` per named view (`hub.profiles` serves them).

Kept apart from `hub.config` (which imports it) so that `hub.profiles` can import both without a cycle.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PROFILE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A profile's name is a URL path segment (`/mcp/<name>`)."""


class ProfileSettings(BaseModel):
    """One profile: a named view over the catalog (`hub.profiles`), served at `/mcp/<name>` and by `--profile`."""

    model_config = ConfigDict(extra="forbid")
    namespaces: list[str] = Field(default_factory=list)
    """Only these namespaces' tools; empty: every namespace."""
    include: list[str] = Field(default_factory=list)
    """Globs over exposed names (`ticketing__*`); empty: every tool of `namespaces`."""
    exclude: list[str] = Field(default_factory=list)
    """Globs over exposed names left out (exclude wins over include)."""
    read_only: bool = False
    """Only tools annotated read-only (`readOnlyHint`, or the server's `read_only`)."""
    max_tools: int | None = Field(default=None, ge=1, le=10_000)
    """At most this many tools per caller: the first in name order of the tools its scopes let it use
    (the rest are outside the profile for it; `hub.profiles`)."""
    name_budget: int | None = Field(default=None, ge=16, le=128)
    """Longest exposed name in this profile (e.g. 60 for Cursor); default `hub.name_budget`."""
    tools_mode: Literal["all", "search", "auto"] | None = None
    """This profile's `tools/list` mode; default `hub.tools_mode`."""


def parse_profiles(raw: Any, problem: Callable[[str, str], None]) -> dict[str, ProfileSettings]:
    """The valid profiles of a `profiles` block; each problem goes to `problem(json_path, message)`."""
    if not isinstance(raw, dict):
        problem("$.profiles", "must be an object keyed by profile name")
        return {}
    out: dict[str, ProfileSettings] = {}
    for name, body in raw.items():
        if not PROFILE_NAME.fullmatch(name):
            problem(f"$.profiles.{name[:64]}", "a profile name is 1-64 letters, digits, '-' or '_' "
                    "(it is the URL path /mcp/<name>)")
            continue
        try:
            out[name] = ProfileSettings.model_validate(body if body is not None else {})
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                problem(f"$.profiles.{name}" + (f".{loc}" if loc else ""), err["msg"])
    return out


def namespace_problems(namespaces: Iterable[str], profiles: Mapping[str, ProfileSettings]) -> list[tuple[str, str, str]]:
    """(JSON path, severity, message) for each profile filter that names no configured server (outside review
    search19 #8: `"namespaces": ["ticketng"]` passed `mcp-hub check` and served no tools, silently).
    `namespaces`: every configured server's namespace, enabled or not (a disabled server's is no typo).
    Decided: a `namespaces` entry matching none is an error (the profile could never serve its tools); an
    `include` glob whose literal `<namespace>__` prefix matches none is a warning (globs are looser), and
    is not judged when a server has no prefix (`"namespace": ""`: its tool names may hold `__`)."""
    known = sorted(set(namespaces))
    out: list[tuple[str, str, str]] = []

    def hint(name: str) -> str:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        return f"did you mean {close[0]!r}? " if close else ""

    listed = ", ".join(repr(n) for n in known if n) or "none"
    for profile, settings in profiles.items():
        for index, namespace in enumerate(settings.namespaces):
            if namespace not in known:
                out.append((f"$.profiles.{profile}.namespaces[{index}]", "error",
                            f"no server has namespace {namespace!r}, so this profile would serve none of its tools: "
                            f"{hint(namespace)}the configured namespaces are {listed}"))
        if "" in known:
            continue
        for index, glob in enumerate(settings.include):
            prefix, separator, _ = glob.partition("__")
            if separator and not any(c in prefix for c in "*?[") and prefix not in known:
                out.append((f"$.profiles.{profile}.include[{index}]", "warning",
                            f"{glob!r} can match no tool: no server has namespace {prefix!r}; {hint(prefix)}"
                            f"the configured namespaces are {listed}"))
    return out
