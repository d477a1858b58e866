"""The layout the architecture promises (issue 18): hub/ never imports servers/ — domains register
themselves through entry points (hub/domains.py) — and no two modules import each other, directly or
around a circle (lazy imports inside functions count; imports under `if TYPE_CHECKING:` or in a
`__main__` block do not)."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import hub.domains
from hub.cli import build_parser, main
from hub.config import parse_config
from hub.domains import DOMAINS_GROUP, RegistryError, domain_names, load_command, load_domain
from hub.downstream.inprocess import InProcessLoadError, load_server_object

ROOT = Path(__file__).resolve().parents[2]
BUILTIN = ["accounting", "calendar", "hris", "memory", "ticketing"]
# Circles known and being removed by their owners; each entry names who and how.
KNOWN_CYCLES: list[frozenset[str]] = []


@functools.cache
def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in ("hub", "servers"):
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path) -> Iterator[tuple[str, str, int]]:
    """(imported name, its module or package, line) for every import outside `if TYPE_CHECKING:`;
    `from a.b import c` is `a.b.c` when c is a module, else `a.b`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _statements(_parsed(path).body):
        if isinstance(node, ast.Import):
            yield from ((alias.name, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                yield f"{base}.{alias.name}", base, node.lineno


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement, nested ones too (lazy imports in functions count), except the bodies of
    `if TYPE_CHECKING:` and `if __name__ == "__main__":` (a script's, never run on import);
    expressions are not visited (imports are statements)."""
    for node in body:
        yield node
        if isinstance(node, ast.If) and ("TYPE_CHECKING" in (test := ast.unparse(node.test)) or "__main__" in test):
            yield from _statements(node.orelse)
            continue
        for field in ("body", "orelse", "finalbody"):
            yield from _statements(getattr(node, field, None) or [])
        for handler in getattr(node, "handlers", None) or []:
            yield from _statements(handler.body)
        for case in getattr(node, "cases", None) or []:
            yield from _statements(case.body)


@functools.cache
def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_bytes(), str(path))


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = (full if full in modules else base for full, base, _ in _imports(name, path))
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_hub_never_imports_servers() -> None:
    offenders = [f"{path.relative_to(ROOT)}:{line} imports {target}"
                 for name, path in _modules().items() if name.split(".")[0] == "hub"
                 for _, target, line in _imports(name, path) if target == "servers" or target.startswith("servers.")]
    assert offenders == [], "hub/ must reach domains through hub.domains (entry points):\n" + "\n".join(sorted(set(offenders)))


def test_no_import_circles() -> None:
    cycles = [sorted(c) for c in _cycles(_graph()) if c not in KNOWN_CYCLES]
    assert cycles == [], f"modules importing each other (break the circle): {cycles}"


def test_the_cycle_finder_finds_circles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_registry_lists_and_loads_the_builtin_domains() -> None:
    assert domain_names() == BUILTIN
    for name in BUILTIN:
        factory = load_domain(name)
        assert callable(factory) and factory.__module__ == f"servers.{name}.server"
    for name in ("server", "events", "memory"):
        assert load_command(name).help


def test_an_unknown_or_broken_domain_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RegistryError, match=r"unknown built-in domain 'payroll' \(known: accounting, calendar, hris, memory, ticketing\)"):
        load_domain("payroll")
    config = parse_config({"mcpServers": {"p": {"builtin": "payroll"}}}).servers[0]
    with pytest.raises(InProcessLoadError, match="known: accounting, calendar, hris, memory, ticketing"):
        load_server_object(config)
    broken = EntryPoint(name="broken", value="no_such_package_here.server:create_server", group=DOMAINS_GROUP)
    monkeypatch.setattr(hub.domains, "_registered", lambda group: {"broken": broken})
    with pytest.raises(RegistryError, match=r"'broken' is registered as 'no_such_package_here.server:create_server' but cannot be loaded"):
        load_domain("broken")


def test_the_cli_lists_the_contributed_commands(capsys: pytest.CaptureFixture[str]) -> None:
    shown = build_parser().format_help()
    assert all(name in shown for name in ("server", "events", "memory", "serve"))
    assert main(["server", "payroll"]) == 2
    assert "unknown built-in domain 'payroll'" in capsys.readouterr().err
