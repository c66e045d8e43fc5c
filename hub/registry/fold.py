"""Accent- and case-folded text for searching Vietnamese names alike on PostgreSQL and SQLite.

``fold("UBND tỉnh Nghệ An") == fold("nghe an") == fold("NGHỆ AN")``: Unicode NFD, combining marks
removed, đ/Đ → d, casefolded, runs of white space as one space. The registry keeps the folded
name in ``agencies.name_folded`` (computed here, in Python, on every write) so that a plain
``LIKE`` finds it on either database, whatever form (precomposed or decomposed) was typed.
"""

from __future__ import annotations

import unicodedata


def fold(text: str | None) -> str:
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    stripped = stripped.replace("đ", "d").replace("Đ", "D")
    return " ".join(stripped.casefold().split())
