"""Load test of the HTTP hub: many concurrent sessions of both protocol eras (2026-07-28 and the
handshake era) calling an echo tool for a bounded time. Checks that no call failed or came back
with another call's answer, that the audit log holds exactly one row per call, and that the hub's
memory stays flat (RSS sampled every second).

    .venv/bin/python tools/bench/load.py [--sessions 40] [--seconds 30]

Traffic goes to 127.0.0.1 only, to a hub this script starts and stops.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

import anyio
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.bench.common import ROOT, free_port, http_process  # noqa: E402

ECHO = str(ROOT / "tools" / "bench" / "echo_server.py")


def rss_mb(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


async def main_async(sessions: int, seconds: float, folder: Path) -> int:
    config = folder / "hub.json"
    config.write_text(json.dumps({"mcpServers": {"echo": {"command": sys.executable, "args": [ECHO]}}}))
    port = free_port()
    counts = {"ok": 0, "failed": 0, "mismatched": 0}
    per_era = {"auto": 0, "legacy": 0}
    samples: list[tuple[float, float]] = []
    async with http_process(["-m", "hub.cli", "serve", "--transport", "http", "--port", str(port), "--config", str(config),
                             "--log-level", "warning"], port, str(folder)) as (url, hub):
        deadline = time.monotonic() + seconds

        async def session(number: int) -> None:
            mode = "auto" if number % 2 == 0 else "legacy"
            async with Client(url, mode=mode) as client:
                while time.monotonic() < deadline:
                    text = uuid.uuid4().hex
                    try:
                        result = await client.call_tool("echo__echo", {"text": text})
                    except Exception:  # boundary: a load test counts failures, whatever their type
                        counts["failed"] += 1
                        continue
                    if result.is_error:
                        counts["failed"] += 1
                    elif text not in json.dumps(result.model_dump(mode="json")):
                        counts["mismatched"] += 1
                    else:
                        counts["ok"] += 1
                        per_era[mode] += 1

        async def sample_memory() -> None:
            started = time.monotonic()
            while time.monotonic() < deadline:
                samples.append((time.monotonic() - started, rss_mb(hub.pid)))
                await anyio.sleep(1.0)

        started = time.monotonic()
        async with anyio.create_task_group() as group:
            group.start_soon(sample_memory)
            for number in range(sessions):
                group.start_soon(session, number)
        elapsed = time.monotonic() - started
        await anyio.sleep(0.5)  # the audit writer drains its queue
    with sqlite3.connect(folder / "audit.sqlite") as db:
        rows = db.execute("SELECT COUNT(*) FROM audit WHERE tool = 'echo__echo'").fetchone()[0]
    calls = counts["ok"] + counts["failed"] + counts["mismatched"]
    warm = [mb for t, mb in samples if t >= min(5.0, seconds / 3)]
    growth = (warm[-1] - warm[0]) if len(warm) >= 2 else 0.0
    print(f"{sessions} sessions ({sessions - sessions // 2} of the 2026-07-28 era, {sessions // 2} handshake-era) for {elapsed:.1f}s: "
          f"{calls} calls, {calls / elapsed:.0f} calls/s; ok {counts['ok']} (2026-era {per_era['auto']}, legacy {per_era['legacy']}), "
          f"failed {counts['failed']}, answered with another call's result {counts['mismatched']}")
    print(f"audit rows {rows} for {calls} calls: {'equal' if rows == calls else 'DIFFERENT'}")
    print(f"hub RSS: start {samples[0][1]:.1f} MB, after warm-up {warm[0] if warm else float('nan'):.1f} MB, "
          f"end {samples[-1][1]:.1f} MB (growth after warm-up {growth:+.1f} MB)")
    curve = ", ".join(f"{t:.0f}s {mb:.1f}" for t, mb in samples[:: max(1, len(samples) // 8)])
    print(f"hub RSS over time (MB): {curve}")
    healthy = counts["failed"] == 0 and counts["mismatched"] == 0 and rows == calls and growth < 20
    print("PASS" if healthy else "FAIL")
    return 0 if healthy else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        return anyio.run(main_async, args.sessions, args.seconds, Path(folder))


if __name__ == "__main__":
    raise SystemExit(main())
