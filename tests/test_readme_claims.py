"""The README's claims point at the tests that back them, and those tests exist.

Every test reference in README.md — a file (``tests/api/test_roles.py``) or a test in it
(``tests/api/test_roles.py::test_every_route_every_role``) — names a file of this repository and,
with ``::name``, a test function defined in that file. And every claim of the sections that make
them ("How it works", "Signature profiles", "Statuses…", "HTTP API", the console, the audit log)
carries at least one reference.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
REF = re.compile(r"\b(tests/[\w/.-]+?\.py)(?:::(\w+))?")
CLAIM_SECTIONS = ("## How it works", "### Signature profiles", "### Statuses, recalls and business types",
                  "## HTTP API", "## The operators' console", "## The audit log")


def references(text: str) -> list[tuple[str, str | None]]:
    return [(path, name or None) for path, name in REF.findall(text)]


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_every_referenced_test_exists():
    refs = references(README)
    assert len({r for r in refs if r[1]}) >= 40, "the README names too few tests: the pattern is broken"
    missing = []
    for path, name in refs:
        f = ROOT / path
        if not f.is_file():
            missing.append(f"{path} (no such file)")
        elif name is not None and name not in _functions(f):
            missing.append(f"{path}::{name} (no such test in the file)")
        elif name is not None and not name.startswith("test_"):
            missing.append(f"{path}::{name} (not a test)")
    assert missing == []


def _section(title: str) -> str:
    start = README.index("\n" + title)
    level = title.split(" ", 1)[0]
    rest = README[start + 1:]
    ends = [m.start() for m in re.finditer(r"^#{1,%d} " % len(level), rest, re.M) if m.start() > 0]
    return rest[:ends[0]] if ends else rest


def _bullets(section: str) -> list[str]:
    """Top-level ``- `` items of a section (with their continuation lines)."""
    items, current = [], None
    for line in section.splitlines():
        if line.startswith("- "):
            current = [line]
            items.append(current)
        elif current is not None and line.startswith("  "):
            current.append(line)
        else:
            current = None
    return ["\n".join(i) for i in items]


def test_every_claim_points_at_a_test():
    unbacked = []
    for title in CLAIM_SECTIONS:
        bullets = _bullets(_section(title))
        assert bullets, title
        for b in bullets:
            if not references(b) and "see below" not in b:
                unbacked.append(f"{title}: {b[:100]}")
    assert unbacked == []


def test_the_checks_catch_a_wrong_reference():
    assert references("x (`tests/api/test_roles.py::test_nope`) and tests/none.py") == [
        ("tests/api/test_roles.py", "test_nope"), ("tests/none.py", None)]
    assert "test_nope" not in _functions(ROOT / "tests/api/test_roles.py")
