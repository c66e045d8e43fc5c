"""hub.api's modules import each other without a cycle: the app assembles the routes, the route
modules share hub.api.state and hub.api.endpoint, and nothing below imports what is above it.
Walks every import (also those inside functions) of the package's source files."""

from __future__ import annotations

import ast
from pathlib import Path

import hub.api

PACKAGE = Path(hub.api.__file__).parent


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # from hub.api import admin
    return {name for name in found if name.startswith("hub.api.")}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if nxt in graph and nxt not in state:
                found = visit(nxt, path + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [])
            if found:
                return found
    return None


def test_no_import_cycle_in_hub_api():
    graph = {f"hub.api.{p.stem}": _imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    graph = {m: {i for i in deps if i in graph} for m, deps in graph.items()}
    assert graph["hub.api.app"] >= {"hub.api.state", "hub.api.routes"}  # the walk sees real imports
    assert _cycle(graph) is None, _cycle(graph)


def test_the_walk_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
