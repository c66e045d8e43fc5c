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

from hub.constants import DSIG_NS
from hub.edxml.sdk_signature import find_sdk_signature, is_skeleton, verify_sdk_signature
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
                 allow_sha1: bool = False) -> Authenticated:
    """Verify what the package carries, as ``profile`` requires. Raises SignatureError/TrustError."""
    has_dsig = next(root.iter("{" + DSIG_NS + "}Signature"), None) is not None
    sdk_sig = find_sdk_signature(root)
    if profile != "sdk" or has_dsig and sdk_sig is None:
        v = verify_package(root, trust, at=at, allow_sha1=allow_sha1)
        return Authenticated(SIGNATURE_SHA1 if v.legacy_sha1 else SIGNATURE, v.signed_root, v.certificate)
    if has_dsig:
        raise SignatureError("the package carries both an XML-DSig Signature and the SDK's Signature; "
                             "exactly one signature is allowed", code="signature.multiple",
                             element="edXMLHeader/Signature")
    if sdk_sig is None or is_skeleton(sdk_sig):
        return Authenticated(CONNECTION, root)
    v = verify_sdk_signature(root, sdk_sig, trust, at=at)
    return Authenticated(SIGNATURE_SHA1 if v.sha1 else SIGNATURE, v.signed_root, v.certificate)
