"""Which signature a package carries: XML-DSig, the national SDK's, or none. Pure.

The national SDK (VNPT ``EdXML102``) writes ``<Signature>`` in the **edXML** namespace, not
XML-DSig's: SignedInfo naming C14N 1.0, RSA-SHA1 and SHA-1, placeholder digest and signature
values, and a certificate in ``KeyInfo``; it never verifies signatures. SDK status packages carry
no signature at all. :func:`inspect_signature` tells these apart for the signature stage,
which decides what each is worth for the sender's agency (its profile):

- ``xmldsig``: a ``ds:Signature`` (XML-DSig namespace): verify it as today;
- ``sdk``: the SDK's Signature with values that could be a real signature: verifiable as
  XML-DSig once moved to its namespace (:func:`as_xmldsig`); if it does not verify, the
  package is refused (no downgrade from "signed but wrong" to "unsigned");
- ``sdk-skeleton``: the SDK's Signature with placeholder values (:attr:`SignatureInfo.skeleton_reasons`);
- ``none``: no Signature element.

Nothing here is cryptography: it reads the shape and the values only.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
from dataclasses import dataclass

from cryptography import x509
from lxml import etree

from hub.constants import DSIG_NS, EDXML_NS
from hub.edxml.paths import children_by_tag, find_first
from hub.pki.certs import load_b64_text_cached, load_der_cached

__all__ = ["KIND_NONE", "KIND_SDK", "KIND_SKELETON", "KIND_XMLDSIG", "SignatureInfo", "as_xmldsig", "inspect_signature"]

KIND_XMLDSIG = "xmldsig"
KIND_SDK = "sdk"
KIND_SKELETON = "sdk-skeleton"
KIND_NONE = "none"

_E = "{" + EDXML_NS + "}"
_DS = "{" + DSIG_NS + "}"

# SHA-256 of the base64 values (whitespace removed) the SDK writes as placeholders: the same
# SignatureValue and DigestValues in every package it builds, whatever their content (all the
# real packages in tests/data/edxml/real/ carry them).
PLACEHOLDER_SIGNATURE_VALUES = frozenset({
    "8c88b59e6ceda796cd17b7d3cf98fd8fd9b84e07bbc16529c92c23c62fc4feaa",
})
PLACEHOLDER_DIGEST_VALUES = frozenset({
    hashlib.sha256(b"FwgIqsSYJshUS2+wlOM61L+q7Aw=").hexdigest(),
    hashlib.sha256(b"PrlYKdD8sksgnxFvUVtPIQ0pAqM=").hexdigest(),
})


@dataclass(frozen=True)
class SignatureInfo:
    """What the package's signature looks like (before any verification)."""

    kind: str  # KIND_XMLDSIG, KIND_SDK, KIND_SKELETON or KIND_NONE
    count: int = 0  # Signature elements found in edXMLHeader (either namespace)
    canonicalization: str = ""
    signature_method: str = ""
    digest_method: str = ""
    digest_value: str = ""
    signature_value: str = ""
    certificates_der: tuple[bytes, ...] = ()  # the KeyInfo certificates that parse, DER
    subject_name: str = ""  # KeyInfo/X509Data/X509SubjectName, as written
    skeleton_reasons: tuple[str, ...] = ()  # why an SDK signature is only a placeholder

    # DER, not x509 objects: verdicts cross process boundaries (hub.pipeline.runner pickles them).

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        return tuple(load_der_cached(der) for der in self.certificates_der)

    @property
    def is_sdk(self) -> bool:
        return self.kind in (KIND_SDK, KIND_SKELETON)

    @property
    def skeleton(self) -> bool:
        return self.kind == KIND_SKELETON

    @property
    def sha1(self) -> bool:
        return "sha1" in self.signature_method.rsplit("#", 1)[-1] or "sha1" in self.digest_method.rsplit("#", 1)[-1]

    def describe(self) -> str:
        """One line for ``hub check --explain`` and messages."""
        if self.kind == KIND_NONE:
            return "no signature"
        algs = ", ".join(a.rsplit("#", 1)[-1] for a in (self.signature_method, self.digest_method) if a)
        if self.kind == KIND_XMLDSIG:
            return f"XML-DSig signature ({algs or 'no algorithm named'})"
        what = "the national SDK's Signature in the edXML namespace"
        if self.kind == KIND_SKELETON:
            return f"{what}, a placeholder skeleton ({'; '.join(self.skeleton_reasons)})"
        return f"{what}, with values that may verify ({algs})"


def _text(el: etree._Element | None) -> str:
    return "".join((el.text or "").split()) if el is not None else ""


def _attr(el: etree._Element | None) -> str:
    return (el.get("Algorithm") or "") if el is not None else ""


def _first(children: dict, tag: str) -> etree._Element | None:
    found = children.get(tag)
    return found[0] if found else None


