"""The hub doing its job end to end: packages in from adapters, checked, recorded, delivered,
status flowing back, every refusal answered — on real RabbitMQ + PostgreSQL and on the
embedded defaults."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from hub import constants as C
from hub.edxml.builder import build_edoc
from hub.edxml.model import ResponseFor
from hub.edxml.parser import parse_xml
from hub.edxml.signature import verify_package
from hub.edxml.trace import strip_relay_trace
from hub.errors import AuthorityError
from hub.store.tables import dead_letters, documents, records
from tests.conftest import G22, H41, H44, HUB, attachment, make_edoc
from tests.hubenv import drain, quiet, until


def verify_as_recipient(env, r):
    """What a recipient does: strip the hub's hop record, verify the sender's signature."""
    assert strip_relay_trace(parse_xml(r.body), {HUB}) == 1  # exactly one hop record was added
    return r.verify(env.pki.trust(), {HUB})


async def test_one_and_several_recipients(env):
    async with env.running():
        g, h41, h44 = await env.adapter(G22), await env.adapter(H41), await env.adapter(H44)
        one = await g.send_document(make_edoc(G22, (H41,)), [attachment()])
        many = await g.send_document(make_edoc(G22, (H41, H44)), [attachment()])
        got41 = await drain(h41, 2)
        got44 = await drain(h44, 1)
        assert await quiet(h41) == [] and await quiet(h44) == []
    ids41 = sorted(r.document_id for r in got41)
    assert ids41 == sorted([parse_doc_id(one), parse_doc_id(many)])
    assert got44[0].document_id == parse_doc_id(many)
    for r in got41 + got44:
        assert r.kind == "edoc" and r.sender == G22
        v = verify_as_recipient(env, r)  # the sender's signature still verifies
        assert v.certificate == env.pki.ids[G22].cert
        trace = parse_xml(r.body).findall(".//{%s}TraceHeader/{%s}OrganId" % (C.EDXML_NS, C.EDXML_NS))
        assert [t.text for t in trace][-1] == HUB  # the hub appended its hop


def parse_doc_id(data: bytes) -> str:
    return parse_xml(data).findtext(".//{%s}DocumentId" % C.EDXML_NS)


def _refused(r, reason: str, env):
    """A hub-signed status 02 carrying the reason code."""
    assert r.kind == "status", r.kind
    st = r.package()
    assert st.status_code == "02" and st.sender.organ_id == HUB
    assert st.description.startswith(reason + ": "), st.description
    assert r.headers[C.H_REASON] == reason
    v = verify_package(parse_xml(r.body), env.pki.trust())  # signed by the hub's own key
    assert v.certificate == env.pki.ids[HUB].cert
    return st


@pytest.mark.parametrize("case", [
    "digest_mismatch", "recipient_unknown", "not_competent", "not_pinned", "unknown_response_for", "not_xml",
])
async def test_each_refusal_reaches_the_sender(env, case):
    async with env.running():
        g = await env.adapter(G22)
        h44 = await env.adapter(H44)
        doc = make_edoc(G22, (H44,))
        if case == "digest_mismatch":
            data = g.sign(build_edoc(doc, [attachment()])).replace(doc.subject.encode(), b"sua doi")
            reason = "signature.digest_mismatch"
        elif case == "recipient_unknown":
            data = g.sign(build_edoc(make_edoc(G22, ("000.00.00.H99",)), []))
            reason = "authority.recipient_unknown"
        elif case == "not_competent":
            data = g.sign(build_edoc(make_edoc(G22, (H44,), doc_type="9"), []))
            reason = "authority.not_competent"
        elif case == "not_pinned":
            data = env.pki.ids[H41].key and (await env.adapter(H41, start=False)).sign(build_edoc(doc, []))
            reason = "trust.not_pinned"
        elif case == "unknown_response_for":
            data = g.sign(build_edoc(make_edoc(G22, (H44,), response_for=(ResponseFor(H44, "000.00.00.H44,2026/01/01,1/X"),)), []))
            reason = "state.unknown_document"
        else:
            data = b"%PDF-1.4 not a package"
            reason = "parse.not_xml"
        await g.publish(data)
        [answer] = await drain(g, 1)
        _refused(answer, reason, env)
        assert await quiet(h44) == []  # nothing reached the recipient
        for _ in range(50 if case == "not_xml" else 0):  # the keeper stores what reached hub.dead
            if await env.scalar(sa.select(dead_letters.c.id)):
                break
            await asyncio.sleep(0.1)
    rows = await env.scalar(sa.select(records.c.event, records.c.reason).where(records.c.event == "package.refused"))
    assert rows == [("package.refused", reason)]
    if case == "not_xml":
        dead = await env.scalar(sa.select(records.c.event).where(records.c.event == "package.dead"))
        assert len(dead) == 1
    kept = await env.scalar(sa.select(dead_letters.c.reason, dead_letters.c.original_user))
    if case == "not_xml":  # kept in hub.dead (→ the dead-letter table) with its reason and publisher
        assert kept == [("parse.not_xml", env.user_of(G22))]
    else:
        assert kept == []


async def test_impersonation_via_user_id(env):
    async with env.running():
        g = await env.adapter(G22, start=False)
        h41 = await env.adapter(H41)
        h44 = await env.adapter(H44)
        # H41's adapter relays a package genuinely signed by G22: the signature is fine, but
        # the adapter that published it is not the one serving G22.
        data = g.sign(build_edoc(make_edoc(G22, (H44,)), []))
        await h41.publish(data)
        [answer] = await drain(h41, 1)
        _refused(answer, "authority.impersonation", env)
        assert await quiet(h44) == []
        # and the broker itself refuses a user_id that is not the connection's user
        with pytest.raises(AuthorityError):
            await h41.backbone.publish(C.EXCHANGE_SUBMIT, "", data, user_id=G22)
        # a package published without any user_id cannot be attributed: refused, kept in hub.dead
        await h41.backbone.publish(C.EXCHANGE_SUBMIT, "", data)
        for _ in range(100):
            if await env.scalar(sa.select(dead_letters.c.id)):
                break
            await asyncio.sleep(0.1)
        assert await env.scalar(sa.select(dead_letters.c.reason)) == [("authority.impersonation",)]
        assert await quiet(h44) == []
    rows = await env.scalar(sa.select(records.c.reason).where(records.c.event == "package.refused"))
    assert rows == [("authority.impersonation",), ("authority.impersonation",)]


async def test_duplicates_recorded_once_delivered_once(env):
    async with env.running():
        g, h41 = await env.adapter(G22), await env.adapter(H41)
        doc = make_edoc(G22, (H41,))
        data = g.sign(build_edoc(doc, [attachment()]))
        await g.publish(data)
        await drain(h41, 1)
        await g.publish(data)  # the same bytes again
        await g.publish(data)
        assert await quiet(h41, 1.0) == []
        other = g.sign(build_edoc(doc.__class__(**{**doc.__dict__, "subject": "khác"}), []))
        await g.publish(other)  # a different package under the same DocumentId
        [answer] = await drain(g, 1)
        _refused(answer, "state.duplicate_conflict", env)
    docs = await env.scalar(sa.select(documents.c.document_id).where(documents.c.kind == "edoc"))
    assert docs == [(doc.document_id,)]
    dups = await env.scalar(sa.select(records.c.seq).where(records.c.event == "package.duplicate"))
    assert len(dups) == 2


async def test_status_lifecycle_invalid_transition_and_recall(env):
    async with env.running():
        g, h41, h44 = await env.adapter(G22), await env.adapter(H41), await env.adapter(H44)
        doc = make_edoc(G22, (H41, H44))
        await g.send_document(doc, [])
        await drain(h41, 1)
        await drain(h44, 1)
        for code in ("01", "03", "04", "05", "06"):
            await h41.send_status(G22, doc.document_id, code, f"bước {code}")
        got = await drain(g, 5)
        assert [r.package().status_code for r in got] == ["01", "03", "04", "05", "06"]
        assert all(r.package().sender.organ_id == H41 for r in got)
        # H44 jumps from nothing to 04 (a skip: allowed), then goes back to 01: refused
        await h44.send_status(G22, doc.document_id, "04", "nhảy bước")
        [skip] = await drain(g, 1)
        assert skip.package().status_code == "04"
        await h44.send_status(G22, doc.document_id, "01", "lùi bước")
        [answer] = await drain(h44, 1)
        st = _refused(answer, "state.invalid_transition", env)
        assert "allowed next: 05, 06, 13" in st.description
        # only the original sender may recall
        await h44.send_status(G22, doc.document_id, "13", "thu hồi hộ")
        [answer] = await drain(h44, 1)
        _refused(answer, "authority.not_original_sender", env)
        # a status about a document the sender did not receive
        await h44.send_status(G22, "000.00.00.G22,2026/11/27,999999/VPCP", "01")
        [answer] = await drain(h44, 1)
        _refused(answer, "state.unknown_document", env)
        # G22 recalls: H44 (still open) gets the 13; H41 (done, 06) too — recall after handling is allowed
        await g.send_status(G22, doc.document_id, "13", "ban hành nhầm")
        [r41] = await drain(h41, 1)
        [r44] = await drain(h44, 1)
        assert r41.package().status_code == "13" and r44.package().status_code == "13"
        await h44.send_status(G22, doc.document_id, "15", "đồng ý")
        [agree] = await drain(g, 1)
        assert agree.package().status_code == "15" and agree.package().sender.organ_id == H44
        # after 15 the copy is closed: more statuses are refused
        await h44.send_status(G22, doc.document_id, "03")
        [answer] = await drain(h44, 1)
        _refused(answer, "state.invalid_transition", env)


async def test_routing_to_a_serving_ancestors_inbox(env):
    await env.register("000.00.24.H44", "Sở Nội vụ", served_by=H44)
    async with env.running():
        g, h44 = await env.adapter(G22), await env.adapter(H44)
        await g.send_document(make_edoc(G22, ("000.00.24.H44", "000.46.11.H44")), [])
        got = await drain(h44, 2)
        assert sorted(r.headers[C.H_RECIPIENT] for r in got) == ["000.00.24.H44", "000.46.11.H44"]
        # the platform answers for the agency it serves
        await h44.send_status(G22, got[0].document_id, "01")
        [st] = await drain(g, 1)
        assert st.package().status_code == "01"


async def test_outbox_rows_left_unsent_are_republished_identically(env):
    """A worker that died between commit and confirm: the outbox is finished on restart, with the
    same relayed bytes (re-derived from the one stored original)."""
    from hub.store.tables import outbox

    async with env.running() as hub:
        g, h41 = await env.adapter(G22), await env.adapter(H41)
        await g.send_document(make_edoc(G22, (H41,)), [])
        [first] = await drain(h41, 1)
        # the worker marks the row sent in a stage of its own, after the delivery: wait for it,
        # else it would mark the row again after the reset below and nothing would be pending
        for _ in range(400):
            async with hub.engine.connect() as conn:
                unsent = (await conn.execute(sa.select(sa.func.count()).select_from(outbox)
                                             .where(outbox.c.sent_at.is_(None)))).scalar_one()
            if unsent == 0:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the worker never marked its outbox row sent")
        # pretend the confirm never came back: mark the row unsent and run the relay
        async with hub.engine.begin() as conn:
            await conn.execute(outbox.update().values(sent_at=None))
        assert await hub.workers[0].relay_pending(older_than=0) == 1
        again = await _raw_next(h41)
    assert again == first.body


async def _raw_next(adapter):
    """The next raw delivery, bypassing the adapter's once-only filter (which would drop it)."""
    for _ in range(400):
        for q in (adapter._urgent, adapter._normal):  # noqa: SLF001 - test reads the raw queues
            if not q.empty():
                m = q.get_nowait()
                await m.ack()
                return m.message.body
        await asyncio.sleep(0.05)
    raise AssertionError("nothing was republished")


