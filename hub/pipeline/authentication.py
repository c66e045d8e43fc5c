"""How a package is authenticated, per the sender's signature profile. Pure.

- ``strict`` (default): exactly one XML-DSig signature, SHA-256 or stronger (SHA-1 only with
  ``HUB_ALLOW_SHA1``), chain, CRL; :func:`hub.edxml.signature.verify_package`.
- ``sdk`` (agencies whose systems use the national SDK): an XML-DSig signature is verified
  exactly as under ``strict``; the SDK's edXML-namespace Signature, when it carries real
  values, is verified as XML-DSig (C14N 1.0, RSA-SHA1 or better) and flagged ``sha1`` where it
  is; a skeleton or no signature at all leaves the package to be authenticated by its
  connection alone (:func:`hub.pipeline.checks.authorize` then requires the connection of a
  system serving ``From``).

A signature that is present and fails is refused under every profile: never downgraded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from lxml import etree

from hub.edxml.sdk_signature import KIND_NONE, KIND_SKELETON, KIND_XMLDSIG, SignatureInfo, inspect_signature
from hub.edxml.sdk_verify import sdk_signature_element, verify_sdk_signature
from hub.edxml.signature import verify_package
from hub.errors import SignatureError
from hub.pki.chain import TrustStore

SIGNATURE = "signature"
SIGNATURE_SHA1 = "signature-sha1"
CONNECTION = "connection"
METHODS = (SIGNATURE, SIGNATURE_SHA1, CONNECTION)  # documents.authenticated_by, records, metrics


@dataclass(frozen=True)
class Authenticated:
    method: str  # one of METHODS
    signed_root: etree._Element  # read the package from this only
    certificate: x509.Certificate | None = None  # None: authenticated by the connection alone

    @property
    def by_connection(self) -> bool:
        return self.method == CONNECTION


def authenticate(root: etree._Element, profile: str, trust: TrustStore, *, at: datetime | None = None,
                 allow_sha1: bool = False, info: SignatureInfo | None = None,
                 restorer: list | None = None) -> Authenticated:
    """Verify what the package carries, as ``profile`` requires. Raises SignatureError/TrustError.

    ``info``: the package's :func:`inspect_signature` when the caller already has it.
    ``restorer``: as :func:`hub.edxml.signature.verify_package`'s (the signed root may be
    ``root`` itself, its Signature detached until the caller calls what was appended).
    """
    info = info or inspect_signature(root)
    if profile != "sdk" or info.kind == KIND_XMLDSIG and info.count == 1:
        v = verify_package(root, trust, at=at, allow_sha1=allow_sha1, restorer=restorer)
        return Authenticated(SIGNATURE_SHA1 if v.legacy_sha1 else SIGNATURE, v.signed_root, v.certificate)
    if info.count > 1:
        raise SignatureError(f"{info.count} Signature elements found in edXMLHeader; exactly one signature is "
                             "allowed", code="signature.multiple", element="edXMLHeader/Signature")
    if info.kind in (KIND_NONE, KIND_SKELETON):
        return Authenticated(CONNECTION, root)
    v = verify_sdk_signature(root, sdk_signature_element(root), trust, at=at)
    return Authenticated(SIGNATURE_SHA1 if v.sha1 else SIGNATURE, v.signed_root, v.certificate)
