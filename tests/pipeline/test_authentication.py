"""Signature profiles: how a package is authenticated (issue 11, "Signatures as they exist").

``strict`` is as before; under ``sdk`` a real signature (XML-DSig, or the SDK's own shape with
real values) is verified, a skeleton or no signature is accepted only over the connection of
the system serving From, and a signature that is present and fails is refused (no downgrade).
"""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from lxml import etree

from hub.edxml.builder import build_edoc, build_status
from hub.edxml.model import EDXML_NS
from hub.edxml.parser import parse_xml
from hub.edxml.sdk_signature import inspect_signature
from hub.edxml.sdk_verify import sdk_signature_element as find_sdk_signature
from hub.edxml.sdk_verify import sign_sdk
from hub.edxml.signature import sign_package
from hub.pipeline.authentication import authenticate
from hub.pipeline.checks import CheckContext, check_package
from hub.pipeline.connection import Connection
from hub.registry.model import Agency
from tests.conftest import G22, H41, attachment, make_edoc, make_status, registry_for

E = "{" + EDXML_NS + "}"
SDK_PLACEHOLDER_VALUE = (
    "GbVb8n9+qFxz466Ag0sbpVdLPs2R0+9JBekp12UyarAZjoG0W/kPZZJ1auRZDcNcrSwzgkQMpqrjwxcy3ejzbY/ON5USUPgoYNYM8p4wsgQp"
    "EAeQaZ+EWLkkEBxYjb+iWEiAjYuJI7gtJoOyENcOK4fO050SXp2ctOc32LJMA5eEI6Hw7sxhc2LAgcPiynJHdDW2Z+eut6QZiUsbIF9+S3T6"
    "u/tfLImw39dgSlCxupwLPHepxuiLOqyd08HeJGCZufg9WqRBVyLFM76uCIaPRP5wwAdx72GVjPcG2kh+2jjrt7fqtJOufJzCObtQgPgBqIvD"
    "iZCGoOM41OQMiqtF3w=="
)


@pytest.fixture
def ctx(pki):
    from hub.edxml.schema import SchemaValidator

    reg = registry_for(pki)
    sdk = {code: replace(reg.agencies[code], profile="sdk") for code in (G22, H41)}
    return CheckContext(registry=registry_for(pki, sdk), trust=pki.trust(), validator=SchemaValidator())


@pytest.fixture
def strict_ctx(pki):
    from hub.edxml.schema import SchemaValidator

    return CheckContext(registry=registry_for(pki), trust=pki.trust(), validator=SchemaValidator())


def own(code: str) -> Connection:
    return Connection("amqp", code, code)


def unsigned_edoc(**kw) -> bytes:
    return build_edoc(make_edoc(**kw), [attachment()])


