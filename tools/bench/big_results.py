"""Other callers while one caller receives a big result (issue 18 item 6, issue 23 goal 3).

    .venv/bin/python tools/bench/big_results.py [--mb 20] [--ratio-mb 24] [--kinds x,json,prose] [--rounds 2] [--fronts stdio,http]

Contenders, side by side in each round (order alternating): the SDK echo server
(`tools/bench/echo_server.py`) directly, and `mcp-hub serve` with it as its stdio child — over stdio
and over Streamable HTTP. Per round and contender: a baseline of small `echo` calls alone, then a
`--mb` MB result (`big` tool: a ~2×`--mb` MB line, text plus structuredContent) while another caller
makes an `echo` call every `--interval-ms` — on stdio the same pipe (one client owns a stdio
server), over HTTP a second session. Prints the other caller's p50/p99/max latency during the big
result against its baseline p50, and the time of a `--ratio-mb` MB result, hub / direct, for each kind of
text in `--kinds`: `x` repeated, a JSON document as text (quotes and backslashes escaped in the
line), prose in several scripts (raw UTF-8).

The clients are raw JSON-RPC in threads (a blocking pipe reader, `httpx`), so a client's own
parsing never shows up as a server's stall: a big answer is only counted, then checked after.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Protocol

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.bench.common import ENV, ROOT, free_port, percentile  # noqa: E402
from tools.bench.echo_server import big as big_text  # noqa: E402

PY = sys.executable
ECHO = str(ROOT / "tools" / "bench" / "echo_server.py")
HANDSHAKE = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}


class Peer(Protocol):
    def call(self, method: str, params: dict[str, Any]) -> list[bytes]: ...
    def close(self) -> None: ...


class StdioPeer:
    """A server process on stdio; `call` may be used from several threads at once."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        env=ENV, cwd=str(ROOT))
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[threading.Event, list[list[bytes]]]] = {}
        threading.Thread(target=self._read, daemon=True).start()
        self.call("initialize", HANDSHAKE)
        self._send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')

    def _read(self) -> None:
        """Raw reads, never joining a big line (a 40 MB join would hold this process's GIL and
        stall the other caller's thread here, not in the server)."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        pieces: list[bytes] = []
        while data := os.read(fd, 1 << 20):
            while (end := data.find(b"\n")) >= 0:
                pieces.append(data[:end + 1])
                self._deliver(pieces)
                pieces, data = [], data[end + 1:]
            if data:
                pieces.append(data)

    def _deliver(self, pieces: list[bytes]) -> None:
        head = pieces[0][:200] if len(pieces[0]) >= 200 or len(pieces) == 1 else b"".join(pieces)[:200]
        start = head.find(b'"id":')
        if start < 0:
            return
        digits = head[start + 5:].lstrip()
        end = next((i for i, c in enumerate(digits) if not chr(c).isdigit()), len(digits))
        entry = self._waiting.pop(int(digits[:end]), None) if end else None
        if entry is not None:
            entry[1].append(pieces)
            entry[0].set()

    def _send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        with self._lock:
            self.process.stdin.write(data)
            self.process.stdin.flush()

    def call(self, method: str, params: dict[str, Any]) -> list[bytes]:
        ident = next(self._ids)
        done: tuple[threading.Event, list[list[bytes]]] = (threading.Event(), [])
        self._waiting[ident] = done
        self._send(json.dumps({"jsonrpc": "2.0", "id": ident, "method": method, "params": params}).encode() + b"\n")
        if not done[0].wait(600):
            raise TimeoutError(f"no answer to {method}")
        return done[1][0]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class HttpPeer:
    """One Streamable HTTP session (handshake era) on `url`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(timeout=httpx.Timeout(30, read=600))
        self.headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        self._ids = itertools.count(1)
        answer = self.client.post(url, headers=self.headers, content=self._request("initialize", HANDSHAKE))
        answer.raise_for_status()
        self.headers["Mcp-Session-Id"] = answer.headers["mcp-session-id"]
        self.headers["Mcp-Protocol-Version"] = "2025-11-25"
        self.client.post(url, headers=self.headers, content=b'{"jsonrpc":"2.0","method":"notifications/initialized"}')

    def _request(self, method: str, params: dict[str, Any]) -> bytes:
        return json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}).encode()

    def call(self, method: str, params: dict[str, Any]) -> list[bytes]:
        """The answer's body as the pieces that brought it (an SSE stream's, unparsed)."""
        with self.client.stream("POST", self.url, headers=self.headers, content=self._request(method, params)) as answer:
            answer.raise_for_status()
            return list(answer.iter_raw())

    def close(self) -> None:
        self.client.close()


