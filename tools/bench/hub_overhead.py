"""What a hub costs per call: a client calling a trivial echo tool directly, through mcp-hub
(stdio and Streamable HTTP) and through FastMCP's proxy + mount, measured in one run with the
contenders alternating — beside the floor for any gateway process, a relay copying bytes
(`bare_relay.py`); plus in-process domains over HTTP against the same domain served by a
plain SDK HTTP server, and the cold start and peak RSS of `mcp-hub serve` with every domain.

    bash tools/bench/run.sh            # sets up FastMCP's venv, then runs this
    .venv/bin/python tools/bench/hub_overhead.py [--calls 200] [--concurrency 16] [--rounds 16] [--warmup 300]

Every contender is started and warmed up first and stays up; then in each round each one in turn
makes `--calls` sequential calls and then `--concurrency` callers share as many. A ratio is taken
within each round, between bursts seconds apart, and the median over the rounds is printed: this
machine's speed drifts by ±15 % over a minute, which a ratio of two runs made a minute apart
would carry in full.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.bench.common import ENV, ROOT, free_port, http_process, percentile  # noqa: E402

PY = sys.executable
ECHO = str(ROOT / "tools" / "bench" / "echo_server.py")
FASTMCP_PY = ROOT / ".cache" / "bench-venv" / "bin" / "python"


@dataclass
class Result:
    sequential: list[float] = field(default_factory=list)
    sequential_rate: list[float] = field(default_factory=list)
    """Calls/s of each round's sequential burst."""
    concurrent_rate: list[float] = field(default_factory=list)


@dataclass
class Contender:
    """One live client session: the contender's processes stay up for the whole run."""

    client: Client
    tool: str
    arguments: dict[str, Any]


async def burst(contender: Contender, calls: int, concurrency: int, result: Result) -> None:
    """One round for one contender: `calls` sequential calls, then `concurrency` callers at once."""
    client, tool, arguments = contender.client, contender.tool, contender.arguments
    latencies = []
    started = time.perf_counter()
    for _ in range(calls):
        t0 = time.perf_counter()
        answer = await client.call_tool(tool, arguments)
        latencies.append((time.perf_counter() - t0) * 1000)
        assert not answer.is_error, answer
    result.sequential_rate.append(calls / (time.perf_counter() - started))
    result.sequential += latencies
    per_caller = max(1, calls // concurrency)

    async def caller() -> None:
        for _ in range(per_caller):
            answer = await client.call_tool(tool, arguments)
            assert not answer.is_error, answer

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(caller)
    result.concurrent_rate.append(per_caller * concurrency / (time.perf_counter() - started))


def hub_config(folder: Path, servers: dict[str, Any]) -> str:
    path = folder / f"hub-{len(list(folder.iterdir()))}.json"
    path.write_text(json.dumps({"hub": {"data_dir": str(folder / "data")}, "mcpServers": servers}))
    return str(path)


async def contenders(folder: Path, stack: AsyncExitStack, warmup: int) -> dict[str, Contender]:
    """Start every contender and warm it up (`warmup` calls), in the order they take turns."""
    echo_config = hub_config(folder, {"echo": {"command": PY, "args": [ECHO]}})
    domain_config = hub_config(folder, {"calendar": {"builtin": "calendar"}})
    echo, now = {"text": "hello"}, {"zone": "Europe/Berlin"}

    def stdio(command: str, args: list[str]) -> StdioServerParameters:
        return StdioServerParameters(command=command, args=args, env={**ENV, "MCP_HUB_DATA_DIR": str(folder / "data")}, cwd=str(ROOT))

    async def http(args: list[str]) -> Any:
        port = free_port()
        url, _ = await stack.enter_async_context(http_process([*args, "--port", str(port), "--log-level", "warning"], port,
                                                              str(folder / "data")))
        # A contender waits while the others take their turns, longer than uvicorn keeps an idle
        # connection (5 s): the client lets its idle connections go first (2 s), so no request is
        # sent on a connection the server is closing at that moment.
        http_client = await stack.enter_async_context(
            httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=300), limits=httpx2.Limits(keepalive_expiry=2)))
        return streamable_http_client(url, http_client=http_client)

    hub_serve = ["-m", "hub.cli", "serve", "--config"]
    targets: dict[str, tuple[Any, str, dict[str, Any]]] = {
        "direct (stdio)": (stdio(PY, [ECHO]), "echo", echo),
        "bare byte relay (stdio), the floor": (stdio(PY, [str(ROOT / "tools" / "bench" / "bare_relay.py"), PY, ECHO]), "echo", echo),
        "mcp-hub (stdio)": (stdio(PY, [*hub_serve, echo_config, "--transport", "stdio", "--log-level", "warning"]), "echo__echo", echo),
        "mcp-hub (http)": (await http([*hub_serve, echo_config, "--transport", "http"]), "echo__echo", echo),
        "calendar, plain SDK server (http)": (await http(["-m", "hub.cli", "server", "calendar", "-t", "http"]), "now", now),
        "calendar, in mcp-hub (http)": (await http([*hub_serve, domain_config, "--transport", "http"]), "calendar__now", now),
    }
    if FASTMCP_PY.exists():
        targets["FastMCP proxy+mount (stdio)"] = (stdio(str(FASTMCP_PY), [str(ROOT / "tools" / "bench" / "fastmcp_proxy.py"), PY, ECHO]),
                                                  "echo_echo", echo)
    found = {}
    for name, (target, tool, arguments) in targets.items():
        client = await stack.enter_async_context(Client(target))
        await client.list_tools()
        for _ in range(warmup):
            await client.call_tool(tool, arguments)
        found[name] = Contender(client, tool, arguments)
    return found


