"""Status lifecycle of one delivery (one recipient's copy of a document). Pure.

As real systems use the codes (issue 11):

- handling moves only forward: 01 arrived, 02 rejected, 03 accepted, 04 assigned, 05 being
  handled, 06 done. Any forward move is allowed, skips included (01→04, 03→06), and the first
  status need not be 01; 05 may repeat (progress reports). Backward moves are refused, and
  nothing follows 02 or 06;
- 13 (recall) comes only from the original sender, on a copy not rejected (02) and not already
  recalled; while it is open the recipient answers 15 (agree: the copy is closed, nothing
  follows) or 16 (refuse: the copy is back in the state it had before the recall);
- a revocation or update (BussinessDocType 1, 2) is answered once with 15 or 16 as well
  (``answerable``); after 15 to a revocation the copy is closed.

:func:`advance` checks one move and returns the new state; :func:`replay` rebuilds the state
from the recorded history. Every refusal names the allowed next codes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from hub.edxml.business import DOC_REVOCATION, DOC_UPDATE
from hub.errors import AuthorityError, ConflictError

HANDLING = ("01", "02", "03", "04", "05", "06")
FINAL = frozenset({"02", "06"})
RECALL, AGREE, REFUSE = "13", "15", "16"
RECIPIENT_CODES = frozenset(HANDLING) | {AGREE, REFUSE}
ALL_CODES = RECIPIENT_CODES | {RECALL}
REVOCATION, UPDATE = DOC_REVOCATION, DOC_UPDATE  # BussinessDocTypes answered with 15/16


@dataclass(frozen=True)
class CopyState:
    """One recipient's copy. ``shown`` is what the delivery's current status says."""

    handling: str | None = None  # the last of 01..06
    recall_open: bool = False  # a 13 waits for 15/16
    closed: bool = False  # recalled (13→15) or revocation agreed: nothing follows
    answered: str | None = None  # 15/16 given to a revocation or update
    shown: str | None = None


def allowed_next(state: CopyState, *, answerable: int | None = None) -> list[str]:
    """The codes that may follow ``state`` (from either party), in code order."""
    if state.closed:
        return []
    if state.recall_open:
        return [AGREE, REFUSE]
    nxt = [c for c in HANDLING if _forward(state.handling, c)]
    if answerable in (REVOCATION, UPDATE) and state.answered is None:
        nxt += [AGREE, REFUSE]
    if state.handling != "02":
        nxt.append(RECALL)
    return sorted(nxt)


def _forward(current: str | None, new: str) -> bool:
    if current in FINAL:
        return False
    if current is None:
        return True
    return new > current or new == current == "05"


def _refuse(state: CopyState, new: str, why: str, answerable: int | None) -> ConflictError:
    nxt = ", ".join(allowed_next(state, answerable=answerable)) or "nothing (the copy is final)"
    return ConflictError(f"status {new} {why}; allowed next: {nxt}", code="state.invalid_transition",
                         element="StatusCode")


def advance(state: CopyState, new: str, *, by_original_sender: bool, by_recipient: bool,
            answerable: int | None = None) -> CopyState:
    """The state after ``new`` from this party, or raise (AuthorityError, ConflictError).

    ``answerable``: the document's BussinessDocType when it is a revocation (1) or an update (2).
    """
    if new == RECALL:
        if not by_original_sender:
            raise AuthorityError("only the original sender may recall a document (status 13)",
                                 code="authority.not_original_sender", element="StatusCode")
        if state.closed or state.recall_open or state.handling == "02":
            what = ("already recalled or closed" if state.closed else "already being recalled" if state.recall_open
                    else "rejected (02)")
            raise _refuse(state, new, f"cannot recall this copy: it is {what}", answerable)
        return replace(state, recall_open=True, shown=RECALL)
    if new not in RECIPIENT_CODES:
        raise _refuse(state, new, "is not a status code (01-06, 13, 15, 16)", answerable)
    if not by_recipient:
        raise AuthorityError(f"status {new} must come from a recipient of the document",
                             code="authority.not_recipient", element="From/OrganId")
    if state.closed:
        raise _refuse(state, new, "cannot follow: the copy is closed (recalled, or a revocation agreed)", answerable)
    if new in (AGREE, REFUSE):
        if state.recall_open:
            if new == AGREE:
                return replace(state, recall_open=False, closed=True, shown=AGREE)
            return replace(state, recall_open=False, shown=state.handling)  # back to before the recall
        if answerable in (REVOCATION, UPDATE) and state.answered is None:
            return replace(state, answered=new, closed=(new == AGREE and answerable == REVOCATION), shown=new)
        raise _refuse(state, new, "answers a recall, a revocation or an update, and none is waiting for an answer",
                      answerable)
    if state.recall_open:
        raise _refuse(state, new, "cannot follow: the sender recalls the document; answer 15 or 16 first", answerable)
    if not _forward(state.handling, new):
        why = (f"cannot follow {state.handling}: nothing follows {state.handling}" if state.handling in FINAL
               else f"cannot follow {state.handling}: statuses only move forward")
        raise _refuse(state, new, why, answerable)
    return replace(state, handling=new, shown=new)


def replay(codes: Iterable[str], *, answerable: int | None = None) -> CopyState:
    """The state a recorded history leads to (each move was checked when it was recorded)."""
    state = CopyState()
    for code in codes:
        state = advance(state, code, by_original_sender=True, by_recipient=True, answerable=answerable)
    return state


def check_status(current: str | None, new: str, *, by_original_sender: bool, by_recipient: bool) -> None:
    """Compatibility: check ``new`` after a copy whose only known status is ``current``."""
    state = replay([current] if current else [])
    advance(state, new, by_original_sender=by_original_sender, by_recipient=by_recipient)
