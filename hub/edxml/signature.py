"""XML-DSig signing and verification of edXML packages.

Profile (what public SDKs emit, made strict): one enveloped ``ds:Signature`` as the last
child of ``edXMLHeader``; one ``Reference URI=""`` with the enveloped-signature transform and
exclusive (or inclusive) C14N; RSA or ECDSA with SHA-256 or stronger (RSA-SHA1 / SHA-1 only
with ``allow_sha1``, ``HUB_ALLOW_SHA1``); the signing certificate (and optional
intermediates) in ``KeyInfo/X509Data``, validated against the trust store.

Verification tries :mod:`hub.edxml.dsig_fast` first and falls back to signxml for anything
outside its profile. Either way only the signed bytes — the canonical bytes the signer
covered, re-parsed — are used afterwards; the raw tree is never read again. That defeats
signature wrapping.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from lxml import etree
from signxml import DigestAlgorithm, SignatureMethod, XMLSigner, XMLVerifier, methods
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature
from signxml.verifier import SignatureConfiguration

from hub.constants import DSIG_NS, EDXML_NS
from hub.edxml.dsig_fast import Fallback, verify_fast
from hub.edxml.model import header_of
from hub.edxml.paths import children_by_tag as _children
from hub.edxml.paths import find_all, find_first
from hub.errors import SignatureError
from hub.pki.certs import load_b64_text_cached
from hub.pki.chain import TrustStore

_DS = "{" + DSIG_NS + "}"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N_TRANSFORMS = {
    EXC_C14N,
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/2006/12/xml-c14n11",
}
SHA1_URIS = {
    "http://www.w3.org/2000/09/xmldsig#sha1",
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
}
_STRONG_SIG = frozenset(
    m for m in SignatureMethod if m.name.startswith(("RSA_", "ECDSA_", "SHA")) and "SHA1" not in m.name and "SHA224" not in m.name
)
_STRONG_DIGEST = frozenset(d for d in DigestAlgorithm if "SHA1" not in d.name and "SHA224" not in d.name)
_LEGACY_SIG = _STRONG_SIG | {SignatureMethod.RSA_SHA1}
_LEGACY_DIGEST = _STRONG_DIGEST | {DigestAlgorithm.SHA1}
_ENVELOPE, _HEADER = f"{{{EDXML_NS}}}edXMLEnvelope", f"{{{EDXML_NS}}}edXMLHeader"
_LOCATION = f"./{{{EDXML_NS}}}edXMLEnvelope/{{{EDXML_NS}}}edXMLHeader/"


def _signxml_parser() -> etree.XMLParser:
    """signxml re-parses serialized copies; its default parser refuses text nodes over 10 MB,
    which a package with a large base64 attachment has. Same hardening as ours otherwise."""
    return etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True, load_dtd=False)


@dataclass(frozen=True)
class VerifiedPackage:
    """The outcome of a successful verification."""

    signed_root: etree._Element  # the signed content only (Signature removed); read nothing else
    signed_bytes: bytes  # canonical bytes the signer covered
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    signature_method: str
    digest_method: str
    legacy_sha1: bool  # accepted only because the operator allowed SHA-1; must be flagged in audit


def sign_package(data: bytes | etree._Element, key, cert: x509.Certificate,
                 intermediates: list[x509.Certificate] = ()) -> bytes:
    """Sign a package: enveloped, exclusive C14N, ``Reference URI=""``, SHA-256.

    Any existing signature is replaced. ``Signature`` is placed as the last child of
    ``edXMLHeader`` with the certificate chain in ``KeyInfo/X509Data``.
    """
    from hub.edxml.parser import parse_xml  # local import: keep the module import light

    root = parse_xml(data) if isinstance(data, (bytes, bytearray)) else data
    header = header_of(root)
    for old in header.findall(_DS + "Signature"):
        header.remove(old)
    placeholder = etree.SubElement(header, _DS + "Signature", nsmap={"ds": DSIG_NS})
    placeholder.set("Id", "placeholder")
    sig_alg = "ecdsa-sha256" if key.__class__.__name__.startswith("_EllipticCurve") or hasattr(key, "curve") else "rsa-sha256"
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=sig_alg,
        digest_algorithm="sha256",
        c14n_algorithm=EXC_C14N,
    )
    signer.namespaces = {"ds": DSIG_NS}
    signer._parser = _signxml_parser()  # no public parser argument on sign(); see _signxml_parser
    signed = signer.sign(root, key=key, cert=[cert, *intermediates])
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def _strict_profile(root: etree._Element, allow_sha1: bool) -> tuple[etree._Element, list[x509.Certificate], str, str]:
    """Check the signature's shape before any cryptography; return (sig, certs, sig_alg, digest_alg)."""
    sigs = list(root.iter(_DS + "Signature"))
    if not sigs:
        for el in root.iter():
            if isinstance(el.tag, str) and etree.QName(el).localname == "Signature":
                raise SignatureError(
                    f"a Signature element is in namespace {etree.QName(el).namespace or '(none)'}; "
                    f"XML-DSig signatures must be in {DSIG_NS}",
                    code="signature.not_xmldsig",
                    element="edXMLHeader/Signature",
                )
        raise SignatureError(
            "the package is not signed: edXMLHeader has no ds:Signature; sign it with the agency's key (`hub sign`)",
            code="signature.missing",
            element="edXMLHeader",
        )
    if len(sigs) > 1:
        raise SignatureError(
            f"{len(sigs)} ds:Signature elements found; exactly one, in edXMLHeader, is allowed",
            code="signature.multiple",
            element="edXMLHeader/Signature",
        )
    sig = sigs[0]
    header = find_first(root, _ENVELOPE, _HEADER)
    if sig.getparent() is not header or sig.getnext() is not None and any(
        isinstance(s.tag, str) for s in sig.itersiblings()
    ):
        raise SignatureError(
            "ds:Signature must be the last child of edXMLEnvelope/edXMLHeader",
            code="signature.misplaced",
            element="edXMLHeader/Signature",
        )
    sig_kids = _children(sig)
    signed_infos = [_children(si) for si in sig_kids.get(_DS + "SignedInfo", ())]
    refs = [r for si in signed_infos for r in si.get(_DS + "Reference", ())]
    if len(refs) != 1 or refs[0].get("URI") != "":
        uris = ", ".join(repr(r.get("URI")) for r in refs) or "none"
        raise SignatureError(
            f"the signature must have exactly one Reference with URI=\"\" covering the whole package (found {uris})",
            code="signature.reference",
            element="Signature/SignedInfo/Reference",
        )
    ref_kids = _children(refs[0])
    transforms = [t.get("Algorithm") for ts in ref_kids.get(_DS + "Transforms", ()) for t in ts
                  if t.tag == _DS + "Transform"]
    if not transforms or transforms[0] != ENVELOPED or any(t not in C14N_TRANSFORMS for t in transforms[1:]) or len(transforms) > 2:
        raise SignatureError(
            f"Reference transforms must be enveloped-signature then a C14N method, found {transforms}",
            code="signature.reference",
            element="Signature/SignedInfo/Reference/Transforms",
        )
    sm = next((m for si in signed_infos for m in si.get(_DS + "SignatureMethod", ())), None)
    dm = ref_kids.get(_DS + "DigestMethod", (None,))[0]
    sig_alg = sm.get("Algorithm", "") if sm is not None else ""
    dig_alg = dm.get("Algorithm", "") if dm is not None else ""
    if not allow_sha1 and (sig_alg in SHA1_URIS or dig_alg in SHA1_URIS):
        raise SignatureError(
            f"SHA-1 is not accepted (SignatureMethod {sig_alg}, DigestMethod {dig_alg}); "
            "re-sign with RSA-SHA256 or ECDSA-SHA256",
            code="signature.weak_algorithm",
            element="Signature/SignedInfo/SignatureMethod",
        )
    certs: list[x509.Certificate] = []
    for el in _find_all_in(sig_kids.get(_DS + "KeyInfo", ()), _DS + "X509Data", _DS + "X509Certificate"):
        try:
            certs.append(load_b64_text_cached(el.text or "")[1])
        except (ValueError, binascii.Error) as e:
            raise SignatureError(
                f"KeyInfo/X509Data/X509Certificate is not a valid certificate: {e}",
                code="signature.no_certificate",
                element="Signature/KeyInfo/X509Data/X509Certificate",
            ) from e
    if not certs:
        raise SignatureError(
            "KeyInfo/X509Data has no X509Certificate; include the signing certificate",
            code="signature.no_certificate",
            element="Signature/KeyInfo/X509Data",
        )
    return sig, certs, sig_alg, dig_alg


