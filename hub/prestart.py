"""Start the configured stdio children before the hub's own imports, so both import at once.

`mcp-hub serve` spends most of its start importing the SDK and itself; a stdio child spawned only
after that imports the SDK again, so the two starts add up. Here, at the CLI's first instruction
and with the standard library only, the config is read and each plain stdio entry is spawned the
way `hub.downstream.stdio.stdio_child` would spawn it (same argv, environment, cwd, own process
group, parent-death signal). `stdio_child` then adopts the process whose argv, environment and cwd
are exactly what it would have used (`claim`); anything else is killed and spawned normally.
A server whose listing is remembered from an earlier start (`hub.catalog.listing_cache`) is not
waited for by the first `tools/list`, so beyond `cpu_count - 1` such children (at least one) the
rest are left to the hub, which spawns them after its imports: six children importing their SDK
beside the hub's own imports on two cores made the first listing three times slower.
Entries this module cannot reproduce exactly (an unset `${VAR}`, a disabled or non-stdio entry, a
command it cannot find) are simply left to the hub. A child never adopted is killed with its
process group: on a mismatch, when the hub keeps only its stdio servers (`keep_only`), at exit,
and on SIGTERM before the hub installs its own handler.

A SIGTERM or SIGINT that arrives while children are being spawned is held until each child spawned
so far is registered (with `_waiting` and the orphan watcher): arriving between a spawn and its
registration, it would otherwise end the hub (SIGTERM's default action) or unwind it
(KeyboardInterrupt) with that child known to nobody. The held signal then ends the start: the
children are killed and `mcp-hub` exits with 128 + the signal number.

From then until the hub installs its own handler (`hub.signals.stop_on_sigterm`), a SIGTERM or
SIGINT stops the process at once: the waiting children's groups are killed and the process exits
with 128 + the signal number, without unwinding. Nothing of the hub runs yet that a clean stop
would save, and an unwinding exception raised at an arbitrary point of an import or of the event
loop's start can get stuck (a thread the exit then waits for, a `finally` that blocks), with no
watchdog armed yet: a CI run once saw a hub outlive a SIGTERM there by more than 15 s.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from contextlib import suppress

from hub.datadir import default_cache_dir, listing_cache_path
from hub.downstream.reaper import kill_adopted_orphans, release_group, start_watcher, watch_group

SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None
# The variables `mcp.client.stdio.get_default_environment` passes on (POSIX).
_INHERITED_ENV = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER")
_ENV_REF = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
"""As `hub.config`'s: `${VAR}`, `${VAR:-default}`, VS Code's `${env:VAR}`."""
_CLIENT_REF = re.compile(r"\$\{(?:input|config|command):")
"""VS Code variables the hub refuses (`hub.config`): a server using one is not started early."""
SECRET_ENV = "MCP_HUB_CALLER_SECRET"
AUDIENCE_ENV = "MCP_HUB_CALLER_AUDIENCE"


class ChildStartError(Exception):
    """The child process could not be spawned (bad command, cwd, permissions)."""


def resolve_command(command: str, env: Mapping[str, str], cwd: str | None) -> str:
    """Find the executable the way a shell would, with the child's own PATH."""
    if os.sep in command:
        candidate = command if os.path.isabs(command) or cwd is None else os.path.join(cwd, command)
        if os.access(candidate, os.X_OK):
            return candidate
        raise ChildStartError(f"command {command!r} does not exist or is not executable")
    found = shutil.which(command, path=env.get("PATH"))
    if found is None:
        raise ChildStartError(f"command {command!r} was not found on PATH")
    return found


def child_argv(executable: str, args: list[str]) -> list[str]:
    """The argv a stdio child is spawned with: under `setpriv --pdeathsig KILL` where it exists."""
    argv = [executable, *args]
    return [SETPRIV, "--pdeathsig", "KILL", "--", *argv] if SETPRIV else argv


