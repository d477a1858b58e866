"""Which backend a domain runs on: each domain declares its providers in one `Providers` table
(name -> where the backend class lives, the environment variables it needs, the embedded default),
and `Providers.make` picks one from `--backend`, else `$<DOMAIN>_BACKEND`, else the default.

One error for every domain when the choice cannot be served: an unknown name lists the known
ones; missing credentials name exactly the variables still unset (never any value). A backend
class is built with `Class.from_env(data_dir)` when it reads its own settings from the
environment (the provider connectors), else `Class(data_dir)` (the embedded stores).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Provider:
    """One backend: `target` is "module:Class"; each entry of `needs` is an environment variable
    that must be set, or alternatives: `"A|B+C"` is satisfied by A, or by B and C together."""

    target: str
    needs: tuple[str, ...] = ()

    def missing(self, environ: Mapping[str, str]) -> str | None:
        """The requirements still unmet, in words (names only, never values), or None."""
        unmet = [need for need in self.needs
                 if not any(all(environ.get(name) for name in option.split("+")) for option in need.split("|"))]
        if not unmet:
            return None
        plain = [need for need in unmet if "|" not in need and "+" not in need]
        choices = ["one of " + " or ".join(option.replace("+", " + ") for option in need.split("|"))
                   for need in unmet if need not in plain]
        return ", and ".join(part for part in (", ".join(plain), *choices) if part)

    def build(self, data_dir: Path) -> Any:
        module_name, _, attribute = self.target.partition(":")
        backend_class = getattr(importlib.import_module(module_name), attribute)
        from_env = getattr(backend_class, "from_env", None)
        return from_env(data_dir) if from_env is not None else backend_class(data_dir)


@dataclass(frozen=True)
class Providers:
    """A domain's backends by name, with the one used when nothing is chosen."""

    domain: str
    table: dict[str, Provider] = field(default_factory=dict)
    default: str = "embedded"

    @property
    def names(self) -> list[str]:
        return list(self.table)

    def chosen(self, name: str | None = None, environ: Mapping[str, str] | None = None) -> str:
        """The backend `make` would build: `name`, else `$<DOMAIN>_BACKEND`, else the default (nothing is built)."""
        environ = os.environ if environ is None else environ
        return (name or environ.get(f"{self.domain.upper()}_BACKEND") or self.default).lower()

    def make(self, name: str | None = None, data_dir: Path | None = None,
             environ: Mapping[str, str] | None = None) -> Any:
        """The backend `name`, else `$<DOMAIN>_BACKEND`, else the default; `ValueError` (unknown
        name, missing credentials) says what to set."""
        environ = os.environ if environ is None else environ
        variable = f"{self.domain.upper()}_BACKEND"
        chosen = self.chosen(name, environ)
        provider = self.table.get(chosen)
        if provider is None:
            raise ValueError(f"unknown {self.domain} backend {chosen!r} (from {'--backend' if name else variable}); "
                             f"choose one of {', '.join(self.table)}")
        if (missing := provider.missing(environ)) is not None:
            raise ValueError(f"the {chosen} backend of {self.domain} needs {missing} in the environment "
                             "(docs/domains.md lists each provider's variables)")
        if data_dir is None:
            from hub.datadir import default_data_dir

            data_dir = default_data_dir()
        return provider.build(data_dir)
