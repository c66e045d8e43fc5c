"""Searching the audit log and following one document's trail, on entries the real pipeline
wrote (the hub with the embedded broker over SQLite and over real PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from hub.audit import merkle, query
from hub.audit.sealer import seal
from hub.errors import ConflictError, UsageError
from hub.pki import devpki
from hub.pki.identity import Identity
from hub.store.engine import make_engine
from hub.audit.records import append_rows, record_row
from hub.store.tables import documents, packages, records
from tests.conftest import G22, H41, H44, HUB, attachment, make_edoc
from tests.hubenv import _make_env, _teardown, drain


@dataclass
class World:
    engine: object
    hub: Identity
    doc: str  # G22 -> H41, H44 (type 1); H41 answers 01 then 03, H44 answers 01
    other: str  # G22 -> H41 (type 2)
    refused: str  # G22 -> H44, type 9: not competent
    broken: str  # G22 -> H41, changed after signing: signature.digest_mismatch


async def run_world(db_url: str, tmp_path, pki) -> World:
    """The real pipeline writes the entries (embedded broker, so it runs on either database)."""
    env = await _make_env("embedded", db_url, tmp_path, pki)
    try:
        async with env.running():
            g, h41, h44 = await env.adapter(G22), await env.adapter(H41), await env.adapter(H44)
            doc = make_edoc(G22, (H41, H44), subject="Về việc kiểm toán nhật ký")
            await g.send_document(doc, [attachment()])
            await drain(h41, 1)
            await drain(h44, 1)
            await h41.send_status(G22, doc.document_id, "01", "đã nhận")
            await drain(g, 1)
            await h41.send_status(G22, doc.document_id, "03", "vào sổ")
            await drain(g, 1)
            await h44.send_status(G22, doc.document_id, "01")
            await drain(g, 1)
            other = make_edoc(G22, (H41,), doc_type="2")
            await g.send_document(other, [])
            await drain(h41, 1)
            refused = make_edoc(G22, (H44,), doc_type="9")
            await g.send_document(refused, [])
            await drain(g, 1)
            from hub.edxml.builder import build_edoc

            broken = make_edoc(G22, (H41,))
            await g.publish(g.sign(build_edoc(broken, [])).replace(broken.subject.encode(), b"sua doi"))
            await drain(g, 1)
    finally:
        await _teardown(env)
    engine = make_engine(db_url)
    return World(engine, Identity(HUB, pki.ids[HUB].key, pki.ids[HUB].cert), doc.document_id, other.document_id,
                 refused.document_id, broken.document_id)


@pytest.fixture
async def world(db_url, tmp_path, pki):
    w = await run_world(db_url, tmp_path, pki)
    yield w
    await w.engine.dispose()


def events(rows) -> list[str]:
    return [r["event"] for r in rows]


async def test_search_filters(world):
    e = world.engine
    total_all, _ = await query.search(e, limit=0)
    async with e.connect() as c:
        assert total_all == (await c.execute(sa.select(sa.func.count()).select_from(records))).scalar()

    total, rows = await query.search(e, document_id=world.doc, limit=100)
    assert total == len(rows) == 7
    assert [r["seq"] for r in rows] == sorted((r["seq"] for r in rows), reverse=True)  # newest first
    assert sorted(events(rows)) == sorted(["package.received", "package.accepted", "edoc.delivered", "edoc.delivered",
                                           "status.recorded", "status.recorded", "status.recorded"])
    assert {r["leaf_hash"] for r in rows} and all(r["at"].endswith("Z") for r in rows)

    # a DocumentId prefix: every document G22 numbered that day
    # past the count's bound: the same page, a total that stops at the bound and says so
    capped = await query.find(e, limit=2, offset=3, count_cap=4)
    _, rows = await query.search(e, limit=5)
    assert (capped.total, capped.total_is_lower_bound) == (5, True) and capped.rows == rows[3:5]
    assert (await query.find(e, limit=0, count_cap=total_all)).total_is_lower_bound is False
    assert (await query.find(e, limit=0, count_cap=total_all - 1)).total == total_all - 1
    total, rows = await query.search(e, document_id=world.doc.rsplit(",", 1)[0] + ",*", limit=100)
    assert {world.doc, world.other, world.refused, world.broken} <= {r["document_id"] for r in rows}
    assert all(r["document_id"].startswith(f"{G22},") for r in rows)
    with pytest.raises(UsageError):
        await query.search(e, document_id="x\x00y")

    # sender: the entries filed under an agency's code (H41's statuses, not G22's documents)
    _, rows = await query.search(e, sender=H41, limit=100)
    assert set(events(rows)) == {"package.received", "status.recorded", "status.delivered"} and len(rows) == 6

    # recipient: the entries of documents addressed to it (H44 got only `doc`; `refused` never reached it):
    # received, accepted, its own delivery and its own status — not H41's delivery or statuses
    _, rows = await query.search(e, recipient=H44, limit=100)
    assert {r["document_id"] for r in rows} == {world.doc}
    assert sorted(events(rows)) == ["edoc.delivered", "package.accepted", "package.received", "status.recorded"]
    # (its status may be logged before or after its delivery entry, which waits for the broker's confirm)
    assert [r["sender"] for r in rows if r["event"] == "status.recorded"] == [H44]
    assert [r["details"]["recipient"] for r in rows if r["event"] == "edoc.delivered"] == [H44]
    _, rows = await query.search(e, recipient=H41, limit=100)
    assert {r["document_id"] for r in rows} == {world.doc, world.other}
    assert events(rows).count("status.recorded") == 2 and events(rows).count("edoc.delivered") == 2
    # ... and status packages addressed to it: G22 is the recipient of the three statuses
    _, rows = await query.search(e, recipient=G22, limit=100)
    assert sorted(events(rows)) == ["package.received"] * 3 + ["status.delivered"] * 3
    assert all(r["document_id"].startswith(f"status:{world.doc}:") for r in rows)

    # document type
    total, rows = await query.search(e, doc_type="2", limit=100)
    assert {r["document_id"] for r in rows} == {world.other} and total == 3  # received, accepted, delivered
    total, rows = await query.search(e, doc_type="1", recipient=H41, event="status.recorded", limit=100)
    assert total == 2 and {r["details"]["status"] for r in rows} == {"01", "03"}

    # event and reason, exact or by prefix
    total, rows = await query.search(e, event="package.refused")
    assert total == 2 and {r["reason"] for r in rows} == {"authority.not_competent", "signature.digest_mismatch"}
    total, rows = await query.search(e, reason="signature.")  # the refusal, and the delivery of its answer
    assert total == 2 and set(events(rows)) == {"package.refused", "refusal.delivered"}
    total, rows = await query.search(e, reason="signature.", event="package.refused")
    assert total == 1 and rows[0]["document_id"] == world.broken and rows[0]["details"]["stage"] == "signature"
    assert (await query.search(e, reason="signature*", event="package.*"))[0] == 1
    assert (await query.search(e, reason="signature"))[0] == 0  # exact
    total, rows = await query.search(e, event="status.")
    assert set(events(rows)) == {"status.recorded", "status.delivered"} and total == 6
    total, _ = await query.search(e, event="refusal.delivered")
    assert total == 2

    # time range: since inclusive, until exclusive
    _, newest = await query.search(e, limit=total_all)
    first, last = query.parse_time(newest[-1]["at"]), query.parse_time(newest[0]["at"])
    assert (await query.search(e, since=last + timedelta(microseconds=1)))[0] == 0
    assert (await query.search(e, until=first))[0] == 0
    assert (await query.search(e, since=first, until=last + timedelta(seconds=1)))[0] == total_all
    assert (await query.search(e, since=newest[0]["at"]))[0] >= 1  # ISO text is accepted too
    with pytest.raises(UsageError):
        await query.search(e, since="last tuesday")

    # pagination: pages follow each other, the total stays
    t1, p1 = await query.search(e, limit=3, offset=0)
    t2, p2 = await query.search(e, limit=3, offset=3)
    assert t1 == t2 == total_all and [r["seq"] for r in p1 + p2] == [r["seq"] for r in newest[:6]]
    with pytest.raises(UsageError):
        await query.search(e, limit=-1)


async def test_renderers(world):
    total, rows = await query.search(world.engine, document_id=world.doc, limit=3)
    text = query.render_csv(rows)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert list(parsed[0]) == list(query.COLUMNS) and len(parsed) == 3
    assert [int(p["seq"]) for p in parsed] == [r["seq"] for r in rows]
    assert json.loads(parsed[0]["details"]) == rows[0]["details"]
    page = json.loads(query.render_json(total, rows, limit=3, offset=0, filters={"document_id": world.doc, "x": None}))
    assert page["total"] == 7 and page["next_offset"] == 3 and page["filters"] == {"document_id": world.doc}
    assert page["entries"] == rows
    # a DocumentId or message that a spreadsheet would run as a formula is defused in CSV only
    evil = {**rows[0], "document_id": "=HYPERLINK(\"http://x\")", "message": "@SUM(1)"}
    cell = next(csv.DictReader(io.StringIO(query.render_csv([evil]))))
    assert cell["document_id"].startswith("'=") and cell["message"] == "'@SUM(1)"


async def test_trail_of_a_delivered_document(world):
    t = await query.trail(world.engine, world.doc)
    assert t["decision"] == "accepted" and t["sender"] == G22 and t["reason"] is None
    d = t["document"]
    assert d["type"] == "1" and d["subject"] == "Về việc kiểm toán nhật ký" and d["package_size"] > 6000
    seqs = [e["seq"] for e in t["entries"]]
    assert seqs == sorted(seqs)
    evs = events(t["entries"])
    assert evs[:2] == ["package.received", "package.accepted"]
    assert evs.count("edoc.delivered") == 2 and evs.count("status.recorded") == 3
    # the status packages' own entries (filed under their own ids) are part of the trail
    assert evs.count("status.delivered") == 3 and evs.count("package.received") == 4
    assert len(t["statuses"]) == 3 and {s["code"] for s in t["statuses"]} == {"01", "03"}
    # time between steps
    assert t["entries"][0]["seconds_since_previous"] is None
    assert all(e["seconds_since_previous"] >= 0 for e in t["entries"][1:])
    assert t["seconds_total"] == pytest.approx(sum(e["seconds_since_previous"] for e in t["entries"][1:]), abs=1e-5)
    assert t["seconds_total"] > 0 and t["first_at"] == t["entries"][0]["at"]
    assert all(e["summary"] for e in t["entries"])
    # each recipient: delivery time and status history with time between statuses
    rec = {r["code"]: r for r in t["recipients"]}
    assert set(rec) == {H41, H44}
    assert [h["code"] for h in rec[H41]["history"]] == ["01", "03"] and rec[H41]["status"] == "03"
    assert [h["code"] for h in rec[H44]["history"]] == ["01"] and rec[H44]["status_name"] == "arrived"
    for r in rec.values():
        assert r["delivered_at"] and r["seconds_to_delivery"] >= 0
        assert all(h["seconds_since_previous"] >= 0 and h["by"] == r["code"] for h in r["history"])
    assert rec[H41]["history"][0]["description"] == "đã nhận"


async def test_trail_of_refused_documents(world):
    t = await query.trail(world.engine, world.refused)
    assert t["decision"] == "refused" and t["reason"] == "authority.not_competent" and t["document"] is None
    assert events(t["entries"]) == ["package.refused", "refusal.delivered"]  # and the answer reached G22
    assert t["entries"][1]["details"]["recipient"] == G22 and t["entries"][1]["seconds_since_previous"] >= 0
    t = await query.trail(world.engine, world.broken, G22)
    assert t["reason"] == "signature.digest_mismatch" and t["recipients"] == []
    with pytest.raises(query.NotFound):
        await query.trail(world.engine, "000.00.00.G22,2026/11/27,0/NOTHING")
    with pytest.raises(query.NotFound):
        await query.trail(world.engine, world.doc, sender=H41)  # nobody else sent it


async def test_trail_needs_the_sender_when_a_documentid_is_shared(db_url):
    """(sender, DocumentId) is the key: two senders may use the same DocumentId."""
    from hub.store.engine import migrate

    e = make_engine(db_url)
    await migrate(e)
    now = datetime.now(timezone.utc)
    shared = "000.00.00.X01,2026/11/27,1/X"
    async with e.begin() as c:
        for n, sender in enumerate((G22, H41)):
            sha = f"{n:064x}"
            await c.execute(packages.insert().values(sha256=sha, size=1, data=b"x", stored_at=now))
            await c.execute(documents.insert().values(sender=sender, document_id=shared, kind="edoc", sha256=sha,
                                                      doc_type="1", received_at=now))
            await append_rows(c, [record_row("package.accepted", document_id=shared, sender=sender, sha256=sha,
                                             details={"recipients": [], "type": "1", "priority": 0})])
    try:
        with pytest.raises(UsageError) as err:
            await query.trail(e, shared)
        assert "2 senders" in str(err.value)
        t = await query.trail(e, shared, H41)
        assert [x["sender"] for x in t["entries"]] == [H41] and t["document"]["sha256"] == f"{1:064x}"
        total, rows = await query.search(e, document_id=shared, sender=G22)
        assert total == 1 and rows[0]["sha256"] == f"{0:064x}"
    finally:
        await e.dispose()


async def test_checkpoints_inclusion_and_consistency(world, pki):
    e, hub = world.engine, world.hub
    c1 = await seal(e, hub)
    async with e.begin() as c:
        await append_rows(c, [record_row("maintenance.note", actor="admin:test", message=f"n{i}") for i in range(5)])
    c2 = await seal(e, hub)
    total, cps = await query.list_checkpoints(e)
    assert total == 2 and [c["size"] for c in cps] == [c2.size, c1.size] and cps[0]["text"] == c2.to_text()

    proof = await query.inclusion(e, 3)
    assert proof["tree_size"] == c2.size and proof["index"] == 2
    assert merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), 2, c2.size,
                                   [bytes.fromhex(p) for p in proof["path"]], c2.root)

    path = await query.consistency(e, c1.size, c2.size)
    assert merkle.verify_consistency(c1.size, c2.size, c1.root, c2.root, path)
    rep = await query.consistency_report(e, c1.size, c2.size, hub.cert)
    assert rep["verified"] and rep["old"]["signature_ok"] and rep["proof"] == [p.hex() for p in path]
    other_cert, _ = devpki.issue(pki.ca_cert, pki.ca_key, "not the hub")
    rep = await query.consistency_report(e, c1.size, c2.size, other_cert)
    assert rep["proof_ok"] and not rep["verified"] and rep["new"]["signature_ok"] is False
    with pytest.raises(query.NotFound):
        await query.consistency_report(e, c1.size - 1, c2.size, hub.cert)
    with pytest.raises(UsageError):
        await query.consistency(e, c2.size, c1.size)


async def test_changed_or_missing_leaves_are_refused_or_caught(world):
    from tests.audit.test_log_db import tamper

    e, hub = world.engine, world.hub
    c1 = await seal(e, hub)
    async with e.begin() as c:
        await append_rows(c, [record_row("maintenance.note", message="later")])
    c2 = await seal(e, hub)
    # the proof comes from the stored subtree hashes it needs (hub.audit.nodes), not every leaf:
    # a changed stored node shows; `hub audit verify` checks every leaf and node
    (level, idx), *_ = merkle.perfect_parts(*merkle.consistency_ranges(c1.size, c2.size)[-1])
    assert level > 0
    from tests.audit.test_nodes import _tamper_nodes

    await _tamper_nodes(e, f"UPDATE merkle_nodes SET hash = '{'ab' * 32}' WHERE level = {level} AND idx = {idx}")
    rep = await query.consistency_report(e, c1.size, c2.size, hub.cert)
    assert not rep["verified"] and not rep["proof_ok"]
    await tamper(e, "DELETE FROM records WHERE seq = 2")  # the leaf beside entry 1
    with pytest.raises(ConflictError) as err:
        await query.inclusion(e, 1)
    assert "entry 2 is missing" in str(err.value)


@pytest.fixture
async def slow_log(pg_url):
    """(engine, where) on PostgreSQL: 12 notes in the log and a condition that matches them at 5 ms
    an entry tested, so that a statement's time is set by how many entries it reads."""
    from hub.store.engine import migrate

    e = make_engine(pg_url)
    try:
        await migrate(e)
        async with e.begin() as c:
            await append_rows(c, [record_row("maintenance.note", message=f"n{i}") for i in range(12)])
        yield e, [records.c.event == "maintenance.note", sa.text("pg_sleep(0.005) IS NOT NULL")]
    finally:
        await e.dispose()


