"""Warm-up against steady state: calls/s per block of 100 sequential echo calls over stdio, from the
first call after `tools/list`, direct and through mcp-hub, alternating (two rounds).

    .venv/bin/python tools/bench/steady_state.py [--blocks 12]

`hub_overhead.py` times 500 calls after 30 warm-up calls, so its sequential figures include part of
each process's warm-up; this shows how long that lasts and what the ratio is once it is over.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.bench.common import ENV, ROOT  # noqa: E402

ECHO = str(ROOT / "tools" / "bench" / "echo_server.py")


async def blocks(params: StdioServerParameters, tool: str, count: int) -> list[float]:
    async with Client(params) as client:
        await client.list_tools()
        rates = []
        for _ in range(count):
            started = time.perf_counter()
            for _ in range(100):
                await client.call_tool(tool, {"text": "hello"})
            rates.append(100 / (time.perf_counter() - started))
        return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=12)
    args = parser.parse_args()

    async def run() -> None:
        with tempfile.TemporaryDirectory() as raw:
            config = Path(raw) / "hub.json"
            config.write_text(json.dumps({"hub": {"data_dir": str(Path(raw) / "data")},
                                          "mcpServers": {"echo": {"command": sys.executable, "args": [ECHO]}}}))
            hub = StdioServerParameters(command=sys.executable, args=["-m", "hub.cli", "serve", "--transport", "stdio", "--config",
                                                                      str(config), "--log-level", "warning"], env=ENV, cwd=str(ROOT))
            direct = StdioServerParameters(command=sys.executable, args=[ECHO], env=ENV, cwd=str(ROOT))
            for _ in range(2):
                via_hub = await blocks(hub, "echo__echo", args.blocks)
                plain = await blocks(direct, "echo", args.blocks)
                print("mcp-hub", " ".join(f"{r:5.0f}" for r in via_hub))
                print("direct ", " ".join(f"{r:5.0f}" for r in plain))
                tail = args.blocks // 2
                print(f"  first 500 calls: hub/direct {statistics.mean(via_hub[:5]) / statistics.mean(plain[:5]):.2f}x; "
                      f"last {tail} blocks (steady state): {statistics.median(via_hub[-tail:]) / statistics.median(plain[-tail:]):.2f}x",
                      flush=True)

    anyio.run(run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
