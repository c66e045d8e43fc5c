"""What a package does to earlier documents: ``TraceHeaderList/Bussiness`` (sic).

BussinessDocType 0 new, 1 revocation (thu hồi), 2 update (cập nhật), 3 replacement (thay thế).
For 1-3 ``Bussiness/DocumentId`` names the earlier document; an update may add or remove
recipients (``ReceiverList/Receiver``, ReceiverType 1 added, 0 removed); a replacement lists
what it replaces (``ReplacementInfoList``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hub.edxml.document_id import DocumentRef, parse_document_id

if TYPE_CHECKING:  # annotations only: StaffInfo belongs to the read model (hub.edxml.model)
    from hub.edxml.model import StaffInfo

__all__ = ["BUSINESS_DOC_TYPES", "DOC_NEW", "DOC_REPLACEMENT", "DOC_REVOCATION", "DOC_UPDATE", "RECEIVER_ADDED",
           "RECEIVER_REMOVED", "Business", "Receiver", "ReplacementInfo"]


# Bussiness/BussinessDocType
DOC_NEW, DOC_REVOCATION, DOC_UPDATE, DOC_REPLACEMENT = 0, 1, 2, 3
BUSINESS_DOC_TYPES = {DOC_NEW: "new", DOC_REVOCATION: "revocation", DOC_UPDATE: "update", DOC_REPLACEMENT: "replacement"}
# Receiver/ReceiverType
RECEIVER_REMOVED, RECEIVER_ADDED = 0, 1


@dataclass(frozen=True)
class Receiver:
    """Bussiness/BussinessDocumentInfo/ReceiverList/Receiver: a recipient an update changes."""

    organ_id: str
    receiver_type: int  # RECEIVER_ADDED (1) or RECEIVER_REMOVED (0)


@dataclass(frozen=True)
class ReplacementInfo:
    """Bussiness/ReplacementInfoList/ReplacementInfo: a document a replacement replaces, and for whom."""

    document_id: str
    organ_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Business:
    document_id: str = ""  # for 1-3: the earlier document the package acts on
    doc_type: int = 0  # 0 new, 1 revocation, 2 update, 3 replacement
    reason: str = ""
    paper: int = 0
    staff: "StaffInfo | None" = None
    document_info: str = ""  # BussinessDocumentInfo/DocumentInfo
    document_receiver: str = ""  # BussinessDocumentInfo/DocumentReceiver
    receivers: tuple[Receiver, ...] = ()  # BussinessDocumentInfo/ReceiverList
    replacements: tuple[ReplacementInfo, ...] = ()  # ReplacementInfoList
    has_document_info: bool = False  # BussinessDocumentInfo present (even if empty)

    @property
    def doc_type_name(self) -> str:
        return BUSINESS_DOC_TYPES.get(self.doc_type, str(self.doc_type))

    @property
    def document_ref(self) -> DocumentRef | None:
        return parse_document_id(self.document_id)

    @property
    def added(self) -> tuple[str, ...]:
        """Recipients an update adds (ReceiverType 1)."""
        return tuple(r.organ_id for r in self.receivers if r.receiver_type == RECEIVER_ADDED)

    @property
    def removed(self) -> tuple[str, ...]:
        """Recipients an update removes (ReceiverType 0)."""
        return tuple(r.organ_id for r in self.receivers if r.receiver_type == RECEIVER_REMOVED)
