"""The signature forms the signature stage sees (hub/edxml/sdk_signature.py): XML-DSig, the
national SDK's Signature in the edXML namespace (verifiable or a placeholder skeleton), none."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree
from signxml import XMLSigner, methods

from hub.constants import DSIG_NS, EDXML_NS
from hub.edxml.builder import build_edoc
from hub.edxml.parser import parse_xml
from hub.edxml.schema import SchemaValidator
from hub.edxml.sdk_signature import KIND_NONE, KIND_SDK, KIND_SKELETON, KIND_XMLDSIG, as_xmldsig, inspect_signature
from hub.edxml.signature import sign_package, verify_package
from hub.errors import SignatureError
from tests.conftest import G22, attachment, make_edoc

REAL = Path(__file__).resolve().parents[1] / "data" / "edxml" / "real"
C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


def sdk_signed(ident, sig_alg: str = "rsa-sha256", digest: str = "sha256") -> bytes:
    """A package signed the way an SDK-based system does when it really signs: XML-DSig computed
    with Signature in the default namespace, then written with Signature in the edXML namespace.
    (Exclusive C14N for SignedInfo: signxml's own inclusive-C14N enveloped signatures do not
    verify when the document declares other namespaces, which is signxml's matter, not ours.)"""
    root = parse_xml(build_edoc(make_edoc(G22), [attachment(200)]))
    header = root.find(f"{{{EDXML_NS}}}edXMLEnvelope/{{{EDXML_NS}}}edXMLHeader")
    etree.SubElement(header, f"{{{DSIG_NS}}}Signature", nsmap={None: DSIG_NS}).set("Id", "placeholder")
    signer = XMLSigner(method=methods.enveloped, signature_algorithm=sig_alg, digest_algorithm=digest, c14n_algorithm=EXC_C14N)
    signer.namespaces = {None: DSIG_NS}
    signed = etree.tostring(signer.sign(root, key=ident.key, cert=[ident.cert]), encoding="UTF-8")
    out = signed.replace(f'<Signature xmlns="{DSIG_NS}">'.encode(), f'<Signature xmlns="{EDXML_NS}">'.encode())
    assert out.count(f'<Signature xmlns="{EDXML_NS}">'.encode()) == 1
    return out


@pytest.mark.parametrize("name, kind", [
    ("sdk_edoc_update.edxml", KIND_SKELETON),
    ("axis_2019_relayed.edxml", KIND_SKELETON),
    ("sdk_status_processing_05.edxml", KIND_NONE),
])
def test_real_packages(name, kind):
    info = inspect_signature(parse_xml((REAL / name).read_bytes()))
    assert info.kind == kind
    if kind == KIND_SKELETON:
        assert info.is_sdk and info.skeleton and info.sha1
        assert info.canonicalization == C14N_10 and info.signature_method.endswith("rsa-sha1")
        assert "placeholder" in info.describe()


def test_xmldsig(pki):
    data = sign_package(build_edoc(make_edoc(G22), [attachment(200)]), pki.ids[G22].key, pki.ids[G22].cert)
    info = inspect_signature(parse_xml(data))
    assert info.kind == KIND_XMLDSIG and not info.is_sdk and not info.sha1
    assert info.certificates == (pki.ids[G22].cert,)


def test_a_real_sdk_signature_is_not_a_skeleton_and_verifies_as_xmldsig(pki):
    ident = pki.ids[G22]
    data = sdk_signed(ident)
    root = parse_xml(data)
    SchemaValidator().validate(root)  # the SDK's element is known to the schema
    info = inspect_signature(root)
    assert info.kind == KIND_SDK and not info.skeleton_reasons and info.certificates == (ident.cert,)
    with pytest.raises(SignatureError) as e:  # as today: the strict stage refuses it unread
        verify_package(root, pki.trust())
    assert e.value.code == "signature.not_xmldsig"
    verified = verify_package(as_xmldsig(root), pki.trust())  # (signxml no longer makes SHA-1 signatures)
    assert verified.certificate == ident.cert
    assert inspect_signature(root).kind == KIND_SDK  # as_xmldsig copies, the tree is unchanged


def test_a_changed_sdk_signed_package_fails_verification_not_downgraded(pki):
    data = sdk_signed(pki.ids[G22], "rsa-sha256", "sha256").replace(b"<edXML:Subject>", b"<edXML:Subject>X")
    root = parse_xml(data)
    assert inspect_signature(root).kind == KIND_SDK  # "signed but wrong", not a skeleton
    with pytest.raises(SignatureError) as e:
        verify_package(as_xmldsig(root), pki.trust())
    assert e.value.code == "signature.digest_mismatch"


def test_skeleton_reasons_name_what_is_a_placeholder():
    data = (REAL / "sdk_edoc_replacement.edxml").read_bytes()
    info = inspect_signature(parse_xml(data))
    assert set(info.skeleton_reasons) == {
        "its SignatureValue is the SDK's placeholder", "its DigestValue is the SDK's placeholder",
        "its X509Certificate is not a whole certificate"}
    emptied = data.replace(b"<DigestValue>FwgIqsSYJshUS2+wlOM61L+q7Aw=</DigestValue>", b"<DigestValue/>")
    assert "its DigestValue is empty or not base64" in inspect_signature(parse_xml(emptied)).skeleton_reasons


def test_signature_info_pickles():
    """Verdicts carry it and cross process boundaries (hub.pipeline.runner pickles them)."""
    import pickle

    info = inspect_signature(parse_xml((REAL / "axis_2019_relayed.edxml").read_bytes()))
    back = pickle.loads(pickle.dumps(info))
    assert back == info and back.certificates and back.certificates[0].subject == info.certificates[0].subject


def _by_element_path(root) -> dict:
    """What inspect_signature reads, by lxml's ElementPath on the same paths (the reference)."""
    header = root.find(f"{{{EDXML_NS}}}edXMLEnvelope/{{{EDXML_NS}}}edXMLHeader")
    sigs = [c for c in header if c.tag in (f"{{{DSIG_NS}}}Signature", f"{{{EDXML_NS}}}Signature")]
    sig = next((s for s in sigs if s.tag == f"{{{DSIG_NS}}}Signature"), sigs[0])
    ns = {"n": DSIG_NS if sig.tag == f"{{{DSIG_NS}}}Signature" else EDXML_NS}
    alg = lambda p: (sig.find(p, ns).get("Algorithm") or "") if sig.find(p, ns) is not None else ""  # noqa: E731
    text = lambda p: "".join((sig.findtext(p, namespaces=ns) or "").split())  # noqa: E731
    return {
        "canonicalization": alg("n:SignedInfo/n:CanonicalizationMethod"),
        "signature_method": alg("n:SignedInfo/n:SignatureMethod"),
        "digest_method": alg("n:SignedInfo/n:Reference/n:DigestMethod"),
        "digest_value": text("n:SignedInfo/n:Reference/n:DigestValue"),
        "signature_value": text("n:SignatureValue"),
        "subject_name": (sig.findtext("n:KeyInfo/n:X509Data/n:X509SubjectName", namespaces=ns) or "").strip(),
        "certificates": len(sig.findall("n:KeyInfo/n:X509Data/n:X509Certificate", ns)),
    }


def test_one_pass_reading_matches_element_path(pki):
    """inspect_signature reads each element's children once; it must find what ElementPath finds."""
    ident = pki.ids[G22]
    signed = sign_package(build_edoc(make_edoc(G22), [attachment(200)]), ident.key, ident.cert)
    with_subject = signed.replace(b"<ds:X509Certificate>", b"<ds:X509SubjectName> CN=x </ds:X509SubjectName>"
                                                         b"<ds:X509Certificate>", 1)
    datas = [signed, with_subject, sdk_signed(ident)]
    datas += [(REAL / n).read_bytes() for n in ("sdk_edoc_update.edxml", "axis_2019_relayed.edxml")]
    for data in datas:
        root = parse_xml(data)
        info = inspect_signature(root)
        ref = _by_element_path(root)
        got = {k: getattr(info, k) for k in ref if k != "certificates"}
        assert got == {k: v for k, v in ref.items() if k != "certificates"}
        assert len(info.certificates_der) <= ref["certificates"]
    for data in datas[:3]:  # signed here: every certificate is whole
        assert len(inspect_signature(parse_xml(data)).certificates_der) == 1
    assert inspect_signature(parse_xml(with_subject)).subject_name == "CN=x"
