"""The audit search page past the count's bound: "more than N entries", and paging on."""

from __future__ import annotations

import re

import sqlalchemy as sa

from hub.audit import query
from hub.audit.records import append_rows, record_row
from hub.store.engine import make_engine
from tests.apienv import api_for
from tests.web.dash import Dash

SENDER = "000.00.00.G77"


async def _refusals(url: str, n: int = 60) -> None:
    """``n`` refusals of SENDER's packages in the audit log."""
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await append_rows(conn, [record_row("package.refused", sender=SENDER, document_id=f"{SENDER},{i}",
                                                reason="schema.invalid") for i in range(n)])
    finally:
        await engine.dispose()


async def test_a_total_past_the_bound_says_more_than_and_pages_on(env, monkeypatch):
    await _refusals(env.settings.database_url)
    monkeypatch.setattr(query, "COUNT_CAP", 3)  # a page of 50 counts at most 50 past its start: 60 is "more"
    async with env.running(), api_for(env) as api, Dash(api.base) as dash:
        await dash.admin(api.tokens["auditor"])
        status, text, _ = await dash.get(f"/admin/audit?sender={SENDER}")
        assert status == 200
        assert re.search(r'<b data-total="50" data-more>more than 50 entries</b>', text)
        assert "Page 1 of more than 1" in text and f"sender={SENDER.replace(',', '%2C')}&amp;page=2" in text
        assert len(re.findall(r"<tr data-seq=", text)) == 50
        status, text, _ = await dash.get(f"/admin/audit?sender={SENDER}&page=2")  # counted to 100: exact
        assert '<b data-total="60">60 entries</b>' in text and "Page 2 of 2" in text
        assert len(re.findall(r"<tr data-seq=", text)) == 10
        monkeypatch.undo()
        status, text, _ = await dash.get(f"/admin/audit?sender={SENDER}")
        assert '<b data-total="60">60 entries</b>' in text and "Page 1 of 2" in text


async def test_a_count_that_runs_out_of_time_shows_the_page_and_says_so(real_env, monkeypatch):
    """On PostgreSQL a bounded count also stops at ``COUNT_MS``: how many entries it reads before
    the bound depends on where the matches lie in the index the planner picked (a common part of
    a DocumentId can read millions). The page is shown all the same, its total a lower bound."""
    from hub.web import audit as page

    await _refusals(real_env.settings.database_url)
    conditions = page.conditions
    # every matching entry costs 2 ms to test: the page's 50 take 100 ms, its count 120 ms
    monkeypatch.setattr(page, "conditions", lambda p: conditions(p) + [sa.text("pg_sleep(0.002) IS NOT NULL")])
    monkeypatch.setattr(query, "COUNT_MS", 30)
    async with real_env.running(), api_for(real_env) as api, Dash(api.base) as dash:
        await dash.admin(api.tokens["auditor"])
        status, text, _ = await dash.get(f"/admin/audit?sender={SENDER}")
        assert status == 200 and len(re.findall(r"<tr data-seq=", text)) == 50
        assert re.search(r'<b data-total="50" data-more>more than 50 entries</b>', text)
        assert "data-count-stopped>too many to count quickly" in text and "counted up to" not in text
        assert f"sender={SENDER.replace(',', '%2C')}&amp;page=2" in text
        status, text, _ = await dash.get(f"/admin/audit?sender={SENDER}&page=2")  # 10 left: the page ends them
        assert '<b data-total="60">60 entries</b>' in text and "data-count-stopped" not in text
        assert len(re.findall(r"<tr data-seq=", text)) == 10
        monkeypatch.setattr(query, "COUNT_MS", 10_000)
        status, text, _ = await dash.get(f"/admin/audit?sender={SENDER}")
        assert '<b data-total="60">60 entries</b>' in text and "Page 1 of 2" in text
