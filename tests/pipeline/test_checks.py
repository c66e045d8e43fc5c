"""Every stateless check, each refusal asserting its reason code (issue: document core)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from lxml import etree

from hub.edxml.builder import build_edoc
from hub.edxml.model import EDXML_NS
from hub.edxml.signature import sign_package
from hub.pipeline.checks import CheckContext, check_package
from hub.pki import devpki
from hub.registry.model import Agency
from tests.conftest import G22, H41, H44, attachment, make_edoc, registry_for
from tests.dsig_craft import craft, default_namespace

E = "{" + EDXML_NS + "}"


@pytest.fixture
def ctx(pki):
    from hub.edxml.schema import SchemaValidator

    return CheckContext(registry=registry_for(pki), trust=pki.trust(), validator=SchemaValidator())


def refuse(data: bytes, ctx: CheckContext, code: str, **kw):
    v = check_package(data, ctx, **kw)
    assert not v.accepted, f"expected refusal {code}, got ACCEPT"
    assert v.reason == code, f"expected {code}, got {v.reason}: {v.message}"
    assert v.message
    return v


def tamper(data: bytes, path: str, text: str) -> bytes:
    root = etree.fromstring(data)
    el = root.find(path)
    assert el is not None, path
    el.text = text
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


HDR = f"{E}edXMLEnvelope/{E}edXMLHeader/{E}MessageHeader"


def test_relayed_copy_keeps_the_signature_that_was_verified(pki, signed):
    """The checks read the package from the tree with its Signature detached (no copy); the
    relayed copy made from that same tree afterwards carries the Signature again, where it was,
    and verifies once the relay's TraceHeader is stripped."""
    from dataclasses import replace

    from hub.edxml.parser import parse_xml
    from hub.edxml.schema import SchemaValidator
    from hub.edxml.signature import verify_package
    from hub.edxml.trace import strip_relay_trace

    relay = "000.00.00.HUB"
    ctx = replace(CheckContext(registry=registry_for(pki), trust=pki.trust(), validator=SchemaValidator()),
                  relay_id=relay)
    data = signed()
    v = check_package(data, ctx)
    assert v.accepted, v.message
    root = parse_xml(v.relayed)
    assert len(root.findall(f"{E}edXMLEnvelope/{E}edXMLHeader/{{http://www.w3.org/2000/09/xmldsig#}}Signature")) == 1
    assert strip_relay_trace(root, {relay}) == 1
    assert etree.tostring(root, method="c14n") == etree.tostring(parse_xml(data), method="c14n")
    assert verify_package(root, pki.trust()).certificate is not None


# --- accepted -----------------------------------------------------------------------------

def test_valid_prefixed_one_recipient(ctx, signed):
    data = signed()
    assert b"<edXML:edXML" in data
    v = check_package(data, ctx)
    assert v.accepted, v.message
    assert v.package.sender.organ_id == G22
    assert [r.recipient for r in v.routes] == [H41]
    assert v.routes[0].system == H41
    assert len(v.package.attachments) == 1


def test_valid_default_namespace(ctx, pki):
    raw = default_namespace(build_edoc(make_edoc(), [attachment()]))
    assert b"<edXML:" not in raw and b'xmlns="' + EDXML_NS.encode() in raw
    data = sign_package(raw, pki.ids[G22].key, pki.ids[G22].cert)
    v = check_package(data, ctx)
    assert v.accepted, v.message


def test_valid_several_recipients(ctx, signed):
    v = check_package(signed(to=(H41, H44)), ctx)
    assert v.accepted, v.message
    assert [r.recipient for r in v.routes] == [H41, H44]


def test_recipient_served_by_registered_ancestor(ctx, signed):
    # 000.46.24.H44 is not registered; 000.00.00.H44 is, two levels up, so it serves it.
    v = check_package(signed(to=("000.46.24.H44",)), ctx)
    assert v.accepted, v.message
    assert v.routes[0].recipient == "000.46.24.H44"
    assert v.routes[0].system == H44


def test_reads_only_signed_content(ctx, signed):
    v = check_package(signed(subject="Nội dung đã ký"), ctx)
    assert v.package.subject == "Nội dung đã ký"


