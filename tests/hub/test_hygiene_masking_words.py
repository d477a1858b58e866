"""Masking keeps prose that only looks like a secret's `name: value` (outside review console round 7:
the hub's own "serving … without authentication: anyone who can reach it …" warning was logged as
"… authentication: [masked] who can reach it …"), and still masks every secret written after such a
name. The other masking cases are in `test_hygiene_masking.py`."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.redact import MASK, mask
from tests.conftest import Proc, hub_command, write_config

WARNING = "serving on 0.0.0.0 without authentication: anyone who can reach it can call every tool"

KEPT = [
    WARNING,
    "authenticated=true",
    "user authenticated: alice",
    "mutual authentication: Disabled for this listener",
]

MASKED = {  # text: the secret that must not survive
    "authentication: Basic dXNlcjpodW50ZXIy": "dXNlcjpodW50ZXIy",
    "Authentication: Bearer abcdefgh12345": "abcdefgh12345",
    "authentication: token hunter2hunter2": "hunter2hunter2",
    "authentication=s3cr3t-value": "s3cr3t-value",
    "authentication: JBSWYDPEHPKPXPQQ": "JBSWYDPEHPKPXPQQ",  # capitals: a code, not a word
    "authentication: hunterTwo": "hunterTwo",
    '{"authentication": "required"}': "required",  # quoted: masked as before
    "token_authentication: plainword": "plainword",  # another stem in the name: masked as before
    "authentication_key=plainword": "plainword",
    "SMTP_AUTHENTICATION=letmein": "letmein",  # re-check: an identifier holding the word may hold a password
    "AUTHENTICATION=letmein": "letmein",
    "x-authentication: letmein": "letmein",
    "authenticationKey=plainword": "plainword",
    "authenticator: plainword": "plainword",
    "auth: plainword": "plainword",
    "x-auth-token: plainword": "plainword",
    "password: plainword": "plainword",
}


@pytest.mark.parametrize("text", KEPT)
def test_prose_after_an_authentication_word_is_kept(text: str) -> None:
    assert mask(text) == text


@pytest.mark.parametrize("text,secret", MASKED.items(), ids=range(len(MASKED)))
def test_secrets_after_such_words_are_still_masked(text: str, secret: str) -> None:
    masked = mask(text)
    assert secret not in masked and MASK in masked, masked


def test_the_hubs_own_warning_is_logged_whole(tmp_path: Path, procs: list) -> None:
    # 127.0.0.2: not a name the hub counts as loopback, so it warns, yet reachable from this machine only.
    config = write_config(tmp_path, {}, hub={"data_dir": str(tmp_path / "data")})
    proc = Proc(hub_command(config, "--transport", "http", "--host", "127.0.0.2", "--port", "0"))
    procs.append(proc)
    line = proc.wait_for_line(r"without authentication").string
    assert "without authentication: anyone who can reach it can call every tool" in line, line
    assert MASK not in line