def skeleton(data: bytes, cert_b64: str = "MIIFqTCCBJG") -> etree._Element:
    """The SDK's Signature as it writes it: SHA-1 names, placeholder values, a truncated certificate."""
    root = parse_xml(data)
    header = root.find(f"{E}edXMLEnvelope/{E}edXMLHeader")
    sig = etree.SubElement(header, E + "Signature")
    si = etree.SubElement(sig, E + "SignedInfo")
    etree.SubElement(si, E + "CanonicalizationMethod", Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315")
    etree.SubElement(si, E + "SignatureMethod", Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1")
    ref = etree.SubElement(si, E + "Reference", URI="")
    tr = etree.SubElement(ref, E + "Transforms")
    etree.SubElement(tr, E + "Transform", Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature")
    etree.SubElement(tr, E + "Transform", Algorithm="http://www.w3.org/TR/xml-exc-c14n#")
    etree.SubElement(ref, E + "DigestMethod", Algorithm="http://www.w3.org/2000/09/xmldsig#sha1")
    etree.SubElement(ref, E + "DigestValue").text = "FwgIqsSYJshUS2+wlOM61L+q7Aw="
    etree.SubElement(sig, E + "SignatureValue").text = SDK_PLACEHOLDER_VALUE
    x = etree.SubElement(etree.SubElement(sig, E + "KeyInfo"), E + "X509Data")
    etree.SubElement(x, E + "X509SubjectName").text = "CN=user05"
    etree.SubElement(x, E + "X509Certificate").text = cert_b64
    return root


# --- strict: as before ---------------------------------------------------------------------

def test_strict_refuses_an_unsigned_package(strict_ctx):
    v = check_package(unsigned_edoc(), strict_ctx, connection=own(G22))
    assert not v.accepted and v.reason == "signature.missing"


def test_strict_signed_package_is_authenticated_by_signature(strict_ctx, signed):
    v = check_package(signed(), strict_ctx, connection=own(G22))
    assert v.accepted, v.message
    assert v.authenticated_by == "signature" and not v.legacy_sha1
    assert v.as_dict("f")["authenticated_by"] == "signature"


# --- sdk: unsigned, over a connection --------------------------------------------------------

def test_sdk_unsigned_edoc_over_its_own_connection(ctx):
    v = check_package(unsigned_edoc(), ctx, connection=own(G22))
    assert v.accepted, v.message
    assert v.authenticated_by == "connection" and v.signer_fingerprint is None
    assert [r.recipient for r in v.routes] == [H41]


def test_sdk_unsigned_status_over_its_own_connection(ctx):
    data = build_status(make_status(H41, G22, "000.00.00.G22,2026/11/27,1/VPCP-TTĐT", "05"))
    v = check_package(data, ctx, connection=own(H41))
    assert v.accepted, v.message
    assert v.authenticated_by == "connection"


def test_sdk_unsigned_from_another_system_is_impersonation(ctx):
    v = check_package(unsigned_edoc(), ctx, connection=own(H41))
    assert not v.accepted and v.reason == "authority.impersonation"
    assert "not signed" in v.message and G22 in v.message


def test_sdk_unsigned_without_an_authenticated_connection_is_refused(ctx):
    for conn in (Connection("amqp", None, ""), Connection("vdxp", None, "unknown-system")):
        v = check_package(unsigned_edoc(), ctx, connection=conn)
        assert not v.accepted and v.reason == "authority.impersonation", conn


def test_sdk_unsigned_via_adapter_user(ctx):
    assert check_package(unsigned_edoc(), ctx, adapter_user=G22).authenticated_by == "connection"
    assert check_package(unsigned_edoc(), ctx, adapter_user=H41).reason == "authority.impersonation"
    assert check_package(unsigned_edoc(), ctx, adapter_user="").reason == "authority.impersonation"


def test_offline_check_says_it_needs_the_own_connection(ctx):
    v = check_package(unsigned_edoc(), ctx)
    assert v.accepted, v.message
    assert v.line("a.edxml") == f"ACCEPT a.edxml (not signed: accepted only from {G22}'s own connection)"
    assert v.as_dict("a.edxml")["authenticated_by"] == "connection"


def test_sdk_served_agency_needs_its_serving_system(pki):
    from hub.edxml.schema import SchemaValidator

    lower = "000.01.00.G22"
    reg = registry_for(pki, {lower: Agency(lower, "served", served_by=G22, profile="sdk")})
    ctx = CheckContext(registry=reg, trust=pki.trust(), validator=SchemaValidator())
    v = check_package(unsigned_edoc(sender=lower), ctx, connection=own(G22))
    assert v.accepted and v.connection_system == G22, v.message
    assert check_package(unsigned_edoc(sender=lower), ctx, connection=own(H41)).reason == "authority.impersonation"


# --- sdk: signatures that are there are verified ------------------------------------------------

def test_sdk_xmldsig_is_verified_as_under_strict(ctx, signed):
    good = signed()
    v = check_package(good, ctx, connection=own(G22))
    assert v.accepted and v.authenticated_by == "signature", v.message
    bad = good.replace("V/v kết nối".encode(), "V/v sửa đổi".encode())
    v = check_package(bad, ctx, connection=own(G22))
    assert not v.accepted and v.reason == "signature.digest_mismatch"  # never downgraded to "connection"


def test_sdk_xmldsig_of_another_agency_is_not_pinned(ctx, pki):
    data = sign_package(unsigned_edoc(), pki.ids[H41].key, pki.ids[H41].cert)
    v = check_package(data, ctx, connection=own(G22))
    assert not v.accepted and v.reason == "trust.not_pinned"


def own_values(sig: etree._Element) -> None:
    """Values that are not the SDK's placeholders (but sign nothing)."""
    sig.find(E + "SignatureValue").text = base64.b64encode(b"\x07" * 256).decode()
    sig.find(f"{E}SignedInfo/{E}Reference/{E}DigestValue").text = base64.b64encode(b"\x01" * 20).decode()


def test_skeleton_detection(pki):
    from cryptography.hazmat.primitives import serialization

    data = unsigned_edoc()
    assert is_skeleton(find_sdk_signature(skeleton(data)))  # truncated certificate, placeholder values
    assert is_skeleton(find_sdk_signature(skeleton(data, cert_b64="")))
    # the axis relays packages with a real certificate and the SDK's placeholder value: a skeleton
    real = base64.b64encode(pki.ids[G22].cert.public_bytes(serialization.Encoding.DER)).decode()
    assert is_skeleton(find_sdk_signature(skeleton(data, cert_b64=real)))
    # values of its own: not a skeleton (so it must verify)
    sig = find_sdk_signature(skeleton(data, cert_b64=real))
    own_values(sig)
    assert not is_skeleton(sig)


def test_a_non_placeholder_signature_that_fails_is_not_a_skeleton(pki):
    """No downgrade: values that are not the SDK's placeholders must verify."""
    from cryptography.hazmat.primitives import serialization

    from hub.errors import SignatureError

    real = base64.b64encode(pki.ids[G22].cert.public_bytes(serialization.Encoding.DER)).decode()
    root = skeleton(unsigned_edoc(), cert_b64=real)
    own_values(find_sdk_signature(root))
    with pytest.raises(SignatureError) as e:
        authenticate(root, "sdk", pki.trust())
    assert e.value.code == "signature.invalid"


def is_skeleton(sig: etree._Element) -> bool:
    return inspect_signature(sig.getroottree().getroot()).skeleton


def _sdk_signed(pki, data: bytes, code: str = G22, **kw) -> etree._Element:
    return sign_sdk(parse_xml(data), pki.ids[code].key, pki.ids[code].cert, **kw)


def test_real_sdk_signature_verifies_flagged_sha1(pki):
    root = _sdk_signed(pki, unsigned_edoc())
    assert not is_skeleton(find_sdk_signature(root))
    auth = authenticate(root, "sdk", pki.trust())
    assert auth.method == "signature-sha1" and auth.certificate == pki.ids[G22].cert
    root = _sdk_signed(pki, unsigned_edoc(), sha1=False)
    assert authenticate(root, "sdk", pki.trust()).method == "signature"


def test_real_sdk_signature_that_fails_is_refused(pki):
    from hub.errors import SignatureError

    root = _sdk_signed(pki, unsigned_edoc())
    root.find(f"{E}edXMLEnvelope/{E}edXMLHeader/{E}MessageHeader/{E}Subject").text = "changed"
    with pytest.raises(SignatureError) as e:
        authenticate(root, "sdk", pki.trust())
    assert e.value.code == "signature.digest_mismatch"
    root = _sdk_signed(pki, unsigned_edoc())
    sv = find_sdk_signature(root).find(E + "SignatureValue")
    sv.text = base64.b64encode(b"\x01" * 256).decode()
    with pytest.raises(SignatureError) as e:
        authenticate(root, "sdk", pki.trust())
    assert e.value.code == "signature.invalid"


def test_real_sdk_signature_from_an_untrusted_ca_is_refused(pki):
    from hub.errors import TrustError
    from hub.pki import devpki

    other_cert, other_key = pki.other_ca
    leaf_cert, leaf_key = devpki.issue(other_cert, other_key, f"{G22} forged")
    root = sign_sdk(parse_xml(unsigned_edoc()), leaf_key, leaf_cert)
    with pytest.raises(TrustError):
        authenticate(root, "sdk", pki.trust())


def test_strict_refuses_the_sdk_signature_even_when_real(pki):
    from hub.errors import SignatureError

    root = _sdk_signed(pki, unsigned_edoc(), sha1=False)
    with pytest.raises(SignatureError) as e:
        authenticate(root, "strict", pki.trust())
    assert e.value.code == "signature.not_xmldsig"


def test_both_signatures_are_refused(pki):
    from hub.errors import SignatureError

    data = sign_package(unsigned_edoc(), pki.ids[G22].key, pki.ids[G22].cert)
    root = skeleton(data)
    with pytest.raises(SignatureError) as e:
        authenticate(root, "sdk", pki.trust())
    assert e.value.code == "signature.multiple"


# --- the SDK's Signature through every check ----------------------------------------------------

def test_sdk_signature_with_real_values_through_the_checks(ctx, strict_ctx, pki):
    # written in the SDK's shape (C14N 1.0, RSA-SHA1): verified, flagged sha1
    data = etree.tostring(_sdk_signed(pki, unsigned_edoc()), xml_declaration=True, encoding="UTF-8")
    v = check_package(data, ctx, connection=own(G22))
    assert v.accepted and v.authenticated_by == "signature-sha1" and v.legacy_sha1, v.message
    assert v.signer_fingerprint == pki.ids[G22].fp
    # from another system's connection it is still impersonation (signed, but handed over by H41)
    assert check_package(data, ctx, connection=own(H41)).reason == "authority.impersonation"
    # strict agencies do not get this allowance
    assert check_package(data, strict_ctx, connection=own(G22)).reason == "signature.not_xmldsig"


def test_xmldsig_written_into_the_edxml_namespace_verifies(ctx, pki):
    """What an SDK-based system that really signs sends: XML-DSig computed in its namespace,
    then written as the SDK's Signature."""
    from tests.edxml.test_sdk_signature import sdk_signed

    data = sdk_signed(pki.ids[G22])
    v = check_package(data, ctx, connection=own(G22))
    assert v.accepted and v.authenticated_by == "signature", v.message
    changed = data.replace(b"<edXML:Subject>", b"<edXML:Subject>X")
    v = check_package(changed, ctx, connection=own(G22))
    assert not v.accepted and v.reason == "signature.digest_mismatch"  # signed but wrong: never "connection"


def test_sdk_signature_by_another_agency_is_not_pinned(ctx, pki):
    data = etree.tostring(_sdk_signed(pki, unsigned_edoc(), code=H41), xml_declaration=True, encoding="UTF-8")
    v = check_package(data, ctx, connection=own(G22))
    assert not v.accepted and v.reason == "trust.not_pinned"


def test_skeleton_through_the_checks(ctx):
    data = etree.tostring(skeleton(unsigned_edoc()), xml_declaration=True, encoding="UTF-8")
    v = check_package(data, ctx, connection=own(G22))
    assert v.accepted and v.authenticated_by == "connection", v.message
    assert check_package(data, ctx, connection=own(H41)).reason == "authority.impersonation"


def test_verdicts_cross_process_boundaries(ctx, pki):
    """The check pool sends verdicts back pickled; the signature info carries certificates."""
    import pickle

    from hub.pipeline.runner import CheckRunner

    data = etree.tostring(_sdk_signed(pki, unsigned_edoc()), xml_declaration=True, encoding="UTF-8")
    v = check_package(data, ctx, connection=own(G22))
    back = pickle.loads(pickle.dumps(v))
    assert back.signature.certificates == (pki.ids[G22].cert,) and back.authenticated_by == "signature-sha1"

    import asyncio

    async def run() -> list:
        runner = CheckRunner(processes=1)
        runner.set_context(ctx)
        try:
            return await runner.check_many([(data, own(G22)), (unsigned_edoc(), G22), (unsigned_edoc(), H41)])
        finally:
            runner.close()

    got = asyncio.run(run())
    assert [(x.accepted, x.authenticated_by or x.reason) for x in got] == [
        (True, "signature-sha1"), (True, "connection"), (False, "authority.impersonation")]


def test_explain_says_the_connection_authenticates(ctx):
    from hub.pipeline.explain import explain_stages

    data = etree.tostring(skeleton(unsigned_edoc()), xml_declaration=True, encoding="UTF-8")
    v = check_package(data, ctx)
    lines = [line for s in explain_stages(data, v, ctx.validator) for line in s.lines()]
    assert any("signature:" in x and "placeholder skeleton" in x and f"only over {G22}'s own connection" in x
               for x in lines), lines
    assert any("trust:" in x and "authenticated by the connection" in x for x in lines), lines
