"""Exposed names stay within the budget, deterministically; URIs round-trip."""

from __future__ import annotations

import re

from hub.catalog.naming import exposed_name, namespaced_uri, split_uri

ANTHROPIC = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def test_plain_names_are_namespace_double_underscore_tool() -> None:
    assert exposed_name("ticketing", "search_tickets") == "ticketing__search_tickets"
    assert exposed_name("", "echo") == "echo"


def test_long_and_invalid_names_are_shortened_deterministically() -> None:
    long_tool = "a" * 100
    first = exposed_name("ns", long_tool)
    assert first == exposed_name("ns", long_tool)
    assert ANTHROPIC.match(first) and len(first) <= 64
    dotted = exposed_name("ns", "get.thing")
    assert ANTHROPIC.match(dotted) and dotted != exposed_name("ns", "get_thing")
    # Names that share a long prefix still get different exposed names.
    assert exposed_name("ns", "b" * 80 + "1") != exposed_name("ns", "b" * 80 + "2")
    # A smaller budget is honoured too.
    assert len(exposed_name("namespace", "some_reasonably_long_tool_name", budget=24)) <= 24


def test_resource_uris_round_trip() -> None:
    uri = namespaced_uri("docs", "file:///a/b.txt")
    assert uri == "mcphub://docs/file:///a/b.txt"
    assert split_uri(uri) == ("docs", "file:///a/b.txt")
    assert namespaced_uri("", "file:///x") == "file:///x"
    assert split_uri("file:///x") is None
