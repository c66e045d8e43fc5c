"""What a status package does to the copies of the document it is about. Pure.

A status is delivered to ``ResponseFor/OrganId`` and is about the document named by
``ResponseFor/DocumentId``. For 01–06, 15 and 16 the sender is a recipient and
``ResponseFor/OrganId`` the document's original sender; for 13 (recall) it is the other way
round: ``From`` is the original sender and ``ResponseFor/OrganId`` the recipient whose copy is
recalled (a 13 naming the sender itself recalls every copy, as earlier hub versions sent it).
The worker reads the rows; this module decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hub.edxml.model import StatusPackage
from hub.errors import AuthorityError
from hub.pipeline.lifecycle import AGREE, RECALL, REFUSE, REVOCATION, UPDATE, CopyState, advance, replay
from hub.registry.model import Registry


def document_keys(st: StatusPackage) -> list[tuple[str, str]]:
    """(original sender, DocumentId) of the document the status is about, most likely first: a
    13 is about a document of its From (or, sent by someone else, of ResponseFor/OrganId: then
    refused as not from the original sender)."""
    rf = st.response_for
    if st.status_code == RECALL:
        return [(st.sender.organ_id, rf.document_id), (rf.organ_id, rf.document_id)]
    return [(rf.organ_id, rf.document_id)]


def is_answer(code: str) -> bool:
    """15/16: an answer to a recall, a revocation or an update."""
    return code in (AGREE, REFUSE)


@dataclass(frozen=True)
class StatusDecision:
    targets: tuple[Mapping, ...]  # the delivery rows the status applies to
    shown: dict[int, str | None]  # delivery id -> its current status afterwards
    by_original_sender: bool

    @property
    def recall(self) -> bool:
        """A recall goes to the recalled copies' inboxes (the others to ResponseFor/OrganId)."""
        return self.by_original_sender and bool(self.targets)


def _recipient_copies(sender: str, dels: Sequence[Mapping], registry: Registry) -> list[Mapping]:
    mine = [d for d in dels if d["recipient"] == sender]
    if not mine:
        # A connected system answers for the agencies it serves (they have no keys of their own).
        system = registry.system_of(sender)
        mine = [d for d in dels if d["system"] == system and system == sender]
    return mine


def saw_document(sender: str, original_sender: str, dels: Sequence[Mapping], registry: Registry) -> bool:
    """Whether ``sender`` sent or received the document: a status about one it never saw is
    answered exactly like one about a made-up DocumentId (nothing is disclosed)."""
    return sender == original_sender or bool(_recipient_copies(sender, dels, registry))


def decide_status(st: StatusPackage, original_sender: str, business_type: int | None, dels: Sequence[Mapping],
                  history: Mapping[int, Sequence[str]], registry: Registry) -> StatusDecision:
    """Check the status against every copy it applies to; raise the first refusal.

    ``history``: delivery id -> the status codes recorded on it, oldest first.
    """
    sender = st.sender.organ_id
    code = st.status_code
    by_original = sender == original_sender
    answerable = business_type if business_type in (REVOCATION, UPDATE) else None
    if code == RECALL and by_original:
        target = st.response_for.organ_id
        if target == sender:
            targets = list(dels)
        else:
            targets = [d for d in dels if d["recipient"] == target] or [d for d in dels if d["system"] == target]
        if not targets:
            raise AuthorityError(f"{target} is not a recipient of {st.response_for.document_id}; a recall names the "
                                 "recipient whose copy it recalls in ResponseFor/OrganId",
                                 code="authority.not_recipient", element="ResponseFor/OrganId")
        by_recipient = False
    else:
        targets = _recipient_copies(sender, dels, registry)
        by_recipient = bool(targets)
        if not targets:
            advance(CopyState(), code, by_original_sender=by_original, by_recipient=False)  # names the rule broken
            raise AuthorityError(f"{sender} is not a recipient of {st.response_for.document_id}",
                                 code="authority.not_recipient", element="From/OrganId")
    shown = {}
    for d in targets:
        state = replay(history.get(d["id"], ()), answerable=answerable)
        after = advance(state, code, by_original_sender=by_original, by_recipient=by_recipient, answerable=answerable)
        shown[d["id"]] = after.shown
    return StatusDecision(tuple(targets), shown, by_original)
