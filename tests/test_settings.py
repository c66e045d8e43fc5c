"""Settings: the README's table lists every variable the code reads, and a bad value is one line
naming the variable and what it expects (exit 2 from the CLI, no traceback)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from hub import cli
from hub.errors import UsageError
from hub.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def readme_variables() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("### Settings (environment)", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `HUB_")]
    return {name for row in rows for name in re.findall(r"`(HUB_[A-Z0-9_]+)`", row.split("|")[1])}


def model_variables() -> set[str]:
    return {info.validation_alias for info in Settings.model_fields.values()}


def reads_in(source: str) -> set[str]:
    """Names read by ``os.environ.get("X")``, ``os.environ["X"]``, ``os.getenv("X")`` in ``source``."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        name = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            if ast.unparse(node.func) in ("os.environ.get", "os.getenv", "environ.get", "getenv"):
                name = node.args[0].value
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) in ("os.environ", "environ") \
                and isinstance(node.slice, ast.Constant):
            name = node.slice.value
        if isinstance(name, str):
            names.add(name)
    return names


def direct_reads() -> dict[str, set[str]]:
    """Every variable read directly anywhere in hub/ and adapters/, with the files reading it."""
    found: dict[str, set[str]] = {}
    for pkg in ("hub", "adapters"):
        for f in sorted((ROOT / pkg).rglob("*.py")):
            for name in reads_in(f.read_text(encoding="utf-8")):
                found.setdefault(name, set()).add(str(f.relative_to(ROOT)))
    return found


def test_readme_table_lists_every_variable_the_code_reads():
    code = model_variables() | set(direct_reads())
    table = readme_variables()
    assert code - table == set(), f"read by the code, missing from README's settings table: {sorted(code - table)}"
    assert table - code == set(), f"in README's settings table, read by nothing: {sorted(table - code)}"


def test_direct_reads_are_the_documented_few():
    """Everything else goes through Settings: HUB_DEBUG must work when Settings itself fails,
    the pure edXML core does not import settings (HUB_SCHEMA_DIR), and two places ask whether
    HUB_DATABASE_URL was set at all."""
    assert set(direct_reads()) == {"HUB_DEBUG", "HUB_SCHEMA_DIR", "HUB_DATABASE_URL"}, direct_reads()


def test_the_scan_sees_each_form_of_read():
    src = ('import os\nfrom os import environ\nos.environ.get("HUB_A")\nos.getenv("HUB_B", "x")\n'
           'os.environ["HUB_C"]\ndef f():\n    return environ.get("HUB_D")\nos.environ.get(name)\n')
    assert reads_in(src) == {"HUB_A", "HUB_B", "HUB_C", "HUB_D"}


def test_values_parse_and_empty_means_default(tmp_path):
    s = Settings.from_env({"HUB_DATA_DIR": str(tmp_path), "HUB_AUDIT": "off", "HUB_ALLOW_SHA1": "yes",
                           "HUB_PREFETCH": "12", "HUB_SEAL_SECONDS": "2.5", "HUB_HTTP_PORT": "",
                           "HUB_DATABASE_URL": "postgresql://hub@db/hub"})
    assert (s.audit, s.allow_sha1, s.prefetch, s.seal_seconds, s.http_port) == (False, True, 12, 2.5, 8080)
    assert s.database_url == "postgresql+asyncpg://hub@db/hub"
    assert s.key_file == tmp_path / "pki" / "000.00.99.G22.key"
    assert Settings.from_env({"HUB_DATA_DIR": str(tmp_path)}).database_url == f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"


def test_overrides_win_over_the_environment(tmp_path):
    s = Settings.from_env({"HUB_PREFETCH": "12", "HUB_DATA_DIR": "/nowhere"}, prefetch=3, data_dir=tmp_path)
    assert (s.prefetch, s.data_dir) == (3, tmp_path)
    assert s.replace(prefetch=5).prefetch == 5 and s.prefetch == 3


@pytest.mark.parametrize("name, value, says", [
    ("HUB_PREFETCH", "lots", "HUB_PREFETCH='lots' is not a whole number; unset it for the default (256)"),
    ("HUB_PREFETCH", "0", "HUB_PREFETCH='0' is not a number >= 1"),
    ("HUB_AUDIT", "maybe", "HUB_AUDIT='maybe' is not on or off"),
    ("HUB_ALLOW_SHA1", "sure", "HUB_ALLOW_SHA1='sure' is not on or off"),
    ("HUB_SEAL_SECONDS", "soon", "HUB_SEAL_SECONDS='soon' is not a number; unset it for the default (10.0)"),
    ("HUB_HTTP_PORT", "70000", "HUB_HTTP_PORT='70000' is not a number <= 65535"),
])
def test_a_bad_value_names_the_variable_and_what_it_expects(name, value, says):
    with pytest.raises(UsageError) as e:
        Settings.from_env({name: value})
    assert says in e.value.message


def test_cli_bad_setting_is_one_line_exit_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HUB_AUDIT", "maybe")
    monkeypatch.delenv("HUB_DEBUG", raising=False)
    assert cli.main(["agency", "list"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "HUB_AUDIT='maybe' is not on or off" in err[0], err
