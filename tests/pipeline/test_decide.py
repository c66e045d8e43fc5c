"""The batch decisions (hub.pipeline.decide) on their own: no database, no broker.

Verdicts come from the real stateless checks; what the store holds is given as rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from hub import constants as C
from hub.backbone.base import Message, inbox_key
from hub.edxml.model import Business
from hub.edxml.parser import parse_xml
from hub.pipeline.checks import CheckContext, check_package
from hub.pipeline.decide import UNRECORDABLE, Copies, Decisions, Intake, StatusView, StoreView
from hub.pki.identity import Identity
from tests.conftest import G22, H41, H44, HUB, make_edoc, registry_for

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def ctx(pki):
    from hub.edxml.schema import SchemaValidator

    return CheckContext(registry=registry_for(pki), trust=pki.trust(), validator=SchemaValidator(), relay_id=HUB)


@pytest.fixture
def decisions(pki, ctx):
    def make() -> Decisions:
        return Decisions(ctx.registry, Identity(HUB, pki.ids[HUB].key, pki.ids[HUB].cert), "hub", NOW)

    return make


def intake(data: bytes, user: str, *, redelivered: bool = False) -> Intake:
    return Intake(Message(data, {}, "", C.EXCHANGE_SUBMIT, user, None, 0, redelivered, None), user)


def check(ctx, data: bytes, user: str):
    return check_package(data, ctx, adapter_user=user)


def test_accepted_edoc_writes_its_document_deliveries_outbox_and_records(ctx, decisions, signed):
    data = signed(make_edoc(G22, (H41, H44)))
    v = check(ctx, data, G22)
    d = decisions()
    view = StoreView()
    assert d.decide(intake(data, G22), v, view, again=False) == "accepted"
    p = d.plan
    [doc] = p.documents
    assert (doc["sender"], doc["document_id"], doc["kind"], doc["sha256"]) == (G22, v.document_id, "edoc", v.sha256)
    assert sorted(r["recipient"] for _, r in p.deliveries) == [H41, H44]
    assert [o.message.routing_key for o in p.outbox] == [inbox_key(H41, False), inbox_key(H44, False)]
    assert all(o.new_document == 0 and o.row["intake_sha256"] == v.sha256 for o in p.outbox)
    # the delivered copy carries the hub's hop; the row keeps the time to re-derive it
    assert all(o.message.body == v.relayed and o.row["headers"][C.H_TRACE_AT] for o in p.outbox)
    assert [r["event"] for r in p.records] == ["package.received", "package.accepted"]
    assert list(p.packages) == [v.sha256]
    assert p.seen == [{"sha256": v.sha256, "adapter_user": G22, "recorded_at": NOW}]
    assert (p.accepted, p.refused, p.duplicates, p.by_auth) == (1, 0, 0, {"signature": 1})
    d.documents_written([41], view)
    assert view.existing[(G22, v.document_id)] == {"id": 41, "sha256": v.sha256}


def test_same_bytes_again_from_the_same_publisher_is_a_duplicate(ctx, decisions, signed):
    data = signed(make_edoc(G22, (H41,)))
    v = check(ctx, data, G22)
    d = decisions()
    view = StoreView(existing={(G22, v.document_id): {"id": 7, "sha256": v.sha256}})
    assert d.decide(intake(data, G22), v, view, again=False) == "duplicate"
    p = d.plan
    assert p.documents == [] and p.outbox == [] and p.duplicates == 1
    assert [r["event"] for r in p.records] == ["package.duplicate"]


def test_in_batch_duplicate(ctx, decisions, signed):
    data = signed(make_edoc(G22, (H41,)))
    v = check(ctx, data, G22)
    d = decisions()
    view = StoreView()
    assert [d.decide(intake(data, G22), v, view, again=False) for _ in range(2)] == ["accepted", "duplicate"]
    assert len(d.plan.documents) == 1 and len(d.plan.outbox) == 1
    assert len(d.plan.seen) == 1  # one idempotency row per (digest, publisher)


def test_same_document_id_other_bytes_is_a_conflict_answered_to_the_sender(ctx, decisions, signed):
    doc = make_edoc(G22, (H41,))
    data = signed(doc)
    other = signed(replace(doc, subject="khác"))
    v = check(ctx, other, G22)
    d = decisions()
    view = StoreView(existing={(G22, doc.document_id): {"id": 7, "sha256": check(ctx, data, G22).sha256}})
    assert d.decide(intake(other, G22), v, view, again=False) == "refused"
    p = d.plan
    assert p.documents == [] and p.by_reason == {"state.duplicate_conflict": 1}
    [out] = p.outbox
    assert out.message.exchange == C.EXCHANGE_DELIVER and out.message.routing_key == inbox_key(G22, True)
    assert out.message.headers[C.H_REASON] == "state.duplicate_conflict"
    assert out.message.headers["x-edxml-refused-sha256"] == v.sha256
    st = parse_xml(out.message.body)  # a hub-signed status 02 answering that DocumentId
    assert st.findtext(".//{%s}StatusCode" % C.EDXML_NS) == "02"
    assert [r["event"] for r in p.records] == ["package.refused"]
    assert p.records[0]["details"]["stage"] == "state"


def test_refusal_of_the_checks_and_dead_letters(ctx, decisions, signed):
    d = decisions()
    view = StoreView()
    bad = signed(make_edoc(G22, (H41,))).replace(b"VPCP-TT", b"VPCP-XX")  # the digest no longer matches
    v = check(ctx, bad, G22)
    assert not v.accepted
    assert d.decide(intake(bad, G22), v, view, again=False) == "refused"
    [answer] = d.plan.outbox
    assert answer.message.headers[C.H_REASON] == v.reason and answer.message.headers[C.H_RECIPIENT] == G22
    # not XML from an unknown publisher: nobody to answer, dead-lettered with the reason
    junk = check(ctx, b"not xml", "stranger")
    assert d.decide(intake(b"not xml", "stranger"), junk, view, again=False) == "refused"
    dead = d.plan.outbox[-1]
    assert dead.message.exchange == C.EXCHANGE_DEAD and dead.message.headers[C.H_KIND] == "dead"
    assert dead.message.headers[C.H_ORIGINAL_USER] == "stranger"
    assert d.plan.dead == 1 and d.plan.refused == 2
    assert [r["event"] for r in d.plan.records] == ["package.refused", "package.refused", "package.dead"]


def test_unrecordable_refusal(ctx, decisions, signed):
    data = signed(make_edoc(G22, (H41,)))
    v = check(ctx, data, G22)
    refusal = replace(v, accepted=False, reason=UNRECORDABLE, stage="record", package=None, routes=(),
                      claimed_sender=G22, claimed_document_id=v.document_id, message="the hub cannot record it")
    d = decisions()
    assert d.decide(intake(data, G22), refusal, StoreView(), again=True) == "refused"
    [out] = d.plan.outbox
    assert out.message.headers[C.H_REASON] == UNRECORDABLE and out.message.headers[C.H_DOCUMENT_ID] == v.document_id
    assert d.plan.records[0]["details"]["stage"] == "record"


def test_already_recorded_only_finishes_its_outbox(ctx, decisions, signed):
    data = signed(make_edoc(G22, (H41,)))
    v = check(ctx, data, G22)
    refused = check(ctx, b"<x/>", G22)
    view = StoreView(seen={(v.sha256, G22), (refused.sha256, G22)})
    d = decisions()
    assert d.decide(intake(data, G22, redelivered=True), v, view, again=True) == "pending"
    assert d.decide(intake(b"<x/>", G22, redelivered=True), refused, view, again=True) == "pending"
    assert d.plan.pending_for == [v.sha256, refused.sha256]
    assert d.plan.outbox == [] and d.plan.records == [] and d.plan.seen == []
    # a first delivery of bytes seen before (published again on purpose) is decided as usual
    assert d.decide(intake(b"<x/>", G22), refused, view, again=False) == "refused"
    assert d.plan.seen == []  # its row exists
    # the same bytes from another publisher are another message
    other = StoreView(seen={(refused.sha256, H41)})
    assert not d.already_recorded(intake(b"<x/>", G22), refused, other)


def test_unknown_response_for_is_refused(ctx, decisions, signed):
    from hub.edxml.model import ResponseFor

    data = signed(make_edoc(G22, (H41,), response_for=(ResponseFor(H41, "000.00.00.H41,2026/11/27,1/X"),)))
    v = check(ctx, data, G22)
    d = decisions()
    assert d.decide(intake(data, G22), v, StoreView(), again=False) == "refused"
    assert d.plan.by_reason == {"state.unknown_document": 1}
    known = StoreView(known={(H41, "000.00.00.H41,2026/11/27,1/X", G22)})
    assert decisions().decide(intake(data, G22), v, known, again=False) == "accepted"


def test_revocation_links_to_what_it_acts_on(ctx, decisions, signed):
    first = make_edoc(G22, (H41,))
    revocation = replace(make_edoc(G22, (H41,)), business=Business(document_id=first.document_id, doc_type=1))
    data = signed(revocation)
    v = check(ctx, data, G22)
    d = decisions()
    assert d.decide(intake(data, G22), v, StoreView(), again=False) == "refused"  # it names nothing the hub has
    assert d.plan.by_reason == {"state.unknown_document": 1}
    d = decisions()
    assert d.decide(intake(data, G22), v, StoreView(acts_on={(G22, first.document_id): 5}), again=False) == "accepted"
    [doc] = d.plan.documents
    assert (doc["refers_to"], doc["business_type"]) == (5, 1)
    assert [r["event"] for r in d.plan.records][-1] == "document.revoked"


def _copies(doc_id: int, sender: str, dels: list[tuple[int, str]], history: dict | None = None,
            business_type=None) -> Copies:
    return Copies({"id": doc_id, "sender": sender, "business_type": business_type},
                  [{"id": i, "recipient": r, "system": r} for i, r in dels], history or {})


def test_status_transitions_allowed_and_refused(ctx, decisions, signed, signed_status):
    doc = make_edoc(G22, (H41, H44))
    original = _copies(3, G22, [(10, H41), (11, H44)])
    data = signed_status(H41, G22, doc.document_id, "01")
    v = check(ctx, data, H41)
    assert v.accepted, v.message
    d = decisions()
    view = StoreView()
    assert d.decide(intake(data, H41), v, view, again=False) == "status"
    write = d.status(intake(data, H41), v, view, StatusView(original))
    assert write is not None
    assert write.document["refers_to"] == 3 and write.document["kind"] == "status"
    assert write.shown == {10: "01"}
    assert [h["delivery"] for h in write.history] == [10]
    [out] = write.outbox
    assert out.message.headers[C.H_RECIPIENT] == G22
    d.status_written(write, 99, view)
    assert write.history[0]["status_document"] == 99 and d.plan.outbox[0].row["document"] == 99
    assert [r["event"] for r in d.plan.records] == ["package.received", "status.recorded"]
    # going back from 04 to 01 is refused with the rule that was broken, answered to H41
    back = signed_status(H41, G22, doc.document_id, "01", description="lùi")
    vb = check(ctx, back, H41)
    d = decisions()
    assert d.status(intake(back, H41), vb, StoreView(), StatusView(_copies(3, G22, [(10, H41)], {10: ["01", "04"]}))) is None
    assert d.plan.by_reason == {"state.invalid_transition": 1}
    assert d.plan.outbox[0].message.headers[C.H_RECIPIENT] == H41


def test_status_about_an_unknown_or_unseen_document(ctx, decisions, signed_status):
    data = signed_status(H44, G22, "000.00.00.G22,2026/11/27,424242/VPCP", "01")
    v = check(ctx, data, H44)
    d = decisions()
    assert d.status(intake(data, H44), v, StoreView(), StatusView(None)) is None
    # a document H44 never received is answered exactly the same way
    assert d.status(intake(data, H44), v, StoreView(), StatusView(_copies(3, G22, [(10, H41)]))) is None
    assert d.plan.by_reason == {"state.unknown_document": 2}


def test_an_answer_to_a_revocation_goes_to_the_revocation(ctx, decisions, signed_status):
    original = _copies(3, G22, [(10, H41)], {10: ["01"]})
    revocation = _copies(4, G22, [(20, H41)], {}, business_type=1)
    data = signed_status(H41, G22, "000.00.00.G22,2026/11/27,1/VPCP", "15")
    v = check(ctx, data, H41)
    d = decisions()
    write = d.status(intake(data, H41), v, StoreView(), StatusView(original, (revocation,)))
    assert write is not None and write.document["refers_to"] == 4 and write.shown == {20: "15"}
