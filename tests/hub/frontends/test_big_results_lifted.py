"""`hub.lifted`: the long strings of a big line, lifted out and put back, mean exactly what the line
said and are spelled as it spelled them; a line JSON would refuse is never lifted."""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.frontends.stdio.json_lines import json_line, parse_big
import hub.lifted as lifted_module
from hub.lifted import SPLICE_SCOPE_KEY, hold, lift, lifted_of, restore, splice, splice_held
from hub.wire import WireResult

MIN = 64  # a small lifting threshold, so examples stay small
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=200)


def spelled(text: str, ascii_only: bool) -> bytes:
    """`text` as a JSON string, spelled one of two ways a server might (escaped or raw UTF-8)."""
    return json.dumps(text, ensure_ascii=ascii_only).encode()


@settings(max_examples=40, deadline=None)
@given(parts=st.lists(st.tuples(texts, st.booleans()), min_size=1, max_size=6), long_text=texts, ascii_only=st.booleans())
def test_lift_restore_and_splice_give_back_the_line(parts: list[tuple[str, bool]], long_text: str, ascii_only: bool) -> None:
    long_text = long_text * (MIN // max(1, len(long_text)) + 2) or "x" * (MIN + 1)
    items = [spelled(text, a) for text, a in parts] + [spelled(long_text, ascii_only)]
    line = b'{"jsonrpc":"2.0","id":"hub-1","result":{"content":[' + b",".join(
        b'{"type":"text","text":' + item + b"}" for item in items) + b'],"isError":false}}'
    lifted = lift(line, MIN)
    if lifted is None:  # its longest string, spelled, was still under the threshold
        assert len(spelled(long_text, ascii_only)) - 2 < MIN
        return
    skeleton, strings = lifted
    assert restore(orjson.loads(skeleton), strings) == json.loads(line)
    written = b"".join(bytes(piece) for piece in splice(orjson.dumps(orjson.loads(skeleton)), strings))
    assert json.loads(written) == json.loads(line)
    assert spelled(long_text, ascii_only) in written, "a lifted string goes out as the line spelled it"


def test_strings_json_refuses_are_not_lifted() -> None:
    long = b"x" * 100
    for bad in (b"\\q", b"\t", b"\xff", b"\\u12", b"\\"):
        assert lift(b'{"a":"' + long + bad + long + b'"}', MIN) is None
    assert lift(b'{"a":"' + long + b'\\\\' + long + b'"}', MIN) is not None  # an escaped backslash is fine


escape_heavy = st.text(st.sampled_from(['"', "\\", "\n", "\t", "\u2028", "\U0001f600", "\u00e9", "a", " ", "/", "\x7f"]),
                       min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(before=escape_heavy, long_text=escape_heavy, after=escape_heavy, ascii_only=st.booleans(),
       piece=st.integers(min_value=1, max_value=48), sliced=st.booleans())
def test_a_string_read_a_slice_at_a_time_means_what_json_reads(before: str, long_text: str, after: str, ascii_only: bool,
                                                              piece: int, sliced: bool) -> None:
    """Escapes (quotes, backslashes, surrogate pairs) and UTF-8 wherever a slice ends: where the
    string closes, and what it says, are what `json` reads; `sliced` forces orjson's slices from the
    first escaped quote on (a JSON document returned as text)."""
    long_text = long_text * (MIN // len(long_text) + 1)
    line = (b'{"jsonrpc":"2.0","id":"hub-1","result":{"content":[{"type":"text","text":' + spelled(before, ascii_only) +
            b'},{"type":"text","text":' + spelled(long_text, ascii_only) + b'}],"structuredContent":{"t":' +
            spelled(long_text + after, not ascii_only) + b'}}}')
    with patch.object(lifted_module, "_PIECE", piece), patch.object(lifted_module, "ESCAPED_QUOTES_LOOKED_AT", 0 if sliced else 16):
        lifted = lift(line, MIN)
    if lifted is None:  # no place to end a slice, or a run of backslashes longer than is walked in Python: parsed whole
        assert piece < 48 or b"\\" * (lifted_module.BACKSLASH_RUN_LOOKED_AT + 1) in line
        return
    skeleton, strings = lifted
    assert restore(orjson.loads(skeleton), strings) == json.loads(line)
    written = b"".join(bytes(part) for part in splice(orjson.dumps(orjson.loads(skeleton)), strings))
    assert json.loads(written) == json.loads(line) and spelled(long_text, ascii_only) in written


@pytest.mark.parametrize("piece", [1, 5, 64, 1 << 20])
@pytest.mark.parametrize("sliced", [False, True])
@pytest.mark.parametrize("bad", [b"\\q", b"\t", b"\x01", b"\xff", b"\xc3", b"\\u12x", b"\\ud800", b"\\udc00\\ud800"])
def test_text_json_refuses_is_never_lifted_wherever_a_slice_ends(piece: int, sliced: bool, bad: bytes) -> None:
    """A bad escape, a control byte, broken UTF-8 or an unpaired surrogate, before or after escaped
    quotes: the line is parsed whole (which refuses it), never relayed as lifted text."""
    long = b'ab\\"c\\\\' * 40
    for text in (long + bad + long, bad + long, long + bad):
        with patch.object(lifted_module, "_PIECE", piece), patch.object(lifted_module, "ESCAPED_QUOTES_LOOKED_AT", 0 if sliced else 16):
            assert lift(b'{"a":"' + text + b'","b":1}', MIN) is None, text


@pytest.mark.parametrize("piece", [3, 64, 1 << 20])
def test_a_repeated_string_is_checked_once_and_a_near_repeat_in_full(piece: int) -> None:
    """A tool's text repeated as its structuredContent is compared with the string already checked,
    not checked again; a string of the same length that differs anywhere is checked itself."""
    text = "caf\u00e9 \u6771\u4eac ".encode() * 20
    with patch.object(lifted_module, "_PIECE", piece):
        assert lift(b'{"a":"' + text + b'","b":"' + text + b'"}', MIN) is not None
        for at in (0, len(text) // 2, len(text) - 1):
            broken = text[:at] + b"\x01" + text[at + 1:]
            assert lift(b'{"a":"' + text + b'","b":"' + broken + b'"}', MIN) is None
            assert lift(b'{"a":"' + text + b'","b":"' + text[:at] + b"\xff" + text[at + 1:] + b'"}', MIN) is None


@pytest.mark.parametrize("text", [b"\\\\" * 300_000, b"\\\\" * 300_000 + b'\\"', b"ab" + b"\\\\" * 300_000 + b"cd", b'\\"' * 300_000])
def test_a_text_of_backslash_runs_is_read_as_json_reads_it(text: bytes) -> None:
    """Runs of backslashes longer than the hub walks in Python: the line is parsed whole (or read
    by orjson's slices), and means what `json` reads."""
    line = b'{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"' + text + b'"}]}}'
    _, message = parse_big(bytearray(line))
    body = message["result"]
    assert (restore(body, lifted_of(body)) if lifted_of(body) else body) == json.loads(line)["result"]


def test_a_line_of_many_short_escaped_strings_is_parsed_whole_and_read_right() -> None:
    """A table of records beside a long text: walking 5,000 strings of 40 escaped quotes each in
    Python cost 1.1 s, parsing the line 50 ms; past the scan's budget the line is parsed whole."""
    record = json.dumps({"a": 'say "hi" ' * 20})
    line = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "x" * 100_000}],
                                                             "structuredContent": {"rows": [record] * 5_000}}}).encode()
    assert lift(line) is None
    _, message = parse_big(bytearray(line))
    assert message == json.loads(line)