# --- changed after signing ----------------------------------------------------------------

@pytest.mark.parametrize("path,value", [
    (f"{HDR}/{E}Subject", "Nội dung bị sửa"),
    (f"{HDR}/{E}To/{E}OrganId", "000.00.00.H44"),
    (f"{E}AttachmentEncoded/{E}Attachment/{E}ContentTransferEncoded", "QUJDRA=="),
], ids=["header", "recipient", "attachment"])
def test_changed_after_signing(ctx, signed, path, value):
    refuse(tamper(signed(), path, value), ctx, "signature.digest_mismatch")


def test_signature_value_altered(ctx, signed):
    data = signed()
    root = etree.fromstring(data)
    sv = root.find(".//{http://www.w3.org/2000/09/xmldsig#}SignatureValue")
    sv.text = sv.text[:10] + ("A" if sv.text[10] != "A" else "B") + sv.text[11:]
    refuse(etree.tostring(root), ctx, "signature.invalid")


# --- signature shape and algorithms -------------------------------------------------------

def test_sha1_refused_by_default(ctx, pki):
    raw = build_edoc(make_edoc(), [attachment()])
    data = craft(raw, pki.ids[G22].key, pki.ids[G22].cert, sig_alg="rsa-sha1", digest="sha1")
    refuse(data, ctx, "signature.weak_algorithm")


def test_sha1_accepted_only_with_legacy_setting_and_flagged(ctx, pki):
    raw = build_edoc(make_edoc(), [attachment()])
    data = craft(raw, pki.ids[G22].key, pki.ids[G22].cert, sig_alg="rsa-sha1", digest="sha1")
    legacy = CheckContext(ctx.registry, ctx.trust, ctx.validator, allow_sha1=True)
    v = check_package(data, legacy)
    assert v.accepted, v.message
    assert v.legacy_sha1 is True


def test_crafted_sha256_signature_accepted(ctx, pki):
    # Sanity for the crafting helper: the same route with SHA-256 is accepted.
    raw = build_edoc(make_edoc(), [attachment()])
    v = check_package(craft(raw, pki.ids[G22].key, pki.ids[G22].cert), ctx)
    assert v.accepted, v.message
    assert v.legacy_sha1 is False


def test_unsigned(ctx):
    refuse(build_edoc(make_edoc(), [attachment()]), ctx, "signature.missing")


def test_two_signatures(ctx, signed, pki):
    data = signed()
    root = etree.fromstring(data)
    header = root.find(f"{E}edXMLEnvelope/{E}edXMLHeader")
    sig = header[-1]
    header.append(etree.fromstring(etree.tostring(sig)))
    refuse(etree.tostring(root), ctx, "signature.multiple")


def test_signature_outside_xmldsig_namespace(ctx, pki):
    # Public SDKs emit <Signature> in the edXML default namespace.
    raw = build_edoc(make_edoc(), [attachment()])
    data = craft(raw, pki.ids[G22].key, pki.ids[G22].cert, ds_namespace=EDXML_NS)
    refuse(data, ctx, "signature.not_xmldsig")


def test_partial_id_reference_with_rest_altered(ctx, pki):
    raw = build_edoc(make_edoc(), [attachment()])
    data = craft(raw, pki.ids[G22].key, pki.ids[G22].cert, object_id="obj1")
    data = tamper(data, f"{HDR}/{E}Subject", "Nội dung bị sửa")
    refuse(data, ctx, "signature.reference")


def test_wrapping_second_header_refused(ctx, signed):
    # Signature wrapping: a forged MessageHeader next to the signed one.
    root = etree.fromstring(signed())
    mh = root.find(HDR)
    forged = etree.fromstring(etree.tostring(mh))
    forged.find(f"{E}Subject").text = "forged"
    mh.addprevious(forged)
    v = check_package(etree.tostring(root), ctx)
    assert not v.accepted
    assert v.reason in {"schema.invalid", "signature.digest_mismatch"}


# --- trust --------------------------------------------------------------------------------

