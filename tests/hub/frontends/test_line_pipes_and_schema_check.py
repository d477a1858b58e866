"""The pieces under the fast path on their own: line framing on a pipe (`hub.frontends.stdio.line_pipes`) and the
compiled first check of arguments (`hub.catalog.schema_check`)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import jsonschema
import pytest

from hub.frontends.stdio.json_lines import json_line, json_object
from hub.frontends.stdio.line_pipes import (
    BIG_LINE_BYTES,
    ID_PREFIX_BYTES,
    WRITE_NOW_LIMIT,
    LineQueue,
    LineReader,
    connect_line_writer,
    pipe_file,
    read_lines,
    write_now,
)
from hub.catalog.schema_check import fast_check
from hub.lifted import lifted_of, restore

pytestmark = pytest.mark.anyio


def test_line_reader_frames_lines_across_and_within_reads() -> None:
    lines: list[bytes] = []
    ends: list[str | None] = []
    reader = LineReader(lines.append, ends.append, max_line=32)
    for chunk in (b'{"a":1}\n', b'{"b"', b':2}\n{"c":3}\n{"d"', b":4}\n\n", b"last"):
        reader.data_received(chunk)
    assert lines == [b'{"a":1}', b'{"b":2}', b'{"c":3}', b'{"d":4}', b""]
    reader.eof_received()  # a last line without its newline is still delivered
    reader.connection_lost(None)
    assert lines[-1] == b"last" and ends == [None]


@pytest.mark.parametrize("line", [
    b'{"jsonrpc":"2.0","id":7,"params":{"text":"h\xc3\xa9llo \xe2\x9c\x93","n":-3,"x":1.5e-7,"ok":true,"none":null}}',
    b'{"id": 123456789012345678901234567890, "small": 9223372036854775807}',  # beyond 64 bits: json reads it
    b'{"big": -98765432109876543210, "f": 0.1234567890123456789}',
    b'{"a": NaN, "b": Infinity}',  # not JSON, but json accepts it and so did the hub
    b'{"pair": "\\ud83d\\ude00", "escaped": "\\\\ud800"}',  # a whole pair; a backslash then "ud800"
])
def test_json_lines_mean_what_json_reads(line: bytes) -> None:
    import json

    expected = json.loads(line.decode())
    assert repr(json_object(line)) == repr(expected)  # repr: NaN != NaN, and 1 == 1.0 would hide a float
    if "NaN" not in line.decode():
        assert json.loads(json_line(expected)) == expected and json_line(expected).endswith(b"\n")


@pytest.mark.parametrize("line", [b'{"lone": "\\ud800"}', b'{"a": ["x\\udfff"]}', b'{"deep": ' + b"[" * 3000 + b"]" * 3000 + b"}"])
def test_json_no_peer_can_read_is_not_an_object(line: bytes) -> None:
    """An unpaired surrogate escape (`json` reads it into a string that cannot be encoded; orjson
    and the SDK refuse it) or nesting past the parsers' depth: not a message (`line_errors`
    answers it by its id)."""
    assert json_object(line) is None


@pytest.mark.parametrize("line", [b"[1, 2]", b"not json", b"\xff\xfe{}", b'"a string"', b""])
def test_what_is_not_a_json_object_is_none(line: bytes) -> None:
    assert json_object(line) is None


def test_line_reader_stops_at_an_overlong_line() -> None:
    lines: list[bytes] = []
    ends: list[str | None] = []
    closed: list[bool] = []

    class Transport:
        def close(self) -> None:
            closed.append(True)

    reader = LineReader(lines.append, ends.append, max_line=8)
    reader.transport = Transport()  # type: ignore[assignment]
    reader.data_received(b"ok\n" + b"x" * 20)
    reader.data_received(b"\nmore\n")  # nothing after the overlong line can be framed
    assert lines == [b"ok"] and closed == [True]
    assert ends and ends[0] is not None and "longer than 8 bytes" in ends[0]


class PausableTransport:
    """What `LineReader` asks of its transport while a big line is parsed off the loop."""

    def __init__(self) -> None:
        self.reading = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return False


async def until(condition: Callable[[], bool], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_a_big_line_in_many_reads_arrives_whole_and_in_order_with_its_neighbours() -> None:
    """A line past `BIG_LINE_BYTES` is collected as its reads arrive and parsed off the loop; the
    lines around it, even in the same read as its end, keep their order and bytes."""
    big = json_line({"jsonrpc": "2.0", "id": 2, "result": {"content": [{"type": "text", "text": "x\u00e9\\" * 600_000}]}})[:-1]
    assert len(big) > 2 * BIG_LINE_BYTES
    lines: list[bytes] = []
    reader = LineReader(lines.append, lambda problem: None)
    reader.transport = PausableTransport()  # type: ignore[assignment]
    stream = b'{"id":1}\n' + big + b'\n{"id":3}\n{"id"'
    for at in range(0, len(stream), 65_536 + 7):  # reads that end anywhere, as a pipe's do
        reader.data_received(stream[at:at + 65_536 + 7])
    reader.data_received(b':4}\n')
    await until(lambda: len(lines) == 4)
    assert lines[0] == b'{"id":1}' and bytes(lines[1]) == big and lines[2:] == [b'{"id":3}', b'{"id":4}']
    body = json_object(lines[1])["result"]  # read off the loop: its long text lifted out, given back on use
    assert lifted_of(body) is not None and restore(body, lifted_of(body))["content"][0]["text"] == "x\u00e9\\" * 600_000
    assert reader.transport.reading  # type: ignore[attr-defined]


async def test_a_big_last_line_without_newline_is_parsed_off_the_loop_and_ends_the_pipe_after_it() -> None:
    """At the end of the pipe a big last line (no newline) is parsed in a worker like any big line
    (it was parsed on the loop: ~0.4 s for 24 MB), a small last line behind a big one being parsed
    keeps its place, and the end is reported after both."""
    big = json_line({"jsonrpc": "2.0", "id": 2, "result": {"content": [{"type": "text", "text": "y" * (3 * BIG_LINE_BYTES)}]}})[:-1]
    for tail in (b"", b'\n{"id":3}'):
        events: list[object] = []
        reader = LineReader(events.append, lambda problem: events.append(("end", problem)))
        reader.transport = PausableTransport()  # type: ignore[assignment]
        stream = big + tail
        for at in range(0, len(stream), 300_000):
            reader.data_received(stream[at:at + 300_000])
        reader.eof_received()
        reader.connection_lost(None)
        await until(lambda: ("end", None) in events)
        lines = [bytes(e) for e in events[:-1]]  # type: ignore[arg-type]
        assert lines == ([big] if not tail else [big, b'{"id":3}']) and events[-1] == ("end", None)
        body = json_object(events[0])["result"]  # type: ignore[arg-type, index]
        assert lifted_of(body) is not None, "parsed off the loop (lifted), not on it"


async def test_an_overlong_line_collected_in_reads_is_skipped_and_the_next_line_read() -> None:
    lines: list[bytes] = []
    overlong: list[bytes] = []
    reader = LineReader(lines.append, lambda problem: None, max_line=BIG_LINE_BYTES + 100_000, on_overlong=overlong.append)
    reader.transport = PausableTransport()  # type: ignore[assignment]
    stream = b'{"id":9,' + b" " * (BIG_LINE_BYTES + 200_000) + b'}\n{"id":10}\n'
    for at in range(0, len(stream), 50_000):
        reader.data_received(stream[at:at + 50_000])
    await until(lambda: bool(lines))
    assert overlong == [stream[:ID_PREFIX_BYTES]] and lines == [b'{"id":10}']


async def test_line_queue_keeps_order_and_pauses_a_real_pipe() -> None:
    read_fd, write_fd = os.pipe()
    queue = LineQueue(high=4)
    problems: list[str] = []
    await read_lines(pipe_file(read_fd, "rb"), queue, lambda line: line == b"taken", problems.append)
    with pipe_file(write_fd, "wb") as writer:
        writer.write(b"taken\n" + b"".join(b"%d\n" % n for n in range(10)))
    await until(lambda: queue.reader.transport is not None and not queue.reader.transport.is_reading())  # paused at 4 waiting
    assert len(queue._lines) >= 4  # noqa: SLF001 — at least the high-water mark waits once reading paused
    got = []
    while (line := await queue.get()) is not None:
        got.append(int(line))
    assert got == list(range(10)) and problems == []  # the taken line never reached the queue


async def test_write_now_writes_until_the_reader_falls_behind() -> None:
    read_fd, write_fd = os.pipe()
    writer = await connect_line_writer(pipe_file(write_fd, "wb"))
    line = b"x" * 4095 + b"\n"
    accepted = 0
    while write_now(writer, line):  # the pipe (64 KiB) fills, then asyncio's buffer up to the limit
        accepted += 1
        assert accepted < 1000, "write_now never reported the pipe backed up"
    assert writer.transport.get_write_buffer_size() >= WRITE_NOW_LIMIT
    # Refused lines were not written: what the reader gets is exactly the accepted lines.
    reader = pipe_file(read_fd, "rb")
    received = 0
    while received < accepted * len(line):
        chunk = await asyncio.get_running_loop().run_in_executor(None, reader.read, 65536)
        received += len(chunk)
        await asyncio.sleep(0)  # let the transport flush its buffer into the pipe
    assert received == accepted * len(line)
    assert write_now(writer, line)  # drained: writes go straight through again
    writer.close()
    reader.close()


SIMPLE = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}, "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}}},
          "required": ["n"], "$defs": {"tag": {"type": "string", "maxLength": 5}}, "additionalProperties": False}


@pytest.mark.parametrize("arguments", [{"n": 1}, {"n": 2.0, "tags": ["a"]}, {"n": 0}, {"n": True}, {}, {"n": 1, "x": 1},
                                       {"n": 1, "tags": ["toolong"]}, {"n": 10**30}])
def test_fast_check_agrees_with_jsonschema(arguments: dict) -> None:
    check = fast_check(SIMPLE)
    assert check is not None
    assert check(arguments) == jsonschema.Draft202012Validator(SIMPLE).is_valid(arguments)


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"s": {"type": "string", "pattern": "^\\d+$"}}},
    {"type": "object", "patternProperties": {"^x": {"type": "integer"}}},
    {"type": "object", "properties": {"r": {"$ref": "https://example.com/schema.json"}}},
])
def test_schemas_where_the_validators_could_disagree_get_no_fast_check(schema: dict) -> None:
    assert fast_check(schema) is None
