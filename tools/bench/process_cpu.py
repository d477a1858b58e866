"""Where a relayed call's time goes, per process: the CPU the caller (the SDK's `ClientSession` over
`stdio_client`), the hub and the SDK echo server each spend per `tools/call`, directly and through
`mcp-hub serve`, sequentially and with 16 concurrent calls on the session; next to the wall time per
call. Contenders take turns per round, so a drift of the machine's speed hits both.

    .venv/bin/python tools/bench/process_cpu.py [--calls 2000] [--rounds 2]

The caller's CPU is this process's (`time.process_time`); the others' come from /proc.
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

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.bench.common import ENV, ROOT  # noqa: E402
from tools.bench.hub_cpu import ECHO, cpu_seconds, python_descendant  # noqa: E402

CONCURRENCY = 16
Figures = dict[str, float]


async def measure(contender: str, folder: Path, calls: int) -> dict[str, Figures]:
    """CPU ms per call of each process and wall ms per call, sequential then concurrent."""
    if contender == "direct":
        params = StdioServerParameters(command=sys.executable, args=[ECHO], env=ENV, cwd=str(ROOT))
        tool = "echo"
    else:
        config = folder / "hub.json"
        config.write_text(json.dumps({"hub": {"data_dir": str(folder / "data")},
                                      "mcpServers": {"echo": {"command": sys.executable, "args": [ECHO]}}}))
        params = StdioServerParameters(command=sys.executable, args=["-m", "hub.cli", "serve", "--config", str(config)],
                                       env=ENV, cwd=str(ROOT))
        tool = "echo__echo"
    figures: dict[str, Figures] = {}
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.list_tools()
        for _ in range(200):
            await session.call_tool(tool, {"text": "hello"})
        if contender == "direct":
            server, hub = _pid_of(ECHO), None
        else:
            hub = _pid_of(str(folder / "hub.json"))
            server = python_descendant(hub)

        async def one_by_one() -> None:
            for _ in range(calls):
                await session.call_tool(tool, {"text": "hello"})

        async def side_by_side() -> None:
            async def caller() -> None:
                for _ in range(calls // CONCURRENCY):
                    await session.call_tool(tool, {"text": "hello"})

            async with anyio.create_task_group() as group:
                for _ in range(CONCURRENCY):
                    group.start_soon(caller)

        for mode, run, count in (("sequential", one_by_one, calls), ("concurrent", side_by_side, calls // CONCURRENCY * CONCURRENCY)):
            server0, hub0, me0, started = cpu_seconds(server), cpu_seconds(hub) if hub else 0.0, time.process_time(), time.perf_counter()
            await run()
            figures[mode] = {
                "wall": (time.perf_counter() - started) / count * 1000,
                "caller": (time.process_time() - me0) / count * 1000,
                "hub": ((cpu_seconds(hub) - hub0) if hub else 0.0) / count * 1000,
                "server": (cpu_seconds(server) - server0) / count * 1000,
            }
    return figures


def _pid_of(marker: str) -> int:
    """The child of this process whose command line holds `marker` (the server, or the hub)."""
    found = subprocess.run(["pgrep", "-P", str(os.getpid()), "-f", marker], capture_output=True, text=True).stdout.split()
    return int(found[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"{args.calls} calls per mode, {args.rounds} rounds; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    results: dict[str, list[dict[str, Figures]]] = {"direct": [], "mcp-hub": []}

    async def run() -> None:
        with tempfile.TemporaryDirectory() as raw:
            folder = Path(raw)
            (folder / "data").mkdir()
            for number in range(args.rounds):
                order = ("direct", "mcp-hub") if number % 2 == 0 else ("mcp-hub", "direct")
                for contender in order:
                    results[contender].append(await measure(contender, folder, args.calls))

    anyio.run(run)
    print(f"\n{'contender':<10} {'mode':<11} {'wall ms/call':>13} {'caller CPU':>11} {'hub CPU':>8} {'server CPU':>11}")
    for contender, rounds in results.items():
        for mode in ("sequential", "concurrent"):
            med = {key: statistics.median(r[mode][key] for r in rounds) for key in ("wall", "caller", "hub", "server")}
            print(f"{contender:<10} {mode:<11} {med['wall']:>13.3f} {med['caller']:>11.3f} {med['hub']:>8.3f} {med['server']:>11.3f}")
    for mode in ("sequential", "concurrent"):
        ratios = [d[mode]["wall"] / h[mode]["wall"] for d, h in zip(results["direct"], results["mcp-hub"])]
        print(f"hub/direct throughput, {mode}: {statistics.median(ratios):.2f}x (rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
