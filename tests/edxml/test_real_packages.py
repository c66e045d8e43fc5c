"""Every real public package (tests/data/edxml/real/, copied from the standards folder) through
``hub check --explain``: each gets past parse and schema unless it carries one of the defects the
standards README lists, in which case the refusal names that element (issue 11).

The offline ``hub check`` has an empty registry and trust store here, so packages that pass the
schema stop at the signature stage (strict profile: the SDK's edXML-namespace Signature is not
XML-DSig; SDK status packages are not signed) — what matters is that parse and schema pass.
The README's "Real packages" table is this file's EXPECTED table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from hub.constants import EDXML_NS
from hub.edxml.model import RECEIVER_ADDED, RECEIVER_REMOVED, Edoc, StatusPackage, read_package
from hub.edxml.parser import parse_xml
from hub.edxml.schema import SchemaValidator
from hub.edxml.sdk_signature import KIND_NONE, KIND_SKELETON, inspect_signature
from hub.errors import ParseError, SchemaError

REAL = Path(__file__).resolve().parents[1] / "data" / "edxml" / "real"
FILES = sorted(p.name for p in REAL.glob("*.edxml"))

# file -> (stage where it stops, reason, element the refusal names (None: not a defect))
EXPECTED = {
    "axis_2019_relayed.edxml": ("signature", "signature.not_xmldsig", None),
    "gateway_2025_a.edxml": ("schema", "schema.agency_code", "MessageHeader/From/OrganId"),  # vxp.saas.03 routes nowhere
    "gateway_2025_b.edxml": ("schema", "schema.agency_code", "MessageHeader/From/OrganId"),
    "sdk_edoc_new.edxml": ("parse", "parse.not_xml", "XML declaration"),  # starts with "1212"
    "sdk_edoc_replacement.edxml": ("signature", "signature.not_xmldsig", None),
    "sdk_edoc_revocation.edxml": ("signature", "signature.not_xmldsig", None),
    "sdk_edoc_update.edxml": ("signature", "signature.not_xmldsig", None),
    **{name: ("signature", "signature.missing", None) for name in FILES if name.startswith("sdk_status")},
}
STAGES = ["parse", "schema", "signature", "trust", "authority"]


def test_every_real_file_is_in_the_table():
    assert len(FILES) == 17
    assert sorted(EXPECTED) == FILES


@pytest.fixture(scope="module")
def explained(tmp_path_factory) -> dict[str, dict]:
    """One `hub check --explain --json` run over every real file (a subprocess, as a user runs it)."""
    tmp = tmp_path_factory.mktemp("hubcheck")
    env = {**os.environ, "HUB_DATA_DIR": str(tmp / "data")}
    env.pop("HUB_DATABASE_URL", None)
    env.pop("HUB_AMQP_URL", None)
    p = subprocess.run([sys.executable, "-m", "hub.cli", "check", "--explain", "--json", *(REAL / f for f in FILES)],
                       capture_output=True, text=True, env=env, cwd=tmp, timeout=300)
    assert p.returncode == 1, p.stderr  # some are refused
    assert "Traceback" not in p.stderr
    out = {}
    for line in p.stdout.splitlines():
        d = json.loads(line)
        out[Path(d["file"]).name] = d
    return out


@pytest.mark.parametrize("name", FILES)
def test_real_package_verdict(explained, name):
    d = explained[name]
    stage, reason, element = EXPECTED[name]
    assert (d["stage"], d["reason"]) == (stage, reason), d["message"]
    outcomes = {s["stage"]: s["outcome"] for s in d["stages"]}
    assert list(outcomes) == STAGES
    assert outcomes[stage] == "refused"
    assert all(outcomes[s] == "ok" for s in STAGES[: STAGES.index(stage)])
    assert all(outcomes[s] == "not reached" for s in STAGES[STAGES.index(stage) + 1:])
    if element is None:
        # not a defect: parse and schema pass
        assert outcomes["parse"] == outcomes["schema"] == "ok"
    else:
        assert element in (d.get("element") or ""), d
        refused = next(s for s in d["stages"] if s["outcome"] == "refused")
        assert reason in refused["detail"]


def test_sdk_signature_is_described_at_the_signature_stage(explained):
    d = explained["sdk_edoc_update.edxml"]
    assert d["signature_form"] == KIND_SKELETON
    sig = next(s for s in d["stages"] if s["stage"] == "signature")
    assert "national SDK's Signature" in sig["detail"] and "placeholder" in sig["detail"]
    assert explained["sdk_status_finish_06.edxml"]["signature_form"] == KIND_NONE


def test_schema_explain_lists_every_error_of_a_defective_file(explained):
    d = explained["gateway_2025_b.edxml"]
    errors = next(s for s in d["stages"] if s["stage"] == "schema")["errors"]
    text = "\n".join(errors)
    assert "From/OrganId" in text and "To/OrganId" in text and "vxp.saas.03" in text
    assert "TraceHeader" in text  # its TraceHeader has no OrganId


def test_text_output_shows_each_stage(tmp_path):
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path / "data")}
    env.pop("HUB_DATABASE_URL", None)
    p = subprocess.run([sys.executable, "-m", "hub.cli", "check", "--explain", REAL / "sdk_status_inbox_01.edxml"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    assert lines[0].startswith("REFUSE ") and "signature.missing" in lines[0]
    assert [ln.split(":")[0].strip() for ln in lines[1:6]] == STAGES
    assert "ok" in lines[1] and "ok" in lines[2] and "refused" in lines[3] and "not reached" in lines[5]


# ---------------------------------------------------------------- the listed defects, one at a time


def test_bytes_before_the_declaration_then_the_malformed_recipient():
    data = (REAL / "sdk_edoc_new.edxml").read_bytes()
    assert data.startswith(b"1212<?xml")
    with pytest.raises(ParseError) as info:
        parse_xml(data)
    assert info.value.element == "XML declaration" and "'1212'" in info.value.message
    # Without the leading bytes its next defect shows: the recipient code 28.22.H17.
    root = parse_xml(data[4:])
    with pytest.raises(SchemaError) as info:
        SchemaValidator().validate(root)
    assert info.value.code == "schema.agency_code"
    assert info.value.element == "edXML/edXMLEnvelope/edXMLHeader/MessageHeader/To/OrganId"
    assert "28.22.H17" in info.value.message


def test_undeclared_prefix_is_refused_naming_the_element():
    data = (REAL / "sdk_status_inbox_01.edxml").read_bytes()
    data = data.replace(b"<edXML:StatusCode>01</edXML:StatusCode>", b"<qlvb:StatusCode>01</qlvb:StatusCode>")
    with pytest.raises(ParseError) as info:
        parse_xml(data)
    assert info.value.code == "parse.not_xml"
    assert "qlvb" in info.value.message and "StatusCode" in info.value.message


# ---------------------------------------------------------------- read model of the real packages


def _read(name: str, strip: int = 0):
    root = parse_xml((REAL / name).read_bytes()[strip:])
    SchemaValidator().validate(root)
    return read_package(root)


@pytest.mark.parametrize("name", [n for n in FILES if n.startswith("sdk_status")])
def test_sdk_status_reads_the_same_from_either_container(name):
    data = (REAL / name).read_bytes()
    from_mh = _read(name)
    assert isinstance(from_mh, StatusPackage) and from_mh.container == "MessageHeader"
    as_status = data.replace(b"edXML:MessageHeader>", b"edXML:Status>")
    root = parse_xml(as_status)
    SchemaValidator().validate(root)
    from_status = read_package(root)
    assert from_status.container == "Status"
    assert replace(from_status, container="MessageHeader") == from_mh
    expected_code = "01" if name == "sdk_status.edxml" else name.removesuffix(".edxml").rsplit("_", 1)[-1]
    assert from_mh.status_code == expected_code
    assert from_mh.sender.organ_name and from_mh.sender.organization_in_charge  # both From orders
    assert from_mh.response_for.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert from_mh.response_for.document_ref.sender == "000.00.00.G22"
    assert from_mh.staff is not None and from_mh.staff.mobile == "84912000001"


def test_status_13_names_the_recipient_in_response_for():
    st = _read("sdk_status_cancellation_13.edxml")
    assert st.status_code == "13" and st.sender.organ_id == "000.00.00.G22"
    assert st.response_for.organ_id == "000.00.00.H41"


def test_update_reads_receivers_added_and_removed():
    doc = _read("sdk_edoc_update.edxml")
    assert isinstance(doc, Edoc) and doc.business_type == 2 and doc.business.doc_type_name == "update"
    assert doc.business.document_id == "000.00.00.G22,2014/02/30,7806/VPCP-TTĐT"
    ref = doc.business.document_ref
    assert ref.sender == "000.00.00.G22" and ref.date_text == "2014/02/30" and ref.promulgation_date is None
    assert ref.number_notation == "7806/VPCP-TTĐT"
    assert doc.business.added == ("000.00.00.H14",) and doc.business.removed == ("000.00.00.H41",)
    assert [(r.organ_id, r.receiver_type) for r in doc.business.receivers] == [
        ("000.00.00.H41", RECEIVER_REMOVED), ("000.00.00.H14", RECEIVER_ADDED)]
    assert doc.business.document_info == "1" and doc.business.document_receiver == "1"
    assert doc.business.staff.department == "Văn thư văn phòng"


def test_replacement_and_revocation():
    rep = _read("sdk_edoc_replacement.edxml")
    assert rep.business_type == 3 and len(rep.business.replacements) == 2
    assert rep.business.replacements[0].document_id == "000.00.00.G22,2014/01/30,7806/VPCP-TTĐT"
    assert rep.business.replacements[0].organ_ids == ("000.00.00.H41", "000.00.00.H14")
    rev = _read("sdk_edoc_revocation.edxml")
    assert rev.business_type == 1 and rev.business.document_id == ""
    assert rev.response_for[0].document_id == "000.00.04.G14,2012/08/06,267/VPCP-TTĐT"
    assert rev.other_info.page_amount == 22 and rev.other_info.direction is False
    assert rev.other_info.appendixes and rev.to_places == ("Cac bo va co quan ngang bo", "Uy ban nhan dan cac tinh, TP")


def test_relayed_package_uuid_empty_response_for_and_free_trace_ids():
    doc = _read("axis_2019_relayed.edxml")
    assert doc.document_id == "9fbfbad2-f1f8-4256-a2eb-50fb1061cddb" and doc.document_ref is None
    assert doc.response_for == ()  # <ResponseFor /> means absent
    assert [t.organ_id for t in doc.trace] == ["01.02.G22", "001.00.20.TT2"]
    assert doc.business is None and doc.business_type == 0
    sig = inspect_signature(parse_xml((REAL / "axis_2019_relayed.edxml").read_bytes()))
    assert sig.kind == KIND_SKELETON and sig.certificates  # a real certificate, placeholder values


def test_bussiness_before_trace_header_reads_by_name():
    data = (REAL / "gateway_2025_a.edxml").read_bytes().replace(b"vxp.saas.02<", b"000.00.00.H41<")
    data = data.replace(b"<edXML:OrganId>vxp.saas.03</edXML:OrganId>\n          <edXML:OrganizationInCharge>",
                        b"<edXML:OrganId>000.00.00.G22</edXML:OrganId>\n          <edXML:OrganizationInCharge>", 1)
    root = parse_xml(data)
    thl = root.find(f"{{{EDXML_NS}}}edXMLEnvelope/{{{EDXML_NS}}}edXMLHeader/{{{EDXML_NS}}}TraceHeaderList")
    assert etree.QName(thl[0]).localname == "Bussiness"
    SchemaValidator().validate(root)
    doc = read_package(root)
    assert doc.sender.organ_id == "000.00.00.G22" and doc.recipient_ids == ("000.00.00.H41",)
    assert doc.trace[0].organ_id == "vxp.saas.03" and doc.business.doc_type == 0 and doc.business.paper == 0
    assert doc.due_date is None and doc.signer.full_name == "Gateway Auto"


def test_dead_letter_header_reads_an_sdk_status():
    from hub.api.admin import parsed_header

    d = parsed_header((REAL / "sdk_status_cancellation_13.edxml").read_bytes(), 10_000_000)
    assert d == {"ok": True, "kind": "status", "from": "000.00.00.G22", "to": ["000.00.00.H41"],
                 "document_id": "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT", "type": None, "subject": None,
                 "status_code": "13"}
    d = parsed_header((REAL / "sdk_edoc_update.edxml").read_bytes(), 10_000_000)
    assert d["kind"] == "edoc" and d["to"] == ["000.00.00.H41", "000.00.00.H14", "000.00.00.G17"]