@pytest.mark.postgres
async def test_a_bounded_count_stops_in_time_and_the_page_still_comes(slow_log, monkeypatch):
    """``query.page`` on PostgreSQL: the page's rows are read without the count's time limit; a
    count past ``COUNT_MS`` is cancelled inside a savepoint, the total is the page's own (a lower
    bound when the page is full), and the connection's transaction and settings are as before."""
    e, slow = slow_log
    monkeypatch.setattr(query, "COUNT_MS", 20)
    async with e.connect() as c:
        before = (await c.execute(sa.text("SHOW statement_timeout"))).scalar()
        # 5 rows take 25 ms (more than COUNT_MS: the page has no limit), the count 60 ms
        found = await query.page(c, [records.c.seq], slow, records.c.seq.desc(), 5, 0)
        assert (found.total, found.total_is_lower_bound, found.counted_in_time) == (5, True, False)
        assert [r["seq"] for r in found.rows] == list(range(12, 7, -1))
        assert (await c.execute(sa.text("SHOW statement_timeout"))).scalar() == before
        # the last page, not full: exact without counting
        found = await query.page(c, [records.c.seq], slow, records.c.seq.desc(), 5, 10)
        assert (found.total, found.total_is_lower_bound, found.counted_in_time) == (12, False, True)
        assert [r["seq"] for r in found.rows] == [2, 1]
        # no row to go by (only the total asked for; a page past the last): counted as before
        for limit, offset in ((0, 0), (5, 20)):
            found = await query.page(c, [records.c.seq], slow, records.c.seq.desc(), limit, offset)
            assert (found.total, found.total_is_lower_bound, found.rows) == (12, False, [])
        # its statements are planned for their own values, never from a cached generic plan
        # (which would keep the planner settings it was made under)
        assert (await c.execute(sa.text("SHOW plan_cache_mode"))).scalar() == "force_custom_plan"
    monkeypatch.setattr(query, "COUNT_MS", 5_000)
    async with e.connect() as c:  # in time: counted, as on SQLite
        found = await query.page(c, [records.c.seq], slow, records.c.seq.desc(), 5, 0)
        assert (found.total, found.total_is_lower_bound, found.counted_in_time) == (12, False, True)
        found = await query.page(c, [records.c.seq], slow, records.c.seq.desc(), 5, 0, count_cap=6)
        assert (found.total, found.total_is_lower_bound, found.counted_in_time) == (6, True, True)