class PreStarted:
    """A stdio child spawned before the hub's imports; the hub's ends of its stdin and stdout pipes."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: str | None,
                 process: subprocess.Popen[bytes], stdin_fd: int, stdout_fd: int) -> None:
        self.name, self.argv, self.env, self.cwd = name, argv, env, cwd
        self.process, self.stdin_fd, self.stdout_fd = process, stdin_fd, stdout_fd
        self.started_at = time.time()

    def matches(self, argv: list[str], env: Mapping[str, str], cwd: str | None) -> bool:
        return self.argv == argv and self.env == dict(env) and self.cwd == cwd

    def kill(self) -> None:
        """SIGKILL the child's process group, close our pipe ends, reap it in the background."""
        with suppress(OSError):
            os.killpg(self.process.pid, signal.SIGKILL)
        release_group(self.process.pid)
        for fd in (self.stdin_fd, self.stdout_fd):
            with suppress(OSError):
                os.close(fd)
        if self.process.stderr is not None:
            self.process.stderr.close()
        with suppress(RuntimeError):  # no new thread at interpreter shutdown: the exit orphans it to init
            threading.Thread(target=self.process.wait, daemon=True).start()


_waiting: dict[str, PreStarted] = {}
_secrets: dict[str, str] = {}
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_held: list[int] = []  # stop signals received while children were being spawned


def claim(name: str) -> PreStarted | None:
    """Take the child pre-started for server `name`, if any (only once: restarts spawn anew)."""
    return _waiting.pop(name, None)


def secret_for(name: str) -> str | None:
    """The caller-channel secret given to server `name`'s pre-started child, if one was started."""
    return _secrets.get(name)


def keep_only(names: set[str]) -> None:
    """Kill the pre-started children of servers the hub will not run as stdio servers."""
    for name in [n for n in _waiting if n not in names]:
        _waiting.pop(name).kill()


def discard_all() -> None:
    """Kill every child not adopted yet (at exit, or a forced stop)."""
    while _waiting:
        _waiting.popitem()[1].kill()


