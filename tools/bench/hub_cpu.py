"""Where a proxied call's time goes: the CPU the hub process spends per `tools/call` (from
/proc/<pid>/stat, so the client and the downstream are not counted), next to the downstream's, for
the hub as shipped (and of it, the event loop's thread), with the fast path off (`"fast_calls": false`: every message through the SDK's
pydantic models, as before it existed) and with auditing off.

    .venv/bin/python tools/bench/hub_cpu.py [--calls 2000] [--repeats 3]

Sequential calls of the echo tool over stdio; prints each repeat's figures and the median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.bench.common import ENV, ROOT  # noqa: E402

ECHO = str(ROOT / "tools" / "bench" / "echo_server.py")
VARIANTS: dict[str, dict[str, Any]] = {
    "as shipped": {},
    "default log level (info)": {"log_level": "info"},
    "fast path off (SDK models)": {"fast_calls": False},
    "audit off": {"audit": {"enabled": False}},
}


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU of a process, or of one of its threads."""
    stat = f"/proc/{pid}/task/{thread}/stat" if thread is not None else f"/proc/{pid}/stat"
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def python_descendant(pid: int) -> int:
    """The echo server's pid under the hub (through `setpriv` when the hub uses it)."""
    for child in child_pids(pid):
        if "echo_server.py" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
            grandchildren = child_pids(child)
            return grandchildren[0] if grandchildren else child
    raise RuntimeError("echo server not found under the hub")


Figures = tuple[list[float], list[float], list[float], list[float]]


async def measure(folder: Path, label: str, hub: dict[str, Any], calls: int, repeats: int) -> Figures:
    config = folder / f"hub-{len(list(folder.iterdir()))}.json"
    config.write_text(json.dumps({"hub": {"data_dir": str(folder / "data"), **hub},
                                  "mcpServers": {"echo": {"command": sys.executable, "args": [ECHO]}}}))
    # At warning unless the variant sets a level: a line per call at info is measured on its own.
    level = [] if "log_level" in hub else ["--log-level", "warning"]
    params = StdioServerParameters(command=sys.executable, args=["-m", "hub.cli", "serve", "--transport", "stdio", "--config", str(config),
                                                                *level], env=ENV, cwd=str(ROOT))
    hub_ms, main_ms, echo_ms, wall_ms = [], [], [], []
    async with Client(params) as client:
        await client.list_tools()
        for _ in range(200):
            await client.call_tool("echo__echo", {"text": "hello"})
        hub_pid = int(subprocess.run(["pgrep", "-f", str(config)], capture_output=True, text=True).stdout.split()[0])
        echo_pid = python_descendant(hub_pid)
        for _ in range(repeats):
            # The event loop's thread has the process's own id; the rest are the audit writer and helpers.
            hub0, main0, echo0 = cpu_seconds(hub_pid), cpu_seconds(hub_pid, hub_pid), cpu_seconds(echo_pid)
            started = time.perf_counter()
            for _ in range(calls):
                await client.call_tool("echo__echo", {"text": "hello"})
            wall_ms.append((time.perf_counter() - started) / calls * 1000)
            hub_ms.append((cpu_seconds(hub_pid) - hub0) / calls * 1000)
            main_ms.append((cpu_seconds(hub_pid, hub_pid) - main0) / calls * 1000)
            echo_ms.append((cpu_seconds(echo_pid) - echo0) / calls * 1000)
    print(f"{label:<28} hub CPU/call {' '.join(f'{v:.3f}' for v in hub_ms)} ms (event loop thread "
          f"{' '.join(f'{v:.3f}' for v in main_ms)}); downstream {' '.join(f'{v:.3f}' for v in echo_ms)} ms; "
          f"wall/call {' '.join(f'{v:.2f}' for v in wall_ms)} ms", flush=True)
    return hub_ms, main_ms, echo_ms, wall_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.calls} sequential echo calls per repeat, {args.repeats} repeats; {os.cpu_count()} cores")

    async def run() -> dict[str, Figures]:
        with tempfile.TemporaryDirectory() as raw:
            folder = Path(raw)
            (folder / "data").mkdir()
            return {label: await measure(folder, label, hub, args.calls, args.repeats) for label, hub in VARIANTS.items()}

    results = anyio.run(run)
    print()
    print(f"{'variant':<28} {'hub CPU ms/call':>16} {'of it, loop thread':>19} {'downstream':>11} {'wall ms/call':>13}")
    for label, (hub_ms, main_ms, echo_ms, wall_ms) in results.items():
        print(f"{label:<28} {statistics.median(hub_ms):>16.3f} {statistics.median(main_ms):>19.3f} {statistics.median(echo_ms):>11.3f} "
              f"{statistics.median(wall_ms):>13.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