@pytest.mark.parametrize("space", [b"", b" ", b"\n" * 300])
def test_a_long_key_stays_in_the_skeleton(space: bytes) -> None:
    """A key of 64 KiB or more is not lifted (restore reads values only: a lifted key reached the
    client as a placeholder); a long value beside it still is."""
    key = b"k" * (MIN + 10)
    line = b'{"result":{"content":[{"type":"text","text":"' + b"x" * (MIN + 10) + b'"}],"structuredContent":{"' + key + b'"' + space + b':"' + key + b'"}}}'
    skeleton, strings = lift(line, MIN)
    assert len(strings.spans) == 2 and key in skeleton
    assert restore(orjson.loads(skeleton), strings) == json.loads(line)


def test_the_in_place_check_of_a_long_ascii_string_reads_all_of_it() -> None:
    """Past the first slices too: a control byte or a non-ASCII byte deep in a long string sends
    it to the full check (which refuses the first, decodes the second); DEL is allowed as JSON allows it."""
    long = b"x" * (9 << 20)
    for at in (0, 5 << 20, len(long) - 1):
        with_control = long[:at] + b"\x07" + long[at + 1:]
        assert lift(b'{"a":"' + with_control + b'"}') is None
    assert lift(b'{"a":"' + long[: 6 << 20] + "\u00e9".encode() + long[6 << 20:] + b'"}') is not None
    assert lift(b'{"a":"' + long + b"\x7f" + b'"}') is not None


