"""Every reason code the code can give is documented (REASONS) and listed in the README:
the codes passed at raise sites (``code="…"``) and the class defaults (``code = "…"`` on an
exception class, which any ``raise SomeError(message)`` without a code gives)."""

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import hub
from hub.errors import REASONS, HubError

ROOT = Path(__file__).resolve().parents[1]
PATTERN = re.compile(r'(?:(?:code|reason)=|error\(\d+, )["\']([a-z_]+\.[a-z_]+)["\']')


def _class_defaults(tree: ast.AST) -> set[str]:
    """``code = "x.y"`` (or annotated) assigned in a class body."""
    found = set()
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        for stmt in cls.body:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] \
                if isinstance(stmt, ast.AnnAssign) else []
            value = getattr(stmt, "value", None)
            if any(isinstance(t, ast.Name) and t.id in ("code", "reason") for t in targets) \
                    and isinstance(value, ast.Constant) and isinstance(value.value, str) and "." in value.value:
                found.add(value.value)
    return found


def _exception_classes() -> set[type]:
    for m in pkgutil.walk_packages(hub.__path__, "hub."):
        if ".migrations" not in m.name:
            importlib.import_module(m.name)
    seen, todo = {HubError}, [HubError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return seen


def test_every_raised_code_is_documented():
    raised = set()
    for path in (ROOT / "hub").rglob("*.py"):
        raised |= set(PATTERN.findall(path.read_text(encoding="utf-8")))
    assert raised, "the pattern found nothing: the test itself is broken"
    assert sorted(raised - set(REASONS)) == []


def test_every_class_default_code_is_documented():
    defaults = set()
    for path in (ROOT / "hub").rglob("*.py"):
        defaults |= _class_defaults(ast.parse(path.read_text(encoding="utf-8")))
    assert {"parse.invalid", "usage.not_found"} <= defaults, "the scan found no class defaults: it is broken"
    assert sorted(defaults - set(REASONS)) == []
    # and at run time, every exception class of the hierarchy, wherever it is defined
    classes = _exception_classes()
    assert len(classes) > 9  # hub.errors' own nine and the ones other modules define
    assert sorted(f"{c.__module__}.{c.__qualname__}: {c.code}" for c in classes if c.code not in REASONS) == []


def test_readme_lists_every_reason_code():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [code for code in REASONS if f"`{code}`" not in readme]
    assert missing == []
