"""Start time as a client sees it: spawn, `initialize`, first `tools/list` answer, with the SDK's
`ClientSession` over `stdio_client` — an SDK `MCPServer` echo server directly, against `mcp-hub
serve` over stdio with that server as its one stdio child, with six stdio children against the
slowest of them alone, and with no child at all (the hub's own start). Plus the hub's import time
(`python -X importtime`, top entries).

    .venv/bin/python tools/bench/startup.py [--rounds 5] [--children 6]

Contenders alternate within each round; the figure is the median over rounds of each round's
difference (hub minus direct), so the machine's drift cancels. The hub runs twice per round: as a
first start (an empty cache folder: every child must be up before the first listing) and as every
later start (the listings remembered from the previous start, `hub.catalog.listing_cache`, answer
the first listing while the children start). Targets (issue 23): the hub adds <= 0.3 s to one
child, and six children start within 0.5 s of the slowest child alone.
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

PY = sys.executable
ECHO = str(ROOT / "tools" / "bench" / "echo_server.py")


FIRST = "first start"  # contenders whose cache folder is new and empty on each run


async def first_listing(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds from spawn to the first `tools/list` answer, and how many tools it listed."""
    params = StdioServerParameters(command=PY, args=args, env={**ENV, **env}, cwd=str(ROOT))
    started = time.perf_counter()
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = (await session.list_tools()).tools
        elapsed = time.perf_counter() - started
    return elapsed, len(tools)


def importtime(folder: Path) -> list[tuple[int, str]]:
    """The biggest cumulative entries of `python -X importtime` for the modules a stdio serve loads,
    then the biggest of the hub's own modules."""
    code = ("import hub.cli\nfrom hub.hub import Hub\nfrom hub.frontends.server import build_server\n"
            "from hub.frontends.stdio.stdio_pipes import serve_stdio\n"
            "from hub.frontends.stdio.stdio_calls import StdioToolCalls\n")
    done = subprocess.run([PY, "-X", "importtime", "-c", code], capture_output=True, text=True, env=ENV, cwd=str(ROOT))
    rows = []
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    ranked = sorted(rows, reverse=True)
    own = [row for row in ranked if row[1].strip().startswith(("hub", "servers"))]
    return ranked[:6] + own[1:9]  # the SDK's biggest, then the hub's own (its first is hub.hub, counted above)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--children", type=int, default=6)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared machine)")

    async def run(folder: Path) -> dict[str, list[float]]:
        def config(children: int) -> str:
            path = folder / f"hub-{children}.json"
            servers = {f"echo{i}": {"command": PY, "args": [ECHO]} for i in range(children)}
            # list_wait_s: the first listing waits for every child (default 2 s), so the time is to a full listing.
            path.write_text(json.dumps({"hub": {"data_dir": str(folder / "data"), "list_wait_s": 60}, "mcpServers": servers}))
            return str(path)

        env = {"MCP_HUB_DATA_DIR": str(folder / "data"), "MCP_HUB_CACHE_DIR": str(folder / "cache")}
        serve = ["-m", "hub.cli", "serve", "--transport", "stdio", "--log-level", "error", "--config"]
        many = f"hub, {args.children} children"
        contenders = {"direct": [ECHO], "hub alone, no child": [*serve, config(0)],
                      f"hub, 1 child, {FIRST}": [*serve, config(1)], "hub, 1 child": [*serve, config(1)],
                      f"{many}, {FIRST}": [*serve, config(args.children)], many: [*serve, config(args.children)]}
        times: dict[str, list[float]] = {name: [] for name in contenders}
        await first_listing([ECHO], env)  # warm the page cache
        for name in (c for c in contenders if c.startswith("hub,") and FIRST not in c):
            await first_listing(contenders[name], env)  # the start before: its listings are remembered
        for number in range(args.rounds):
            names = list(contenders) if number % 2 == 0 else list(reversed(contenders))
            for name in names:
                fresh = {"MCP_HUB_CACHE_DIR": tempfile.mkdtemp(dir=folder)} if FIRST in name else {}
                elapsed, count = await first_listing(contenders[name], env | fresh)
                if name.startswith("hub,") and count == 0:
                    print(f"  warning: {name} listed no tool (its children were not up within hub.list_wait_s)")
                times[name].append(elapsed)
            print(f"  round {number + 1}/{args.rounds}: " + ", ".join(f"{n} {times[n][-1]:.2f}s" for n in contenders),
                  flush=True)
        return times

    with tempfile.TemporaryDirectory() as raw:
        folder = Path(raw)
        (folder / "data").mkdir(mode=0o700)
        times = anyio.run(run, folder)
        top = importtime(folder)
    many = [name for name in times if name.endswith("children")][0]

    def adds(name: str) -> float:
        return statistics.median(h - d for h, d in zip(times[name], times["direct"], strict=True))

    def ratio(after: str, before: str) -> float:
        return statistics.median(a / b for a, b in zip(times[after], times[before], strict=True))

    added, added_first = adds("hub, 1 child"), adds(f"hub, 1 child, {FIRST}")
    added_many, added_many_first = adds(many), adds(f"{many}, {FIRST}")
    print(f"\nmachine load average now {os.getloadavg()[0]:.1f}")
    print("median seconds to the first tools/list: " + ", ".join(f"{n} {statistics.median(v):.2f}" for n, v in times.items()))
    print(f"hub adds (median of per-round differences to direct), 1 stdio child: {added:.2f} s, "
          f"{added_first:.2f} s on a first start (target <= 0.3)")
    print(f"{many}: {added_many:.2f} s over one child alone, {added_many_first:.2f} s on a first start "
          f"(target <= 0.5); later/first: {ratio(many, f'{many}, {FIRST}'):.2f}x")
    print(f"the hub's own start (no child) is {statistics.median(times['hub alone, no child']):.2f} s")
    print("\nbiggest imports of a stdio serve (cumulative µs, python -X importtime, one run):")
    for micros, name in top:
        print(f"  {micros:>9}  {name}")
    print(json.dumps({"median_s": {n: statistics.median(v) for n, v in times.items()}, "hub_adds_s": added,
                      "hub_adds_first_s": added_first, "many_adds_s": added_many,
                      "many_adds_first_s": added_many_first, "load_average": os.getloadavg()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