def message(pieces: list[bytes]) -> Any:
    """The JSON-RPC message in an answer's pieces (a line, or an SSE stream's `data:` lines)."""
    body = b"".join(pieces)
    if body.startswith(b"event:") or body.startswith(b"data:") or body.startswith(b"id:"):
        body = b"".join(line[5:].strip() for line in body.splitlines() if line.startswith(b"data:"))
    return json.loads(body)


def echo(peer: Peer, tool: str) -> float:
    started = time.perf_counter()
    pieces = peer.call("tools/call", {"name": tool, "arguments": {"text": "hello"}})
    assert b"hello" in b"".join(pieces), pieces[:3]
    return (time.perf_counter() - started) * 1000


def big(peer: Peer, tool: str, size: int, kind: str = "x") -> tuple[float, list[bytes]]:
    started = time.perf_counter()
    line = peer.call("tools/call", {"name": tool, "arguments": {"size": size, "kind": kind}})
    return time.perf_counter() - started, line


def others_during_big(peer: Peer, other: Peer, big_tool: str, echo_tool: str, size: int, interval_s: float) -> tuple[float, list[float]]:
    """The big call's seconds, and the other caller's echo latencies (ms) while it ran."""
    stop = threading.Event()
    latencies: list[float] = []

    def pinger() -> None:
        while not stop.is_set():
            latencies.append(echo(other, echo_tool))
            stop.wait(interval_s)

    thread = threading.Thread(target=pinger)
    thread.start()
    try:
        seconds, line = big(peer, big_tool, size)
    finally:
        stop.set()
        thread.join()
    check(line, size)
    return seconds, latencies


def check(pieces: list[bytes], size: int, kind: str = "x") -> None:
    result = message(pieces)["result"]
    assert result["content"][0]["text"] == big_text(size, kind), "the big result arrived changed or incomplete"


