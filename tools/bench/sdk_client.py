"""Hub overhead as an SDK client sees it: the `mcp` SDK's own `ClientSession` over `stdio_client`
(as langchain-mcp-adapters and most Python agents use it) calling an SDK `MCPServer` echo tool
directly, through `mcp-hub serve` with that echo server as its stdio child, and through a bare
byte relay (`bare_relay.py`, the floor for any gateway process). Beside
`hub_overhead.py` (the raw harness, `mcp.Client`), this is the method of issue 23.

    .venv/bin/python tools/bench/sdk_client.py [--rounds 8] [--calls 1000] [--concurrency 16]
        [--big-mb 24] [--http] [--no-floor] [--json out.json]

Every contender starts once and stays up. In each round, each contender in turn (the order
alternates per round) makes `--calls` sequential calls, then `--concurrency` concurrent callers —
concurrent `call_tool`s on the one session, the way an agent fans out — share `--calls` more.
A ratio is taken inside each round; the median of the rounds' ratios is printed. Then
`--big-rounds` times a `--big-mb` MB result (the echo server's `big` tool) on each contender, with
one echo call every 20 ms on the same session meanwhile (their worst latency shows whether other
callers stall). `--http` adds goal 4: the SDK's Streamable HTTP client against `mcp-hub serve -t
http` relaying to the stdio child, and against a plain SDK Streamable HTTP server hosting the tool,
over 2025-11-25 sessions (`ClientSession`); `--http-modern` adds the same pair with the SDK's
`mcp.Client`, which speaks 2026-07-28 (stateless) over HTTP.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.bench.common import ENV, ROOT, free_port, http_process, percentile  # noqa: E402

PY = sys.executable
ECHO = str(ROOT / "tools" / "bench" / "echo_server.py")
ARGS = {"text": "hello"}


@dataclass
class Figures:
    """One contender's measurements over all rounds."""

    seq_rate: list[float] = field(default_factory=list)
    conc_rate: list[float] = field(default_factory=list)
    seq_ms: list[float] = field(default_factory=list)
    conc_ms: list[float] = field(default_factory=list)
    big_s: list[float] = field(default_factory=list)
    big_side_max_ms: list[float] = field(default_factory=list)


@dataclass
class Contender:
    session: ClientSession
    tool: str
    figures: Figures = field(default_factory=Figures)


async def call(session: ClientSession, tool: str, arguments: dict[str, object]) -> float:
    """One call; its latency in ms. A tool error fails the run: a benchmark of errors measures nothing."""
    started = time.perf_counter()
    answer = await session.call_tool(tool, arguments)
    elapsed = (time.perf_counter() - started) * 1000
    if getattr(answer, "is_error", False):
        raise RuntimeError(f"{tool} answered an error: {str(answer)[:300]}")
    return elapsed


