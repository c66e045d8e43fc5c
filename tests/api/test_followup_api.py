"""Deadline follow-up in the admin API and as a Prometheus gauge, on real RabbitMQ + PostgreSQL
and on the embedded defaults: the same numbers as the seeded month counted independently."""

from __future__ import annotations

from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from hub.followup.rules import VN
from hub.store.engine import make_engine
from tests.apienv import api_for
from tests.followup.seed import AGENCIES, expected_report, seed_month


async def test_report_overdue_and_gauge(env):
    engine = make_engine(env.settings.database_url)
    try:
        seeded = await seed_month(engine, 2026, 10)
    finally:
        await engine.dispose()
    today = datetime.now(VN).date()
    expected = expected_report(seeded, 2026, 10, today)
    async with env.running(), api_for(env) as api:
        status, body = await api.call("GET", "/api/v1/admin/followup/report?from=2026-10-01&to=2026-10-31",
                                      "auditor")
        assert status == 200, body
        assert (body["from"], body["to"]) == ("2026-10-01", "2026-10-31")
        got = {r.pop("agency"): r for r in body["agencies"]}
        assert {c: r.pop("name") for c, r in got.items()} == AGENCIES
        assert got == expected

        status, body = await api.call("GET", "/api/v1/admin/followup/overdue?days=0&from=2026-10-01&to=2026-10-31",
                                      "admin")
        assert status == 200, body
        assert body["today"] == today.isoformat()
        counts = {a["agency"]: a["overdue"] for a in body["agencies"] if a["overdue"]}
        assert counts == {c: r["open_overdue"] for c, r in expected.items() if r["open_overdue"]}
        assert [a["overdue"] for a in body["agencies"]] == sorted((a["overdue"] for a in body["agencies"]),
                                                                  reverse=True)
        doc = body["agencies"][0]["documents"][0]
        assert doc["days_late"] > 0 and doc["due_date"] < today.isoformat() and doc["status"] not in ("06", "02")
        whole = body
        every = [(a["agency"], d["document_id"]) for a in whole["agencies"] for d in a["documents"]]
        assert whole["next"] is None and whole["total"] == len(every) == len(set(every)) > 7
        # the same list 3 copies an answer, following `next`: every copy once, the totals on every page,
        # the most overdue first across the pages
        seen, after, pages = [], None, 0
        while True:
            q = "days=0&from=2026-10-01&to=2026-10-31&limit=3" + (f"&after={after}" if after else "")
            status, page = await api.call("GET", f"/api/v1/admin/followup/overdue?{q}", "auditor")
            assert status == 200, page
            pages += 1
            assert page["total"] == whole["total"]
            assert [(a["agency"], a["overdue"], a["due_soon"]) for a in page["agencies"]] == [
                (a["agency"], a["overdue"], a["due_soon"]) for a in whole["agencies"]]
            got = [(d["due_date"], a["agency"], d["document_id"]) for a in page["agencies"] for d in a["documents"]]
            assert len(got) == 3 or page["next"] is None
            seen += sorted(got)
            after = page["next"]
            if after is None:
                break
        assert pages == -(-len(every) // 3)
        assert sorted((a, d) for _, a, d in seen) == sorted(every) and len(seen) == len(every)
        assert [due for due, _, _ in seen] == sorted(due for due, _, _ in seen)
        for bad in ("limit=0", "limit=5001", "after=yesterday", "after=2026-10-01.x"):
            status, body = await api.call("GET", "/api/v1/admin/followup/overdue?" + bad, "admin")
            assert status == 400 and body["reason"] == "usage.invalid", (bad, body)
        # filters: a recipient named without accents; an unknown sender finds nothing
        status, body = await api.call("GET", "/api/v1/admin/followup/overdue?days=0&agency=NGHE%20AN", "admin")
        assert {a["agency"] for a in body["agencies"]} == {"000.00.00.H41"}
        status, body = await api.call("GET", "/api/v1/admin/followup/overdue?sender=000.00.00.H99", "admin")
        assert body["agencies"] == []
        for bad in ("from=2026-13-01", "from=01/10/2026", "priority=7", "days=-1", "days=366"):
            status, body = await api.call("GET", "/api/v1/admin/followup/overdue?" + bad, "admin")
            assert status == 400 and body["reason"] == "usage.invalid", (bad, body)
        status, body = await api.call("GET", "/api/v1/admin/followup/report?from=2026-10-31&to=2026-10-01", "admin")
        assert status == 400
        status, _ = await api.call("GET", "/api/v1/admin/followup/report", "h41")
        assert status == 403

        # the gauge: overdue copies per agency (all months: at least the seeded month's)
        status, text = await api.call("GET", "/metrics")
        families = {f.name: f for f in text_string_to_metric_families(text)}
        gauge = {s.labels["agency"]: s.value for s in families["hub_overdue_documents"].samples}
        for code, row in expected.items():
            assert gauge.get(code, 0) >= row["open_overdue"]
        assert sum(gauge.values()) == sum(
            1 for s in seeded if s.due is not None and s.due < today
            and not any(c in ("06", "02") for c, _ in s.statuses)
            and (not s.statuses or s.statuses[-1][0] not in ("13", "15")))
