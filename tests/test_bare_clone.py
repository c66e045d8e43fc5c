"""The suite carries its own data: a clone of the repository at HEAD, alone in an empty folder
(no ``../shared`` beside it), runs the document tests and they pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.timeout(600)
def test_document_tests_pass_on_a_bare_clone(tmp_path):
    head = _git("rev-parse", "HEAD")
    empty = tmp_path / "empty"
    empty.mkdir()
    clone = empty / "edxml-hub"
    _git("clone", "--quiet", "--no-checkout", "--no-hardlinks", str(REPO), str(clone), cwd=empty)
    _git("checkout", "--quiet", "--detach", head, cwd=clone)
    assert [p.name for p in empty.iterdir()] == ["edxml-hub"]  # nothing beside the clone
    assert not (clone / ".venv").exists()  # only what is committed

    # The installed venv's python, with the clone's own code first on the path (not the
    # editable install of this checkout): `python -m` puts the working directory first.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    where = subprocess.run([sys.executable, "-c", "import hub; print(hub.__file__)"],
                           cwd=clone, env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(clone), where.stdout

    # On this machine ../shared may well exist elsewhere (an absolute path would still find it),
    # so the run also records every file the tests open outside the clone, Python and /tmp
    # (``-n 0``: in this one process, where the audit hook watches, not in xdist workers).
    outside = tmp_path / "outside.txt"
    p = subprocess.run([sys.executable, "-c", _WATCHED_PYTEST, str(outside), "-q", "-n", "0", "-p", "no:cacheprovider",
                        "tests/edxml"], cwd=clone, env=env, capture_output=True, text=True, timeout=540)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    summary = out.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    assert "skipped" not in summary, summary  # a missing sample must not turn into skips
    assert outside.read_text() == "", f"the tests read files outside the repository:\n{outside.read_text()}"


# pytest under an audit hook that lists files opened outside the clone (cwd), the Python
# installation, the temporary folder and the system's own directories.
_WATCHED_PYTEST = """
import os, sys, tempfile
report = sys.argv.pop(1)
allowed = tuple(os.path.realpath(p) + os.sep for p in (
    os.getcwd(), sys.prefix, sys.base_prefix, sys.exec_prefix, tempfile.gettempdir(),
    "/usr", "/lib", "/etc", "/dev", "/proc", "/sys"))
seen = set()

def hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes)):
        path = os.path.realpath(os.fsdecode(args[0]))
        if not (path + os.sep).startswith(allowed):
            seen.add(path)

sys.addaudithook(hook)
import pytest
rc = pytest.main(sys.argv[1:])
with open(report, "w") as f:
    f.write("".join(p + "\\n" for p in sorted(seen)))
sys.exit(rc)
"""
