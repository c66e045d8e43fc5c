"""Links inside the console: path segments and query strings, percent-encoded."""

from __future__ import annotations

from urllib.parse import quote, urlencode


def url_path(*segments: str) -> str:
    """``/admin/...`` with each segment percent-encoded (slashes inside a segment too)."""
    return "/" + "/".join(quote(str(s), safe="") for s in segments)


def url_query(path: str, **params) -> str:
    items = {k: v for k, v in params.items() if v not in (None, "")}
    return path + ("?" + urlencode(items) if items else "")


def pager(path: str, page_no: int, total: int, shown: int, per_page: int, **kept) -> dict:
    """What a paged list's template shows: the page count, the rows' first and last number on
    this page (0 when empty) and the links to the pages before and after (``kept``: the query's
    other parameters)."""
    first = (page_no - 1) * per_page + 1 if shown else 0
    return {"page_no": page_no, "pages": max(1, -(-total // per_page)), "first": first,
            "last": first + shown - 1 if shown else 0,
            "prev_url": url_query(path, **kept, page=page_no - 1), "next_url": url_query(path, **kept, page=page_no + 1)}