def test_a_big_result_is_read_as_a_skeleton_and_restored_on_use() -> None:
    text = "caf\u00e9 \"q\" " * 200_000
    line = json_line({"jsonrpc": "2.0", "id": "hub-7", "result": {"content": [{"type": "text", "text": text}],
                                                               "structuredContent": {"result": text}}})[:-1]
    read, message = parse_big(bytearray(line))
    assert read == line
    body = message["result"]
    assert lifted_of(body) is not None and len(orjson.dumps(body)) < 1000, "only the skeleton was parsed"
    result = WireResult(body)
    assert result.is_error is False and result.body == json.loads(line)["result"]


def test_a_big_line_that_is_no_result_is_parsed_whole() -> None:
    line = json_line({"jsonrpc": "2.0", "id": 3, "method": "sampling/createMessage", "params": {"text": "y" * 2_000_000}})[:-1]
    assert parse_big(bytearray(line))[1]["params"]["text"] == "y" * 2_000_000


def serve_through_splice(app: Any) -> tuple[list[dict], dict]:
    """Run `app` under the HTTP front's middleware once; the messages it sent and the scope it saw."""
    import anyio

    from hub.frontends.http.splice import SpliceLifted

    sent: list[dict] = []
    scope: dict = {"type": "http"}

    async def send(message: dict) -> None:
        sent.append(message)

    anyio.run(SpliceLifted(app), scope, None, send)
    return sent, scope


def test_splice_lifted_writes_held_strings_into_a_json_response_and_fixes_its_length() -> None:
    """The HTTP front's middleware, on a JSON response (Content-Length set) holding a placeholder."""
    from hub.frontends.http.splice import PIECE_BYTES

    text = b"\\u00e9\\/" * (PIECE_BYTES // 3)  # longer than one body message, spelled with escapes
    line = b'{"result":{"content":[{"type":"text","text":"' + text + b'"}]}}'
    lifted = lift(line)
    assert lifted is not None
    skeleton, strings = lifted

    async def app(scope: dict, receive: object, send: Any) -> None:
        assert scope[SPLICE_SCOPE_KEY] is True
        hold(strings)  # as `hub.wire.sdk_result` does for a request through the middleware
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(skeleton)).encode())]})
        await send({"type": "http.response.body", "body": skeleton})

    sent, _ = serve_through_splice(app)
    body = b"".join(m["body"] for m in sent[1:])
    assert body == line and dict(sent[0]["headers"])[b"content-length"] == str(len(line)).encode()
    assert len(sent) > 2 and all(m["more_body"] for m in sent[1:-1]) and not sent[-1]["more_body"]
    assert splice_held(skeleton)[1] == b"", "spliced strings are let go (written once)"


