"""Round trips (issue 11): for every status code and each business type, the builder's output
validates, reads back field for field, and has the container and child order the national SDK
writes and reads. Also the packages the hub itself emits (its 02 refusals) and the relayed copy
of an edoc whose Bussiness comes before its TraceHeader."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import pytest
from lxml import etree

from hub.constants import EDXML_NS
from hub.edxml.builder import build_edoc, build_status
from hub.edxml.model import (
    Business,
    Code,
    DocumentType,
    Edoc,
    Organization,
    OtherInfo,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusPackage,
    TraceHeader,
    read_package,
)
from hub.edxml.parser import parse_xml
from hub.edxml.schema import SchemaValidator
from hub.edxml.trace import append_trace, strip_relay_trace
from hub.pipeline.checks import relay_copy
from hub.pipeline.refusal import build_refusal
from hub.pki.identity import Identity
from tests.conftest import G22, H41, HUB, attachment

H14 = "000.00.00.H14"
STATUS_CODES = ("01", "02", "03", "04", "05", "06", "13", "15", "16")
SDK_BUSSINESS_ORDER = ["DocumentId", "BussinessDocType", "BussinessDocReason", "Paper", "BussinessDocumentInfo",
                       "ReplacementInfoList", "StaffInfo"]
SDK_STATUS_ORDER = ["From", "ResponseFor", "StaffInfo", "StatusCode", "Description", "Timestamp"]
_Q = "{" + EDXML_NS + "}"


@pytest.fixture(scope="module")
def validator() -> SchemaValidator:
    return SchemaValidator()


def _local(el) -> str:
    return etree.QName(el).localname


def _children(el) -> list[str]:
    return [_local(c) for c in el if isinstance(c.tag, str)]


def _header(root):
    return root.find(f"{_Q}edXMLEnvelope/{_Q}edXMLHeader")


def full_status(code: str) -> StatusPackage:
    # 13 (recall): From is the original sender, ResponseFor/OrganId the recipient.
    sender, target = (G22, H41) if code == "13" else (H41, G22)
    return StatusPackage(
        sender=Organization(sender, "UBND tỉnh", "Văn thư", "Số 3 Trường Thi", "vt@gov.vn", "0383", "0384", "gov.vn"),
        response_for=ResponseFor(target, f"{G22},2015/09/30,7816/VPCP-TTĐT", code="7816/VPCP-TTĐT",
                                 promulgation_date=date(2015, 9, 30)),
        status_code=code,
        description=f"trạng thái {code}",
        timestamp=datetime(2025, 10, 20, 10, 48, 3),
        staff=StaffInfo("Phòng hành chính", "Nguyễn Thị A", "0912", "a@gov.vn", "PHC", "NV01"),
    )


@pytest.mark.parametrize("code", STATUS_CODES)
def test_status_round_trip_in_the_sdk_container_and_order(validator, code):
    st = full_status(code)
    data = build_status(st)
    root = parse_xml(data)
    validator.validate(root)
    assert read_package(root) == st  # field for field, container included
    header = _header(root)
    assert _children(header) == ["MessageHeader"]
    assert _children(header.find(_Q + "MessageHeader")) == SDK_STATUS_ORDER
    assert all(el.prefix == "edXML" for el in root.iter() if isinstance(el.tag, str))  # the prefixed form


@pytest.mark.parametrize("code", STATUS_CODES)
def test_status_round_trip_in_the_status_container(validator, code):
    st = replace(full_status(code), container="Status")
    root = parse_xml(build_status(st))
    validator.validate(root)
    assert read_package(root) == st
    assert _children(_header(root)) == ["Status"]


def test_minimal_status_omits_optional_children(validator):
    st = StatusPackage(Organization(H41), ResponseFor(G22, "a-uuid-document-id"), "05", "", datetime(2025, 1, 2, 3, 4, 5))
    root = parse_xml(build_status(st))
    validator.validate(root)
    assert read_package(root) == st
    assert _children(_header(root)[0]) == ["From", "ResponseFor", "StatusCode", "Timestamp"]


def test_unknown_container_is_a_programming_error():
    with pytest.raises(ValueError):
        build_status(full_status("01"), container="Answer")


def _edoc(business: Business | None) -> Edoc:
    return Edoc(
        sender=Organization(G22, "VPCP", "Văn phòng Chính phủ"),
        recipients=(Organization(H41, organ_name="UBND tỉnh Nghệ An"), Organization(H14)),
        document_id=f"{G22},2025/10/20,12/VPCP-TTĐT",
        code=Code("12", "VPCP-TTĐT"),
        promulgation_place="Hà Nội",
        promulgation_date=date(2025, 10, 20),
        document_type=DocumentType("1", "0", "Công văn"),
        subject="V/v kết nối",
        content="Nội dung",
        signer=SignerInfo("TL.", "Cục trưởng", "Nguyễn Văn B"),
        due_date=date(2025, 11, 1),
        priority=2,
        response_for=(ResponseFor(H41, f"{H41},2025/10/01,5/UBND", "5/UBND", date(2025, 10, 1)),),
        steering_type="1",
        to_places=("Các bộ",),
        trace=(TraceHeader(G22, datetime(2025, 10, 20, 9, 0, 0)),),
        business=business,
        other_info=OtherInfo("Liên thông", "TVC", 2, 22, False, ("Phụ lục 1",), ("9/UBND",), ("REF-1", "REF-2")),
        application_type="1",
        task_code="TASK-7",
        trace_paper="0",
        trace_list_id="thl-1",
        trace_list_version="1.0",
    )


STAFF = StaffInfo("Văn thư", "Nguyễn Thị C", "0912", "c@gov.vn", "VT", "NV02")
EARLIER = f"{G22},2025/10/01,10/VPCP-TTĐT"
BUSINESS = {
    0: Business(doc_type=0, reason="Văn bản mới", paper=0, staff=STAFF),
    1: Business(EARLIER, 1, "Thu hồi", 0, STAFF),
    2: Business(EARLIER, 2, "Cập nhật", 1, STAFF, document_info="1", document_receiver="1",
                receivers=(Receiver(H41, 0), Receiver(H14, 1)), has_document_info=True),
    3: Business(doc_type=3, reason="Thay thế", paper=0, staff=STAFF,
                replacements=(ReplacementInfo(EARLIER, (H41, H14)), ReplacementInfo(f"{G22},2025/09/01,9/VPCP", (H41,)))),
}


@pytest.mark.parametrize("doc_type", [0, 1, 2, 3])
def test_edoc_round_trip_for_each_business_type(validator, doc_type):
    doc = _edoc(BUSINESS[doc_type])
    root = parse_xml(build_edoc(doc, [attachment(300)]))
    validator.validate(root)
    back = read_package(root)
    assert [a.name for a in back.attachments] == [attachment(300).name]
    assert replace(back, attachments=()) == doc  # field for field
    assert back.business_type == doc_type
    bus = root.find(f"{_Q}edXMLEnvelope/{_Q}edXMLHeader/{_Q}TraceHeaderList/{_Q}Bussiness")
    order = _children(bus)
    assert order == [name for name in SDK_BUSSINESS_ORDER if name in order]  # StaffInfo last
    assert order[-1] == "StaffInfo"
    for rec in bus.iter(_Q + "Receiver"):
        assert _children(rec) == ["OrganId", "ReceiverType"]  # the SDK's order


def test_edoc_without_business_reads_as_new(validator):
    doc = replace(_edoc(None), other_info=None, application_type="", task_code="", trace_paper="")
    root = parse_xml(build_edoc(doc))
    validator.validate(root)
    back = read_package(root)
    assert back.business is None and back.business_type == 0
    assert replace(back, other_info=None) == doc  # OtherInfo holds the priority, so it is always written


def _hub(pki) -> Identity:
    ident = pki.ids[HUB]
    return Identity(HUB, ident.key, ident.cert)


def test_hub_refusal_02_is_in_the_sdk_container(validator, pki):
    data, doc_id = build_refusal(_hub(pki), to_sender=G22, document_id=f"{G22},2025/10/20,12/VPCP",
                                 sha256="ab" * 32, reason="schema.invalid", message="MessageHeader is missing To")
    root = parse_xml(data)
    validator.validate(root)
    header = _header(root)
    assert _children(header) == ["MessageHeader", "Signature"]
    assert _children(header[0]) == ["From", "ResponseFor", "StatusCode", "Description", "Timestamp"]
    st = read_package(root)
    assert st.status_code == "02" and st.response_for == ResponseFor(G22, doc_id) and st.sender.organ_id == HUB
    assert st.description.startswith("schema.invalid: ")


def test_refusal_of_an_unusable_document_id_answers_a_hub_made_one(pki):
    data, doc_id = build_refusal(_hub(pki), to_sender=G22, document_id="two\nlines", sha256="cd" * 32,
                                 reason="parse.not_xml", message="x")
    assert doc_id.startswith(f"{G22},") and doc_id.endswith("/HUB") and "\n" not in doc_id


def test_relayed_copy_of_bussiness_first_edoc_reads_by_name_and_strips_back(validator):
    """The SDK and the axis write Bussiness before TraceHeader; the hub's relay TraceHeader goes after
    the last TraceHeader, a by-name parser reads both, and stripping it gives the sender's bytes back."""
    doc = _edoc(BUSINESS[2])
    root = parse_xml(build_edoc(doc))
    thl = root.find(f"{_Q}edXMLEnvelope/{_Q}edXMLHeader/{_Q}TraceHeaderList")
    bus = thl.find(_Q + "Bussiness")
    thl.remove(bus)
    thl.insert(0, bus)  # Bussiness first, as the SDK writes it
    sender_bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    when = datetime(2025, 10, 20, 11, 0, 0)
    relayed = relay_copy(parse_xml(sender_bytes), HUB, when)
    rroot = parse_xml(relayed)
    validator.validate(rroot)
    back = read_package(rroot)
    assert [t.organ_id for t in back.trace] == [G22, HUB] and back.trace[-1].timestamp == when
    assert back.business == doc.business
    assert _children(rroot.find(f"{_Q}edXMLEnvelope/{_Q}edXMLHeader/{_Q}TraceHeaderList")) == [
        "Bussiness", "TraceHeader", "TraceHeader", "Paper"]
    assert strip_relay_trace(rroot, {HUB}) == 1
    assert etree.tostring(rroot, xml_declaration=True, encoding="UTF-8") == sender_bytes


def test_relay_trace_into_a_list_with_only_bussiness(validator):
    doc = replace(_edoc(BUSINESS[0]), trace=(), trace_paper="")
    root = parse_xml(build_edoc(doc))
    before = etree.tostring(root)
    assert append_trace(root, HUB, datetime(2025, 1, 1, 0, 0, 0))
    validator.validate(root)
    assert [t.organ_id for t in read_package(root).trace] == [HUB]
    assert strip_relay_trace(root, {HUB}) == 1 and etree.tostring(root) == before
