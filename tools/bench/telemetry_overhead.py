"""What `hub.telemetry` costs per call: sequential `tools/call`s of the echo fixture (a stdio child)
through `Hub.route_call` and through the express path the stdio front takes, in calls/s.

    .venv/bin/python tools/bench/telemetry_overhead.py [--calls 2000] [--rounds 5]
    # "before": the same script against another checkout of the hub (e.g. `git archive HEAD`):
    .venv/bin/python tools/bench/telemetry_overhead.py --root /tmp/before --modes off

Modes: `off` (the default config), `on` (spans made and handed to an exporter that drops them, so
the figure is the hub's own cost, not a collector's). The median over the rounds is printed; on a
shared 2-core machine compare figures from one sitting only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def _setup(root: Path) -> None:
    sys.path.insert(0, str(root))


async def _rate(mode: str, calls: int, rounds: int, express: bool) -> float:
    from hub.config import parse_config
    from hub.hub import Hub

    echo = str(Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "echo_server.py")
    config: dict[str, Any] = {"mcpServers": {"e": {"command": sys.executable, "args": [echo]}}}
    kwargs: dict[str, Any] = {}
    if mode == "on":
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

        class Drop(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        config["hub"] = {"telemetry": {"enabled": True}}
        kwargs["span_exporter"] = Drop()
    rates = []
    async with Hub(parse_config(config), **kwargs) as hub:
        local = hub.access.local
        for _ in range(rounds + 1):  # the first round warms up
            started = time.perf_counter()
            for i in range(calls):
                if express:
                    answered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                    started_call = hub.start_express("e__echo", {"text": "x"}, local, answered.set_result,
                                                     lambda coro: asyncio.ensure_future(_relay(coro, answered)))
                    if started_call is None:
                        await hub.route_call("e__echo", {"text": "x"}, principal=local, wire=True)
                    else:
                        await answered
                else:
                    await hub.route_call("e__echo", {"text": "x"})
            rates.append(calls / (time.perf_counter() - started))
    return statistics.median(rates[1:])


async def _relay(coro: Any, answered: asyncio.Future[Any]) -> None:
    answered.set_result(await coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--modes", default="off,on")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    args = parser.parse_args()
    _setup(args.root)
    for mode in args.modes.split(","):
        for express in (False, True):
            rate = asyncio.run(_rate(mode, args.calls, args.rounds, express))
            print(f"telemetry={mode:<3} path={'stdio-front' if express else 'route_call':<11} {rate:8.0f} calls/s")


if __name__ == "__main__":
    main()