def test_a_forged_or_malformed_placeholder_is_written_empty_and_never_splices_another_result() -> None:
    """A caller who learnt the process's token still cannot name another result's text: each big
    line's number is random (it was a counter: a second session spliced the first one's result into
    its own answer); a malformed placeholder is written empty (it failed the response with a 500);
    the held text stays for the answer it belongs to."""
    from hub.lifted import PLACEHOLDER_MARK

    secret = b"SECRET-" * 20
    line = b'{"result":{"content":[{"type":"text","text":"' + secret + b'"}]}}'
    skeleton, strings = lift(line, MIN)
    other = lift(line, MIN)[1]
    assert abs(strings.ident - other.ident) > 1 << 20, "numbers are random, not a counter"
    hold(strings)
    mark = PLACEHOLDER_MARK
    guesses = [mark + b'%d.0"' % (strings.ident + step) for step in (-2, -1, 1, 2)]
    forged = [*guesses, mark + b'%d.x"' % strings.ident, mark + b'%d.7"' % strings.ident, mark + b'99999999999999999999999.0"']
    body = b'{"echo":[' + b",".join(forged) + b"]}"

    async def attacker(scope: dict, receive: object, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    sent, _ = serve_through_splice(attacker)
    written = b"".join(m["body"] for m in sent[1:])
    assert json.loads(written) == {"echo": [""] * len(forged)} and b"SECRET" not in written and mark not in written
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(written)).encode()
    assert b"".join(bytes(p) for p in splice_held(skeleton)) == line, "the owner's answer still gets its text"


def test_held_text_is_let_go_past_the_byte_cap_oldest_first() -> None:
    """Answers never written (the client left) cannot pile up: past `MAX_HELD_BYTES` the oldest is let go."""
    lines = [lift(b'{"a":"' + bytes([65 + n]) * 200 + b'"}', MIN) for n in range(3)]
    with patch.object(lifted_module, "MAX_HELD_BYTES", 500):
        for _, strings in lines:
            hold(strings)
    assert splice_held(lines[0][0])[1] == b"" and splice_held(lines[2][0])[1] == b"C" * 200


@pytest.mark.parametrize("message", [
    {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "n\u00e9\\\"" * 400_000}},
    {"jsonrpc": "2.0", "id": 7, "method": "sampling/createMessage", "params": {"maxTokens": 5, "messages": [
        {"role": "user", "content": {"type": "text", "text": "s\u00e9" * 600_000}}]}},
    {"jsonrpc": "2.0", "id": 8, "result": {"content": [{"type": "text", "text": "r\u00e9\"" * 500_000}],
                                           "structuredContent": {"result": "r\u00e9\"" * 500_000}}},
    {"jsonrpc": "2.0", "id": 9, "error": {"code": -32000, "message": "e" * 1_200_000}},
])
def test_a_big_line_from_a_child_reaches_the_sdk_session_as_pydantic_reads_it(message: dict) -> None:
    """A big line the SDK session reads (a notification, a server's request, an answer to the
    session's own request) is validated from the object read off the loop, lifted strings
    restored: the same message pydantic gives parsing the line itself (on the loop, ~0.2 s for 24 MB)."""
    from mcp_types import jsonrpc_message_adapter

    from hub.downstream.stdio import sdk_message
    from hub.frontends.stdio.json_lines import remember_parsed

    line = json_line(message)[:-1]
    assert len(line) > 1 << 20
    read, parsed = parse_big(bytearray(line))
    remember_parsed(read, parsed)  # as the `LineReader` does before handing the line on
    assert sdk_message(read) == jsonrpc_message_adapter.validate_json(line, by_name=False)