@pytest.mark.postgres
async def test_a_search_walks_the_log_first_and_falls_back_on_its_index(slow_log, monkeypatch):
    """``walk_first``: the page comes from walking the log newest first when that finds it
    within ``WALK_MS``, else from the fallback order (here oldest first, to tell them apart);
    the walk's planner setting does not outlive it."""
    e, slow = slow_log
    newest, oldest = records.c.seq.desc(), records.c.seq.asc()
    monkeypatch.setattr(query, "COUNT_MS", 5_000)
    monkeypatch.setattr(query, "WALK_MS", 10)  # the walk needs 5 entries: 25 ms
    async with e.connect() as c:
        for _ in range(8):  # past the 5 executions after which PostgreSQL may cache a generic plan
            found = await query.page(c, [records.c.seq], slow, newest, 5, 0, walk_first=oldest)
            assert [r["seq"] for r in found.rows] == [1, 2, 3, 4, 5] and found.total == 12
        assert (await c.execute(sa.text("SHOW enable_bitmapscan"))).scalar() == "on"
        assert (await c.execute(sa.text("SHOW enable_indexscan"))).scalar() == "on"
    # the fallback is bounded too: past SEARCH_MS the search asks to be narrowed
    monkeypatch.setattr(query, "SEARCH_MS", 10)
    async with e.connect() as c:
        with pytest.raises(UsageError, match="no page within .* narrow it with dates"):
            await query.page(c, [records.c.seq], slow, newest, 5, 0, walk_first=oldest)
    monkeypatch.setattr(query, "WALK_MS", 5_000)
    async with e.connect() as c:
        found = await query.page(c, [records.c.seq], slow, newest, 5, 0, walk_first=oldest)
        assert [r["seq"] for r in found.rows] == [12, 11, 10, 9, 8] and found.total == 12
        assert (await c.execute(sa.text("SHOW enable_bitmapscan"))).scalar() == "on"
