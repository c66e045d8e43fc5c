"""Hand-crafted XML-DSig signatures for attack and interop tests (not production code).

signxml refuses to produce weak or odd signatures, which is right for the hub but means the
tests need their own minimal signer to make SHA-1 signatures, Id-based partial references
and other shapes the hub must refuse.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree

from hub.constants import DSIG_NS, EDXML_NS

DS = "{" + DSIG_NS + "}"
ALG = {
    "rsa-sha256": ("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", hashes.SHA256()),
    "rsa-sha1": ("http://www.w3.org/2000/09/xmldsig#rsa-sha1", hashes.SHA1()),
}
DIGEST = {
    "sha256": ("http://www.w3.org/2001/04/xmlenc#sha256", hashlib.sha256),
    "sha1": ("http://www.w3.org/2000/09/xmldsig#sha1", hashlib.sha1),
}
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
EXC = "http://www.w3.org/2001/10/xml-exc-c14n#"


def _c14n(el: etree._Element) -> bytes:
    return etree.tostring(el, method="c14n", exclusive=True)


def craft(data: bytes, key, cert, *, sig_alg: str = "rsa-sha256", digest: str = "sha256",
          object_id: str | None = None, ds_namespace: str = DSIG_NS) -> bytes:
    """Sign ``data`` enveloped in edXMLHeader. With ``object_id`` the only reference is
    ``#object_id``, a ds:Object inside the Signature: it covers nothing of the package."""
    root = etree.fromstring(data)
    header = root.find(f"{{{EDXML_NS}}}edXMLEnvelope/{{{EDXML_NS}}}edXMLHeader")
    d = "{" + ds_namespace + "}" if ds_namespace else ""
    nsmap = {"ds": ds_namespace} if ds_namespace else None
    sig = etree.Element(d + "Signature", nsmap=nsmap)
    si = etree.SubElement(sig, d + "SignedInfo")
    etree.SubElement(si, d + "CanonicalizationMethod", Algorithm=EXC)
    etree.SubElement(si, d + "SignatureMethod", Algorithm=ALG[sig_alg][0])
    ref = etree.SubElement(si, d + "Reference", URI=f"#{object_id}" if object_id else "")
    tr = etree.SubElement(ref, d + "Transforms")
    if not object_id:
        etree.SubElement(tr, d + "Transform", Algorithm=ENVELOPED)
    etree.SubElement(tr, d + "Transform", Algorithm=EXC)
    etree.SubElement(ref, d + "DigestMethod", Algorithm=DIGEST[digest][0])
    dv = etree.SubElement(ref, d + "DigestValue")
    sv = etree.SubElement(sig, d + "SignatureValue")
    ki = etree.SubElement(sig, d + "KeyInfo")
    xd = etree.SubElement(ki, d + "X509Data")
    etree.SubElement(xd, d + "X509Certificate").text = base64.b64encode(
        cert.public_bytes(serialization.Encoding.DER)).decode()
    if object_id:
        obj = etree.SubElement(sig, d + "Object", Id=object_id)
        obj.text = "nothing of the package"
        header.append(sig)
        dv.text = base64.b64encode(DIGEST[digest][1](_c14n(obj)).digest()).decode()
    else:
        dv.text = base64.b64encode(DIGEST[digest][1](_c14n(root)).digest()).decode()
        header.append(sig)
    signed_info = _c14n(si)
    sv.text = base64.b64encode(key.sign(signed_info, padding.PKCS1v15(), ALG[sig_alg][1])).decode()
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def default_namespace(data: bytes) -> bytes:
    """Re-spell a builder (prefixed) package with edXML as the default namespace."""
    text = data.decode("utf-8")
    text = text.replace("<edXML:", "<").replace("</edXML:", "</").replace('xmlns:edXML="', 'xmlns="')
    return text.encode("utf-8")


def _without(root: etree._Element, sig: etree._Element) -> etree._Element:
    """A copy of ``root`` with ``sig`` removed, its tail kept (the enveloped-signature transform)."""
    position = list(root.iter()).index(sig)
    copy = etree.fromstring(etree.tostring(root))
    gone = list(copy.iter())[position]
    parent, prev = gone.getparent(), gone.getprevious()
    if gone.tail:
        if prev is None:
            parent.text = (parent.text or "") + gone.tail
        else:
            prev.tail = (prev.tail or "") + gone.tail
    parent.remove(gone)
    return copy


def resign(root: etree._Element, key, *, digest: bool = True) -> bytes:
    """Re-sign a (deliberately odd) Signature in ``root`` as a careful attacker holding the
    key would: recompute the DigestValue of the enveloped document (exclusive C14N; unless
    ``digest`` is False) and the SignatureValue over SignedInfo canonicalised by *its own*
    CanonicalizationMethod. Returns the serialised package."""
    sig = next(root.iter(DS + "Signature"))
    si = sig.find(DS + "SignedInfo")
    if digest:
        dv = si.find(f"{DS}Reference/{DS}DigestValue")
        dv.text = base64.b64encode(hashlib.sha256(_c14n(_without(root, sig))).digest()).decode()
    method = si.find(DS + "CanonicalizationMethod").get("Algorithm", "")
    exclusive = "exc-c14n" in method
    comments = method.endswith("WithComments")
    signed_info = etree.tostring(si, method="c14n", exclusive=exclusive, with_comments=comments)
    sig.find(DS + "SignatureValue").text = base64.b64encode(
        key.sign(signed_info, padding.PKCS1v15(), hashes.SHA256())).decode()
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