def peak_rss_mb(marker: str) -> float | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                status = (entry / "status").read_text()
                return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
        except (OSError, AttributeError):
            continue
    return None


async def cold_start(folder: Path, cache: Path) -> tuple[float, float | None, int]:
    """Spawn `mcp-hub serve --transport stdio` with every built-in domain; time to the first tools/list answer.
    `cache` is its listing cache dir: empty, this is a first start after install; filled, any later one."""
    data = folder / f"cold-{time.monotonic_ns()}"
    params = StdioServerParameters(command=PY, args=["-m", "hub.cli", "serve", "--transport", "stdio", "--data-dir", str(data),
                                                     "--log-level", "warning"],
                                   env={**ENV, "MCP_HUB_DATA_DIR": str(data), "MCP_HUB_CACHE_DIR": str(cache)}, cwd=str(ROOT))
    started = time.perf_counter()
    async with Client(params) as client:
        tools = (await client.list_tools()).tools
        elapsed = time.perf_counter() - started
        rss = peak_rss_mb(str(data))
    return elapsed, rss, len(tools)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="sequential calls per contender per round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=300, help="calls each contender makes before the first round")
    args = parser.parse_args()
    import importlib.metadata as meta

    versions = f"mcp {meta.version('mcp')}"
    if FASTMCP_PY.exists():
        versions += ", FastMCP " + subprocess.run([str(FASTMCP_PY), "-c", "import fastmcp; print(fastmcp.__version__)"],
                                                 capture_output=True, text=True).stdout.strip()
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}; {versions}")
    print(f"every contender up at once and warmed up ({args.warmup} calls); then {args.rounds} rounds, the contenders taking "
          f"turns: {args.calls} sequential calls, then {args.concurrency} concurrent callers")

    async def run() -> tuple[dict[str, Result], list[tuple[float, float | None, int]], list[tuple[float, float | None, int]]]:
        with tempfile.TemporaryDirectory() as raw:
            folder = Path(raw)
            (folder / "data").mkdir()
            async with AsyncExitStack() as stack:
                chosen = await contenders(folder, stack, args.warmup)
                results = {name: Result() for name in chosen}
                for round_number in range(args.rounds):
                    for name, contender in chosen.items():
                        await burst(contender, args.calls, args.concurrency, results[name])
                    print(f"  round {round_number + 1} done", flush=True)
            first_starts, starts = [], []
            for round_number in range(3):
                cache = folder / f"cache-{round_number}"
                first_starts.append(await cold_start(folder, cache))
                for _ in range(2):
                    starts.append(await cold_start(folder, cache))
            return results, first_starts, starts

    results, first_starts, starts = anyio.run(run)
    print()
    print(f"{'contender':<36} {'seq calls/s':>11} {'p50 ms':>7} {'p99 ms':>7} {'conc calls/s':>12}")
    for name, r in results.items():
        print(f"{name:<36} {statistics.median(r.sequential_rate):>11.0f} {statistics.median(r.sequential):>7.2f} "
              f"{percentile(r.sequential, 99):>7.2f} {statistics.median(r.concurrent_rate):>12.0f}")

    def ratio(a: str, b: str, field_name: str) -> str:
        """The median over rounds of a/b within each round (the two ran seconds apart), with the
        middle half of the rounds' ratios."""
        ratios = [x / y for x, y in zip(getattr(results[a], field_name), getattr(results[b], field_name), strict=True)]
        if len(ratios) < 4:
            return f"{statistics.median(ratios):.2f}x"
        quartiles = statistics.quantiles(ratios, n=4)
        return f"{statistics.median(ratios):.2f}x [{quartiles[0]:.2f}-{quartiles[2]:.2f}]"

    print()
    print("ratios: the median over the rounds of each round's ratio [the middle half of the rounds]")
    for label, field_name in (("sequential", "sequential_rate"), ("16 concurrent", "concurrent_rate")):
        line = (f"{label:<14} mcp-hub/direct {ratio('mcp-hub (stdio)', 'direct (stdio)', field_name)} (target >= 0.8; "
                f"a bare byte relay: {ratio('bare byte relay (stdio), the floor', 'direct (stdio)', field_name)})")
        if "FastMCP proxy+mount (stdio)" in results:
            line += (f"; FastMCP/direct {ratio('FastMCP proxy+mount (stdio)', 'direct (stdio)', field_name)}; "
                     f"mcp-hub/FastMCP {ratio('mcp-hub (stdio)', 'FastMCP proxy+mount (stdio)', field_name)} (target >= 2.5)")
        line += (f"; in-process domain via hub / plain SDK HTTP "
                 f"{ratio('calendar, in mcp-hub (http)', 'calendar, plain SDK server (http)', field_name)} (target >= 0.9)")
        print(line)
    seconds = [s for s, _, _ in starts]
    rss = [r for _, r, _ in starts + first_starts if r is not None]
    print(f"cold start of `mcp-hub serve --transport stdio` ({starts[0][2]} tools, every domain): "
          f"median {statistics.median(seconds):.2f}s to the first tools/list (target <= 1.0s); "
          f"the first start after install (empty listing cache): median {statistics.median(s for s, _, _ in first_starts):.2f}s; "
          f"peak RSS {max(rss) if rss else float('nan'):.0f} MB (target <= 150 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
