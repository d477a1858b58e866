"""The audit policy's per-call log line (`hub.policies.audit.CALL_LINE`): a call that succeeded is
logged at DEBUG (its audit row is the record), every other outcome at INFO."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hub.config import parse_config
from hub.hub import Hub, UnknownTool
from hub.store.base import AuditFilter
from tests.conftest import echo_stdio

pytestmark = pytest.mark.anyio


def call_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "hub.calls" and r.getMessage().startswith("call tool=")]


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
async def test_a_succeeding_call_is_logged_at_debug_and_the_others_at_info(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, level: int) -> None:
    caplog.set_level(level, logger="hub.calls")
    async with Hub(parse_config({"hub": {"data_dir": str(tmp_path)}, "mcpServers": {"e": echo_stdio()}})) as hub:
        ok = await hub.route_call("e__echo", {"text": "hi"})
        failed = await hub.route_call("e__fail", {})
        invalid = await hub.route_call("e__add", {"a": "not a number", "b": 1})
        with pytest.raises(UnknownTool):  # each front answers it as its `not_found` result
            await hub.route_call("e__no_such_tool", {})
        assert hub.audit_log is not None
        hub.audit_log.flush()
        rows = {row["tool"]: row["outcome"] for row in hub.audit_log.table.audit_query(AuditFilter())}
    assert not ok.is_error and failed.is_error and invalid.is_error
    lines = call_lines(caplog)
    outcomes = {text.split(" ")[1].removeprefix("tool="): (levelno, text.split("outcome=")[1].split(" ")[0]) for levelno, text in lines}
    assert outcomes.pop("e__fail") == (logging.INFO, "tool_error")
    assert outcomes.pop("e__add") == (logging.INFO, "error")
    assert outcomes.pop(next(name for name in outcomes if "no_such_tool" in name)) == (logging.INFO, "denied")
    if level == logging.DEBUG:
        assert outcomes.pop("e__echo") == (logging.DEBUG, "ok")
    assert outcomes == {}, "a succeeding call leaves no line at INFO"
    assert rows["e__echo"] == "ok", "the audit log keeps every call, whatever the log level"
