"""Differential test: the fast signature path and signxml give the same verdict on hostile packages.

Each variant below is a package signed by the hub's signer, then bent the way an attacker
or an odd toolkit would bend it — most of them *re-signed* with the sender's key afterwards
(``tests.dsig_craft.resign``), so that they are cryptographically valid and the difference,
if any, lies in how the two verifiers read the XML. For every variant both verifiers run on
their own parse of the same bytes and must agree exactly: both accept the same signed bytes
with the same certificate and algorithms, or both refuse with the same reason code and
message. The fast path may only ever decide "accept"; every refusal is signxml's
(``hub.edxml.dsig_fast`` falls back on any doubt), and the test counts how many variants
actually reached the fast path, so it cannot pass by refusing everything up front.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable

import pytest
from lxml import etree

from hub.constants import DSIG_NS
from hub.edxml import dsig_fast
from hub.edxml.builder import build_edoc
from hub.edxml.parser import parse_xml
from hub.edxml.signature import sign_package, verify_package
from hub.errors import HubError
from hub.pki.certs import fingerprint
from tests.conftest import G22, attachment, make_edoc
from tests.dsig_craft import DS, EXC, resign

INCLUSIVE = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
EXC_COMMENTS = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"


def _sig(root):
    return next(root.iter(DS + "Signature"))


def _si(root):
    return _sig(root).find(DS + "SignedInfo")


def _ref(root):
    return _si(root).find(DS + "Reference")


def _text_edit(old: bytes, new: bytes) -> Callable:
    def edit(data: bytes, key) -> bytes:
        assert old in data, old
        return data.replace(old, new, 1)
    return edit


def _text_then_resign(old: bytes, new: bytes, *, digest: bool = True) -> Callable:
    """Edit the serialised bytes (what lxml would normalise away), then re-sign."""
    def edit(data: bytes, key) -> bytes:
        assert old in data, old
        return resign(etree.fromstring(data.replace(old, new, 1)), key, digest=digest)
    return edit


def _tree_edit(change: Callable, *, sign: bool = True, digest: bool = True) -> Callable:
    def edit(data: bytes, key) -> bytes:
        root = etree.fromstring(data)
        change(root)
        return resign(root, key, digest=digest) if sign else etree.tostring(root, xml_declaration=True,
                                                                            encoding="UTF-8")
    return edit


def comment_in_signed_info(root):
    _si(root).insert(1, etree.Comment(" reviewed by the legal team "))


def comment_splitting_digest_value(root):
    dv = _ref(root).find(DS + "DigestValue")
    text = dv.text
    dv.text = text[:10]
    c = etree.Comment("x")
    c.tail = text[10:]
    dv.append(c)


def comment_splitting_signature_value(root):
    sv = _sig(root).find(DS + "SignatureValue")
    text = sv.text
    sv.text = text[:20]
    c = etree.Comment("x")
    c.tail = text[20:]
    sv.append(c)


def pi_in_signed_info(root):
    _si(root).insert(0, etree.ProcessingInstruction("audit", "note"))


def pi_in_signed_document(root):
    header = _sig(root).getparent()
    header.insert(0, etree.ProcessingInstruction("render", "draft"))


def other_prefix(root):
    """The whole Signature spelled with a prefix other than ``ds``."""
    sig = _sig(root)
    text = etree.tostring(sig).replace(b"ds:", b"sig:").replace(b"xmlns:ds=", b"xmlns:sig=")
    new = etree.fromstring(text)
    new.tail = sig.tail
    sig.getparent().replace(sig, new)


def extra_key_value(root):
    ki = _sig(root).find(DS + "KeyInfo")
    kv = etree.SubElement(ki, DS + "KeyValue")
    rsa = etree.SubElement(kv, DS + "RSAKeyValue")
    etree.SubElement(rsa, DS + "Modulus").text = base64.b64encode(b"\x01" * 256).decode()
    etree.SubElement(rsa, DS + "Exponent").text = "AQAB"


def unreferenced_object(root):
    obj = etree.SubElement(_sig(root), DS + "Object", Id="extra")
    obj.text = "not covered by any reference"


def duplicated_reference(root):
    ref = _ref(root)
    ref.addnext(copy.deepcopy(ref))


def enveloped_only(root):
    tr = _ref(root).find(DS + "Transforms")
    tr.remove(tr[1])


def inclusive_c14n_transform(root):
    _ref(root).find(DS + "Transforms")[1].set("Algorithm", INCLUSIVE)


def signed_info_inclusive_c14n(root):
    _si(root).find(DS + "CanonicalizationMethod").set("Algorithm", INCLUSIVE)


def signed_info_c14n_with_comments(root):
    _si(root).find(DS + "CanonicalizationMethod").set("Algorithm", EXC_COMMENTS)
    _si(root).insert(1, etree.Comment(" counted now "))


def c14n_method_with_child(root):
    """InclusiveNamespaces PrefixList on the SignedInfo C14N: changes what is canonicalised."""
    cm = _si(root).find(DS + "CanonicalizationMethod")
    etree.SubElement(cm, "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces", PrefixList="ds")


def foreign_digest_value(root):
    """A DigestValue in another namespace beside the real one: whose text counts?"""
    ref = _ref(root)
    dv = ref.find(DS + "DigestValue")
    fake = etree.Element("{urn:evil}DigestValue", nsmap={"ds2": "urn:evil"})
    fake.text = base64.b64encode(b"\x00" * 32).decode()
    dv.addprevious(fake)


def wrapped_header(root):
    """Signature wrapping: the signed header moved into a ds:Object, a forged one put in its place."""
    sig = _sig(root)
    header = sig.getparent()
    obj = etree.SubElement(sig, DS + "Object")
    obj.append(copy.deepcopy(header))
    for el in header.iter():
        if el.text and "kết nối" in el.text:
            el.text = el.text.replace("kết nối", "ngắt kết nối")


def signature_id_and_whitespace(root):
    sig = _sig(root)
    sig.set("Id", "sig-1")
    sv = sig.find(DS + "SignatureValue")
    sv.text = "\n  " + "\n  ".join(sv.text[i:i + 64] for i in range(0, len(sv.text), 64)) + "\n"


def reference_type_attribute(root):
    _ref(root).set("Type", "http://www.w3.org/2000/09/xmldsig#Object")


def reference_uri_xpointer(root):
    _ref(root).set("URI", "#xpointer(/)")


def spaced_digest_algorithm(root):
    dm = _ref(root).find(DS + "DigestMethod")
    dm.set("Algorithm", " " + dm.get("Algorithm"))


def key_name(root):
    etree.SubElement(_sig(root).find(DS + "KeyInfo"), DS + "KeyName").text = "000.00.00.H41"


def der_encoded_key_value(root):
    ki = _sig(root).find(DS + "KeyInfo")
    etree.SubElement(ki, "{http://www.w3.org/2009/xmldsig11#}DEREncodedKeyValue").text = \
        base64.b64encode(b"\x30\x00").decode()


def xpath_in_c14n_transform(root):
    tr = _ref(root).find(DS + "Transforms")[1]
    etree.SubElement(tr, DS + "XPath").text = "not(ancestor-or-self::*[local-name()='Subject'])"


def xml_base_on_signed_info(root):
    _si(root).set("{http://www.w3.org/XML/1998/namespace}base", "http://evil.example/")


VARIANTS: dict[str, Callable] = {
    # text edits after signing (not re-signed)
    "comment in SignedInfo (after signing)": _tree_edit(comment_in_signed_info, sign=False),
    "CDATA in DigestValue": lambda d, k: _cdata(d, b"DigestValue"),
    "CDATA in SignatureValue": lambda d, k: _cdata(d, b"SignatureValue"),
    "whitespace and Id in SignatureValue": _tree_edit(signature_id_and_whitespace, sign=False),
    "spaces inside SignatureValue base64": lambda d, k: _spaced(d, b"SignatureValue"),
    "spaces inside DigestValue base64": lambda d, k: _spaced(d, b"DigestValue"),
    "comment splitting SignatureValue": _tree_edit(comment_splitting_signature_value, sign=False),
    "PI in the signed document (after signing)": _tree_edit(pi_in_signed_document, sign=False),
    "CDATA in the signed document": _text_edit("kết nối".encode(), "<![CDATA[kết nối]]>".encode()),
    "unreferenced ds:Object (after signing)": _tree_edit(unreferenced_object, sign=False),
    "wrapped header (signature wrapping)": _tree_edit(wrapped_header, sign=False),
    "extra KeyValue": _tree_edit(extra_key_value, sign=False),
    # re-signed with the sender's key: cryptographically valid, odd XML
    "comment in SignedInfo (re-signed)": _tree_edit(comment_in_signed_info),
    "comment splitting DigestValue (re-signed)": _tree_edit(comment_splitting_digest_value, digest=False),
    "PI in SignedInfo (re-signed)": _tree_edit(pi_in_signed_info),
    "PI in the signed document (re-signed)": _tree_edit(pi_in_signed_document),
    "redeclared ds prefix on SignedInfo (re-signed)": _text_then_resign(
        b"<ds:SignedInfo>", f'<ds:SignedInfo xmlns:ds="{DSIG_NS}" xmlns:x="urn:unused">'.encode()),
    "ds prefix rebound to another namespace inside Reference (re-signed)": _text_then_resign(
        b"<ds:Transforms>", b'<ds:Transforms xmlns:ds="urn:not-xmldsig">'),
    "ds prefix rebound around DigestValue (re-signed)": _text_then_resign(
        b"<ds:DigestValue>", b'<ds:DigestValue xmlns:ds="urn:not-xmldsig">', digest=False),
    "Signature with another prefix (re-signed)": _tree_edit(other_prefix),
    "duplicated Reference (re-signed)": _tree_edit(duplicated_reference),
    "enveloped transform only (re-signed)": _tree_edit(enveloped_only),
    "inclusive C14N transform (re-signed)": _tree_edit(inclusive_c14n_transform),
    "SignedInfo inclusive C14N (re-signed)": _tree_edit(signed_info_inclusive_c14n),
    "SignedInfo C14N with comments (re-signed)": _tree_edit(signed_info_c14n_with_comments),
    "InclusiveNamespaces on SignedInfo C14N (re-signed)": _tree_edit(c14n_method_with_child),
    "foreign-namespace DigestValue (re-signed)": _tree_edit(foreign_digest_value),
    "DigestValue in a default namespace (re-signed)": lambda d, k: _text_then_resign(
        b"<ds:DigestValue>", f'<DigestValue xmlns="{DSIG_NS}">'.encode(), digest=False)(
        d.replace(b"</ds:DigestValue>", b"</DigestValue>", 1), k),
    "unreferenced ds:Object (re-signed)": _tree_edit(unreferenced_object),
    "Reference Type attribute (re-signed)": _tree_edit(reference_type_attribute),
    "Reference URI #xpointer(/) (re-signed)": _tree_edit(reference_uri_xpointer),
    "DigestMethod with a leading space (re-signed)": _tree_edit(spaced_digest_algorithm),
    "xml:base on SignedInfo (re-signed)": _tree_edit(xml_base_on_signed_info),
    "KeyName beside the certificate": _tree_edit(key_name, sign=False),
    "DEREncodedKeyValue beside the certificate": _tree_edit(der_encoded_key_value, sign=False),
    "XPath inside the C14N transform (re-signed)": _tree_edit(xpath_in_c14n_transform),
}


MUST = {  # what both must say where an attacker gains by the other answer
    "wrapped header (signature wrapping)": ("refuse", "signature.multiple"),
    "PI in the signed document (after signing)": ("refuse", "signature.digest_mismatch"),
    "comment splitting SignatureValue": ("refuse", "signature.invalid"),
    "extra KeyValue": ("refuse", "signature.invalid"),
    "DEREncodedKeyValue beside the certificate": ("refuse", "signature.invalid"),  # was a traceback
    "duplicated Reference (re-signed)": ("refuse", "signature.reference"),
    "Reference URI #xpointer(/) (re-signed)": ("refuse", "signature.reference"),
    "ds prefix rebound to another namespace inside Reference (re-signed)": ("refuse", "signature.reference"),
    "ds prefix rebound around DigestValue (re-signed)": ("refuse", "signature.invalid"),
    "foreign-namespace DigestValue (re-signed)": ("refuse", "signature.invalid"),
    "CDATA in the signed document": ("accept",),  # the same text: C14N makes CDATA plain text
    "comment in SignedInfo (after signing)": ("accept",),  # C14N without comments drops it
}


def _cdata(data: bytes, tag: bytes) -> bytes:
    start = data.index(b"<ds:" + tag + b">") + len(tag) + 5
    end = data.index(b"</ds:" + tag + b">")
    return data[:start] + b"<![CDATA[" + data[start:end] + b"]]>" + data[end:]


def _spaced(data: bytes, tag: bytes) -> bytes:
    start = data.index(b"<ds:" + tag + b">") + len(tag) + 5
    end = data.index(b"</ds:" + tag + b">")
    value = data[start:end]
    return data[:start] + b" ".join(value[i:i + 8] for i in range(0, len(value), 8)) + data[end:]


def verdict(data: bytes, trust, fast: bool):
    """What one verifier says: ("accept", …what was verified…) or ("refuse", code, message)."""
    try:
        root = parse_xml(data)
    except HubError as e:
        return ("refuse", e.code, e.message)
    try:
        got = verify_package(root, trust, fast=fast)
    except HubError as e:
        return ("refuse", e.code, e.message)
    return ("accept", got.signed_bytes, etree.tostring(got.signed_root), fingerprint(got.certificate),
            got.signature_method, got.digest_method, got.legacy_sha1)


@pytest.fixture
def fast_calls(monkeypatch):
    """How often the fast path was entered, and how often it accepted."""
    calls = {"entered": 0, "accepted": 0}
    real = dsig_fast.verify_fast

    def counting(*a, **kw):
        calls["entered"] += 1
        out = real(*a, **kw)
        calls["accepted"] += 1
        return out

    monkeypatch.setattr("hub.edxml.signature.verify_fast", counting)
    return calls


def test_fast_path_and_signxml_agree_on_every_hostile_variant(pki, fast_calls):
    g = pki.ids[G22]
    signed = sign_package(build_edoc(make_edoc(), [attachment()]), g.key, g.cert)
    trust = pki.trust()
    assert verdict(signed, trust, fast=True)[0] == "accept"
    entered = accepted = 0
    outcomes = {}
    for name, make in VARIANTS.items():
        data = make(signed, g.key)
        assert data != signed, f"{name}: the variant changed nothing"
        reference = verdict(data, trust, fast=False)
        fast_calls.update(entered=0, accepted=0)
        fast = verdict(data, trust, fast=True)
        assert fast == reference, f"{name}: fast path {fast[:3]!r} but signxml {reference[:3]!r}"
        entered += fast_calls["entered"]
        accepted += fast_calls["accepted"]
        outcomes[name] = reference[:2] if reference[0] == "refuse" else ("accept",)
    assert len(VARIANTS) >= 15
    # the comparison means something: most variants reach the fast path, some pass it, some not
    assert entered >= 15 and 0 < accepted < entered, (entered, accepted, outcomes)
    for name, expected in MUST.items():  # and the shared verdict is the safe one where it matters
        assert outcomes[name] == expected, name