def _find_all_in(parents, *tags: str) -> list[etree._Element]:
    """``find_all`` from several parents, in document order."""
    return [el for parent in parents for el in find_all(parent, *tags)]


def _leaf_first(certs: list[x509.Certificate]) -> list[x509.Certificate]:
    """X509Data has no order; the leaf is the one certificate that issued no other."""
    if len(certs) == 1:
        return certs
    issuers = {c.issuer.public_bytes() for c in certs}
    leaves = [c for c in certs if c.subject.public_bytes() not in issuers or len(certs) == 1]
    leaf = leaves[0] if leaves else certs[0]
    return [leaf] + [c for c in certs if c is not leaf]


def verify_package(root: etree._Element, trust: TrustStore, *, at: datetime | None = None,
                   allow_sha1: bool = False, fast: bool = True, restorer: list | None = None) -> VerifiedPackage:
    """Verify the package's signature and certificate chain at time ``at`` (default now).

    The common profile is verified by :mod:`hub.edxml.dsig_fast` (``fast=True``); anything
    else, and every failure, by signxml. ``restorer``: see :func:`hub.edxml.dsig_fast.verify_fast`
    (``root`` may come back as the signed root with its Signature detached; call what was
    appended to put it back).

    Raises :class:`SignatureError` (shape, algorithm, digest, value) or
    :class:`hub.errors.TrustError` (chain, expiry, revocation, key usage).
    """
    when = at or datetime.now(timezone.utc)
    _sig, certs, sig_alg, dig_alg = _strict_profile(root, allow_sha1)
    ordered = _leaf_first(certs)
    chain = trust.verify(ordered[0], ordered[1:], when)
    if fast:
        try:
            signed_bytes, signed_root, sm, dm = verify_fast(root, _sig, chain[0], restorer=restorer)
        except Fallback:
            pass  # signxml decides below, and words any refusal
        else:
            return VerifiedPackage(signed_root, signed_bytes, chain[0], tuple(chain), sm, dm, legacy_sha1=False)
    config = SignatureConfiguration(
        require_x509=True,
        location=_LOCATION,
        expect_references=1,
        signature_methods=_LEGACY_SIG if allow_sha1 else _STRONG_SIG,
        digest_algorithms=_LEGACY_DIGEST if allow_sha1 else _STRONG_DIGEST,
        verification_time=when,
        ignore_ambiguous_key_info=False,
    )
    try:
        result = XMLVerifier().verify(root, x509_cert=chain[0], expect_config=config, parser=_signxml_parser())
    except InvalidDigest as e:
        raise SignatureError(
            "the package was changed after it was signed (reference digest mismatch)",
            code="signature.digest_mismatch",
            element="Signature/SignedInfo/Reference/DigestValue",
        ) from e
    except InvalidSignature as e:
        raise SignatureError(f"the signature value does not verify: {e}", code="signature.invalid",
                             element="Signature/SignatureValue") from e
    except InvalidCertificate as e:
        raise SignatureError(f"certificate problem: {e}", code="signature.invalid", element="Signature/KeyInfo") from e
    except etree.DocumentInvalid as e:  # signxml's XML-DSig schema check (raised as lxml's own error)
        raise SignatureError(f"the Signature element is not valid XML-DSig: {e}", code="signature.invalid",
                             element="Signature") from e
    except InvalidInput as e:
        msg = str(e)
        code = "signature.weak_algorithm" if "forbidden" in msg else "signature.invalid"
        raise SignatureError(f"signature rejected: {msg}", code=code, element="Signature/SignedInfo") from e
    except ValueError as e:  # e.g. a DEREncodedKeyValue that is not a key: signxml lets the parser's error out
        raise SignatureError(f"part of the signature cannot be read: {e}", code="signature.invalid",
                             element="Signature/KeyInfo") from e
    legacy = sig_alg in SHA1_URIS or dig_alg in SHA1_URIS
    return VerifiedPackage(
        signed_root=result.signed_xml,
        signed_bytes=result.signed_data,
        certificate=chain[0],
        chain=tuple(chain),
        signature_method=sig_alg,
        digest_method=dig_alg,
        legacy_sha1=legacy,
    )