def test_untrusted_ca(ctx, signed, pki):
    other_cert, other_key = pki.other_ca
    cert, key = devpki.issue(other_cert, other_key, "000.00.00.G22 rogue")
    ident = type(pki.ids[G22])(G22, key, cert)
    refuse(signed(signer=ident), ctx, "trust.untrusted")


def test_impersonation_with_another_agencys_valid_cert(ctx, signed, pki):
    v = refuse(signed(signer=pki.ids[H41]), ctx, "trust.not_pinned")
    assert H41 in v.message and G22 in v.message


def test_expired_certificate(ctx, signed, pki):
    ident = pki.issue(G22, not_before=datetime.now(timezone.utc) - timedelta(days=400), days=30)
    reg = registry_for(pki, **{G22: Agency(G22, connected=True, fingerprints=frozenset({ident.fp}))})
    c = CheckContext(reg, ctx.trust, ctx.validator)
    refuse(signed(signer=ident), c, "trust.expired")


def test_expired_certificate_valid_at_signing_time(ctx, signed, pki):
    ident = pki.issue(G22, not_before=datetime.now(timezone.utc) - timedelta(days=400), days=30)
    reg = registry_for(pki, **{G22: Agency(G22, connected=True, fingerprints=frozenset({ident.fp}))})
    c = CheckContext(reg, ctx.trust, ctx.validator)
    at = datetime.now(timezone.utc) - timedelta(days=390)
    assert check_package(signed(signer=ident), c, at=at).accepted


def test_revoked_certificate(ctx, signed, pki):
    ident = pki.issue(G22)
    reg = registry_for(pki, **{G22: Agency(G22, connected=True, fingerprints=frozenset({ident.fp}))})
    crl = devpki.make_crl(pki.ca_cert, pki.ca_key, [(ident.cert.serial_number, datetime.now(timezone.utc) - timedelta(hours=1))])
    data = signed(signer=ident)
    assert check_package(data, CheckContext(reg, pki.trust(), ctx.validator)).accepted
    refuse(data, CheckContext(reg, pki.trust([crl]), ctx.validator), "trust.revoked")


def test_revocation_is_judged_per_check_with_the_caches_warm(ctx, signed, pki):
    """The trust snapshot keeps chain results, CRL signature checks and revoked serials: a
    revocation dated after the first checks still refuses later ones through the same warm
    snapshot, and a snapshot with a new CRL refuses a certificate the old one accepted."""
    ident = pki.issue(G22)
    reg = registry_for(pki, **{G22: Agency(G22, connected=True, fingerprints=frozenset({ident.fp}))})
    data = signed(signer=ident)
    now = datetime.now(timezone.utc)
    later = devpki.make_crl(pki.ca_cert, pki.ca_key, [(ident.cert.serial_number, now + timedelta(hours=1))])
    warm = CheckContext(reg, pki.trust([later]), ctx.validator)
    for _ in range(2):
        assert check_package(data, warm, at=now).accepted
    refuse(data, warm, "trust.revoked", at=now + timedelta(hours=2))
    assert check_package(data, warm, at=now).accepted
    unrevoked = CheckContext(reg, pki.trust(), ctx.validator)
    assert check_package(data, unrevoked).accepted
    revoked = devpki.make_crl(pki.ca_cert, pki.ca_key, [(ident.cert.serial_number, now - timedelta(hours=1))])
    refuse(data, CheckContext(reg, pki.trust([revoked]), ctx.validator), "trust.revoked")


def test_crl_from_an_untrusted_issuer_is_ignored(ctx, signed, pki):
    ident = pki.issue(G22)
    reg = registry_for(pki, **{G22: Agency(G22, connected=True, fingerprints=frozenset({ident.fp}))})
    other_cert, other_key = pki.other_ca
    forged = devpki.make_crl(other_cert, other_key, [(ident.cert.serial_number, datetime.now(timezone.utc))])
    assert check_package(signed(signer=ident), CheckContext(reg, pki.trust([forged]), ctx.validator)).accepted