def prestart_serve(argv: list[str], environ: Mapping[str, str] | None = None) -> list[PreStarted]:
    """For `serve` argv: spawn the config's plain stdio servers now (`MCP_HUB_PRESTART=0`: never).
    Whatever goes wrong here, the hub reports and handles it itself later; the only exception that
    leaves is SystemExit, for a SIGTERM or SIGINT received meanwhile (see the module docstring)."""
    environ = os.environ if environ is None else environ
    if not argv or argv[0] != "serve" or environ.get("MCP_HUB_PRESTART") == "0":
        return []
    path = _config_path(argv[1:]) or environ.get("MCP_HUB_CONFIG")
    if not path:
        return []
    # A signal the hub was started ignoring (SIGINT under `nohup` or `cmd &` in a script) stays ignored.
    previous = {sig: signal.signal(sig, _hold) for sig in _STOP_SIGNALS if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        started = start_config(path, environ)
    finally:
        if _waiting:
            atexit.register(discard_all)
        for sig, handler in previous.items():
            default = handler in (signal.SIG_DFL, signal.default_int_handler)
            signal.signal(sig, _stop_at_once if default and _waiting else handler)
    if _held:
        discard_all()
        raise SystemExit(128 + _held[0])
    return started


def start_config(path: str, environ: Mapping[str, str]) -> list[PreStarted]:
    """Spawn every plain stdio entry of the config file at `path`; they wait for `claim`."""
    try:
        with open(path, "rb") as file:
            raw = file.read()
        if path.endswith(".toml"):
            import tomllib

            data = tomllib.loads(raw.decode("utf-8"))
        else:
            data = json.loads(raw)
        servers = (data.get("mcpServers") or data.get("servers")) if isinstance(data, dict) else None  # VS Code: `servers`
    except (OSError, ValueError):
        return []
    if not isinstance(servers, dict):
        return []
    base = os.path.dirname(os.path.abspath(path))
    hub_settings = data.get("hub")
    remembering = not (isinstance(hub_settings, dict) and hub_settings.get("remember_listings") is False)
    beside_imports = max(1, (os.cpu_count() or 1) - 1)
    started = []
    for name, entry in servers.items():
        if _held:
            break  # a stop signal arrived: spawn nothing more
        if remembering and len(started) >= beside_imports and _remembered(str(name)):
            continue  # the first listing will not wait for it: leave the hub's imports a core
        child = _start_entry(str(name), entry, environ, base)
        if child is not None:
            _waiting[child.name] = child
            started.append(child)
    return started


def _remembered(name: str) -> bool:
    """Whether server `name` has a listing remembered from an earlier start (`hub.catalog.listing_cache`;
    its key is checked by the hub: a stale one only means the hub waits for this child after all)."""
    return listing_cache_path(default_cache_dir(), name).is_file()


def _hold(signum: int, frame: object) -> None:
    _held.append(signum)


def _stop_at_once(signum: int, frame: object) -> None:
    """Until the hub installs `hub.signals.stop_on_sigterm`: kill the waiting children's groups and
    the helpers that left them (re-parented to the hub, its children's subreaper), and exit now,
    unwinding nothing (see the module docstring). The orphan watcher, seeing its pipe end, kills any
    group registered with it as well."""
    for child in list(_waiting.values()):
        with suppress(OSError):
            os.killpg(child.process.pid, signal.SIGKILL)
    kill_adopted_orphans(set())  # helpers that left their server's group, re-parented to this subreaper
    os._exit(128 + signum)


def _config_path(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg in ("--config", "-c"):
            return args[i + 1] if i + 1 < len(args) else None
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg.startswith("-c") and len(arg) > 2 and not arg.startswith("--"):
            return arg[2:]
    return None


def _start_entry(name: str, entry: object, environ: Mapping[str, str], base: str) -> PreStarted | None:
    if not isinstance(entry, dict) or entry.get("disabled") is True or entry.get("enabled", True) is not True:
        return None
    declared = entry.get("transport", entry.get("type", entry.get("transportType")))
    command, args, env, cwd = entry.get("command"), entry.get("args", []), entry.get("env", {}), entry.get("cwd")
    if declared not in (None, "stdio") or not isinstance(command, str) or not command:
        return None
    if not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
        return None
    if not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
        return None
    if cwd is not None and not isinstance(cwd, str):
        return None
    if "caller_secret" in entry:
        return None  # a configured secret for a stdio child: left to the hub
    expanded = [_expand(a, environ) for a in args]
    expanded_env = {str(k): _expand(v, environ) for k, v in env.items()}
    command, cwd = _expand(command, environ), _expand(cwd, environ) if cwd is not None else None  # as the config does
    if None in expanded or None in expanded_env.values() or not command or (entry.get("cwd") is not None and cwd is None):
        return None
    if cwd and not os.path.isabs(cwd):
        cwd = os.path.realpath(os.path.join(base, cwd))
    secret = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()  # as secrets.token_urlsafe(32)
    child_env = {k: v for k in _INHERITED_ENV if (v := environ.get(k)) is not None and not v.startswith("()")}
    child_env |= expanded_env | {SECRET_ENV: secret, AUDIENCE_ENV: name}  # type: ignore[arg-type]
    try:
        if cwd is not None and not os.path.isdir(cwd):
            return None
        argv = child_argv(resolve_command(command, child_env, cwd), expanded)  # type: ignore[arg-type]
    except ChildStartError:
        return None
    start_watcher()  # before the spawn: registering the child is then one write, right after it
    child_stdin, our_stdin = os.pipe()
    our_stdout, child_stdout = os.pipe()
    try:
        process = subprocess.Popen(argv, stdin=child_stdin, stdout=child_stdout, stderr=subprocess.PIPE,
                                   env=child_env, cwd=cwd, start_new_session=True)
    except OSError:
        os.close(our_stdin)
        os.close(our_stdout)
        return None
    finally:
        os.close(child_stdin)
        os.close(child_stdout)
    _secrets[name] = secret
    watch_group(process.pid)  # from its first instant: a hub SIGKILLed during its imports leaves nothing either
    return PreStarted(name, argv, child_env, cwd, process, our_stdin, our_stdout)


def _expand(value: str, environ: Mapping[str, str]) -> str | None:
    """`${VAR}` / `${VAR:-default}` as `hub.config.expand_env` does; None where a variable is unset."""
    missing = False

    def replace(match: re.Match[str]) -> str:
        nonlocal missing
        var, default = match.group(1), match.group(2)
        if var in environ:
            return environ[var]
        if default is not None:
            return default
        missing = True
        return ""

    result = _ENV_REF.sub(replace, value)
    return None if missing or _CLIENT_REF.search(value) else result
