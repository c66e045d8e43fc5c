"""Layers without cycles: no module of the project imports, directly or through others, a module
that imports it back.

Every import statement counts, including those inside functions (a deferred import is still a
dependency); only ``if TYPE_CHECKING:`` blocks are left out, as the team's
import-cycle tool does (annotations, never run). ``from pkg import name``
counts as an import of ``pkg.name`` when that is a module, and of ``pkg`` (its ``__init__``)
in any case, since Python runs the package's ``__init__`` first.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hub", "adapters")

# Cycles still present, each with the change that removes it. An entry here that no longer
# matches a cycle fails the test too, so an exception cannot outlive its cycle. None today.
KNOWN_CYCLES: dict[frozenset[str], str] = {}


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for f in sorted((root / pkg).rglob("*.py")):
            if "migrations" in f.parts:
                continue
            name = ".".join(f.relative_to(root).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = f
    return found


def _absolute(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = current.split(".") if is_package else current.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def imports(source: str, current: str, is_package: bool, known: set[str]) -> set[str]:
    """The project modules ``source`` (module ``current``) imports, anywhere in its body."""
    tree = ast.parse(source)
    annotations_only = {id(n) for node in ast.walk(tree)
                        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                        for b in node.body for n in ast.walk(b)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in annotations_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, current, is_package)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != current:
                out.add(t)
    return out


def graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    known = set(mods)
    return {m: imports(f.read_text(encoding="utf-8"), m, f.name == "__init__.py", known) for m, f in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.add(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    found.append(frozenset(comp))
    return found


def test_no_import_cycles():
    found = cycles(graph(modules()))
    unexpected = [" <-> ".join(sorted(c)) for c in found if c not in KNOWN_CYCLES]
    assert not unexpected, "import cycles: " + "; ".join(unexpected)


def test_known_cycles_still_exist():
    """A listed exception whose cycle is gone must be dropped from KNOWN_CYCLES."""
    found = set(cycles(graph(modules())))
    stale = [f"{KNOWN_CYCLES[c]}: {' <-> '.join(sorted(c))}" for c in KNOWN_CYCLES if c not in found]
    assert not stale, "known cycles no longer present (remove them): " + "; ".join(stale)


def test_walker_sees_function_level_and_package_imports():
    """The walker itself: a function-level import closes a cycle, and so does ``from pkg import``."""
    known = {"p", "p.a", "p.b"}
    a = imports("def f():\n    from p.b import g\n", "p.a", False, known)
    b = imports("from . import a\n", "p.b", False, known)
    assert a == {"p.b"} and b == {"p", "p.a"}
    assert cycles({"p.a": a, "p.b": b, "p": set()}) == [frozenset({"p.a", "p.b"})]
    guarded = imports("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import p.b\n", "p.a", False, known)
    assert guarded == set()
    assert cycles({"x": {"y"}, "y": set()}) == []


def test_lower_layers_never_import_the_audit_log():
    """The audit package owns appends: the store below it never imports it, not even lazily."""
    edges = graph(modules())
    for m, targets in edges.items():
        if m.startswith("hub.store"):
            assert not {t for t in targets if t.startswith(("hub.audit", "hub.pipeline", "hub.api", "hub.registry"))}, m
