"""Pure decisions about statuses and business types (hub/pipeline/statuses.py, business.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hub.edxml.model import Business, Receiver, ReplacementInfo
from hub.errors import AuthorityError, ConflictError
from hub.pipeline.business import business_link, target_ids, update_recipients
from hub.pipeline.statuses import decide_status, document_keys
from tests.conftest import G22, H41, H44, make_edoc, make_status, registry_for

DOC = "000.00.00.G22,2026/11/27,1/VPCP"
DELS = [{"id": 1, "recipient": H41, "system": H41}, {"id": 2, "recipient": H44, "system": H44}]


@pytest.fixture
def registry(pki):
    return registry_for(pki)


def test_a_recall_is_about_its_senders_document():
    assert document_keys(make_status(G22, H41, DOC, "13")) == [(G22, DOC), (H41, DOC)]
    assert document_keys(make_status(H41, G22, DOC, "03")) == [(G22, DOC)]


def test_a_recall_applies_to_the_recipient_it_names(registry):
    d = decide_status(make_status(G22, H41, DOC, "13"), G22, None, DELS, {1: ["03"]}, registry)
    assert [t["recipient"] for t in d.targets] == [H41] and d.shown == {1: "13"} and d.recall
    # naming itself: every copy (as earlier hub versions sent it)
    d = decide_status(make_status(G22, G22, DOC, "13"), G22, None, DELS, {}, registry)
    assert [t["recipient"] for t in d.targets] == [H41, H44]


def test_a_recall_naming_a_non_recipient_is_refused(registry):
    with pytest.raises(AuthorityError) as e:
        decide_status(make_status(G22, "000.00.00.H13", DOC, "13"), G22, None, DELS, {}, registry)
    assert e.value.code == "authority.not_recipient"


def test_a_recall_from_a_recipient_is_refused(registry):
    with pytest.raises(AuthorityError) as e:
        decide_status(make_status(H41, G22, DOC, "13"), G22, None, DELS, {}, registry)
    assert e.value.code == "authority.not_original_sender"


def test_a_status_applies_to_its_senders_copy(registry):
    d = decide_status(make_status(H44, G22, DOC, "05"), G22, None, DELS, {2: ["01"]}, registry)
    assert [t["id"] for t in d.targets] == [2] and d.shown == {2: "05"} and not d.recall
    with pytest.raises(ConflictError):
        decide_status(make_status(H44, G22, DOC, "03"), G22, None, DELS, {2: ["05"]}, registry)
    with pytest.raises(AuthorityError) as e:
        decide_status(make_status("000.00.00.H13", G22, DOC, "01"), G22, None, DELS, {}, registry)
    assert e.value.code == "authority.not_recipient"


def test_16_after_a_recall_shows_the_state_before_it(registry):
    d = decide_status(make_status(H41, G22, DOC, "16"), G22, None, DELS, {1: ["01", "04", "13"]}, registry)
    assert d.shown == {1: "04"}


def test_15_answers_a_revocation(registry):
    d = decide_status(make_status(H41, G22, DOC, "15"), G22, 1, DELS, {1: ["01"]}, registry)
    assert d.shown == {1: "15"}
    with pytest.raises(ConflictError):
        decide_status(make_status(H41, G22, DOC, "15"), G22, None, DELS, {1: ["01"]}, registry)


def test_business_link_needs_a_document_its_sender_sent():
    first = make_edoc(G22, (H41,))
    rev = replace(make_edoc(G22, (H41,)), business=Business(document_id=first.document_id, doc_type=1))
    link = business_link(rev, {(G22, first.document_id): 7})
    assert link.doc_type == 1 and link.refers_to == 7 and link.targets == ((first.document_id, 7),)
    with pytest.raises(ConflictError) as e:
        business_link(rev, {(H41, first.document_id): 7})  # someone else's document of that id
    assert e.value.code == "state.unknown_document"
    with pytest.raises(ConflictError) as e:
        business_link(replace(rev, business=Business(doc_type=1)), {})
    assert e.value.code == "state.unknown_document" and "Bussiness/DocumentId" in e.value.message
    assert business_link(make_edoc(G22, (H41,)), {}) is None  # a new document


def test_replacement_targets_and_update_recipients():
    a, b = "000.00.00.G22,2026/01/01,1/X", "000.00.00.G22,2026/01/02,2/X"
    rep = replace(make_edoc(G22, (H41,)), business=Business(doc_type=3, replacements=(
        ReplacementInfo(a, (H41,)), ReplacementInfo(b, (H41,)), ReplacementInfo(a, (H44,)))))
    assert target_ids(rep) == [a, b]
    upd = replace(make_edoc(G22, (H41,)), business=Business(document_id=a, doc_type=2, receivers=(
        Receiver(H44, 1), Receiver(H41, 0))))
    assert update_recipients(upd) == (H41, H44)
    link = business_link(upd, {(G22, a): 3})
    assert link.added == (H44,) and link.removed == (H41,)
    assert link.record_details(upd.document_id)["removed"] == [H41]


def test_who_saw_the_document(registry):
    from hub.pipeline.statuses import saw_document

    assert saw_document(G22, G22, DELS, registry) and saw_document(H44, G22, DELS, registry)
    assert not saw_document("000.00.00.H13", G22, DELS, registry)