async def test_overlapping_stages_deliver_each_package_once_and_log_in_order(env):
    """``HUB_PIPELINE_DEPTH=2`` (batch N+1 recorded while batch N awaits its confirms; not the
    default): every package delivered once, one ``edoc.delivered`` per copy, and the log's
    times never go backwards along its sequence (the marks folded into later transactions)."""
    env.settings = env.settings.replace(pipeline_depth=2)
    n = 120
    async with env.running():
        g, h41 = await env.adapter(G22), await env.adapter(H41)
        docs = [make_edoc(G22, (H41,), subject=f"Công văn {i}") for i in range(n)]
        for d in docs:
            await g.publish(g.sign(build_edoc(d, [])))
        got = await drain(h41, n, timeout=120)
        assert sorted(r.document_id for r in got) == sorted(d.document_id for d in docs)
        assert await quiet(h41, 1.0) == []

        async def all_logged():
            return len(await env.scalar(sa.select(records.c.seq).where(records.c.event == "edoc.delivered"))) == n

        await until(all_logged, timeout=30)
    rows = await env.scalar(sa.select(records.c.seq, records.c.at).order_by(records.c.seq))
    assert [s for s, _ in rows] == list(range(rows[0][0], rows[0][0] + len(rows)))  # gapless
    assert all(a[1] <= b[1] for a, b in zip(rows, rows[1:]))  # in time order too


