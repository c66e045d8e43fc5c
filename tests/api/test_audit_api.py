"""The auditor API: search (JSON, CSV), trails, evidence bundles, checkpoints, consistency —
readable by auditors and admins only, changing nothing but logging every export."""

from __future__ import annotations

import csv
import io
import zipfile
from urllib.parse import quote, urlencode

import sqlalchemy as sa

from hub.audit import query
from hub.audit.bundle import verify_bundle
from hub.store.tables import checkpoints, records
from tests.apienv import api_for
from tests.conftest import G22, H41, H44
from tests.hubenv import drain, letter_with_statuses

ROUTES = [
    "/api/v1/audit/entries",
    "/api/v1/audit/documents/{doc}/trail",
    "/api/v1/audit/documents/{doc}/bundle",
    "/api/v1/audit/checkpoints",
    "/api/v1/audit/consistency?old=1",
]


async def get_bytes(api, path: str, who: str) -> tuple[int, dict, bytes]:
    async with api.session.get(api.base + path, headers=api.headers(who)) as r:
        return r.status, dict(r.headers), await r.read()


async def test_auditor_api(env, monkeypatch):
    async with env.running(), api_for(env) as api:
        doc, _, ads = await letter_with_statuses(env)  # a letter, 01 and 03 from H41, one refused package
        g, h41 = ads[G22], ads[H41]
        enc = quote(doc.document_id, safe="")  # slashes and commas, percent-encoded
        assert "%2F" in enc and "%2C" in enc

        # who may read: auditors and admins; agencies 403; no credentials 401
        for path in ROUTES:
            path = path.format(doc=enc)
            for who, want in (("auditor", 200), ("admin", 200), ("g22", 403), ("h41", 403), (None, 401),
                              ("revoked", 401)):
                if path.endswith("consistency?old=1") and want == 200:
                    continue  # needs checkpoints; below
                status, _, body = await get_bytes(api, path, who)
                assert status == want, (path, who, status, body[:300])

        # search: filters, newest first, paginated
        q = urlencode({"document_id": doc.document_id, "limit": 3})
        status, page = await api.call("GET", f"/api/v1/audit/entries?{q}", "auditor")
        assert status == 200, page
        assert page["count"] == 3 and page["next_offset"] == 3 and page["total"] >= 7
        seqs = [e["seq"] for e in page["entries"]]
        assert seqs == sorted(seqs, reverse=True)
        status, page2 = await api.call("GET", f"/api/v1/audit/entries?{q}&offset=3", "auditor")
        assert max(e["seq"] for e in page2["entries"]) < min(seqs)
        status, page = await api.call("GET", "/api/v1/audit/entries?" + urlencode(
            {"sender": G22, "event": "package.refused", "reason": "authority."}), "admin")
        assert status == 200 and page["total"] == 1 and page["entries"][0]["reason"] == "authority.not_competent"
        status, page = await api.call("GET", "/api/v1/audit/entries?" + urlencode(
            {"recipient": H44, "type": "1", "event": "edoc.delivered"}), "auditor")
        assert page["total"] == 1 and page["entries"][0]["details"]["recipient"] == H44
        status, page = await api.call("GET", "/api/v1/audit/entries?since=2999-01-01", "auditor")
        assert status == 200 and page["total"] == 0 and page["total_is_lower_bound"] is False
        # exact under the count's bound; past it, a lower bound that says so, paging on
        status, page = await api.call("GET", "/api/v1/audit/entries?limit=2", "auditor")
        exact = page["total"]
        assert exact > 6 and page["total_is_lower_bound"] is False
        monkeypatch.setattr(query, "COUNT_CAP", 3)
        status, page = await api.call("GET", "/api/v1/audit/entries?limit=2&offset=2", "auditor")
        assert status == 200 and page["total"] == 4 and page["total_is_lower_bound"] is True
        assert page["count"] == 2 and page["next_offset"] == 4
        status, page = await api.call("GET", "/api/v1/audit/entries?limit=100", "auditor")
        assert page["total"] == exact == page["count"] and page["total_is_lower_bound"] is False  # 100 > exact
        monkeypatch.undo()
        for bad in ("since=yesterday", "limit=100000", "format=xml", "colour=red", "sender=%00"):
            status, body = await api.call("GET", f"/api/v1/audit/entries?{bad}", "auditor")
            assert status == 400, (bad, body)

        # CSV export, logged with the auditor as actor
        status, headers, body = await get_bytes(api, f"/api/v1/audit/entries?document_id={enc}&format=csv", "auditor")
        assert status == 200 and headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
        assert len(rows) == int(headers["X-Total-Count"]) >= 7 and {r["document_id"] for r in rows} == {doc.document_id}
        status, page = await api.call("GET", "/api/v1/audit/entries?event=audit.exported", "auditor")
        [logged] = [e for e in page["entries"] if e["details"]["what"] == "entries.csv"]
        assert logged["actor"] == "auditor:auditor"
        assert sorted(e["actor"] for e in page["entries"] if e["details"]["what"] == "bundle") == [
            "admin:admin", "auditor:auditor"]  # the two bundles fetched by the role checks above
        assert logged["details"]["filters"] == {"document_id": doc.document_id}

        # trail: every step in order with the time between steps; recipients' status histories
        status, t = await api.call("GET", f"/api/v1/audit/documents/{enc}/trail", "auditor")
        assert status == 200, t
        assert t["decision"] == "accepted" and t["document"]["sender"] == G22
        assert [e["event"] for e in t["entries"]][:2] == ["package.received", "package.accepted"]
        assert t["entries"][0]["seconds_since_previous"] is None
        assert all(isinstance(e["seconds_since_previous"], float) and e["seconds_since_previous"] >= 0
                   for e in t["entries"][1:])
        assert t["seconds_total"] > 0
        h = {r["code"]: r for r in t["recipients"]}
        assert [x["code"] for x in h[H41]["history"]] == ["01", "03"]
        assert h[H41]["history"][1]["seconds_since_previous"] > 0 and h[H44]["history"] == []
        status, body = await api.call("GET", "/api/v1/audit/documents/" + quote("000.00.00.G22,1/none", safe="")
                                      + "/trail", "auditor")
        assert status == 404 and body["reason"] == "usage.not_found"
        status, body = await api.call("GET", "/api/v1/audit/documents/a%00b/trail", "auditor")
        assert status == 400, body

        # bundle: sealed first, verifies offline, and the export is logged
        before = len(await env.scalar(sa.select(records.c.seq)))
        status, headers, data = await get_bytes(api, f"/api/v1/audit/documents/{enc}/bundle", "auditor")
        assert status == 200 and headers["Content-Type"] == "application/zip"
        assert "attachment" in headers["Content-Disposition"]
        ok, lines = verify_bundle(data, hub_cert=env.pki.ids["000.00.99.G22"].cert, trust_anchors=[env.pki.ca_cert])
        assert ok, "\n".join(lines)
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            assert b'"not_yet_sealed": []' in z.read("proofs.json")
        rows = await env.scalar(sa.select(records.c.actor, records.c.details, records.c.document_id)
                                .where(records.c.event == "audit.exported", records.c.seq > before))
        assert len(rows) == 1 and rows[0][0] == "auditor:auditor" and rows[0][2] == doc.document_id
        assert rows[0][1]["what"] == "bundle" and rows[0][1]["bundle_sha256"] == headers["X-Bundle-SHA256"]

        # checkpoints (latest first, with the signed text) and consistency between two of them
        await h41.send_status(G22, doc.document_id, "04")
        await drain(g, 1)
        status, _, _ = await get_bytes(api, f"/api/v1/audit/documents/{enc}/bundle", "admin")  # seals again
        assert status == 200
        status, cps = await api.call("GET", "/api/v1/audit/checkpoints", "auditor")
        assert status == 200 and cps["total"] >= 2
        sizes = [c["size"] for c in cps["checkpoints"]]
        assert sizes == sorted(sizes, reverse=True) and cps["checkpoints"][0]["text"].startswith("000.00.99.G22/audit\n")
        assert cps["hub_certificate"]["pem"].startswith("-----BEGIN CERTIFICATE-----")
        status, rep = await api.call("GET", f"/api/v1/audit/consistency?old={sizes[-1]}&new={sizes[0]}", "auditor")
        assert status == 200 and rep["verified"] is True and rep["old"]["signature_ok"] and rep["proof"]
        status, rep = await api.call("GET", f"/api/v1/audit/consistency?old={sizes[-1]}", "admin")
        assert status == 200 and rep["new"]["size"] == sizes[0] and rep["verified"]
        status, body = await api.call("GET", f"/api/v1/audit/consistency?old={sizes[0] + 7}", "auditor")
        assert status in (400, 404), body

        # auditors change nothing: there is no writing route under /audit
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            status, _ = await api.call(method, "/api/v1/audit/entries", "auditor")
            assert status == 405
    n_cps = await env.scalar(sa.select(sa.func.count()).select_from(checkpoints))
    assert n_cps[0][0] >= 2
