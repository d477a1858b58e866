"""Masking (issue 17 item 6): secrets by key name in every form they are written in, PEM private
keys, Brazilian CPF numbers, a child's stderr, and third-party loggers at debug level."""

from __future__ import annotations

import base64
import json
import string
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import assume, given, settings, strategies as st
from mcp import Client

from hub.redact import MASK, mask
from tests.conftest import ECHO, PY, start_hub_http, write_config
from tests.hub.test_hygiene import wait_ready

PEM_BODY = ["MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun", "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
            "LxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo"]
ISSUE_CASES = {
    "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY": "wJalrXUtnFEMI",
    "DB_PASSWORD=correct-horse-battery": "correct-horse",
    "SECRET_KEY=django-insecure-8f2k": "django-insecure",
    "GET /oauth/token?grant_type=x&client_secret=cs_live_123456 HTTP/1.1": "cs_live_123456",
    "Authorization: Basic dXNlcjpodW50ZXIy": "dXNlcjpodW50ZXIy",
    '{\\"password\\": \\"s3cr3t pa55\\"}': "s3cr3t",
    "cliente CPF 123.456.789-09 cadastrado": "123.456.789-09",
    "cpf=52998224725": "52998224725",
    "cliente 52998224725 cadastrado": "52998224725",
    "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(PEM_BODY) + "\n-----END RSA PRIVATE KEY-----": PEM_BODY[1][:20],
    "redis://:hunter2hunter2@cache:6379/0": "hunter2hunter2",
    "x_AKIAIOSFODNN7EXAMPLE_y": "AKIAIOSFODNN7EXAMPLE",
    '{"text": "write to ada.lovelace@example.com"}': "lovelace@example",  # the older patterns still hold
}


@pytest.mark.parametrize("text,secret", ISSUE_CASES.items(), ids=range(len(ISSUE_CASES)))
def test_issue_examples_are_masked(text: str, secret: str) -> None:
    masked = mask(text)
    assert secret not in masked and MASK in masked, masked


def test_numbers_that_are_not_secrets_survive() -> None:
    text = "order 12345678900 took 1234 ms for author=Jane; compass=north"
    assert mask(text) == text  # 12345678900 fails the CPF check digits; author/compass are no secret names


STEMS = ["secret", "password", "passwd", "passphrase", "token", "api_key", "apikey", "api-key", "access_key",
         "private_key", "credential", "auth", "authorization"]
names = st.one_of(
    st.builds(lambda pre, stem, post, case: case(pre + stem + post),
              st.sampled_from(["", "AWS_", "DB_", "client_", "x-", "MY_APP_", "github", "refresh"]), st.sampled_from(STEMS),
              st.sampled_from(["", "_KEY", "_ACCESS_KEY", "_VALUE", "-id", "s", "_file"]),
              st.sampled_from([str.lower, str.upper, str.title, str])),
    st.sampled_from(["clientSecret", "apiKey", "privateKey", "accessToken", "X-Api-Key", "DB_PASS", "pass"]),
)
BARE = string.ascii_letters + string.digits + "!#$%()*+,./:;<=>?@[]^_`{|}~-&"
bare_values = st.text(alphabet=BARE, min_size=8, max_size=40)
any_values = st.text(alphabet=st.characters(exclude_categories=("Cs", "Cc")), min_size=8, max_size=40)


def forms(name: str, bare: str, value: str) -> list[tuple[str, str]]:
    """(text, the secret as written in it) for every form a secret is written in."""
    as_json = json.dumps(value, ensure_ascii=False)[1:-1]
    escaped = json.dumps(json.dumps({name: value, "user": "bob"}, ensure_ascii=False))
    shell = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
    return [
        (f"{name}={bare}", bare),
        (f"level=info {name}={bare} user=bob", bare),
        (f'export {name}="{shell}"', shell),
        (json.dumps({"user": "bob", name: value}, ensure_ascii=False), as_json),
        (f"sent {escaped}", json.dumps(as_json)[1:-1]),
        (f"body={json.dumps(escaped)}", json.dumps(json.dumps(as_json)[1:-1])[1:-1]),
        (repr({name: value, "n": 1}), repr(value)[1:-1]),
        (f"GET /cb?state=ok&{name}={quote(value, safe='')}&next=1 HTTP/1.1", quote(value, safe="")),
        (f"{name}: {bare}", bare),
        (f"{name} = '{bare}'", bare),
        (f"Authorization: Basic {base64.b64encode(value.encode()).decode()}", base64.b64encode(value.encode()).decode()),
        (f"Authorization: Bearer {bare}", bare),
    ]


