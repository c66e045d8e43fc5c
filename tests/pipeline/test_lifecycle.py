"""The status lifecycle table (hub/pipeline/lifecycle.py): forward moves and skips, a first
status other than 01, 05 repeating, nothing after 02/06, recalls answered by 15/16 (16 returns
to the state before the recall), and 15/16 as answers to revocations and updates."""

from __future__ import annotations

import pytest

from hub.errors import AuthorityError, ConflictError
from hub.pipeline.lifecycle import CopyState, advance, allowed_next, replay

RECIPIENT = {"by_original_sender": False, "by_recipient": True}
SENDER = {"by_original_sender": True, "by_recipient": False}


def state_after(*codes: str, answerable=None) -> CopyState:
    return replay(codes, answerable=answerable)


def ok(codes: tuple[str, ...], new: str, answerable=None) -> CopyState:
    who = SENDER if new == "13" else RECIPIENT
    return advance(state_after(*codes, answerable=answerable), new, answerable=answerable, **who)


def refused(codes: tuple[str, ...], new: str, answerable=None) -> ConflictError:
    who = SENDER if new == "13" else RECIPIENT
    with pytest.raises(ConflictError) as e:
        advance(state_after(*codes, answerable=answerable), new, answerable=answerable, **who)
    assert e.value.code == "state.invalid_transition"
    assert "allowed next" in e.value.message
    return e.value


@pytest.mark.parametrize("codes,new", [
    ((), "01"), ((), "02"), ((), "03"), ((), "04"), ((), "05"), ((), "06"),  # any first status
    (("01",), "02"), (("01",), "03"), (("01",), "04"),  # 01→04 skips
    (("03",), "06"), (("03",), "04"), (("04",), "05"), (("05",), "06"),  # 03→06 skips
    (("05",), "05"), (("01", "05", "05"), "05"),  # 05 repeats
])
def test_forward_moves_are_allowed(codes, new):
    s = ok(codes, new)
    assert s.handling == new and s.shown == new


@pytest.mark.parametrize("codes,new,allowed", [
    (("03",), "01", "04, 05, 06, 13"),  # backward
    (("04",), "03", "05, 06, 13"),
    (("03",), "02", "04, 05, 06, 13"),  # rejecting after accepting is backward
    (("01",), "01", "02, 03, 04, 05, 06, 13"),  # only 05 repeats
    (("06",), "05", "13"),  # nothing after 06 (the sender may still recall)
    (("02",), "03", "nothing"),  # nothing at all after 02
    (("02",), "06", "nothing"),
])
def test_backward_and_after_final_are_refused_with_the_allowed_codes(codes, new, allowed):
    e = refused(codes, new)
    assert e.message.endswith(allowed) or allowed in e.message, e.message


def test_recall_only_from_the_original_sender():
    with pytest.raises(AuthorityError) as e:
        advance(state_after("01"), "13", **RECIPIENT)
    assert e.value.code == "authority.not_original_sender"


def test_statuses_only_from_a_recipient():
    with pytest.raises(AuthorityError) as e:
        advance(state_after(), "01", **SENDER)
    assert e.value.code == "authority.not_recipient"


def test_recall_agreed_closes_the_copy():
    s = ok(("03",), "13")
    assert s.shown == "13" and s.recall_open
    assert allowed_next(s) == ["15", "16"]
    s = ok(("03", "13"), "15")
    assert s.closed and s.shown == "15"
    refused(("03", "13", "15"), "04")
    refused(("03", "13", "15"), "13")


def test_recall_refused_returns_to_the_state_before_the_recall():
    s = ok(("01", "04"), "13")
    s = advance(s, "16", **RECIPIENT)
    assert s.shown == "04" and s.handling == "04" and not s.recall_open and not s.closed
    assert ok(("01", "04", "13", "16"), "06").shown == "06"
    refused(("01", "04", "13", "16"), "03")  # still only forward
    assert ok(("13",), "16").shown is None  # recalled before any status: back to none


def test_while_a_recall_is_open_only_15_or_16():
    refused(("03", "13"), "04")
    refused(("03", "13"), "13")


def test_recall_after_done_is_allowed_but_not_after_rejection():
    assert ok(("06",), "13").shown == "13"
    refused(("02",), "13")


def test_15_16_without_anything_to_answer_are_refused():
    refused(("03",), "15")
    refused((), "16")


@pytest.mark.parametrize("business", [1, 2])
def test_15_16_answer_a_revocation_or_an_update_once(business):
    s = ok(("01",), "15", answerable=business)
    assert s.answered == "15" and s.shown == "15"
    assert s.closed == (business == 1)  # agreeing to a revocation closes the copy
    s = ok(("01",), "16", answerable=business)
    assert s.answered == "16" and not s.closed
    refused(("01", "16"), "15", answerable=business)  # answered once


def test_an_update_answered_goes_on_being_handled():
    assert ok(("01", "15"), "03", answerable=2).shown == "03"


def test_unknown_code_is_refused():
    refused(("01",), "09")
