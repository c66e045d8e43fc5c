"""The console's words and formats: every string has a Vietnamese translation, Vietnam time,
Vietnamese separators, names for priorities, statuses and document types."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import hub.web
from hub.errors import REASONS
from hub.web import i18n

WEB = Path(hub.web.__file__).parent
PO = WEB / "locale" / "vi" / "LC_MESSAGES" / "messages.po"
METHOD_MAP = [("**.py", "python"), ("templates/**.html", "jinja2")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}


def _extracted() -> set:
    found = set()
    for _file, _line, message, _comments, _ctx in extract_from_dir(
            str(WEB), METHOD_MAP, OPTIONS, keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


def test_every_console_string_has_a_vietnamese_translation():
    with PO.open("rb") as f:
        catalog = read_po(f, locale="vi")
    translated = {}
    for m in catalog:
        if m.id and not m.fuzzy:
            key = m.id if isinstance(m.id, str) else tuple(m.id)
            value = m.string if isinstance(m.string, str) else m.string[0]
            translated[key] = value
    found = _extracted()
    assert len(found) > 250  # the extraction really read the code and the templates
    missing = sorted(str(k) for k in found if not translated.get(k))
    assert missing == [], missing
    # reason codes stay stable; their meanings are shown in the user's language
    assert [m for m in REASONS.values() if not translated.get(m)] == []
    i18n.set_language("vi")
    assert i18n.reason_meaning("parse.not_xml") == "dữ liệu không phải XML hợp lệ"
    i18n.set_language("en")
    assert i18n.reason_meaning("parse.not_xml") == REASONS["parse.not_xml"]


def test_vietnam_time_numbers_and_names():
    i18n.set_language("vi")
    # 17:05 UTC is 00:05 the next day in Hà Nội
    assert i18n.fmt_time(datetime(2026, 11, 30, 17, 5, tzinfo=timezone.utc)) == "01/12/2026 00:05"
    assert i18n.fmt_time(datetime(2026, 11, 30, 17, 5)) == "01/12/2026 00:05"  # naive = UTC (SQLite)
    assert i18n.fmt_date(date(2026, 3, 9)) == "09/03/2026"
    assert i18n.fmt_int(1234567) == "1.234.567" and i18n.fmt_num(1234.5) == "1.234,5"
    assert i18n.fmt_int(-1234) == "-1.234" and i18n.fmt_int(7) == "7" and i18n.fmt_int(2.5) == "2,5"
    assert [i18n.priority_name(p) for p in range(5)] == ["Thường", "Khẩn", "Thượng khẩn", "Hỏa tốc",
                                                         "Hỏa tốc hẹn giờ"]
    assert i18n.doc_type_name("1") == "Công văn" and i18n.doc_type_name("2") == "Quyết định"
    assert i18n.doc_type_name("7", "Tờ trình") == "Tờ trình" and i18n.doc_type_name("99") == "99"
    assert i18n.status_name("06") == "06 · đã hoàn thành"
    i18n.set_language("en")
    assert i18n.fmt_int(1234567) == "1,234,567" and i18n.priority_name(1) == "Urgent"
    assert i18n.fmt_time(datetime(2026, 11, 30, 17, 5, tzinfo=timezone.utc)) == "01/12/2026 00:05"
    i18n.set_language("xx")
    assert i18n.language() == "vi"  # unknown: the default


def test_whole_numbers_are_written_as_babel_writes_them():
    """fmt_int's fast path for whole numbers (the overview writes thousands) says what Babel says."""
    import random

    from babel.numbers import format_decimal

    rnd = random.Random(15)
    numbers = [0, 1, -1, 999, 1000, -1000, 10**12] + [rnd.randint(-10**10, 10**10) for _ in range(500)]
    for lang in ("vi", "en"):
        token = i18n._lang.set(lang)
        try:
            assert [i18n.fmt_int(n) for n in numbers] == [format_decimal(n, locale=lang) for n in numbers]
            assert i18n.fmt_int(None) == "—" and i18n.fmt_int(2.5) == format_decimal(2.5, locale=lang)
        finally:
            i18n._lang.reset(token)
    token = i18n._lang.set("vi")
    try:
        assert i18n.fmt_int(1234567) == "1.234.567"
    finally:
        i18n._lang.reset(token)
