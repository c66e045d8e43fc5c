"""Agency codes ``NNN.NN.NN.Xnn`` (QCVN 102:2016), read right to left.

The last group is level 1 (``G``/``H`` + two digits), then levels 2, 3 and 4; ``000``/``00``
mean "no lower level". The parent of a code zeroes its leftmost non-zero group:
``000.46.24.H44`` → ``000.00.24.H44`` → ``000.00.00.H44``.
"""

from __future__ import annotations

import re

from hub.errors import UsageError

CODE_RE = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$")


def is_valid(code: str) -> bool:
    return bool(CODE_RE.match(code or ""))


def check(code: str, what: str = "agency code") -> str:
    code = (code or "").strip()
    if not is_valid(code):
        raise UsageError(
            f"{what} {code!r} is malformed: expected NNN.NN.NN.Xnn, e.g. 000.00.00.G22 (Government Office) "
            "or 000.00.00.H41 (Nghệ An province)",
            code="usage.agency_code",
        )
    return code


def parent(code: str) -> str | None:
    """The next ancestor up the hierarchy, or ``None`` for a level-1 code."""
    groups = code.split(".")
    for i in range(3):
        if int(groups[i]) != 0:
            groups[i] = "0" * len(groups[i])
            return ".".join(groups)
    return None


def ancestors(code: str) -> list[str]:
    out = []
    p = parent(code)
    while p is not None:
        out.append(p)
        p = parent(p)
    return out