def leaked(text: str, secret: str, masked: str) -> list[str]:
    """Six-character pieces of `secret` in `masked` that the text around the secret cannot explain."""
    around = text.replace(secret, "\x00")
    pieces = {secret[i : i + 6] for i in range(max(1, len(secret) - 5))}
    return sorted(p for p in pieces if p in masked and p not in around and p not in MASK)


@settings(max_examples=60, deadline=None)
@given(name=names, bare=bare_values, value=any_values)
def test_no_secret_value_survives_in_any_form(name: str, bare: str, value: str) -> None:
    for text, secret in forms(name, bare, value):
        assume(text.count(secret) == 1)
        masked = mask(text)
        assert not leaked(text, secret, masked), (text, masked)


def test_private_key_lines_of_a_stream_are_dropped() -> None:
    from hub.redact import LineMasker

    masker = LineMasker()
    lines = ["starting", "-----BEGIN OPENSSH PRIVATE KEY-----", *PEM_BODY, "-----END OPENSSH PRIVATE KEY-----", "ready"]
    shown = [masker.line(line) for line in lines]
    assert [s for s in shown if s is not None] == ["starting", f"-----BEGIN OPENSSH PRIVATE KEY-----{MASK}", "ready"]


CHILD_SECRETS = {
    "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY": "wJalrXUtnFEMI",
    "DB_PASSWORD=correct-horse-battery": "correct-horse",
    "client_secret=cs_live_123456789": "cs_live_123456789",
    "Authorization: Basic dXNlcjpodW50ZXIy": "dXNlcjpodW50ZXIy",
    "titular CPF 123.456.789-09": "123.456.789-09",
    '{\\"password\\": \\"s3cr3t pa55\\"}': "s3cr3t",
}


@pytest.mark.anyio
async def test_child_stderr_and_debug_logging_leak_nothing(tmp_path: Path, procs: list) -> None:
    noisy = tmp_path / "noisy.txt"
    noisy.write_text("\n".join([*CHILD_SECRETS, "-----BEGIN PRIVATE KEY-----", *PEM_BODY, "-----END PRIVATE KEY-----",
                                "END-OF-SECRETS"]) + "\n")
    child = {"command": "sh", "args": ["-c", f'cat "{noisy}" >&2; exec "{PY}" "{ECHO}"']}
    config = write_config(tmp_path, {"e": child}, hub={"data_dir": str(tmp_path / "data"), "log_level": "debug"})
    url = start_hub_http(procs, config)
    wait_ready(url)
    marker = "payload-marker-7f3k"
    async with Client(url, mode="legacy") as c:
        assert (await c.call_tool("e__echo", {"text": marker})).structured_content == {"result": marker}
    procs[-1].stop()
    logs = "".join(procs[-1].stderr_lines)
    assert "stderr: END-OF-SECRETS" in logs and "stderr: DB_PASSWORD=[masked]" in logs
    for secret in [*CHILD_SECRETS.values(), *(line[:20] for line in PEM_BODY)]:
        assert secret not in logs, secret
    assert marker not in logs  # no library writes request or response payloads, even at debug level


def test_uvicorn_access_records_keep_their_shape_and_lose_their_secrets() -> None:
    """uvicorn's access formatter unpacks the record's args; masking must not turn them into None."""
    import logging as _logging

    from uvicorn.logging import AccessFormatter

    from hub.redact import mask_record

    record = _logging.LogRecord("uvicorn.access", _logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                                ("127.0.0.1:5", "GET", "/mcp?access_token=abcdefsecret123", "1.1", 200), None)
    mask_record(record)
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s').format(record)
    assert "GET /mcp?access_token=" in line and "abcdefsecret123" not in line and "200" in line


@pytest.mark.parametrize("line", [
    "export STRIPE_KEY=sk_live_51Hhunter2secret", "MYAPP_DBPASS=hunter2secret", "pgpass: hunter2secret",
    "MYSQL_PWD=hunter2secret", "PASSWORD := hunter2secret", "--password hunter2secret", "--api-key=hunter2secret",
    "<password>hunter2secret</password>", "password%3Dhunter2secret", "rk_live_hunter2secretxx",
    "AIzaSyhunter2secret1234567890abcdefghij", "signing_key=hunter2secret", "encryption_key: hunter2secret",
    "client_key=hunter2secret",
])
def test_common_secret_forms_from_real_output_are_masked(line: str) -> None:
    from hub.redact import mask

    assert "hunter2secret" not in mask(line), mask(line)


