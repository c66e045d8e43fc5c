"""Every reason code the code can give is documented (REASONS) and listed in the README.

The codes are read from the source's syntax tree, wherever one can come from:

- raise sites and answers: ``code="…"`` / ``reason="…"`` keywords and ``error(status, "…")``;
- class defaults: ``code = "…"`` (or annotated, or ``field(default="…")``) in any class body — an
  exception class, or a refusal record such as ``hub.edxml.structure.Problem`` that is no
  exception — which any ``SomeError(message)`` or ``Problem(el, message)`` without a code gives;
- parameter defaults: ``def f(…, code="…")``;

each as a literal or as a module constant (``UNRECORDABLE = "hub.unrecordable"`` … ``reason=UNRECORDABLE``).
And at run time, every class of every hub module whose ``code`` or ``reason`` class attribute (or
dataclass field default) is a reason code, so a default the scan cannot read still counts.
"""

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import hub
from hub.errors import REASONS

ROOT = Path(__file__).resolve().parents[1]
CODE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z0-9_]+$")
NAMES = ("code", "reason")


def _constants(tree: ast.Module) -> dict[str, str]:
    """The module's ``NAME = "text"`` assignments."""
    out = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            out.update({t.id: stmt.value.value for t in stmt.targets if isinstance(t, ast.Name)})
    return out


def _value(node, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "field":
        node = next((k.value for k in node.keywords if k.arg == "default"), None)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        value = node.value
    elif isinstance(node, ast.Name):
        value = constants.get(node.id)
    else:
        return None
    return value if value is not None and CODE.match(value) else None


def codes_in(source: str, shared: dict[str, str] | None = None) -> dict[str, set[str]]:
    """{"raised": …, "class defaults": …, "parameter defaults": …} found in one module's source.
    ``shared``: the other modules' constants, for a name imported from where it is defined."""
    tree = ast.parse(source)
    constants = {**(shared or {}), **_constants(tree)}
    found = {"raised": set(), "class defaults": set(), "parameter defaults": set()}

    def add(kind, node):
        value = _value(node, constants)
        if value:
            found[kind].add(value)

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for k in node.keywords:
                if k.arg in NAMES:
                    add("raised", k.value)
            if getattr(node.func, "id", None) == "error" and len(node.args) >= 2:
                add("raised", node.args[1])
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else \
                    [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
                if any(isinstance(t, ast.Name) and t.id in NAMES for t in targets):
                    add("class defaults", stmt.value)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            positional = a.posonlyargs + a.args
            pairs = list(zip(positional[len(positional) - len(a.defaults):], a.defaults))
            pairs += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
            for arg, default in pairs:
                if arg.arg in NAMES:
                    add("parameter defaults", default)
    return found


def _scan() -> dict[str, set[str]]:
    total = {"raised": set(), "class defaults": set(), "parameter defaults": set()}
    paths = [p for p in (ROOT / "hub").rglob("*.py") if "migrations" not in p.parts]
    shared: dict[str, str] = {}  # constants defined in one module and imported by another
    for path in paths:
        shared.update(_constants(ast.parse(path.read_text(encoding="utf-8"))))
    for path in paths:
        for kind, codes in codes_in(path.read_text(encoding="utf-8"), shared).items():
            total[kind] |= codes
    return total


def test_the_scan_sees_every_kind_of_source():
    """The scanner itself: each way of giving a code, in a made-up module."""
    found = codes_in('''
GONE = "made.constant"
class Refused(Exception):
    code = "made.class_default"
class Problem:
    reason: str = "made.annotated"
    other: str = field(default="not.a_reason_name")
@dataclass
class Row:
    code: str = field(default="made.field_default")
def check(el, code="made.parameter", *, reason=GONE):
    raise Refused("x", code="made.raised")
    return error(400, "made.answer", "text"), record(reason=GONE)
''')
    assert found == {"raised": {"made.raised", "made.answer", "made.constant"},
                     "class defaults": {"made.class_default", "made.annotated", "made.field_default"},
                     "parameter defaults": {"made.parameter", "made.constant"}}


def test_every_code_in_the_source_is_documented():
    found = _scan()
    assert found["raised"] and {"parse.invalid", "usage.not_found", "schema.invalid"} <= found["class defaults"], \
        "the scan found too little: it is broken"
    assert "hub.unrecordable" in found["raised"]  # given through a module constant
    assert "signature.invalid" in found["parameter defaults"]
    assert {kind: sorted(codes - set(REASONS)) for kind, codes in found.items()} == {
        kind: [] for kind in found}


def _hub_classes() -> list[type]:
    classes = []
    for m in pkgutil.walk_packages(hub.__path__, "hub."):
        if ".migrations" in m.name:
            continue
        module = importlib.import_module(m.name)
        classes += [c for c in vars(module).values() if inspect.isclass(c) and c.__module__ == module.__name__]
    return classes


def test_every_class_default_is_documented_at_run_time():
    """Every class of the hub, exception or not, whose ``code``/``reason`` default is a reason code."""
    defaults = {}
    for cls in _hub_classes():
        values = [getattr(cls, name, None) for name in NAMES]
        if dataclasses.is_dataclass(cls):
            values += [f.default for f in dataclasses.fields(cls) if f.name in NAMES]
        for value in values:
            if isinstance(value, str) and CODE.match(value):
                defaults[f"{cls.__module__}.{cls.__qualname__}"] = value
    assert defaults["hub.edxml.structure.Problem"] == "schema.invalid"  # a refusal record, not an exception
    assert defaults["hub.audit.query.NotFound"] == "usage.not_found" and len(defaults) > 10
    assert sorted(f"{where}: {code}" for where, code in defaults.items() if code not in REASONS) == []


def test_readme_lists_every_reason_code():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [code for code in REASONS if f"`{code}`" not in readme]
    assert missing == []