async def test_under_load_confirmed_rows_are_marked_by_the_next_batchs_transaction(env):
    """While batches keep coming, a batch's confirmed outbox rows are marked sent (and their
    deliveries logged) by the next batch's transaction, not by a transaction of their own: the
    next batch is already on its way (checked and waiting for the batch before it to be
    delivered, at the default depth of 1). Only the last batch's rows, with nothing after them,
    commit alone. (Before: the record stage, holding the next batch while it waited for the
    deliver stage, did not count as waiting, so nearly every batch's marks committed alone.)"""
    env.settings = env.settings.replace(check_processes=1)  # checks beside the commit stages, as deployed
    n = 400
    async with env.running() as hub:
        g, h41 = await env.adapter(G22), await env.adapter(H41)
        bodies = [g.sign(build_edoc(make_edoc(G22, (H41,), subject=f"Công văn {i}"), [])) for i in range(n)]
        await asyncio.gather(*(g.publish(b) for b in bodies))
        got = await drain(h41, n, timeout=120)
        assert len(got) == n

        async def all_logged():
            return len(await env.scalar(sa.select(records.c.seq).where(records.c.event == "edoc.delivered"))) == n

        await until(all_logged, timeout=30)
        stats = hub.workers[0].stats
        assert stats.batches >= 3, stats.batches
        assert stats.marked_alone <= 2, (stats.marked_alone, stats.batches)
    rows = await env.scalar(sa.select(records.c.seq, records.c.at).order_by(records.c.seq))
    assert [s for s, _ in rows] == list(range(rows[0][0], rows[0][0] + len(rows)))  # gapless
    assert all(a[1] <= b[1] for a, b in zip(rows, rows[1:]))  # in time order too