async def burst(contender: Contender, calls: int, concurrency: int) -> None:
    """`calls` sequential calls, then `concurrency` concurrent callers sharing `calls` more."""
    session, tool, figures = contender.session, contender.tool, contender.figures
    started = time.perf_counter()
    figures.seq_ms += [await call(session, tool, ARGS) for _ in range(calls)]
    figures.seq_rate.append(calls / (time.perf_counter() - started))
    per_caller = max(1, calls // concurrency)

    async def caller() -> None:
        for _ in range(per_caller):
            figures.conc_ms.append(await call(session, tool, ARGS))

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(caller)
    figures.conc_rate.append(per_caller * concurrency / (time.perf_counter() - started))


async def big_result(contender: Contender, size: int) -> None:
    """One `size`-byte result, timed; meanwhile an echo call every 20 ms on the same session."""
    big_tool = contender.tool.removesuffix("echo") + "big"
    side: list[float] = []
    done = anyio.Event()

    async def other_caller() -> None:
        while not done.is_set():
            side.append(await call(contender.session, contender.tool, ARGS))
            with anyio.move_on_after(0.02):
                await done.wait()

    async with anyio.create_task_group() as group:
        group.start_soon(other_caller)
        started = time.perf_counter()
        await call(contender.session, big_tool, {"size": size})
        contender.figures.big_s.append(time.perf_counter() - started)
        done.set()
    contender.figures.big_side_max_ms.append(max(side))


@asynccontextmanager
async def stdio_session(args: list[str], errlog: Path) -> AsyncIterator[ClientSession]:
    """A session over stdio; the server's stderr goes to `errlog`, as a desktop client keeps it in a log file."""
    params = StdioServerParameters(command=PY, args=args, env=dict(ENV), cwd=str(ROOT))
    with errlog.open("a") as log:
        async with stdio_client(params, errlog=log) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session


async def serving(port: int, process: subprocess.Popen[bytes], within: float = 180) -> None:
    """Wait until `port` accepts (a loaded machine may take a minute to start a server)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            await anyio.sleep(0.1)
    raise RuntimeError(f"{process.args!r} did not listen on port {port} (exit code {process.poll()})")


@asynccontextmanager
async def http_session(args: list[str], folder: Path, modern: bool = False) -> AsyncIterator[Any]:
    """A session over Streamable HTTP: `ClientSession` (2025-11-25), or with `modern` the SDK's
    `mcp.Client`, which picks 2026-07-28 (stateless) with a server that offers it."""
    port = free_port()
    async with AsyncExitStack() as stack:
        url, process = await stack.enter_async_context(http_process([*args, str(port)], port, str(folder)))
        await serving(port, process)
        client = await stack.enter_async_context(httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=300)))
        if modern:
            session: Any = await stack.enter_async_context(Client(streamable_http_client(url, http_client=client)))
            if session.protocol_version != "2026-07-28":
                raise RuntimeError(f"{args!r} spoke {session.protocol_version}, not 2026-07-28")
        else:
            streams = await stack.enter_async_context(streamable_http_client(url, http_client=client, max_sse_event_size=256 << 20))
            session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
            await session.initialize()
        yield session


def hub_config(folder: Path) -> str:
    path = folder / "hub.json"
    path.write_text(json.dumps({"hub": {"data_dir": str(folder / "data")},
                                "mcpServers": {"echo": {"command": PY, "args": [ECHO]}}}))
    return str(path)


async def contenders(stack: AsyncExitStack, folder: Path, http: bool, floor: bool, warmup: int,
                     modern: bool = False) -> dict[str, Contender]:
    config = hub_config(folder)
    serve = ["-m", "hub.cli", "serve", "--config", config]  # at the default log level (info), as users run it
    found = {
        "direct (stdio)": Contender(await stack.enter_async_context(stdio_session([ECHO], folder / "direct.log")), "echo"),
        "mcp-hub (stdio)": Contender(await stack.enter_async_context(stdio_session([*serve, "--transport", "stdio"], folder / "hub.log")),
                                     "echo__echo"),
    }
    if floor:  # a relay copying bytes, deciding nothing: the floor for any gateway process
        found["bare byte relay (stdio)"] = Contender(
            await stack.enter_async_context(stdio_session([str(ROOT / "tools" / "bench" / "bare_relay.py"), PY, ECHO], folder / "relay.log")), "echo")
    if modern:  # the SDK's high-level client: 2026-07-28 over HTTP
        found["plain SDK server (http 2026)"] = Contender(
            await stack.enter_async_context(http_session([ECHO, "http"], folder, modern=True)), "echo")
        found["mcp-hub (http 2026) -> stdio child"] = Contender(
            await stack.enter_async_context(http_session([*serve, "--transport", "http", "--port"], folder, modern=True)),
            "echo__echo")
    if http:
        found["plain SDK server (http)"] = Contender(
            await stack.enter_async_context(http_session([ECHO, "http"], folder)), "echo")
        found["mcp-hub (http) -> stdio child"] = Contender(
            await stack.enter_async_context(http_session([*serve, "--transport", "http", "--port"], folder)), "echo__echo")
    for contender in found.values():
        await contender.session.list_tools()
        for _ in range(warmup):
            await call(contender.session, contender.tool, ARGS)
    return found


PAIRS = (("mcp-hub (stdio)", "direct (stdio)"), ("bare byte relay (stdio)", "direct (stdio)"),
         ("mcp-hub (http) -> stdio child", "plain SDK server (http)"),
         ("mcp-hub (http 2026) -> stdio child", "plain SDK server (http 2026)"))


def ratio(a: list[float], b: list[float]) -> dict[str, float]:
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    out = {"median": statistics.median(ratios)}
    if len(ratios) >= 4:
        q = statistics.quantiles(ratios, n=4)
        out.update(q1=q[0], q3=q[2])
    return out


def report(results: dict[str, Contender], big_mb: int) -> dict[str, object]:
    print(f"\n{'contender':<31} {'seq calls/s':>11} {'p50 ms':>7} {'p99 ms':>7} {'conc calls/s':>12} {'conc p50':>8} "
          f"{'conc p99':>8} {f'{big_mb} MB s':>9} {'others max ms':>13}")
    table = {}
    for name, c in results.items():
        f = c.figures
        row = {"seq_rate": statistics.median(f.seq_rate), "seq_p50_ms": statistics.median(f.seq_ms),
               "seq_p99_ms": percentile(f.seq_ms, 99), "conc_rate": statistics.median(f.conc_rate),
               "conc_p50_ms": statistics.median(f.conc_ms), "conc_p99_ms": percentile(f.conc_ms, 99),
               "big_s": statistics.median(f.big_s) if f.big_s else None,
               "big_others_max_ms": max(f.big_side_max_ms) if f.big_side_max_ms else None}
        table[name] = row
        big = f"{row['big_s']:>9.2f} {row['big_others_max_ms']:>13.1f}" if f.big_s else f"{'-':>9} {'-':>13}"
        print(f"{name:<31} {row['seq_rate']:>11.0f} {row['seq_p50_ms']:>7.2f} {row['seq_p99_ms']:>7.2f} "
              f"{row['conc_rate']:>12.0f} {row['conc_p50_ms']:>8.2f} {row['conc_p99_ms']:>8.2f} {big}")
    ratios: dict[str, object] = {}
    print("\nratios: median over the rounds of each round's ratio [middle half]; targets >= 0.9x, big result <= 1.5x")
    for hub, direct in PAIRS:
        if hub not in results:
            continue
        h, d = results[hub].figures, results[direct].figures
        entry = {"sequential": ratio(h.seq_rate, d.seq_rate), "concurrent": ratio(h.conc_rate, d.conc_rate)}
        if h.big_s and d.big_s:
            entry["big_time"] = ratio(h.big_s, d.big_s)
        ratios[f"{hub} / {direct}"] = entry
        text = "; ".join(f"{k} {v['median']:.2f}x" + (f" [{v['q1']:.2f}-{v['q3']:.2f}]" if "q1" in v else "")
                         for k, v in entry.items())
        print(f"  {hub} / {direct}: {text}")
    return {"table": table, "ratios": ratios}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=1000, help="sequential calls per contender per round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--big-mb", type=int, default=24, help="size of the large result (0: skip)")
    parser.add_argument("--big-rounds", type=int, default=3)
    parser.add_argument("--http", action="store_true", help="also the HTTP front against a plain SDK HTTP server")
    parser.add_argument("--http-modern", action="store_true",
                        help="also the same HTTP pair with mcp.Client (2026-07-28, stateless)")
    parser.add_argument("--no-floor", action="store_true", help="leave out the bare byte relay (tools/bench/bare_relay.py)")
    parser.add_argument("--json", help="also write the figures as JSON to this file")
    args = parser.parse_args()
    import importlib.metadata as meta

    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}, "
          f"mcp {meta.version('mcp')}; load average {os.getloadavg()[0]:.1f} (shared machine)")

    async def run() -> dict[str, Contender]:
        with tempfile.TemporaryDirectory() as raw:
            folder = Path(raw)
            (folder / "data").mkdir(mode=0o700)
            async with AsyncExitStack() as stack:
                found = await contenders(stack, folder, args.http, not args.no_floor, args.warmup, args.http_modern)
                order = list(found.values())
                for number in range(args.rounds):
                    for contender in order if number % 2 == 0 else reversed(order):
                        await burst(contender, args.calls, args.concurrency)
                    print(f"  round {number + 1}/{args.rounds} done", flush=True)
                for number in range(args.big_rounds if args.big_mb else 0):
                    for contender in order if number % 2 == 0 else reversed(order):
                        await big_result(contender, args.big_mb << 20)
                return found

    results = anyio.run(run)
    out = report(results, args.big_mb)
    out["method"] = {k: v for k, v in vars(args).items() if k != "json"}
    out["raw"] = {name: {k: v for k, v in asdict(c.figures).items() if not k.endswith("_ms")} for name, c in results.items()}
    print("\n" + json.dumps({"ratios": out["ratios"]}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
