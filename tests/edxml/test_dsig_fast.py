"""The fast verification path agrees with signxml on what it accepts, and never accepts more."""

from __future__ import annotations

import pytest
from lxml import etree
from signxml import XMLSigner, methods

from hub.constants import DSIG_NS
from hub.edxml import dsig_fast
from hub.edxml.builder import build_edoc
from hub.edxml.model import header_of, read_package
from hub.edxml.parser import parse_xml
from hub.edxml.signature import sign_package, verify_package
from hub.errors import HubError
from hub.pki import devpki
from tests.conftest import G22, attachment, make_edoc
from tests.dsig_craft import default_namespace


def _sign(raw: bytes, key, cert, *, sig_alg="rsa-sha256", digest="sha256",
          c14n="http://www.w3.org/2001/10/xml-exc-c14n#", intermediates=()) -> bytes:
    root = parse_xml(raw)
    ph = etree.SubElement(header_of(root), "{%s}Signature" % DSIG_NS, nsmap={"ds": DSIG_NS})
    ph.set("Id", "placeholder")
    signer = XMLSigner(method=methods.enveloped, signature_algorithm=sig_alg, digest_algorithm=digest, c14n_algorithm=c14n)
    signer.namespaces = {"ds": DSIG_NS}
    return etree.tostring(signer.sign(root, key=key, cert=[cert, *intermediates]), xml_declaration=True, encoding="UTF-8")


@pytest.fixture
def spy(monkeypatch):
    calls = {"fast": 0, "fallback": 0}
    real = dsig_fast.verify_fast

    def counting(*a, **kw):
        try:
            out = real(*a, **kw)
        except dsig_fast.Fallback:
            calls["fallback"] += 1
            raise
        calls["fast"] += 1
        return out

    monkeypatch.setattr("hub.edxml.signature.verify_fast", counting)
    return calls


def variants(pki):
    g = pki.ids[G22]
    raw = build_edoc(make_edoc(), [attachment()])
    ec_cert, ec_key = devpki.issue(pki.ca_cert, pki.ca_key, "ec", key=devpki.new_key("ec"))
    ica_cert, ica_key = devpki.make_ca("intermediate", issuer=(pki.ca_cert, pki.ca_key))
    leaf2, key2 = devpki.issue(ica_cert, ica_key, "leaf under intermediate")
    commented = raw.replace("kết nối".encode(), "kết <!-- c --> nối".encode(), 1)
    pretty = etree.tostring(etree.fromstring(raw, etree.XMLParser(remove_blank_text=True)), pretty_print=True,
                            xml_declaration=True, encoding="UTF-8")
    return [
        ("rsa-sha256", sign_package(raw, g.key, g.cert), True),
        ("ecdsa-p256", sign_package(raw, ec_key, ec_cert), True),
        ("default namespace", sign_package(default_namespace(raw), g.key, g.cert), True),
        ("comments", sign_package(commented, g.key, g.cert), True),
        ("pretty-printed", sign_package(pretty, g.key, g.cert), True),
        ("rsa-sha512", _sign(raw, g.key, g.cert, sig_alg="rsa-sha512", digest="sha512"), True),
        ("intermediate in X509Data", _sign(raw, key2, leaf2, intermediates=[ica_cert]), True),
        ("inclusive c14n -> signxml", _sign(raw, g.key, g.cert, c14n="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"), False),
        ("rsa-pss -> signxml", _sign(raw, g.key, g.cert, sig_alg="sha256-rsa-MGF1"), False),
    ]


def test_fast_path_matches_signxml(pki, spy):
    for name, data, expect_fast in variants(pki):
        ref = verify_package(parse_xml(data), pki.trust(), fast=False)
        root = parse_xml(data)
        before = etree.tostring(root)
        spy.update(fast=0, fallback=0)
        got = verify_package(root, pki.trust())
        assert (spy["fast"] == 1) == expect_fast, name
        assert got.signed_bytes == ref.signed_bytes, name
        assert etree.tostring(got.signed_root) == etree.tostring(ref.signed_root), name
        assert read_package(got.signed_root) == read_package(ref.signed_root), name
        assert (got.certificate, got.chain, got.signature_method, got.digest_method) == \
               (ref.certificate, ref.chain, ref.signature_method, ref.digest_method), name
        assert etree.tostring(root) == before, f"{name}: the input tree must be restored"


def test_refusals_identical_and_never_accepted_by_the_fast_path(pki, spy):
    g = pki.ids[G22]
    d = sign_package(build_edoc(make_edoc(), [attachment()]), g.key, g.cert)
    sv = d.index(b"<ds:SignatureValue>") + len(b"<ds:SignatureValue>")
    dv = d.index(b"<ds:DigestValue>") + len(b"<ds:DigestValue>")
    flip = lambda data, i: data[:i] + (b"A" if data[i:i + 1] != b"A" else b"B") + data[i + 1:]  # noqa: E731
    cases = {
        "content": d.replace("kết nối".encode(), "ngắt kết nối".encode(), 1),
        "signature value": flip(d, sv + 5),
        "digest value": flip(d, dv + 5),
        "whitespace after Signature": d.replace(b"</ds:Signature>", b"</ds:Signature>\n", 1),
    }
    for name, data in cases.items():
        errs = []
        for fast in (False, True):
            with pytest.raises(HubError) as e:
                verify_package(parse_xml(data), pki.trust(), fast=fast)
            errs.append((e.value.code, e.value.message))
        assert errs[0] == errs[1], name
    assert spy["fast"] == 0 and spy["fallback"] == len(cases)


def test_in_place_signed_root_is_the_copy_without_the_copy_and_is_put_back(pki, spy):
    """With a restorer, an accepted signature leaves ``root`` itself as the signed root (its
    Signature detached: the same tree as the copy), until the caller puts it back; a tree with
    comments still gets the re-parsed canonical bytes and is restored at once."""
    for name, data, expect_fast in variants(pki):
        ref = verify_package(parse_xml(data), pki.trust(), fast=False)
        root = parse_xml(data)
        before = etree.tostring(root)
        restorer: list = []
        got = verify_package(root, pki.trust(), restorer=restorer)
        in_place = expect_fast and name != "comments"
        assert (got.signed_root is root) == in_place, name
        assert len(restorer) == int(in_place), name
        assert etree.tostring(got.signed_root) == etree.tostring(ref.signed_root), name
        assert read_package(got.signed_root) == read_package(ref.signed_root), name
        if in_place:
            assert next(root.iter("{%s}Signature" % DSIG_NS), None) is None, name
        for restore in restorer:
            restore()
        assert etree.tostring(root) == before, f"{name}: the input tree must be restored"


def test_in_place_refusal_restores_the_tree_before_signxml_decides(pki, spy):
    g = pki.ids[G22]
    d = sign_package(build_edoc(make_edoc(), [attachment()]), g.key, g.cert)
    tampered = d.replace("kết nối".encode(), "ngắt kết nối".encode(), 1)
    root = parse_xml(tampered)
    before = etree.tostring(root)
    restorer: list = []
    with pytest.raises(HubError) as e:
        verify_package(root, pki.trust(), restorer=restorer)
    assert e.value.code == "signature.digest_mismatch"
    assert restorer == [] and etree.tostring(root) == before
    assert spy["fallback"] == 1
