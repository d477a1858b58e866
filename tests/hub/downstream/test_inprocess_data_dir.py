"""Two servers of one built-in domain keep their data apart when each has its own `data_dir`
(outside review: two built-in memory servers in one hub shared one database, silently); the same
data dir for both is allowed but warned about, and a child process cannot take `data_dir`."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import ConfigError, parse_config
from hub.hub import Hub

pytestmark = pytest.mark.anyio


async def test_each_in_process_server_keeps_its_data_in_its_own_data_dir(tmp_path: Path) -> None:
    config = parse_config({"hub": {"data_dir": str(tmp_path / "hub")}, "mcpServers": {
        "team": {"builtin": "ticketing", "data_dir": str(tmp_path / "team")},
        "personal": {"builtin": "ticketing", "data_dir": str(tmp_path / "personal")},
    }})
    assert not config.warnings
    async with Hub(config) as hub:
        made = await hub.route_call("team__create_project", {"key": "OPS"})
        assert not made.is_error, made.content
        ticket = await hub.route_call("team__create_ticket", {"project": "OPS", "title": "printer on fire"})
        assert not ticket.is_error, ticket.content
        elsewhere = await hub.route_call("personal__search_tickets", {"text": "printer"})
        assert elsewhere.is_error or elsewhere.structured_content["tickets"] == [], "the personal store saw the team's ticket"
        here = await hub.route_call("team__search_tickets", {"text": "printer"})
        assert [t["title"] for t in here.structured_content["tickets"]] == ["printer on fire"]
    assert (tmp_path / "team" / "ticketing.sqlite").exists() and (tmp_path / "personal" / "ticketing.sqlite").exists()
    assert not (tmp_path / "hub" / "ticketing.sqlite").exists()


def test_two_servers_of_one_domain_sharing_a_data_dir_are_warned_about() -> None:
    config = parse_config({"mcpServers": {"mem": {"builtin": "memory"}, "kb": {"builtin": "memory"},
                                          "own": {"builtin": "memory", "data_dir": "/tmp/own"}}})
    (warning,) = config.warnings
    assert warning.severity == "warning" and warning.path == "$.mcpServers.kb.data_dir"
    assert "'mem'" in warning.message and "share one store" in warning.message


def test_a_child_process_cannot_take_data_dir() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"mcpServers": {"s": {"command": "python", "data_dir": "/tmp/x"}}})
    assert "only in-process servers take `data_dir`" in str(raised.value)
