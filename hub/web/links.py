"""Links inside the console: path segments and query strings, percent-encoded."""

from __future__ import annotations

from urllib.parse import quote, urlencode


def url_path(*segments: str) -> str:
    """``/admin/...`` with each segment percent-encoded (slashes inside a segment too)."""
    return "/" + "/".join(quote(str(s), safe="") for s in segments)


def url_query(path: str, **params) -> str:
    items = {k: v for k, v in params.items() if v not in (None, "")}
    return path + ("?" + urlencode(items) if items else "")
