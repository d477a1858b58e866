"""Pieces the benchmarks share: a free loopback port, a server process on it, a percentile."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[2]
ENV = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
       **{k: os.environ[k] for k in ("MCP_HUB_PIPE_BYTES",) if k in os.environ}}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def http_process(args: list[str], port: int, data_dir: str) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python ARGS` serving on 127.0.0.1:PORT; yields its /mcp URL once the port accepts, and the process."""
    process = subprocess.Popen([sys.executable, *args], env={**ENV, "MCP_HUB_DATA_DIR": data_dir}, cwd=str(ROOT),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                await anyio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp", process
    finally:
        process.terminate()
        process.wait(15)


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]
