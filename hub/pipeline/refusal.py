"""Status 02 packages the hub signs to answer a refusal."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from hub.edxml.builder import build_status
from hub.edxml.model import Organization, ResponseFor, StatusPackage
from hub.pki.identity import Identity
from hub.registry import codes


def refusal_document_id(sender: str, sha256: str, when: datetime) -> str:
    """A DocumentId for a package whose own id could not be read."""
    return f"{sender},{when:%Y/%m/%d},sha256-{sha256[:16]}/HUB"


def build_refusal(hub: Identity, *, to_sender: str, document_id: str | None, sha256: str,
                  reason: str, message: str, when: datetime | None = None) -> tuple[bytes, str]:
    """Return (signed status 02 bytes, the DocumentId it answers)."""
    when = (when or datetime.now()).replace(microsecond=0)
    usable = document_id and len(document_id) <= 255 and re.fullmatch(r"\S(?:.*\S)?", document_id)
    doc_id = document_id if usable else refusal_document_id(to_sender, sha256, when)
    sender = to_sender if codes.is_valid(to_sender) else hub.organ_id
    text = f"{reason}: {message}"
    st = StatusPackage(
        sender=Organization(hub.organ_id, organ_name="edXML interchange hub"),
        response_for=ResponseFor(sender, doc_id),
        status_code="02",
        description=text[:4000],
        timestamp=when,
    )
    return hub.sign(build_status(st)), doc_id


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
