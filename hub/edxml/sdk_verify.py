"""Verify (and, for tests and migrating agencies, make) the SDK's Signature with real values. Pure.

The national SDK writes ``<Signature>`` in the edXML namespace (:mod:`hub.edxml.sdk_signature`
tells a placeholder skeleton from one with values of its own). One with its own values is
verified as XML-DSig would verify it, on the elements as written: C14N 1.0 of SignedInfo, RSA
(or ECDSA) with SHA-1 or stronger, one ``Reference URI=""`` with the enveloped transform and an
optional C14N, the certificate chained to a trust anchor at signing time. Any failure is a
refusal: a signature that is present but wrong is never downgraded to "unsigned".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from lxml import etree

from hub.constants import DSIG_NS, EDXML_NS
from hub.edxml import dsig_fast
from hub.edxml.dsig_fast import _DS, _PARSER, ENVELOPED, detach
from hub.edxml.sdk_signature import as_xmldsig
from hub.errors import SignatureError
from hub.pki.certs import load_der_cached
from hub.pki.chain import TrustStore

_E = "{" + EDXML_NS + "}"
C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
# The SDK names exclusive C14N with a URI that is not the W3C one; both mean the same thing.
EXC_C14N = frozenset({dsig_fast.EXC_C14N, "http://www.w3.org/TR/xml-exc-c14n#"})
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
# The fast path's SHA-256-or-stronger algorithms, plus the SHA-1 the SDK's profile allows (flagged).
SIGNATURE_METHODS = {RSA_SHA1: ("rsa", hashes.SHA1), **dsig_fast.SIGNATURE_METHODS}
DIGESTS = {SHA1: hashlib.sha1, **dsig_fast.DIGESTS}
SHA1_URIS = frozenset({RSA_SHA1, SHA1})


def sdk_signature_element(root: etree._Element) -> etree._Element | None:
    """The edXML-namespace ``Signature`` in ``edXMLHeader`` (the SDK's), or None."""
    header = root.find(f"{_E}edXMLEnvelope/{_E}edXMLHeader")
    return header.find(f"{_E}Signature") if header is not None else None


def _b64_text(el: etree._Element | None) -> str:
    return "".join((el.text or "").split()) if el is not None else ""


def _certificates(sig: etree._Element) -> list[x509.Certificate] | None:
    """The KeyInfo certificates, or None when any is missing or undecodable."""
    els = sig.findall(f"{_E}KeyInfo/{_E}X509Data/{_E}X509Certificate")
    if not els:
        return None
    certs = []
    for el in els:
        try:
            certs.append(load_der_cached(base64.b64decode(_b64_text(el), validate=True)))
        except (ValueError, binascii.Error):
            return None
    return certs


@dataclass(frozen=True)
class SdkVerified:
    signed_root: etree._Element  # the canonical signed content, re-parsed (Signature removed)
    signed_bytes: bytes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    signature_method: str
    digest_method: str
    sha1: bool  # SHA-1 in the signature or digest method: accepted, flagged


def _one(el: etree._Element, tag: str, element: str, code: str = "signature.invalid") -> etree._Element:
    found = el.findall(_E + tag)
    if len(found) != 1:
        raise SignatureError(f"the SDK Signature needs exactly one {tag} (found {len(found)})", code=code,
                             element=element)
    return found[0]


def _one_any(el: etree._Element, tag: str, element: str, code: str = "signature.invalid") -> etree._Element:
    """Like :func:`_one`, in either namespace (the verified SignedInfo may be XML-DSig's)."""
    found = [c for c in el if isinstance(c.tag, str) and etree.QName(c).localname == tag]
    if len(found) != 1:
        raise SignatureError(f"the SDK Signature needs exactly one {tag} (found {len(found)})", code=code,
                             element=element)
    return found[0]


def _value_verifies(leaf: x509.Certificate, sm: str, raw: bytes, signed_info: bytes) -> bool:
    kind, hash_cls = SIGNATURE_METHODS[sm]
    key = leaf.public_key()
    try:
        if kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(raw, signed_info, PKCS1v15(), hash_cls())
            return True
        if kind == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
            n = (key.key_size + 7) // 8
            if len(raw) != 2 * n:
                return False
            der = utils.encode_dss_signature(int.from_bytes(raw[:n], "big"), int.from_bytes(raw[n:], "big"))
            key.verify(der, signed_info, ec.ECDSA(hash_cls()))
            return True
    except CryptoInvalidSignature:
        return False
    raise SignatureError(f"SignatureMethod {sm} does not fit the certificate's key",
                         element="Signature/SignedInfo/SignatureMethod")


def _c14n(el: etree._Element, uri: str | None) -> bytes:
    exclusive = uri in EXC_C14N
    return etree.tostring(el, method="c14n", exclusive=exclusive, with_comments=False)


def _leaf_first(certs: list[x509.Certificate]) -> list[x509.Certificate]:
    issuers = {c.issuer.public_bytes() for c in certs}
    leaves = [c for c in certs if c.subject.public_bytes() not in issuers]
    leaf = leaves[0] if leaves else certs[0]
    return [leaf] + [c for c in certs if c is not leaf]


def verify_sdk_signature(root: etree._Element, sig: etree._Element, trust: TrustStore, *,
                         at: datetime | None = None) -> SdkVerified:
    """Verify a non-skeleton SDK Signature as XML-DSig. Raises SignatureError / TrustError.

    The tree is briefly modified (the Signature is detached for the digest) and restored.
    """
    si = _one(sig, "SignedInfo", "Signature/SignedInfo")
    cm = _one(si, "CanonicalizationMethod", "Signature/SignedInfo/CanonicalizationMethod").get("Algorithm")
    if cm != C14N_10 and cm not in EXC_C14N:
        raise SignatureError(f"the SDK Signature must canonicalise SignedInfo with C14N 1.0 ({C14N_10}) or "
                             f"exclusive C14N, not {cm}", element="Signature/SignedInfo/CanonicalizationMethod")
    sm = _one(si, "SignatureMethod", "Signature/SignedInfo/SignatureMethod").get("Algorithm", "")
    if sm not in SIGNATURE_METHODS:
        raise SignatureError(f"SignatureMethod {sm or '(none)'} is not accepted; use RSA-SHA1 or stronger",
                             code="signature.weak_algorithm", element="Signature/SignedInfo/SignatureMethod")
    certs = _certificates(sig)
    if certs is None:  # is_skeleton() says so first; kept for direct callers
        raise SignatureError("KeyInfo/X509Data has no usable X509Certificate", code="signature.no_certificate",
                             element="Signature/KeyInfo/X509Data")
    ordered = _leaf_first(certs)
    chain = trust.verify(ordered[0], ordered[1:], at or datetime.now(timezone.utc))
    leaf = chain[0]
    try:
        raw = base64.b64decode(_b64_text(sig.find(f"{_E}SignatureValue")), validate=True)
    except (ValueError, binascii.Error) as e:
        raise SignatureError("SignatureValue is not base64", element="Signature/SignatureValue") from e
    # SDK-based systems that really sign compute XML-DSig with Signature in the XML-DSig namespace
    # and then write it into the edXML namespace; a signer of the SDK's shape signs it as written.
    # The value must verify over one of the two (both cover the same digest of the same package).
    moved = as_xmldsig(root).find(f"{_E}edXMLEnvelope/{_E}edXMLHeader/{_DS}Signature/{_DS}SignedInfo")
    candidates = [_c14n(si, cm)] + ([_c14n(moved, cm)] if moved is not None else [])
    signed_info = next((c for c in candidates if _value_verifies(leaf, sm, raw, c)), None)
    if signed_info is None:
        raise SignatureError("the signature value does not verify with the certificate in KeyInfo",
                             element="Signature/SignatureValue")
    # Read the reference from what was verified, never from the raw tree.
    vsi = etree.fromstring(signed_info, parser=_PARSER)
    ref = _one_any(vsi, "Reference", "Signature/SignedInfo/Reference", code="signature.reference")
    if ref.get("URI") != "":
        raise SignatureError(f"the signature's Reference must be URI=\"\" (the whole package), not {ref.get('URI')!r}",
                             code="signature.reference", element="Signature/SignedInfo/Reference")
    transforms = [t.get("Algorithm") for t in ref.findall("{*}Transforms/{*}Transform")]
    c14n_uri = transforms[1] if len(transforms) == 2 else C14N_10
    if not transforms or transforms[0] != ENVELOPED or len(transforms) > 2 or c14n_uri not in EXC_C14N | {C14N_10}:
        raise SignatureError(f"Reference transforms must be enveloped-signature then a C14N method, found {transforms}",
                             code="signature.reference", element="Signature/SignedInfo/Reference/Transforms")
    dm = _one_any(ref, "DigestMethod", "Signature/SignedInfo/Reference/DigestMethod").get("Algorithm", "")
    if dm not in DIGESTS:
        raise SignatureError(f"DigestMethod {dm or '(none)'} is not accepted; use SHA-1 or stronger",
                             code="signature.weak_algorithm", element="Signature/SignedInfo/Reference/DigestMethod")
    undo = detach(sig)
    try:
        signed_bytes = _c14n(root, c14n_uri)
    finally:
        undo()
    try:
        expected = base64.b64decode(
            _b64_text(_one_any(ref, "DigestValue", "Signature/SignedInfo/Reference/DigestValue")), validate=True)
    except (ValueError, binascii.Error) as e:
        raise SignatureError("DigestValue is not base64", element="Signature/SignedInfo/Reference/DigestValue") from e
    if not hmac.compare_digest(DIGESTS[dm](signed_bytes).digest(), expected):
        raise SignatureError("the package was changed after it was signed (reference digest mismatch)",
                             code="signature.digest_mismatch", element="Signature/SignedInfo/Reference/DigestValue")
    return SdkVerified(
        signed_root=etree.fromstring(signed_bytes, parser=_PARSER), signed_bytes=signed_bytes, certificate=leaf,
        chain=tuple(chain), signature_method=sm, digest_method=dm, sha1=sm in SHA1_URIS or dm in SHA1_URIS,
    )


def sign_sdk(root: etree._Element, key, cert: x509.Certificate, *, sha1: bool = True) -> etree._Element:
    """Sign ``root`` the way the SDK's Signature is shaped, with real values (C14N 1.0, RSA or
    ECDSA, SHA-1 by default as the SDK names it). For tests and for agencies moving from the
    skeleton to real signatures; the hub itself signs with :func:`hub.edxml.signature.sign_package`."""
    header = root.find(f"{_E}edXMLEnvelope/{_E}edXMLHeader")
    for old in header.findall(f"{_E}Signature") + header.findall("{" + DSIG_NS + "}Signature"):
        header.remove(old)
    is_ec = isinstance(key, ec.EllipticCurvePrivateKey)
    sm = ("http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" if is_ec or not sha1
          else "http://www.w3.org/2000/09/xmldsig#rsa-sha1")
    if not sha1 and not is_ec:
        sm = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    dm = "http://www.w3.org/2000/09/xmldsig#sha1" if sha1 else "http://www.w3.org/2001/04/xmlenc#sha256"
    digest = DIGESTS[dm](_c14n(root, C14N_10)).digest()
    sig = etree.SubElement(header, _E + "Signature")
    si = etree.SubElement(sig, _E + "SignedInfo")
    etree.SubElement(si, _E + "CanonicalizationMethod", Algorithm=C14N_10)
    etree.SubElement(si, _E + "SignatureMethod", Algorithm=sm)
    ref = etree.SubElement(si, _E + "Reference", URI="")
    tr = etree.SubElement(ref, _E + "Transforms")
    etree.SubElement(tr, _E + "Transform", Algorithm=ENVELOPED)
    etree.SubElement(tr, _E + "Transform", Algorithm=C14N_10)
    etree.SubElement(ref, _E + "DigestMethod", Algorithm=dm)
    etree.SubElement(ref, _E + "DigestValue").text = base64.b64encode(digest).decode()
    kind, hash_cls = SIGNATURE_METHODS[sm]
    data = _c14n(si, C14N_10)
    if kind == "ec":
        r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hash_cls())))
        n = (key.curve.key_size + 7) // 8
        value = r.to_bytes(n, "big") + s.to_bytes(n, "big")
    else:
        value = key.sign(data, PKCS1v15(), hash_cls())
    etree.SubElement(sig, _E + "SignatureValue").text = base64.b64encode(value).decode()
    x509_data = etree.SubElement(etree.SubElement(sig, _E + "KeyInfo"), _E + "X509Data")
    etree.SubElement(x509_data, _E + "X509Certificate").text = base64.b64encode(
        cert.public_bytes(serialization.Encoding.DER)).decode()
    return root
