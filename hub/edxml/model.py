"""A typed, frozen read model of edXML packages.

``read_package`` turns a (schema-valid, signature-verified) tree into an :class:`Edoc` or a
:class:`StatusPackage`. It reads fields by namespace and by name, never by position, so the
prefixed and default-namespace spellings, and the child orders real implementations disagree
on, read the same. A status reads the same from either container (``edXMLHeader/MessageHeader``
as the national SDK writes it, or ``edXMLHeader/Status``). Empty optional elements
(``<DueDate/>``, ``<ResponseFor/>``) read as absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Union

from lxml import etree

from hub.constants import EDXML_NS
from hub.edxml.business import (  # noqa: F401 - re-exported: part of the read model
    BUSINESS_DOC_TYPES,
    DOC_NEW,
    DOC_REPLACEMENT,
    DOC_REVOCATION,
    DOC_UPDATE,
    RECEIVER_ADDED,
    RECEIVER_REMOVED,
    Business,
    Receiver,
    ReplacementInfo,
)
from hub.edxml.document_id import DocumentRef, parse_document_id  # noqa: F401 - re-exported
from hub.errors import SchemaError

NS = {"e": EDXML_NS}
_Q = "{" + EDXML_NS + "}"


def q(name: str) -> str:
    """Qualified edXML tag name."""
    return _Q + name


@dataclass(frozen=True)
class Organization:
    organ_id: str
    organization_in_charge: str = ""
    organ_name: str = ""
    organ_add: str = ""
    email: str = ""
    telephone: str = ""
    fax: str = ""
    website: str = ""


@dataclass(frozen=True)
class Code:
    number: str
    notation: str

    def __str__(self) -> str:
        return f"{self.number}/{self.notation}" if self.notation else self.number


@dataclass(frozen=True)
class DocumentType:
    type: str
    type_detail: str = ""
    type_name: str = ""


@dataclass(frozen=True)
class SignerInfo:
    competence: str = ""
    position: str = ""
    full_name: str = ""


@dataclass(frozen=True)
class ResponseFor:
    organ_id: str
    document_id: str
    code: str = ""
    promulgation_date: date | None = None

    @property
    def document_ref(self) -> DocumentRef | None:
        return parse_document_id(self.document_id)


@dataclass(frozen=True)
class TraceHeader:
    organ_id: str
    timestamp: datetime


@dataclass(frozen=True)
class StaffInfo:
    department: str = ""
    staff: str = ""
    mobile: str = ""
    email: str = ""
    department_id: str = ""  # optional SDK element
    staff_id: str = ""  # optional SDK element


@dataclass(frozen=True)
class OtherInfo:
    """MessageHeader/OtherInfo beyond Priority (which is :attr:`Edoc.priority`)."""

    sphere_of_promulgation: str = ""
    typer_notation: str = ""
    promulgation_amount: int | None = None
    page_amount: int | None = None
    direction: bool | None = None
    appendixes: tuple[str, ...] = ()
    reply_fors: tuple[str, ...] = ()  # optional SDK element
    reference_codes: tuple[str, ...] = ()  # optional SDK element


@dataclass(frozen=True)
class Attachment:
    content_id: str
    name: str
    content_type: str
    description: str = ""
    size: int = 0  # decoded size in bytes (approximate from base64 length)


@dataclass(frozen=True)
class Edoc:
    """A document package (MessageHeader)."""

    sender: Organization
    recipients: tuple[Organization, ...]
    document_id: str
    code: Code
    promulgation_place: str
    promulgation_date: date
    document_type: DocumentType
    subject: str
    content: str = ""
    signer: SignerInfo | None = None
    due_date: date | None = None
    priority: int = 0
    response_for: tuple[ResponseFor, ...] = ()
    steering_type: str = ""
    to_places: tuple[str, ...] = ()
    trace: tuple[TraceHeader, ...] = ()
    business: Business | None = None
    attachments: tuple[Attachment, ...] = ()
    other: dict = field(default_factory=dict, compare=False, hash=False)
    other_info: OtherInfo | None = None
    application_type: str = ""  # MessageHeader/ApplicationType (optional SDK element)
    task_code: str = ""  # MessageHeader/ResponseForTask/TaskCode (optional SDK element)
    trace_paper: str = ""  # TraceHeaderList/Paper (optional SDK element)
    trace_list_id: str = ""  # TraceHeaderList/@id
    trace_list_version: str = ""  # TraceHeaderList/@version

    kind = "edoc"

    @property
    def recipient_ids(self) -> tuple[str, ...]:
        return tuple(o.organ_id for o in self.recipients)

    @property
    def document_ref(self) -> DocumentRef | None:
        """The DocumentId's parts when it is in the standard's form (None for a UUID)."""
        return parse_document_id(self.document_id)

    @property
    def business_type(self) -> int:
        """BussinessDocType: 0 new (also when there is no Bussiness), 1 revocation, 2 update, 3 replacement."""
        return self.business.doc_type if self.business else DOC_NEW


@dataclass(frozen=True)
class StatusPackage:
    """A status package (Status): an answer about a document."""

    sender: Organization
    response_for: ResponseFor
    status_code: str
    description: str
    timestamp: datetime
    staff: StaffInfo | None = None
    container: str = "MessageHeader"  # where it was written: MessageHeader (the SDK's) or Status

    kind = "status"

    @property
    def document_id(self) -> str:
        """The id the hub records a status under: unique per sender, code and time (and, for a
        recall, the recalled recipient: the SDK sends one 13 per recipient, often in the same second)."""
        to = f":{self.response_for.organ_id}" if self.status_code == "13" else ""
        return f"status:{self.response_for.document_id}:{self.status_code}{to}:{self.timestamp:%Y%m%d%H%M%S}"

    @property
    def priority(self) -> int:
        return 0


Package = Union[Edoc, StatusPackage]


# --- helpers ------------------------------------------------------------------------------

_CLARK: dict[str, str] = {}


def _clark(path: str) -> str:
    """'e:A/e:B' → '{ns}A/{ns}B' (Clark notation: lxml needs no prefix map to resolve it)."""
    c = _CLARK.get(path)
    if c is None:
        c = _CLARK[path] = "/".join(_Q + step[2:] if step.startswith("e:") else step for step in path.split("/"))
    return c


def _text(el: etree._Element | None, path: str, default: str = "") -> str:
    if el is None:
        return default
    text = el.findtext(_clark(path))
    if text is None:
        return default
    return text.strip() if text else default


def parse_date(value: str) -> date:
    # Fixed format yyyy/MM/dd: slicing is ~10x faster than strptime and as strict with the checks.
    if len(value) == 10 and value[4] == "/" and value[7] == "/":
        try:
            return date(int(value[:4]), int(value[5:7]), int(value[8:]))
        except ValueError:
            pass
    return datetime.strptime(value, "%Y/%m/%d").date()


def parse_timestamp(value: str) -> datetime:
    return datetime.strptime(value, "%Y/%m/%d %H:%M:%S")


def format_date(value: date) -> str:
    return value.strftime("%Y/%m/%d")


def format_timestamp(value: datetime) -> str:
    return value.strftime("%Y/%m/%d %H:%M:%S")


def _date_or_none(value: str, element: str) -> date | None:
    if not value:
        return None
    try:
        return parse_date(value)
    except ValueError as e:
        raise SchemaError(f"{element} '{value}' is not a calendar date", element=element) from e


def _org(el: etree._Element) -> Organization:
    return Organization(
        organ_id=_text(el, "e:OrganId"),
        organization_in_charge=_text(el, "e:OrganizationInCharge"),
        organ_name=_text(el, "e:OrganName"),
        organ_add=_text(el, "e:OrganAdd"),
        email=_text(el, "e:Email"),
        telephone=_text(el, "e:Telephone"),
        fax=_text(el, "e:Fax"),
        website=_text(el, "e:Website"),
    )


def _staff(el: etree._Element | None) -> StaffInfo | None:
    if el is None:
        return None
    return StaffInfo(_text(el, "e:Department"), _text(el, "e:Staff"), _text(el, "e:Mobile"), _text(el, "e:Email"),
                     _text(el, "e:DepartmentId"), _text(el, "e:StaffId"))


def _int_or_none(value: str) -> int | None:
    return int(value) if value else None


def _bool_or_none(value: str) -> bool | None:
    return value in ("true", "1") if value else None


def _texts(el: etree._Element | None, path: str) -> tuple[str, ...]:
    if el is None:
        return ()
    return tuple((x.text or "").strip() for x in el.findall(_clark(path)))


def _other_info(el: etree._Element | None) -> OtherInfo | None:
    if el is None:
        return None
    reply, refs = el.find(q("ReplyFors")), el.find(q("ReferenceCodes"))
    return OtherInfo(
        sphere_of_promulgation=_text(el, "e:SphereOfPromulgation"),
        typer_notation=_text(el, "e:TyperNotation"),
        promulgation_amount=_int_or_none(_text(el, "e:PromulgationAmount")),
        page_amount=_int_or_none(_text(el, "e:PageAmount")),
        direction=_bool_or_none(_text(el, "e:Direction")),
        appendixes=_texts(el, "e:Appendixes/e:Appendix"),
        reply_fors=_list_or_text(reply, "ReplyFor"),
        reference_codes=_list_or_text(refs, "ReferenceCode"),
    )


def _list_or_text(el: etree._Element | None, child: str) -> tuple[str, ...]:
    """``<ReplyFors><ReplyFor>a</ReplyFor>…</ReplyFors>`` or ``<ReplyFors>a</ReplyFors>``."""
    if el is None:
        return ()
    items = _texts(el, "e:" + child)
    if items:
        return items
    text = (el.text or "").strip()
    return (text,) if text else ()


def _business(b: etree._Element) -> Business:
    info = b.find(q("BussinessDocumentInfo"))
    return Business(
        document_id=_text(b, "e:DocumentId"),
        doc_type=int(_text(b, "e:BussinessDocType", "0") or 0),
        reason=_text(b, "e:BussinessDocReason"),
        paper=int(_text(b, "e:Paper", "0") or 0),
        staff=_staff(b.find(q("StaffInfo"))),
        document_info=_text(info, "e:DocumentInfo"),
        document_receiver=_text(info, "e:DocumentReceiver"),
        receivers=tuple(
            Receiver(_text(r, "e:OrganId"), int(_text(r, "e:ReceiverType", "0") or 0))
            for r in (info.findall(_clark("e:ReceiverList/e:Receiver")) if info is not None else ())
        ),
        replacements=tuple(
            ReplacementInfo(_text(r, "e:DocumentId"), _texts(r, "e:OrganIdList/e:OrganId"))
            for r in b.findall(_clark("e:ReplacementInfoList/e:ReplacementInfo"))
        ),
        has_document_info=info is not None,
    )


def is_empty(el: etree._Element) -> bool:
    """No element children and no text: ``<ResponseFor/>`` stands for "absent"."""
    return not any(isinstance(c.tag, str) for c in el) and not (el.text or "").strip()


def _response_for(el: etree._Element, where: str) -> ResponseFor:
    return ResponseFor(
        organ_id=_text(el, "e:OrganId"),
        document_id=_text(el, "e:DocumentId"),
        code=_text(el, "e:Code"),
        promulgation_date=_date_or_none(_text(el, "e:PromulgationDate"), f"{where}/PromulgationDate"),
    )


def header_of(root: etree._Element) -> etree._Element:
    header = root.find("e:edXMLEnvelope/e:edXMLHeader", NS)
    if header is None:
        raise SchemaError("edXMLEnvelope/edXMLHeader is missing", element="edXMLEnvelope/edXMLHeader")
    return header


def is_status_header(mh: etree._Element) -> bool:
    """A MessageHeader holding a status (the national SDK's form): it has a StatusCode."""
    return mh.find(q("StatusCode")) is not None


def status_element(header: etree._Element) -> etree._Element | None:
    """The element holding a status's fields: ``Status``, or a ``MessageHeader`` with a
    StatusCode (the SDK's form); None for an edoc."""
    st = header.find(q("Status"))
    if st is not None:
        return st
    mh = header.find(q("MessageHeader"))
    if mh is not None and is_status_header(mh):
        return mh
    return None


def package_kind(header: etree._Element) -> str | None:
    """"status", "edoc", or None when the header holds neither."""
    if status_element(header) is not None:
        return "status"
    return "edoc" if header.find(q("MessageHeader")) is not None else None


def read_package(root: etree._Element) -> Package:
    """Read a schema-valid package tree into its frozen model."""
    header = header_of(root)
    st = status_element(header)
    if st is not None:
        return _read_status(st)
    mh = header.find("e:MessageHeader", NS)
    if mh is not None:
        return _read_edoc(root, header, mh)
    raise SchemaError("edXMLHeader has neither MessageHeader nor Status", element="edXMLHeader")


def _read_edoc(root: etree._Element, header: etree._Element, mh: etree._Element) -> Edoc:
    where = "MessageHeader"
    prom = mh.find("e:PromulgationInfo", NS)
    dt = mh.find("e:DocumentType", NS)
    signer_el = mh.find("e:SignerInfo", NS)
    other_el = mh.find("e:OtherInfo", NS)
    priority_text = _text(other_el, "e:Priority", "0")
    trace_list = header.find("e:TraceHeaderList", NS)
    trace: list[TraceHeader] = []
    business = None
    if trace_list is not None:
        for th in trace_list.findall("e:TraceHeader", NS):
            ts = _text(th, "e:Timestamp")
            try:
                when = parse_timestamp(ts)
            except ValueError as e:
                raise SchemaError(f"TraceHeader/Timestamp '{ts}' is not a valid time", element="TraceHeader/Timestamp") from e
            trace.append(TraceHeader(_text(th, "e:OrganId"), when))
        b = trace_list.find("e:Bussiness", NS)
        if b is not None:
            business = _business(b)
    attachments = []
    for ref in root.findall("e:edXMLEnvelope/e:edXMLBody/e:edXMLManifest/e:Reference", NS):
        cid = _text(ref, "e:ContentId")
        enc = None
        for att in root.findall("e:AttachmentEncoded/e:Attachment", NS):
            if _text(att, "e:ContentId") == cid:
                enc = att.find("e:ContentTransferEncoded", NS)
                break
        b64len = len((enc.text or "").strip()) if enc is not None else 0
        attachments.append(
            Attachment(
                content_id=cid,
                name=_text(ref, "e:AttachmentName"),
                content_type=_text(ref, "e:ContentType"),
                description=_text(ref, "e:Description"),
                size=b64len * 3 // 4,
            )
        )
    prom_date_text = _text(prom, "e:PromulgationDate")
    prom_date = _date_or_none(prom_date_text, f"{where}/PromulgationInfo/PromulgationDate")
    if prom_date is None:
        raise SchemaError("PromulgationInfo/PromulgationDate is missing", element=f"{where}/PromulgationInfo")
    return Edoc(
        sender=_org(mh.find("e:From", NS)),
        recipients=tuple(_org(t) for t in mh.findall("e:To", NS)),
        document_id=_text(mh, "e:DocumentId"),
        code=Code(_text(mh, "e:Code/e:CodeNumber"), _text(mh, "e:Code/e:CodeNotation")),
        promulgation_place=_text(prom, "e:Place"),
        promulgation_date=prom_date,
        document_type=DocumentType(_text(dt, "e:Type"), _text(dt, "e:TypeDetail"), _text(dt, "e:TypeName")),
        subject=_text(mh, "e:Subject"),
        content=_text(mh, "e:Content"),
        signer=SignerInfo(_text(signer_el, "e:Competence"), _text(signer_el, "e:Position"), _text(signer_el, "e:FullName"))
        if signer_el is not None
        else None,
        due_date=_date_or_none(_text(mh, "e:DueDate"), f"{where}/DueDate"),
        priority=int(priority_text or 0),
        response_for=tuple(
            _response_for(r, f"{where}/ResponseFor") for r in mh.findall("e:ResponseFor", NS) if not is_empty(r)
        ),
        steering_type=_text(mh, "e:SteeringType"),
        to_places=tuple((p.text or "").strip() for p in mh.findall("e:ToPlaces/e:Place", NS)),
        trace=tuple(trace),
        business=business,
        attachments=tuple(attachments),
        other_info=_other_info(other_el),
        application_type=_text(mh, "e:ApplicationType"),
        task_code=_text(mh, "e:ResponseForTask/e:TaskCode"),
        trace_paper=_text(trace_list, "e:Paper"),
        trace_list_id=(trace_list.get("id") or "") if trace_list is not None else "",
        trace_list_version=(trace_list.get("version") or "") if trace_list is not None else "",
    )


def _read_status(st: etree._Element) -> StatusPackage:
    where = etree.QName(st).localname
    ts = _text(st, "e:Timestamp")
    try:
        when = parse_timestamp(ts)
    except ValueError as e:
        raise SchemaError(f"{where}/Timestamp '{ts}' is not a valid time", element=f"{where}/Timestamp") from e
    return StatusPackage(
        sender=_org(st.find("e:From", NS)),
        response_for=_response_for(st.find("e:ResponseFor", NS), f"{where}/ResponseFor"),
        status_code=_text(st, "e:StatusCode"),
        description=_text(st, "e:Description"),
        timestamp=when,
        staff=_staff(st.find("e:StaffInfo", NS)),
        container=where,
    )