def _header(root: etree._Element) -> etree._Element | None:
    return find_first(root, _E + "edXMLEnvelope", _E + "edXMLHeader")


def _signatures(header: etree._Element) -> list[etree._Element]:
    return [c for c in header if c.tag in (_DS + "Signature", _E + "Signature")]


def inspect_signature(root: etree._Element) -> SignatureInfo:
    """The signature of the package ``root`` (a parsed ``edXML`` tree), as written."""
    header = _header(root)
    sigs = _signatures(header) if header is not None else []
    if not sigs:
        return SignatureInfo(KIND_NONE)
    sig = next((s for s in sigs if s.tag == _DS + "Signature"), sigs[0])
    ns = _DS if sig.tag == _DS + "Signature" else _E
    # Each element's children read once (the first of each tag, as find_first would return).
    sig_kids = children_by_tag(sig)
    signed_info = _first(sig_kids, ns + "SignedInfo")
    si_kids = children_by_tag(signed_info)
    ref_kids = children_by_tag(_first(si_kids, ns + "Reference"))
    x509_data, certificate, subject = ns + "X509Data", ns + "X509Certificate", ns + "X509SubjectName"
    cert_els: list[etree._Element] = []
    subject_el = None
    for key_info in sig_kids.get(ns + "KeyInfo", ()):  # KeyInfo/X509Data/*, in document order
        for data in key_info:
            if data.tag != x509_data:
                continue
            for el in data:
                if el.tag == certificate:
                    cert_els.append(el)
                elif el.tag == subject and subject_el is None:
                    subject_el = el
    certs: list[bytes] = []
    cert_problems: list[str] = []
    for el in cert_els:
        try:
            der = load_b64_text_cached(el.text or "")[0]
        except (ValueError, binascii.Error):
            cert_problems.append("its X509Certificate is not a whole certificate")
        else:
            certs.append(der)
    info = dict(
        count=len(sigs),
        canonicalization=_attr(_first(si_kids, ns + "CanonicalizationMethod")),
        signature_method=_attr(_first(si_kids, ns + "SignatureMethod")),
        digest_method=_attr(_first(ref_kids, ns + "DigestMethod")),
        digest_value=_text(_first(ref_kids, ns + "DigestValue")),
        signature_value=_text(_first(sig_kids, ns + "SignatureValue")),
        certificates_der=tuple(certs),
        subject_name=(subject_el.text or "").strip() if subject_el is not None else "",
    )
    if ns == _DS:
        return SignatureInfo(KIND_XMLDSIG, **info)
    reasons = _skeleton_reasons(info["signature_value"], info["digest_value"], bool(cert_els), cert_problems)
    return SignatureInfo(KIND_SKELETON if reasons else KIND_SDK, skeleton_reasons=tuple(reasons), **info)


def _valid_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        return False
    return bool(value)


def _skeleton_reasons(signature_value: str, digest_value: str, has_cert: bool, cert_problems: list[str]) -> list[str]:
    reasons = []
    if hashlib.sha256(signature_value.encode()).hexdigest() in PLACEHOLDER_SIGNATURE_VALUES:
        reasons.append("its SignatureValue is the SDK's placeholder")
    elif not _valid_base64(signature_value):
        reasons.append("its SignatureValue is empty or not base64")
    if hashlib.sha256(digest_value.encode()).hexdigest() in PLACEHOLDER_DIGEST_VALUES:
        reasons.append("its DigestValue is the SDK's placeholder")
    elif not _valid_base64(digest_value):
        reasons.append("its DigestValue is empty or not base64")
    if not has_cert:
        reasons.append("it has no X509Certificate")
    reasons += cert_problems[:1]
    return reasons


def as_xmldsig(root: etree._Element) -> etree._Element:
    """A copy of ``root`` with the SDK's Signature rebuilt in the XML-DSig namespace (as the
    default namespace, unprefixed, the way the SDK's signer wrote it before serializing it into
    the edXML namespace), so the XML-DSig verifier can check it. ``root`` is not changed."""
    out = copy.deepcopy(root)
    header = _header(out)
    if header is None:
        return out
    for sig in [c for c in header if c.tag == _E + "Signature"]:
        moved = etree.Element(_DS + "Signature", nsmap={None: DSIG_NS})
        _copy_into(sig, moved)
        moved.tail = sig.tail
        header.replace(sig, moved)
    return out


def _copy_into(src: etree._Element, dst: etree._Element) -> None:
    """Copy ``src``'s attributes, text and children under ``dst``, edXML tags moved to XML-DSig."""
    for k, v in src.attrib.items():
        dst.set(k, v)
    dst.text = src.text
    for child in src:
        if not isinstance(child.tag, str):
            dst.append(copy.deepcopy(child))
            continue
        tag = _DS + child.tag[len(_E):] if child.tag.startswith(_E) else child.tag
        new = etree.SubElement(dst, tag)
        _copy_into(child, new)
        new.tail = child.tail
