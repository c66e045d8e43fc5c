"""The Quá hạn page and the follow-up report (page, printable page, CSV, XLSX) on a seeded month:
the numbers are those counted independently from the seed."""

from __future__ import annotations

import csv
import io
import re
from html import unescape
from datetime import datetime

from openpyxl import load_workbook

from hub.followup.rules import VN
from hub.store.engine import make_engine
from tests.apienv import api_for
from tests.followup.seed import AGENCIES, expected_report, seed_month
from tests.web.dash import Dash

KEYS = ("received", "on_time", "late", "still_open", "open_overdue", "withdrawn")


async def test_report_page_and_exports_match_the_seeded_month(env):
    engine = make_engine(env.settings.database_url)
    try:
        seeded = await seed_month(engine, 2026, 10, n=150)  # over 50 overdue copies: several pages
    finally:
        await engine.dispose()
    today = datetime.now(VN).date()
    expected = expected_report(seeded, 2026, 10, today)
    period = "from=01%2F10%2F2026&to=31%2F10%2F2026"  # typed as shown: dd/mm/yyyy
    async with env.running(), api_for(env) as api, Dash(api.base, lang=None) as dash:
        await dash.admin(api.tokens["auditor"])
        status, text, _ = await dash.get("/admin/report?" + period)
        assert status == 200 and 'lang="vi"' in text and "Báo cáo đôn đốc" in text
        assert "Kỳ báo cáo: 01/10/2026 – 31/10/2026" in text
        for code, row in expected.items():
            tr = re.search(rf"<tr data-agency=\"{re.escape(code)}\">(.*?)</tr>", text, re.S).group(1)
            got = {k: re.sub(r"<[^>]+>", "", re.search(rf'data-k="{k}">(.*?)</td>', tr, re.S).group(1))
                   for k in KEYS}
            assert got == {k: str(row[k]) for k in KEYS}, code
            assert AGENCIES[code] in tr
        # CSV: the same numbers; median hours with a Vietnamese decimal comma
        status, body, r = await dash.get("/admin/report?" + period + "&format=csv")
        assert status == 200 and r.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff")), delimiter=";"))
        assert rows[0][:3] == ["Mã cơ quan", "Cơ quan", "Đã nhận"]
        by_code = {r[0]: r for r in rows[1:]}
        for code, row in expected.items():
            assert [int(x) for x in by_code[code][2:8]] == [row[k] for k in KEYS]
            median = row["median_handling_hours"]
            assert by_code[code][8] == ("" if median is None else f"{median:.2f}".rstrip("0").rstrip(".").replace(".", ","))
        # XLSX: real numbers under the same header
        async with dash.session.get(api.base + "/admin/report?" + period + "&format=xlsx") as r:
            assert r.status == 200 and "spreadsheetml" in r.headers["Content-Type"]
            book = load_workbook(io.BytesIO(await r.read()))
        values = list(book.active.iter_rows(values_only=True))
        start = next(i for i, v in enumerate(values) if v and v[0] == "Mã cơ quan")
        assert "01/10/2026 – 31/10/2026" in values[1][0]
        xl = {v[0]: v for v in values[start + 1:] if v and v[0]}
        for code, row in expected.items():
            assert list(xl[code][2:8]) == [row[k] for k in KEYS]
            assert xl[code][8] == row["median_handling_hours"]
        # the printable page carries the signature blocks
        status, text, _ = await dash.get("/admin/report?" + period + "&print=1")
        assert "Người lập" in text and "Thủ trưởng đơn vị" in text and 'class="grid g2 "' in text
        # Quá hạn: the seeded month's open, overdue copies by recipient, worst first
        status, text, _ = await dash.get("/admin/overdue?days=0&" + period)
        counts = {c: int(n) for c, n in re.findall(
            r'data-group="([^"]+)">.*?data-overdue-count="(\d+)"', text, re.S)}
        assert counts == {c: r["open_overdue"] for c, r in expected.items() if r["open_overdue"]}
        order = re.findall(r'data-group="([^"]+)"', text)
        assert [counts.get(c, 0) for c in order] == sorted((counts.get(c, 0) for c in order), reverse=True)
        # a filter by recipient name typed without accents
        status, text, _ = await dash.get("/admin/overdue?days=0&agency=lao+cai&" + period)
        assert set(re.findall(r'data-group="([^"]+)"', text)) <= {"000.00.00.H13"}
        # every overdue copy of the month, 50 a page, following the page's own links; then back
        total = sum(r["open_overdue"] for r in expected.values())
        rows, pages, path = [], [], "/admin/overdue?days=0&" + period
        while path:
            status, text, _ = await dash.get(path)
            assert status == 200
            assert int(re.search(r"data-total-overdue>([\d.]+)<", text).group(1).replace(".", "")) == total
            page = re.findall(r'<tr data-doc="([^"]+)" data-recipient="([^"]+)" data-late="(-?\d+)"', text)
            assert 0 < len(page) <= 50
            pages.append(page)
            rows += page
            nxt = re.search(r'<a href="([^"]+)" data-next>', text)
            path = nxt and unescape(nxt.group(1))
        assert len(pages) == -(-total // 50) > 1 and len(rows) == len(set(rows)) == total
        assert [int(late) for *_, late in rows] == sorted((int(late) for *_, late in rows), reverse=True)
        if len(pages) > 1:
            prev = unescape(re.search(r'<a href="([^"]+)" data-prev>', text).group(1))
            status, text, _ = await dash.get(prev)
            assert re.findall(r'<tr data-doc="([^"]+)" data-recipient="([^"]+)" data-late="(-?\d+)"', text) == \
                pages[-2]
        # the CSV export: every copy, streamed
        status, body, r = await dash.get("/admin/overdue?days=0&format=csv&" + period)
        assert status == 200 and r.headers["Content-Type"].startswith("text/csv") and "Content-Length" not in r.headers
        lines = list(csv.reader(io.StringIO(body.lstrip("\ufeff")), delimiter=";"))
        assert lines[0][:4] == ["Mã cơ quan", "Cơ quan", "Hạn xử lý", "Số ngày quá hạn"]
        assert sorted((x[4], x[0], x[3]) for x in lines[1:]) == sorted(rows)
