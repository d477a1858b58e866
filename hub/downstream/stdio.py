"""A stdio child process as an MCP transport, owned by the hub.

Differs from the SDK's `stdio_client` where a gateway needs it to:
- the child's stderr is read line by line into the hub's log, tagged with the server name;
- a line on stdout that is not JSON-RPC is logged and skipped, never fatal; a listing answer
  holding items the SDK cannot read is served without them (`hub.downstream.listing_repair`);
- the child gets a parent-death signal (`setpriv --pdeathsig KILL`), and its process group is
  registered with the orphan watcher (`hub.downstream.reaper`), so even a hub killed with SIGKILL
  leaves no orphan, helpers of the child included; on a normal stop stdin is closed, then SIGTERM,
  then SIGKILL go to the child's whole process group (`hub.downstream.stdio_process`);
- the moment the child exits, `on_exit(returncode, last_stderr_lines)` is called, so in-flight
  calls fail at once and the reason can be reported — also when a helper it started still holds its
  stdout open (its exit then ends the reading, `EXIT_DRAIN_S` after it, instead of the end of file);
  helpers killed with its group are reaped (`reaper.reap_group_later`), not left zombies of the hub;
- with a `JsonChannel`, the hub's own JSON requests share the pipes: lines answering them are
  taken off stdout before the SDK parses anything — in the protocol callback that read them
  (`hub.frontends.stdio.line_pipes`), so an answer completes its call without a reader task in between.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp.client.stdio import get_default_environment
from mcp.client._transport import TransportStreams
from mcp.shared.message import SessionMessage
from mcp_types import ErrorData, JSONRPCError, JSONRPCRequest, jsonrpc_message_adapter

from hub.downstream.adopted import AdoptedProcess, adopt
from hub.downstream.reaper import start_watcher, watch_group
from hub.downstream.stdio_process import LIVE_GROUPS, spawn, stop_process, wait_exit
from hub.downstream.json_channel import ID_MARKER, JsonChannel, NotSent, not_sent_error
from hub.downstream.listing_repair import ListingAnswers
from hub.pipe_size import widen_pipe
from hub.frontends.stdio.line_errors import overlong_answer, unreadable_answer
from hub.frontends.stdio.json_lines import json_object
from hub.frontends.stdio.line_pipes import BIG_LINE_BYTES, MAX_LINE_BYTES, LineQueue, connect_line_writer, pipe_file, read_lines, write_now
from hub.lifted import lifted_of, restore
from hub import placement
from hub.prestart import ChildStartError, child_argv, claim, resolve_command
from hub.redact import LineMasker

logger = logging.getLogger("hub.downstream")
JUNK_WARNINGS = 5
"""Stdout lines that are not JSON-RPC logged as warnings per connection; the rest are counted."""
JUNK_SUMMARY_EVERY = 10_000
__all__ = ["ChildStartError", "resolve_command", "stdio_child", "stop_process"]


@asynccontextmanager
async def stdio_child(
    server_name: str,
    command: str,
    args: list[str],
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    on_exit: Callable[[int | None, list[str]], None] | None = None,
    channel: JsonChannel | None = None,
    listings: ListingAnswers | None = None,
    on_log_line: Callable[[Any], None] | None = None,
) -> AsyncIterator[TransportStreams]:
    """Spawn `command args` (or adopt the child `hub.prestart` spawned for exactly that) and yield
    the (read, write) message streams of its stdio. `on_log_line(params)`: each `notifications/message`,
    as it is read — before the answers after it complete their calls here, which the SDK's handling of
    the message (a task of its own) may come after."""
    log = logging.getLogger(f"hub.downstream.{server_name}")
    prestarted = claim(server_name)
    try:
        child_env = get_default_environment() | (env or {})
        if cwd is not None and not os.path.isdir(cwd):
            raise ChildStartError(f"working directory {cwd!r} does not exist")
        argv = child_argv(resolve_command(command, child_env, cwd), args)
    except ChildStartError:
        if prestarted is not None:
            prestarted.kill()
        raise
    process: anyio.abc.Process | AdoptedProcess
    if prestarted is not None and prestarted.matches(argv, child_env, cwd):
        try:
            process = await adopt(prestarted)
        except BaseException:
            prestarted.kill()
            raise
        our_stdin, our_stdout = prestarted.stdin_fd, prestarted.stdout_fd
        log.info("adopted pid=%d command=%s (started before the hub's imports)", process.pid, command)
    else:
        if prestarted is not None:
            log.info("the pre-started pid=%d does not match the config: stopped", prestarted.process.pid)
            prestarted.kill()
        start_watcher()  # before the spawn, so the child is registered the moment its pid is known
        process, our_stdin, our_stdout = await spawn(argv, child_env, cwd, command)
        log.info("started pid=%d command=%s", process.pid, command)
    LIVE_GROUPS.add(process.pid)
    watch_group(process.pid)  # killed by the watcher if the hub dies first, even by SIGKILL (`reaper`)
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)
    stdout_lines = LineQueue()
    placed = False

    def take_stdout_line(line: bytes) -> bool:
        nonlocal placed
        if not placed:  # its first line: it has started, and moves off the CPU left to the hub (`hub.placement`)
            placed = True
            placement.serving(process.pid)
        if not line or line.isspace():
            return True  # blank lines are skipped (asked without `strip`, which copies a big line)
        # An answer to the hub's own request completes its call right here, unless earlier lines
        # still wait in the queue (then it waits its turn behind them: progress before results).
        return channel is not None and not stdout_lines and ID_MARKER in line and channel.take_answer(line)

    def take_overlong(prefix: bytes) -> None:
        # The line is skipped, the connection kept; the request it answered fails, naming the cap.
        answer = overlong_answer(prefix)
        log.warning("stdout: a line longer than the cap of %d bytes, skipped%s", MAX_LINE_BYTES,
                    "; its request fails" if answer else "")
        if answer is not None and not take_stdout_line(answer):
            stdout_lines.put(answer)

    stdout_file = pipe_file(our_stdout, "rb")
    widen_pipe(stdout_file)  # big answers cross it (`hub.pipe_size`)
    await read_lines(stdout_file, stdout_lines, take_stdout_line,
                     lambda problem: log.warning("stdout: %s; closing the connection", problem), take_overlong)
    stdin_lost = False
    stopping = False  # before any callback that reads it is registered (a child that closes its stdin at once)

    def lose_stdin() -> None:
        """The child closed its stdin (it reads no more requests) or we did: unless the hub is stopping
        it, the connection ends as when its stdout ends, and the server is restarted (outside review
        faults15: a child that closed stdin and ran on failed every call, for good)."""
        nonlocal stdin_lost
        if not stopping and not stdin_lost:
            stdin_lost = True
            # Not at once: a child that exited closes stdin and stdout together, and the lines it wrote
            # last (an answer without its newline among them) are read to the end of file first
            # (outside review recheck21h #3: closing stdout here dropped a whole last answer, in a race
            # with its end of file, since faults15's 16aff4c). A child that runs on is stopped after it.
            asyncio.get_running_loop().call_later(STDIN_LOSS_DRAIN_S, stdout_lines.close)

    stdin = await connect_line_writer(pipe_file(our_stdin, "wb"), lose_stdin)

    async def send(data: bytes) -> None:
        if stdin.is_closing():  # nothing written: the call never left the hub (`NotSent`, retryable)
            raise NotSent(f"the stdin of server {server_name!r} is closed: its process exited or closed it")
        stdin.write(data)
        await stdin.drain()

    junk = 0  # stdout lines that are not JSON-RPC so far

    def ignored(line: bytes, failed: bytes | None) -> None:
        """Log a stdout line that is not JSON-RPC: the first `JUNK_WARNINGS` as warnings, then one
        warning every `JUNK_SUMMARY_EVERY` with the count, the rest at debug level (outside review,
        faults round 7: 100,000 lines of noise were 100,000 warnings, and held the other servers up)."""
        nonlocal junk
        junk += 1
        fails = "; the request it answers fails" if failed else ""
        if junk <= JUNK_WARNINGS:
            log.warning("ignored a stdout line that is not JSON-RPC%s: %.120r%s", fails, line,
                        "; more such lines are counted, not shown" if junk == JUNK_WARNINGS else "")
        elif junk % JUNK_SUMMARY_EVERY == 0:
            log.warning("ignored %d stdout lines that are not JSON-RPC so far (the server prints to stdout, which "
                        "is the protocol's channel: it should write its logs to stderr)", junk)
        else:
            log.debug("ignored a stdout line that is not JSON-RPC%s: %.120r", fails, line)

    async def read_stdout() -> None:
        async with read_writer:
            while (line := await stdout_lines.get()) is not None:
                if channel is not None and ID_MARKER in line and await channel.accept(line):
                    continue
                if not listings.waiting and line.lstrip()[:1] != b"{" and b'"id"' not in line:
                    ignored(line, None)  # no message, and no request's id to fail early: nothing to parse
                    continue
                try:
                    message = sdk_message(line)
                except ValueError:
                    message = None
                if listings.waiting:
                    readable = message is not None
                    repaired = (await anyio.to_thread.run_sync(listings.repair, line, readable) if len(line) >= BIG_LINE_BYTES
                                else listings.repair(line, readable))  # a big listing is judged off the loop
                    if repaired is not line:
                        with suppress(ValueError):
                            message = sdk_message(repaired)
                if message is None:
                    # An answer whose id can still be read fails its request now, not at its deadline.
                    failed = unreadable_answer(line)
                    ignored(line, failed)
                    if failed is None:
                        continue
                    if ID_MARKER in failed:  # a call of the hub's own channel
                        if channel is not None:
                            await channel.accept(failed)
                        continue
                    message = jsonrpc_message_adapter.validate_json(failed, by_name=False)  # a request of the SDK session
                if on_log_line is not None and getattr(message, "method", None) == "notifications/message":
                    on_log_line(message.params)  # as the SDK will read it: escapes, NaN and all
                try:
                    await read_writer.send(SessionMessage(message))
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    break
            # Report the exit before the session sees the stream end, so the reason is known first, with
            # what it wrote to stderr as it went (read to its end, briefly: a helper may hold it open).
            returncode = await wait_exit(process, 1.0)
            if returncode is not None:
                with anyio.move_on_after(STDERR_DRAIN_S):
                    await stderr_done.wait()
            if not stopping:
                if returncode is None:  # its stdout (or stdin) ended, the process runs on: the hub stops it
                    log.warning("closed its %s but did not exit; stopping it", "stdin" if stdin_lost else "stdout")
                else:
                    log.warning("exited unexpectedly (returncode=%s)", returncode)
            if on_exit is not None and not stopping:
                # An exit the hub caused (it ended the session) is no loss: the reason it ended
                # the session (a failed discovery, a restart) stays the one reported.
                on_exit(returncode, list(last_stderr))
            if channel is not None:
                channel.close()

    async def watch_exit() -> None:
        # Its stdout ends with it, unless a helper it started holds the pipe (inherited): then its exit
        # ends the reading, once the lines it wrote before exiting have been read.
        if isinstance(process, anyio.abc.Process):
            await process.wait()
        else:  # a pre-started child's exit status is polled
            while process.returncode is None:
                await anyio.sleep(EXIT_POLL_S)
        await anyio.sleep(EXIT_DRAIN_S)
        stdout_lines.close()

    async def read_stderr() -> None:
        assert process.stderr is not None
        lines = BufferedByteReceiveStream(process.stderr)
        while True:
            try:
                line = await lines.receive_until(b"\n", 1024 * 1024)
            except anyio.DelimiterNotFound:
                continue
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError, anyio.BrokenResourceError):
                stderr_done.set()
                return
            # Masked here, not only by the log filter: the last lines also reach /healthz and
            # error messages, and a private key spans lines no single-line filter sees together.
            text = stderr_masker.line(line.decode("utf-8", errors="replace").rstrip())
            if text:
                last_stderr.append(text)
                log.info("stderr: %s", text)

    async def write_stdin() -> None:
        async with write_reader:
            async for session_message in write_reader:
                listings.sent(session_message.message)
                data = session_message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                try:
                    await send(data.encode())
                except (anyio.BrokenResourceError, OSError) as exc:
                    # Its stdin is gone (it exited, or closed it): the connection ends as when stdout ends,
                    # the exit and its stderr reported before the session sees the end (`read_stdout`).
                    # A request nothing of which was written is answered as never sent (retryable).
                    if isinstance(exc, NotSent):
                        await unsent(session_message, exc.why)
                    lose_stdin()
                    return

    async def unsent(session_message: SessionMessage, why: str) -> None:
        """Answer the SDK session's request that was never written (`not_sent_error`), so its caller is
        told so instead of "connection closed" (which may have taken effect)."""
        message = session_message.message
        if not isinstance(message, JSONRPCRequest):
            return
        answer = JSONRPCError(jsonrpc="2.0", id=message.id, error=ErrorData.model_validate(not_sent_error(why)))
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError), anyio.move_on_after(STDIN_LOSS_DRAIN_S):
            await read_writer.send(SessionMessage(answer))

    stderr_done = anyio.Event()
    listings = listings or ListingAnswers(log)
    last_stderr: deque[str] = deque(maxlen=3)
    stderr_masker = LineMasker()
    if channel is not None:
        channel.bind(send, lambda data: write_now(stdin, data))
    async with anyio.create_task_group() as tg:
        tg.start_soon(read_stdout)
        tg.start_soon(watch_exit)
        tg.start_soon(read_stderr)
        tg.start_soon(write_stdin)
        try:
            yield read_stream, write_stream
        finally:
            stopping = True
            if channel is not None:
                channel.close()
            with anyio.CancelScope(shield=True):
                await stop_process(process, log, stdin.close)
                for stream in (read_stream, write_stream, read_writer, write_reader):
                    await stream.aclose()
                stdout_lines.close()
            tg.cancel_scope.cancel()


STDIN_LOSS_DRAIN_S = 0.5
"""After a child's stdin is seen closed, how long its stdout is still read (to its end of file, when it
exited) before the connection ends (`lose_stdin`)."""
EXIT_DRAIN_S = 0.5
"""After a child exits, how long its stdout is still read (lines it wrote before exiting) if no end of
file came: a helper of it holds the pipe."""
STDERR_DRAIN_S = 0.5
"""After a child's exit, how long its stderr is read on for the lines its loss reason quotes."""
EXIT_POLL_S = 0.25
"""How often a pre-started child's exit status is polled (a child the hub spawned is waited for)."""

def sdk_message(line: bytes) -> Any:
    """A child's line as the SDK session reads it. A big line (a notification, a server's request,
    an answer to the session's own request) was parsed off the loop by its `LineReader`: the
    message is validated from that object, its lifted strings restored, instead of pydantic
    parsing the line again on the loop (157–239 ms for 24 MB). Raises ValueError as pydantic does."""
    if len(line) >= BIG_LINE_BYTES and (parsed := json_object(line)) is not None:
        result = parsed.get("result")
        lifted = lifted_of(result)
        if lifted is not None:
            parsed = {**parsed, "result": restore(result, lifted)}
        return jsonrpc_message_adapter.validate_python(parsed, by_name=False)
    return jsonrpc_message_adapter.validate_json(line, by_name=False)
