"""Every reason code the code can give is documented (REASONS) and listed in the README."""

import re
from pathlib import Path

from hub.errors import REASONS

ROOT = Path(__file__).resolve().parents[1]
PATTERN = re.compile(r'(?:(?:code|reason)=|error\(\d+, )["\']([a-z_]+\.[a-z_]+)["\']')


def test_every_raised_code_is_documented():
    raised = set()
    for path in (ROOT / "hub").rglob("*.py"):
        raised |= set(PATTERN.findall(path.read_text(encoding="utf-8")))
    assert raised, "the pattern found nothing: the test itself is broken"
    assert sorted(raised - set(REASONS)) == []


def test_readme_lists_every_reason_code():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [code for code in REASONS if f"`{code}`" not in readme]
    assert missing == []
