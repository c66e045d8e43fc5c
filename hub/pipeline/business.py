"""Revocations, updates and replacements (BussinessDocType 1, 2, 3). Pure.

Such a package is a new document (its own ``MessageHeader/DocumentId``) acting on an earlier
one the same sender sent: ``TraceHeaderList/Bussiness/DocumentId`` names it (a replacement may
instead list what it replaces in ``ReplacementInfoList``). The hub links the two — the earlier
document's timeline says it was revoked, updated or replaced and by which package — delivers
an update also to the recipients it adds (``ReceiverType`` 1, routed by the checks) and records
those it removes (0). Recipients answer a revocation or an update with 15 or 16
(:mod:`hub.pipeline.lifecycle`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hub.constants import BUSINESS_DONE
from hub.edxml.business import BUSINESS_DOC_TYPES, DOC_REPLACEMENT, DOC_REVOCATION, DOC_UPDATE
from hub.edxml.model import Edoc
from hub.errors import ConflictError

NAMES = {t: BUSINESS_DOC_TYPES[t] for t in (DOC_REVOCATION, DOC_UPDATE, DOC_REPLACEMENT)}
EVENTS = {t: f"document.{done}" for t, done in BUSINESS_DONE.items()}  # entries on the earlier document
WHERE = "TraceHeaderList/Bussiness/DocumentId"


@dataclass(frozen=True)
class BusinessLink:
    doc_type: int  # 1, 2 or 3
    targets: tuple[tuple[str, int], ...]  # (DocumentId, documents.id) of the earlier documents, in order
    added: tuple[str, ...] = ()  # recipients an update adds
    removed: tuple[str, ...] = ()  # recipients an update removes
    reason: str = ""

    @property
    def refers_to(self) -> int:
        return self.targets[0][1]

    def record_details(self, by_document_id: str) -> dict:
        return {"by": by_document_id, "business_type": self.doc_type, "action": NAMES[self.doc_type],
                "reason": self.reason or None, "added": list(self.added), "removed": list(self.removed)}


def target_ids(doc: Edoc) -> list[str]:
    """The DocumentIds the package acts on (empty for a new document)."""
    b = doc.business
    if b is None or b.doc_type not in NAMES:
        return []
    if b.document_id:
        return [b.document_id]
    if b.doc_type == DOC_REPLACEMENT:
        seen: list[str] = []
        for r in b.replacements:
            if r.document_id and r.document_id not in seen:
                seen.append(r.document_id)
        return seen
    return []


def business_link(doc: Edoc, known: Mapping[tuple[str, str], int | None]) -> BusinessLink | None:
    """The link of a revocation/update/replacement to what it acts on, or None for a new
    document. ``known``: (sender, DocumentId) -> documents.id of documents the hub has.
    Raises ConflictError when it names nothing, or a document its sender did not send."""
    b = doc.business
    if b is None or b.doc_type not in NAMES:
        return None
    name = NAMES[b.doc_type]
    ids = target_ids(doc)
    if not ids:
        raise ConflictError(f"a {name} (BussinessDocType {b.doc_type}) must name the document it acts on in "
                            f"{WHERE}", code="state.unknown_document", element=WHERE)
    sender = doc.sender.organ_id
    targets = []
    for doc_id in ids:
        if doc_id == doc.document_id:
            raise ConflictError(f"a {name} is a new document: its MessageHeader/DocumentId must differ from the "
                                f"document it acts on ({doc_id})", code="state.duplicate_conflict",
                                element="MessageHeader/DocumentId")
        pk = known.get((sender, doc_id))
        if pk is None:
            raise ConflictError(f"the {name} acts on {doc_id}, which {sender} has not sent through the hub; "
                                "only the sender of a document may revoke, update or replace it",
                                code="state.unknown_document", element=WHERE)
        targets.append((doc_id, pk))
    added = b.added if b.doc_type == DOC_UPDATE else ()
    removed = b.removed if b.doc_type == DOC_UPDATE else ()
    return BusinessLink(b.doc_type, tuple(targets), added, removed, b.reason)


def update_recipients(doc: Edoc) -> tuple[str, ...]:
    """Who an update goes to: its To recipients, then those it adds (once each)."""
    out = list(dict.fromkeys(o.organ_id for o in doc.recipients))
    b = doc.business
    if b is not None and b.doc_type == DOC_UPDATE:
        out += [code for code in b.added if code not in out]
    return tuple(out)
