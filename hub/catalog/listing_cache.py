"""Listings remembered between starts, so the hub can answer `tools/list` while its servers are
still starting: built-in domains importing and registering their tools, stdio children importing
their SDK (most of a cold start; with several children on a small machine, seconds).

Which servers, and what says a remembered listing is still right (`cache_key`):
- `builtin` domains: their code ships with the hub, so a key over that code, the config entry and
  the SDK/pydantic installation (which shape the generated schemas) says exactly when it holds.
- stdio servers (shared sessions): a key over the config entry (command, arguments, environment,
  cwd, filters) and the files it names — the resolved executable and each argument that is an
  existing file (`server.py`, `dist/index.js`), by size and modification time. What it cannot see
  (a package upgraded behind `python -m pkg` or `npx pkg`, a server whose tools depend on data) is
  why the listing is only a stand-in: see below.

The server still starts at once; when it is up, its real listing replaces the remembered one —
identical in the normal case, so nothing is announced; if anything outside the key changed it, the
catalog is corrected and clients get `list_changed`, as for any server whose tools change. Calls to
a server that is not up yet wait for it (up to `connect_timeout_s`); a server that never comes up
answers its calls `unavailable` with its error, as a server that went down does. Per-client
sessions and HTTP/SSE servers are not remembered (their listing can depend on the caller, and they
do not import anything in the hub's start). `hub.remember_listings: false` turns it off.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG

import mcp
import mcp_types
import mcp_types as types
import pydantic

from hub import __version__
from hub.config import ServerConfig
from hub.datadir import listing_cache_path as cache_path
from hub.domains import domain_names, domain_target
from hub.downstream.listing import Listing

logger = logging.getLogger("hub.catalog")

FORMAT = 2
KEPT = 4
MAX_BYTES = 16 * 2**20
"""A cache file larger than this is ignored (and replaced): it is read on every start."""
"""Listings kept per server name, newest first: two hubs (one per desktop client, say) that name a
server alike but configure it differently each keep theirs instead of replacing each other's."""


def cacheable(config: ServerConfig) -> bool:
    """Whether `config`'s listing is remembered between starts (a built-in domain, or a stdio server
    on a shared session)."""
    return config.builtin is not None or (config.transport == "stdio" and config.session != "per_client")


def cache_key(config: ServerConfig, secret: bytes) -> str:
    """A digest of everything known to decide the server's listing (see the module docstring),
    keyed with the installation's `secret` (`hub.datadir.audit_digest_key`): the config entry holds
    `env` values, and a plain hash of a short one (a PIN) could be reversed by guessing."""
    origin = _installation_digest() if config.builtin is not None else _command_digest(config)
    entry = config.model_dump_json(exclude={"session"})  # the stdio front makes an adaptive session "shared"
    return hmac.new(secret, f"{origin}\0{entry}".encode(), "sha256").hexdigest()


def _command_digest(config: ServerConfig) -> str:
    """The hub's cache format and version, and the size and modification time of the stdio
    command's executable and of each argument naming an existing file (relative to `cwd`)."""
    digest = hashlib.sha256(f"{FORMAT}\0{__version__}\0".encode())
    base = Path(config.cwd) if config.cwd else Path.cwd()
    executable = shutil.which(config.command or "", path=config.env.get("PATH", os.environ.get("PATH")))
    for name in (executable or config.command or "", *config.args):
        try:
            stat = (base / name).stat()  # an absolute `name` replaces `base`
        except (OSError, ValueError):
            continue
        if S_ISREG(stat.st_mode):  # not a folder: its time moves with every file written in it
            digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


@functools.cache
def _installation_digest() -> str:
    """The hub's version, the SDK and pydantic installed, and the domains' code and data (every `.py`
    and `.json` file of each package that registered a domain, `hub.domains`: e.g. a domain's
    `examples.json`, which its tools' listing carries)."""
    digest = hashlib.sha256()
    digest.update(f"{FORMAT}\0{__version__}\0{pydantic.VERSION}\0".encode())
    for module in (mcp, mcp_types):
        stat = os.stat(module.__file__ or "")
        digest.update(f"{module.__name__}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    for root in _domain_roots():
        for path in sorted([*root.rglob("*.py"), *root.rglob("*.json")]):
            digest.update(str(path.relative_to(root.parent)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _domain_roots() -> list[Path]:
    """The source folders of the top-level packages that registered domains (found, not imported)."""
    roots: set[Path] = set()
    for name in domain_names():
        spec = importlib.util.find_spec(domain_target(name).partition(":")[0].split(".")[0])
        roots.update(Path(location) for location in ((spec.submodule_search_locations or []) if spec else []))
    return sorted(roots)


@dataclass(frozen=True)
class Remembered:
    """What a server's start gave, as remembered: its listing and its handshake's `instructions`."""

    key: str
    listing: Listing
    instructions: str | None = None


def load(cache_dir: Path, config: ServerConfig, key: str) -> Remembered | None:
    """What is remembered for exactly this key, if anything; never raises."""
    try:
        entry = next((e for e in _entries(cache_path(cache_dir, config.name)) if e.get("key") == key), None)
        if entry is None:
            return None
        listing = Listing(
            tools=[types.Tool.model_validate(t) for t in entry["tools"]],
            resources=[types.Resource.model_validate(r) for r in entry["resources"]],
            resource_templates=[types.ResourceTemplate.model_validate(t) for t in entry["resource_templates"]],
            prompts=[types.Prompt.model_validate(p) for p in entry["prompts"]],
            meta=dict(entry.get("meta") or {}),  # type: ignore[call-overload]
        )
        instructions = entry.get("instructions")
        return Remembered(key, listing, instructions if isinstance(instructions, str) else None)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        logger.warning("ignoring the cached listing of %s: %s", config.name, exc)
        return None


def store(cache_dir: Path, config: ServerConfig, remembered: Remembered) -> None:
    """Remember `remembered`, first of the server name's `KEPT` entries (atomically: a reader sees
    the old file or the new one; of two hubs writing at once, the last one's file stays)."""

    def dump(items: list[pydantic.BaseModel]) -> list[object]:
        return [item.model_dump(by_alias=True, mode="json", exclude_none=True) for item in items]

    path, listing = cache_path(cache_dir, config.name), remembered.listing
    entry = {"key": remembered.key, "tools": dump(listing.tools), "resources": dump(listing.resources),  # type: ignore[arg-type]
             "resource_templates": dump(listing.resource_templates), "prompts": dump(listing.prompts),  # type: ignore[arg-type]
             "meta": listing.meta, "instructions": remembered.instructions}
    try:
        others = [e for e in _entries(path) if e.get("key") != remembered.key][: KEPT - 1]
    except (OSError, ValueError, RecursionError):
        others = []
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w") as handle:  # 0600 whatever the umask or the folder's mode: tool text can be private
            os.fchmod(handle.fileno(), 0o600)
            handle.write(json.dumps({"format": FORMAT, "entries": [entry, *others]}))
        os.replace(temporary, path)
    except (OSError, TypeError, ValueError) as exc:  # TypeError, ValueError: a `_meta` JSON cannot hold
        logger.warning("could not cache the listing of %s: %s", config.name, exc)


def _entries(path: Path) -> list[dict[str, object]]:
    """The entries of a cache file, newest first (a file of the first format holds one)."""
    if path.stat().st_size > MAX_BYTES:
        raise ValueError(f"over {MAX_BYTES // 2**20} MiB: not a listing this hub wrote")
    data = json.loads(path.read_text())
    entries = data.get("entries", [data] if "key" in data else None) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError("not a listing cache file")
    return [e for e in entries if isinstance(e, dict)]