@pytest.mark.parametrize("principal,tool,secret", [
    ("ada.lovelace@example.com", "e__echo", "lovelace@example"),
    ("local", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghij"),
    ("svc", "x" * 300 + " password=hunter2secret", "hunter2secret"),  # longer than the remembered names
])
def test_the_per_call_line_masks_its_names_one_by_one(principal: str, tool: str, secret: str) -> None:
    """The per-call line skips the whole-message mask (`Premasked`): the tool, server and principal
    it carries are masked one by one instead, and a traceback logged at the same time still is."""
    import io
    import logging as _logging

    from hub.logsetup import configure_logging
    from hub.policies.audit import CALL_LINE
    from hub.redact import mask_short

    root = _logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("info")
        stream = io.StringIO()
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        calls = _logging.getLogger("hub.calls")
        for _ in range(2):  # the second time from the remembered masks
            calls.info(CALL_LINE, mask_short(tool), mask_short("srv"), mask_short(principal), "ok", None, 1.5, "rid")
        try:
            raise RuntimeError(f"boom token={secret}zz")
        except RuntimeError:
            calls.exception("failed for %s", "someone")
        text = stream.getvalue()
        assert text.count("call tool=") == 2 and "outcome=ok" in text and "request_id=rid" in text
        assert secret not in text and MASK in text
    finally:
        root.handlers[:], root.level = saved


VENDOR_KEY = "Zq8vN3kLp0Rt7Wx2Yb5"
"""A credential of no recognisable shape, as vendors issue them."""
_REPEATING_SERVER = r'''
import json, os, sys
key = os.environ["VENDOR_KEY"]
sys.stderr.write(f"warning: vendor key {key} expires soon; header token {os.environ['HEADER_TOKEN']}; args {sys.argv[1:]}\n")
sys.stderr.flush()
for line in sys.stdin:
    m = json.loads(line)
    def send(o): sys.stdout.write(json.dumps(o) + "\n"); sys.stdout.flush()
    if m.get("method") == "initialize":
        send({"jsonrpc": "2.0", "id": m["id"], "result": {"protocolVersion": m["params"]["protocolVersion"],
              "capabilities": {"tools": {}}, "serverInfo": {"name": "v", "version": "1"}}})
    elif m.get("method") == "tools/list":
        send({"jsonrpc": "2.0", "id": m["id"], "result": {"tools": [{"name": n, "inputSchema": {"type": "object"}}
                                                                      for n in ("get", "soft")]}})
    elif m.get("method") == "tools/call" and m["params"]["name"] == "soft":
        send({"jsonrpc": "2.0", "id": m["id"], "result": {"isError": True, "content": [
            {"type": "text", "text": f"vendor said: key {key} is not valid (arg key {sys.argv[2]})"}]}})
    elif m.get("method") == "tools/call":
        send({"jsonrpc": "2.0", "id": m["id"], "error": {"code": -32603, "message": f"vendor said: key {key} is not valid"}})
    elif "id" in m and "method" in m:
        send({"jsonrpc": "2.0", "id": m["id"], "result": {}})
'''


@pytest.mark.anyio
async def test_a_configured_credential_is_masked_in_whatever_sentence_a_server_repeats_it(tmp_path: Path, procs: list) -> None:
    """Masking by shape cannot know a vendor's key: the values the operator configured (`env`,
    `headers`) are masked by value in errors to callers and in the hub's log (outside review faults15)."""
    server = tmp_path / "vendor.py"
    server.write_text(_REPEATING_SERVER)
    header_token = "hdr-9f8e7d6c5b4a"
    arg_key = "ak-7Hq2Lm9Xz4Pw"
    entry = {"command": PY, "args": [str(server), "--api-key", arg_key],
             "env": {"VENDOR_KEY": VENDOR_KEY, "HEADER_TOKEN": header_token, "MODE": "production"}}
    config = write_config(tmp_path, {"vendor": entry}, hub={"data_dir": str(tmp_path / "data")})
    url = start_hub_http(procs, config)
    wait_ready(url)
    async with Client(url, mode="legacy") as c:
        result = await c.call_tool("vendor__get", {})
        soft = await c.call_tool("vendor__soft", {})  # the same words as a tool's own error (re-check 15)
    error = result.content[0].text
    assert result.is_error and "vendor said: key [masked] is not valid" in error and VENDOR_KEY not in error
    assert soft.is_error and soft.content[0].text == "vendor said: key [masked] is not valid (arg key [masked])"
    procs[-1].stop()
    logs = "".join(procs[-1].stderr_lines)
    assert "warning: vendor key [masked] expires soon" in logs
    assert VENDOR_KEY not in logs and header_token not in logs and arg_key not in logs


@pytest.mark.parametrize(("entry", "secret"), [
    ({"url": "https://api.example.com/v1?api_key=ab+cd/ef==x9Zq"}, "ab+cd/ef==x9Zq"),
    ({"url": "https://hooks.example.com/services/T0AB12CD/xoxq9Wm2Lr7Tk4Hs8Jd"}, "xoxq9Wm2Lr7Tk4Hs8Jd"),
    ({"url": "https://gh7Kq2Lm9Xz4Pw0Tb6Y@git.example.com/repo"}, "gh7Kq2Lm9Xz4Pw0Tb6Y"),
    ({"command": "docker", "args": ["run", "-e", "GITHUB_TOKEN=ghx9Tq2Lm7Zw4Pv0Rb6N", "image"]}, "ghx9Tq2Lm7Zw4Pv0Rb6N"),
    ({"url": "https://x.example.com", "headers": {"Cookie": "session=Qm9vN3kLp0Rt7Wx2Yb5; theme=dark"}}, "Qm9vN3kLp0Rt7Wx2Yb5"),
    ({"command": "srv", "args": ["--token=tk-55Hd8Qz1Vb"]}, "tk-55Hd8Qz1Vb"),
    ({"command": "srv", "args": ["--api-key", "plainpassphrase"]}, "plainpassphrase"),
    ({"command": "srv", "env": {"AWS_SECRET_ACCESS_KEY": "/k7Rq+2vLm9Xz4Pw0Tb6Yh3Nc8Fd1Gs5"}}, "/k7Rq+2vLm9Xz4Pw0Tb6Yh3Nc8Fd1Gs5"),
    # The Basic token of a URL's user info as the client sends it, which a server may echo (domains26).
    ({"url": "https://svc:Pw7-lq2Xv9@mcp.example.com/mcp"}, "c3ZjOlB3Ny1scTJYdjk="),
    ({"url": "https://svc:Pw7-lq2Xv9@mcp.example.com/mcp"}, "c3ZjOlB3Ny1scTJYdjk"),
])
def test_credentials_in_every_part_of_a_server_entry_are_masked(entry: dict, secret: str) -> None:
    """Re-check 15: a key in `args`, a URL path, a query value with `+`, a cookie, a secret starting with `/`."""
    from hub.config import parse_config
    parse_config({"mcpServers": {"s": entry}})
    for spelled in (secret, quote(secret, safe="")):
        assert spelled not in mask(f"the server said {spelled} was refused"), spelled


@pytest.mark.parametrize("setting", ["127.0.0.1", "db.internal:5432", "application/json", "1.2.3", "us-east-1a"])
def test_settings_in_a_server_entry_are_not_masked(setting: str) -> None:
    """Re-check 15: `PGHOST=127.0.0.1` masked every log line naming the hub's own address."""
    from hub.config import parse_config
    parse_config({"mcpServers": {"s": {"command": "srv", "env": {"PGHOST": setting, "ACCEPT": setting}}}})
    assert setting in mask(f"listening on {setting}") or setting == "us-east-1a"


@pytest.mark.parametrize(("name", "value", "remembered"), [
    ("VENDOR_KEY", VENDOR_KEY, True), ("ANY", "ab12cd34ef56gh78ij", True), ("ANY", "ab12cd34ef", False),
    ("REGION", "us-east-1", False), ("MODEL", "gpt-4o-mini", False), ("LANG", "en_US.UTF-8", False), ("Authorization", "Bearer t0k3n-abc", True),
    ("PASSWORD", "hunter2x", True), ("MODE", "production", False), ("HOME", "/home/ada", False),
    ("DEBUG", "true", False), ("URL", "https://api.example.com/v1", False), ("PORT", "8080", False),
    ("AUTH_MODE", "oauth", False), ("NAME", "Ada Lovelace", False),
])
def test_which_configured_values_are_remembered_as_secrets(name: str, value: str, remembered: bool) -> None:
    from hub.redact import remember_secrets
    remember_secrets([(name, value)])
    assert (value not in mask(f"said {value}!")) is remembered
