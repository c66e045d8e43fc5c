"""How agencies' packages were authenticated: the overview lists the few that need attention
and the totals; /admin/authentication lists every sender, paged, by attention or by code."""

from __future__ import annotations

import re

from hub.store.engine import make_engine
from hub.store.tables import document_counts
from hub.web import authentication, overview
from tests.apienv import api_for
from tests.web.dash import Dash

G22 = "000.00.00.G22"  # Văn phòng Chính phủ in the test registry


def seeded() -> list[dict]:
    """60 senders: every seventh with SHA-1 packages, every fifth with unsigned ones, G22 the busiest."""
    rows = [{"sender": f"000.00.99.G{i:02d}", "n": 100 + i, "sha1": i if i % 7 == 0 else 0,
             "connection": 2 * i if i % 5 == 0 else 0} for i in range(1, 60)]
    return rows + [{"sender": G22, "n": 10_000, "sha1": 0, "connection": 0}]


def attention_order(rows: list[dict]) -> list[str]:
    return [r["sender"] for r in sorted(rows, key=lambda r: (-(r["sha1"] + r["connection"]), -r["n"], r["sender"]))]


def listed(text: str) -> list[str]:
    table = re.search(r"<table data-authentication>(.*?)</table>", text, re.S).group(1)
    return re.findall(r'<tr data-agency="([^"]+)">', table)


async def test_overview_lists_the_agencies_needing_attention_and_links_to_all(env):
    rows = seeded()
    engine = make_engine(env.settings.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(document_counts.delete())
            await conn.execute(document_counts.insert(), rows)
    finally:
        await engine.dispose()
    order = attention_order(rows)
    weak = [r for r in rows if r["sha1"] + r["connection"]]
    totals = (sum(r["n"] for r in rows) - sum(r["sha1"] + r["connection"] for r in rows),
              sum(r["sha1"] for r in rows), sum(r["connection"] for r in rows))
    async with env.running(), api_for(env) as api, Dash(api.base) as dash:
        await dash.admin(api.tokens["auditor"])
        status, text, _ = await dash.get("/admin")
        assert status == 200
        assert listed(text) == order[:overview.AUTH_TOP]  # SHA-1 and connection-only first, most of them first
        assert len(weak) > overview.AUTH_TOP and G22 not in listed(text)
        summary = re.sub(r"\s+", " ", re.search(r"<p class=\"small\" data-auth-totals>(.*?)</p>", text, re.S).group(1))
        assert summary == f"60 agencies: {totals[0]:,} signed, {totals[1]:,} SHA-1 (legacy), " \
                          f"{totals[2]:,} by the connection only."
        assert 'href="/admin/authentication" data-auth-all>All 60 agencies' in text

        # every agency, 50 a page, in the same order; then by code; a search by name, accents ignored
        status, text, _ = await dash.get("/admin/authentication")
        assert status == 200 and listed(text) == order[:authentication.PER_PAGE]
        assert listed(text)[len(weak)] == G22  # the busiest, but all signed: after every agency with weak packages
        assert "1–50 of 60 agencies" in text and "Page 1 of 2" in text
        status, text, _ = await dash.get("/admin/authentication?page=2")
        assert listed(text) == order[authentication.PER_PAGE:] and "51–60 of 60 agencies" in text
        status, text, _ = await dash.get("/admin/authentication?sort=code")
        assert listed(text) == sorted(r["sender"] for r in rows)[:authentication.PER_PAGE]
        status, text, _ = await dash.get("/admin/authentication?q=van+phong+chinh")
        assert listed(text) == [G22]
        tr = re.search(rf'<tr data-agency="{G22}">(.*?)</tr>', text, re.S).group(1)
        assert [re.sub(r"<[^>]+>", "", c) for c in re.findall(r'<td class="num">(.*?)</td>', tr, re.S)] == \
            ["10,000", "0", "0"]
        status, text, _ = await dash.get("/admin/authentication?q=nothing-like-it")
        assert status == 200 and "No agency matches" in text
