"""The config's `profiles` block: one `ProfileSettings` per named view (`hub.profiles` serves them).

Kept apart from `hub.config` (which imports it) so that `hub.profiles` can import both without a cycle.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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
    """At most this many tools, the first in name order; the rest are outside the profile."""
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
