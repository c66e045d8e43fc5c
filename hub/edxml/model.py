"""A typed, frozen read model of edXML packages.

``read_package`` turns a (schema-valid, signature-verified) tree into an :class:`Edoc` or a
:class:`StatusPackage`. It reads fields by namespace, so the prefixed and default-namespace
spellings read the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Union

from lxml import etree

from hub.constants import EDXML_NS
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


@dataclass(frozen=True)
class Business:
    document_id: str = ""
    doc_type: int = 0  # 0 new, 1 revocation, 2 update, 3 replacement
    reason: str = ""
    paper: int = 0
    staff: StaffInfo | None = None


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

    kind = "edoc"

    @property
    def recipient_ids(self) -> tuple[str, ...]:
        return tuple(o.organ_id for o in self.recipients)


@dataclass(frozen=True)
class StatusPackage:
    """A status package (Status): an answer about a document."""

    sender: Organization
    response_for: ResponseFor
    status_code: str
    description: str
    timestamp: datetime
    staff: StaffInfo | None = None

    kind = "status"

    @property
    def document_id(self) -> str:
        """The id the hub records a status under: unique per sender, code and time."""
        return f"status:{self.response_for.document_id}:{self.status_code}:{self.timestamp:%Y%m%d%H%M%S}"

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
    return StaffInfo(_text(el, "e:Department"), _text(el, "e:Staff"), _text(el, "e:Mobile"), _text(el, "e:Email"))


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


def read_package(root: etree._Element) -> Package:
    """Read a schema-valid package tree into its frozen model."""
    header = header_of(root)
    mh = header.find("e:MessageHeader", NS)
    if mh is not None:
        return _read_edoc(root, header, mh)
    st = header.find("e:Status", NS)
    if st is not None:
        return _read_status(st)
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
            business = Business(
                document_id=_text(b, "e:DocumentId"),
                doc_type=int(_text(b, "e:BussinessDocType", "0") or 0),
                reason=_text(b, "e:BussinessDocReason"),
                paper=int(_text(b, "e:Paper", "0") or 0),
                staff=_staff(b.find("e:StaffInfo", NS)),
            )
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
        response_for=tuple(_response_for(r, f"{where}/ResponseFor") for r in mh.findall("e:ResponseFor", NS)),
        steering_type=_text(mh, "e:SteeringType"),
        to_places=tuple((p.text or "").strip() for p in mh.findall("e:ToPlaces/e:Place", NS)),
        trace=tuple(trace),
        business=business,
        attachments=tuple(attachments),
    )


def _read_status(st: etree._Element) -> StatusPackage:
    ts = _text(st, "e:Timestamp")
    try:
        when = parse_timestamp(ts)
    except ValueError as e:
        raise SchemaError(f"Status/Timestamp '{ts}' is not a valid time", element="Status/Timestamp") from e
    return StatusPackage(
        sender=_org(st.find("e:From", NS)),
        response_for=_response_for(st.find("e:ResponseFor", NS), "Status/ResponseFor"),
        status_code=_text(st, "e:StatusCode"),
        description=_text(st, "e:Description"),
        timestamp=when,
        staff=_staff(st.find("e:StaffInfo", NS)),
    )