def test_certificate_without_digital_signature_usage(ctx, signed, pki):
    ident = pki.issue(G22, digital_signature=False)
    reg = registry_for(pki, **{G22: Agency(G22, connected=True, fingerprints=frozenset({ident.fp}))})
    refuse(signed(signer=ident), CheckContext(reg, ctx.trust, ctx.validator), "trust.key_usage")


# --- registry and authority ---------------------------------------------------------------

def test_malformed_agency_code(ctx, signed):
    v = refuse(signed(to=("28.22.H17",)), ctx, "schema.agency_code")
    assert "To/OrganId" in (v.element or "") + v.message


def test_unregistered_recipient(ctx, signed):
    v = refuse(signed(to=("000.00.00.H99",)), ctx, "authority.recipient_unknown")
    assert "000.00.00.H99" in v.message


def test_retired_recipient(ctx, signed, pki):
    reg = registry_for(pki, **{H41: Agency(H41, connected=True, active=False, fingerprints=frozenset({pki.ids[H41].fp}))})
    refuse(signed(), CheckContext(reg, ctx.trust, ctx.validator), "authority.recipient_inactive")


def test_recipient_not_competent_for_type(ctx, signed):
    # H44 accepts types 1 and 2 only.
    assert check_package(signed(to=(H44,), doc_type="2"), ctx).accepted
    v = refuse(signed(to=(H44,), doc_type="7"), ctx, "authority.not_competent")
    assert "7" in v.message


def test_unregistered_sender(ctx, signed, pki):
    reg = registry_for(pki)
    del reg.agencies[G22]
    refuse(signed(), CheckContext(type(reg)(reg.agencies), ctx.trust, ctx.validator), "authority.sender_unknown")


def test_adapter_user_must_serve_the_sender(ctx, signed):
    data = signed()
    assert check_package(data, ctx, adapter_user=G22).accepted
    refuse(data, ctx, "authority.impersonation", adapter_user=H41)


# --- parser attacks -----------------------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE edXML [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">&xxe;</edXML>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">&lol9;</edXML>"""


def test_xxe(ctx):
    refuse(XXE, ctx, "parse.doctype")


def test_billion_laughs(ctx):
    refuse(LAUGHS, ctx, "parse.doctype")


def test_not_xml(ctx):
    refuse(b"%PDF-1.4 this is not xml", ctx, "parse.not_xml")


def test_over_size_cap(ctx, signed):
    data = signed()
    small = CheckContext(ctx.registry, ctx.trust, ctx.validator, max_bytes=len(data) - 1)
    v = refuse(data, small, "parse.too_large")
    assert f"{len(data):,}" in v.message


def test_large_attachment_signs_and_checks(ctx, pki):
    """A 9 MB attachment (12 M base64 characters in one text node) is a normal package."""
    from hub.edxml.builder import AttachmentFile

    big = AttachmentFile("scan.pdf", bytes(range(256)) * (9 * 1024 * 4), "application/pdf")
    data = sign_package(build_edoc(make_edoc(), [big]), pki.ids[G22].key, pki.ids[G22].cert)
    assert len(data) > 12_000_000
    v = check_package(data, ctx)
    assert v.accepted, v.message
    assert v.package.attachments[0].size >= 9 * 1024 * 1024


def test_malformed_certificate_extension_is_refused_not_a_crash(ctx, pki):
    """A certificate whose KeyUsage cannot be parsed: refused with a reason, never an exception
    (an exception would fail the worker's whole batch)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtensionOID, NameOID

    from hub.pki import devpki as dp

    key = dp.new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad ku")]))
        .issuer_name(pki.ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(timezone.utc) - timedelta(days=1))
        .not_valid_after(datetime.now(timezone.utc) + timedelta(days=30))
        .add_extension(x509.UnrecognizedExtension(ExtensionOID.KEY_USAGE, b"\x05\x00"), critical=True)
        .sign(pki.ca_key, hashes.SHA256())
    )
    data = sign_package(build_edoc(make_edoc(), [attachment()]), key, cert)
    v = check_package(data, ctx)
    assert not v.accepted
    assert v.reason in {"trust.untrusted", "check.unreadable"} and v.message