@contextmanager
def contenders(front: str, folder: Path) -> Iterator[dict[str, tuple[Any, Any, str, str]]]:
    """name -> (the big caller's peer, the other caller's peer, the big tool, the other caller's tool).
    Through the hub, the other caller calls another child: what is timed is the hub, not the child."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "hub.json"
    config.write_text(json.dumps({"hub": {"data_dir": str(folder / "data"), "list_wait_s": 60},
                                  "mcpServers": {"echo": {"command": PY, "args": [ECHO]},
                                                 "other": {"command": PY, "args": [ECHO]}}}))
    serve = [PY, "-m", "hub.cli", "serve", "--config", str(config), "--log-level", "warning"]
    with ExitStack() as stack:
        found: dict[str, tuple[Any, Any, str, str]] = {}
        if front == "stdio":
            direct = StdioPeer([PY, ECHO])
            stack.callback(direct.close)
            hub = StdioPeer([*serve, "--transport", "stdio"])
            stack.callback(hub.close)
            found = {"direct (stdio)": (direct, direct, "big", "echo"), "mcp-hub (stdio)": (hub, hub, "echo__big", "other__echo")}
        else:
            for name, argv, prefix in (("direct (http)", [PY, ECHO, "http"], ""),
                                       ("mcp-hub (http)", [*serve, "--transport", "http", "--port"], "echo__")):
                port = free_port()
                process = subprocess.Popen([*argv, str(port)], env={**ENV, "MCP_HUB_DATA_DIR": str(folder / "data")},
                                           cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                stack.callback(lambda p=process: (p.terminate(), p.wait(15)))
                url = f"http://127.0.0.1:{port}/mcp"
                peers = [_connect(url, process) for _ in range(2)]
                for peer in peers:
                    stack.callback(peer.close)
                found[name] = (peers[0], peers[1], prefix + "big", ("other__" if prefix else "") + "echo")
        for one, _, big_tool, echo_tool in found.values():
            _wait_for_tools(one, {big_tool, echo_tool})
        yield found


def _connect(url: str, process: subprocess.Popen[bytes]) -> HttpPeer:
    deadline = time.monotonic() + 120
    while True:
        try:
            return HttpPeer(url)
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _wait_for_tools(peer: Peer, tools: set[str]) -> None:
    deadline = time.monotonic() + 120
    while not tools <= {tool["name"] for tool in message(peer.call("tools/list", {}))["result"]["tools"]}:
        if time.monotonic() > deadline:
            raise RuntimeError("the echo server's tools never appeared")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=20, help="the big result during which other calls are timed")
    parser.add_argument("--ratio-mb", type=int, default=24, help="the big result timed hub / direct (0: skip)")
    parser.add_argument("--kinds", default="x,json,prose", help="kinds of big text timed hub / direct (echo_server.py SAMPLES)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--interval-ms", type=float, default=10)
    parser.add_argument("--baseline-calls", type=int, default=100)
    parser.add_argument("--fronts", default="stdio,http")
    args = parser.parse_args()
    figures: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for front in args.fronts.split(","):
            with contenders(front, Path(tmp) / front) as found:
                names = list(found)
                for number in range(args.rounds):
                    for name in names if number % 2 == 0 else reversed(names):
                        peer, other, big_tool, echo_tool = found[name]
                        f = figures.setdefault(name, {"base": [], "during": [], "big_s": []})
                        for _ in range(10):
                            echo(other, echo_tool)
                        f["base"] += [echo(other, echo_tool) for _ in range(args.baseline_calls)]
                        seconds, during = others_during_big(peer, other, big_tool, echo_tool, args.mb << 20,
                                                            args.interval_ms / 1000)
                        f["big_s"].append(seconds)
                        f["during"] += during
                        for kind in args.kinds.split(",") if args.ratio_mb else ():
                            seconds, line = big(peer, big_tool, args.ratio_mb << 20, kind)
                            check(line, args.ratio_mb << 20, kind)
                            f.setdefault(f"ratio_s {kind}", []).append(seconds)
                        print(f"round {number + 1} {name}: {args.mb} MB {figures[name]['big_s'][-1]:.2f} s, "
                              f"others max {max(during):.1f} ms", flush=True)
    print(f"\nother caller's echo latency (ms) while a {args.mb} MB result is relayed; {args.ratio_mb} MB result time")
    kinds = args.kinds.split(",") if args.ratio_mb else []
    print(f"{'contender':<18} {'alone p50':>9} {'during p50':>10} {'p99':>8} {'max':>8} {'n':>5} "
          f"{f'{args.mb} MB s':>8}" + "".join(f" {f'{args.ratio_mb} MB {kind} s':>14}" for kind in kinds))
    for name, f in figures.items():
        during = f["during"]
        p99 = percentile(during, 99) if len(during) >= 2 else max(during)
        print(f"{name:<18} {statistics.median(f['base']):>9.2f} {statistics.median(during):>10.2f} {p99:>8.1f} "
              f"{max(during):>8.1f} {len(during):>5} {statistics.median(f['big_s']):>8.2f}"
              + "".join(f" {statistics.median(f[f'ratio_s {kind}']):>14.2f}" for kind in kinds))
    for front in ("stdio", "http"):
        hub, direct = figures.get(f"mcp-hub ({front})"), figures.get(f"direct ({front})")
        for kind in kinds if hub and direct else ():
            ratios = [h / d for h, d in zip(hub[f"ratio_s {kind}"], direct[f"ratio_s {kind}"], strict=True)]
            print(f"{args.ratio_mb} MB {kind} result, hub / direct ({front}): {statistics.median(ratios):.2f}x "
                  f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
