"""Build edXML packages from the read model's fields. Always emits the ``edXML:`` prefixed form.

What is emitted is what the national SDK writes and reads: a status inside
``edXMLHeader/MessageHeader`` in the SDK's order (From, ResponseFor, StaffInfo, StatusCode,
Description, Timestamp) — the SDK's parser reads no other container — and, in ``Bussiness``,
StaffInfo last and ``Receiver`` as OrganId then ReceiverType.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from hub.constants import EDXML_NS, EDXML_PREFIX
from hub.edxml.model import (
    Business,
    Edoc,
    Organization,
    OtherInfo,
    ResponseFor,
    StaffInfo,
    StatusPackage,
    format_date,
    format_timestamp,
    q,
)

STATUS_CONTAINERS = ("MessageHeader", "Status")

NSMAP = {EDXML_PREFIX: EDXML_NS}


@dataclass(frozen=True)
class AttachmentFile:
    """An attachment to embed: its bytes are base64-encoded into AttachmentEncoded."""

    name: str
    data: bytes
    content_type: str = "application/octet-stream"
    description: str = ""
    content_id: str = ""


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, q(name))
    if text is not None:
        el.text = text
    return el


def _opt(parent: etree._Element, name: str, text: str | None) -> None:
    if text:
        _sub(parent, name, text)


def _org(parent: etree._Element, name: str, org: Organization) -> None:
    el = _sub(parent, name)
    _sub(el, "OrganId", org.organ_id)
    for tag, value in (
        ("OrganizationInCharge", org.organization_in_charge),
        ("OrganName", org.organ_name),
        ("OrganAdd", org.organ_add),
        ("Email", org.email),
        ("Telephone", org.telephone),
        ("Fax", org.fax),
        ("Website", org.website),
    ):
        _opt(el, tag, value)


def _staff(parent: etree._Element, staff: StaffInfo | None) -> None:
    if staff is None:
        return
    el = _sub(parent, "StaffInfo")
    _opt(el, "Department", staff.department)
    _opt(el, "DepartmentId", staff.department_id)
    _opt(el, "Staff", staff.staff)
    _opt(el, "StaffId", staff.staff_id)
    _opt(el, "Mobile", staff.mobile)
    _opt(el, "Email", staff.email)


def _response_for(parent: etree._Element, rf: ResponseFor) -> None:
    """OrganId, Code, PromulgationDate, DocumentId (one of the two orders the SDK writes)."""
    el = _sub(parent, "ResponseFor")
    _sub(el, "OrganId", rf.organ_id)
    _opt(el, "Code", rf.code)
    if rf.promulgation_date:
        _sub(el, "PromulgationDate", format_date(rf.promulgation_date))
    _sub(el, "DocumentId", rf.document_id)


def _envelope() -> tuple[etree._Element, etree._Element, etree._Element]:
    root = etree.Element(q("edXML"), nsmap=NSMAP)
    env = _sub(root, "edXMLEnvelope")
    header = _sub(env, "edXMLHeader")
    return root, env, header


def build_edoc(doc: Edoc, attachments: list[AttachmentFile] | tuple[AttachmentFile, ...] = ()) -> bytes:
    """Serialize an unsigned edoc package. ``doc.attachments`` is ignored: pass the files."""
    root, env, header = _envelope()
    mh = _sub(header, "MessageHeader")
    _org(mh, "From", doc.sender)
    for to in doc.recipients:
        _org(mh, "To", to)
    _sub(mh, "DocumentId", doc.document_id)
    code = _sub(mh, "Code")
    _sub(code, "CodeNumber", doc.code.number)
    _sub(code, "CodeNotation", doc.code.notation)
    prom = _sub(mh, "PromulgationInfo")
    _opt(prom, "Place", doc.promulgation_place)
    _sub(prom, "PromulgationDate", format_date(doc.promulgation_date))
    dt = _sub(mh, "DocumentType")
    _sub(dt, "Type", doc.document_type.type)
    _opt(dt, "TypeDetail", doc.document_type.type_detail)
    _opt(dt, "TypeName", doc.document_type.type_name)
    _sub(mh, "Subject", doc.subject)
    _opt(mh, "Content", doc.content)
    if doc.signer:
        si = _sub(mh, "SignerInfo")
        _opt(si, "Competence", doc.signer.competence)
        _opt(si, "Position", doc.signer.position)
        _opt(si, "FullName", doc.signer.full_name)
    if doc.due_date:
        _sub(mh, "DueDate", format_date(doc.due_date))
    _other_info(_sub(mh, "OtherInfo"), doc.priority, doc.other_info)
    for rf in doc.response_for:
        _response_for(mh, rf)
    _opt(mh, "SteeringType", doc.steering_type)
    if doc.to_places:
        tp = _sub(mh, "ToPlaces")
        for place in doc.to_places:
            _sub(tp, "Place", place)
    _opt(mh, "ApplicationType", doc.application_type)
    if doc.task_code:
        _sub(_sub(mh, "ResponseForTask"), "TaskCode", doc.task_code)
    thl = _sub(header, "TraceHeaderList")
    if doc.trace_list_id:
        thl.set("id", doc.trace_list_id)
    if doc.trace_list_version:
        thl.set("version", doc.trace_list_version)
    for th in doc.trace:
        t = _sub(thl, "TraceHeader")
        _sub(t, "OrganId", th.organ_id)
        _sub(t, "Timestamp", format_timestamp(th.timestamp))
    if doc.business:
        _business(thl, doc.business)
    _opt(thl, "Paper", doc.trace_paper)
    body = _sub(env, "edXMLBody")
    manifest = _sub(body, "edXMLManifest")
    manifest.set("version", "1.0")
    if attachments:
        enc = etree.SubElement(root, q("AttachmentEncoded"))
    for i, att in enumerate(attachments, start=1):
        cid = att.content_id or f"cid:{i}"
        ref = _sub(manifest, "Reference")
        _sub(ref, "ContentId", cid)
        _sub(ref, "ContentType", att.content_type)
        _opt(ref, "Description", att.description)
        _sub(ref, "AttachmentName", att.name)
        a = _sub(enc, "Attachment")
        _sub(a, "ContentId", cid)
        _sub(a, "AttachmentName", att.name)
        _opt(a, "Description", att.description)
        _sub(a, "ContentType", att.content_type)
        _sub(a, "ContentTransferEncoded", base64.b64encode(att.data).decode("ascii"))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _other_info(oi: etree._Element, priority: int, info: OtherInfo | None) -> None:
    _sub(oi, "Priority", str(priority))
    if info is None:
        return
    _opt(oi, "SphereOfPromulgation", info.sphere_of_promulgation)
    _opt(oi, "TyperNotation", info.typer_notation)
    if info.promulgation_amount is not None:
        _sub(oi, "PromulgationAmount", str(info.promulgation_amount))
    if info.page_amount is not None:
        _sub(oi, "PageAmount", str(info.page_amount))
    if info.direction is not None:
        _sub(oi, "Direction", "true" if info.direction else "false")
    if info.appendixes:
        apx = _sub(oi, "Appendixes")
        for a in info.appendixes:
            _sub(apx, "Appendix", a)
    for container, child, values in (("ReplyFors", "ReplyFor", info.reply_fors),
                                     ("ReferenceCodes", "ReferenceCode", info.reference_codes)):
        if values:
            el = _sub(oi, container)
            for v in values:
                _sub(el, child, v)


def _business(thl: etree._Element, bus: Business) -> None:
    """Bussiness in the SDK's order: DocumentId, BussinessDocType, BussinessDocReason, Paper,
    BussinessDocumentInfo, ReplacementInfoList, StaffInfo."""
    b = _sub(thl, "Bussiness")
    _opt(b, "DocumentId", bus.document_id)
    _sub(b, "BussinessDocType", str(bus.doc_type))
    _opt(b, "BussinessDocReason", bus.reason)
    _sub(b, "Paper", str(bus.paper))
    if bus.has_document_info or bus.document_info or bus.document_receiver or bus.receivers:
        info = _sub(b, "BussinessDocumentInfo")
        _opt(info, "DocumentInfo", bus.document_info)
        _opt(info, "DocumentReceiver", bus.document_receiver)
        if bus.receivers:
            rl = _sub(info, "ReceiverList")
            for r in bus.receivers:
                rec = _sub(rl, "Receiver")
                _sub(rec, "OrganId", r.organ_id)
                _sub(rec, "ReceiverType", str(r.receiver_type))
    if bus.replacements:
        rl = _sub(b, "ReplacementInfoList")
        for r in bus.replacements:
            ri = _sub(rl, "ReplacementInfo")
            _sub(ri, "DocumentId", r.document_id)
            ol = _sub(ri, "OrganIdList")
            for organ in r.organ_ids:
                _sub(ol, "OrganId", organ)
    _staff(b, bus.staff)


def build_status(st: StatusPackage, container: str | None = None) -> bytes:
    """Serialize an unsigned status package (no body, no attachments).

    In ``edXMLHeader/MessageHeader`` (the national SDK's container, the only one its parser
    reads) unless ``container`` (default ``st.container``) is ``"Status"``; children in the
    SDK's order: From, ResponseFor, StaffInfo, StatusCode, Description, Timestamp.
    """
    name = container or st.container or "MessageHeader"
    if name not in STATUS_CONTAINERS:
        raise ValueError(f"a status container is one of {STATUS_CONTAINERS}, not {name!r}")
    root, _env, header = _envelope()
    s = _sub(header, name)
    _org(s, "From", st.sender)
    _response_for(s, st.response_for)
    _staff(s, st.staff)
    _sub(s, "StatusCode", st.status_code)
    _opt(s, "Description", st.description)
    _sub(s, "Timestamp", format_timestamp(st.timestamp))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def now_local() -> datetime:
    """Timestamps in edXML carry no zone; the hub writes local time without microseconds."""
    return datetime.now().replace(microsecond=0)
