"""The fast path of XML-DSig verification, for exactly the profile the hub and the SDKs emit.

signxml makes three serialise+re-parse copies of the whole package per verification
(``get_root``, ``_verify_reference``, ``_apply_transforms``); on a 10 KB package that is most
of the check's time. For the common profile — exclusive C14N of SignedInfo, RSA PKCS#1 v1.5
or ECDSA with SHA-256/384/512, one ``Reference URI=""`` with enveloped-signature then
exclusive C14N — this module does the same steps in place with lxml C14N and
``cryptography``:

1. the Signature is validated against signxml's XML-DSig schema (as signxml does);
2. SignedInfo is canonicalised and its signature value checked against the chain-validated
   leaf certificate;
3. the Reference is read from the *verified canonical* SignedInfo ("see what is signed");
4. the enveloped transform is applied in place (Signature detached exactly as signxml's
   ``_remove_sig`` does, restored in ``finally``) and the root canonicalised;
5. digests compared; ``signed_root`` is a copy of the tree as canonicalised (Signature
   detached), or the canonical bytes parsed when the tree has comments (C14N drops them);
   with a ``restorer`` (the checks), the tree itself with its Signature left detached until
   the caller puts it back: no copy.

Anything outside the profile and *every failure* raises :class:`Fallback`: the caller then
runs signxml, which decides and words the refusal. A discrepancy can therefore only make the
fast path fall back, never accept more. The tree is briefly modified: callers must own it
(each check parses its own tree in one thread).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from base64 import b64decode

from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from lxml import etree
from signxml.verifier import XMLVerifier

from hub.constants import DSIG_NS
from hub.edxml import large
from hub.edxml.paths import children_by_tag as _children
from hub.edxml.paths import find_all
from hub.pki.certs import public_key_cached

_DS = "{" + DSIG_NS + "}"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
SIGNATURE_METHODS = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": ("rsa", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("rsa", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("rsa", hashes.SHA512),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": ("ec", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": ("ec", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": ("ec", hashes.SHA512),
}
DIGESTS = {
    "http://www.w3.org/2001/04/xmlenc#sha256": hashlib.sha256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": hashlib.sha384,
    "http://www.w3.org/2001/04/xmlenc#sha512": hashlib.sha512,
}
_DSIG_SCHEMA = XMLVerifier.schemas()[0]  # signxml's compiled xmldsig1-schema.xsd
_PARSER = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True, load_dtd=False)


_KEY_VALUES = (_DS + "KeyValue", "{http://www.w3.org/2009/xmldsig11#}DEREncodedKeyValue")


class Fallback(Exception):
    """Not the fast profile, or a check failed: let signxml decide (and word the refusal)."""


def _c14n(el: etree._Element) -> bytes:
    return etree.tostring(el, method="c14n", exclusive=True, with_comments=False)


def _detach(sig: etree._Element):
    """signxml's ``_remove_sig`` in place; returns the undo closure."""
    parent = sig.getparent()
    index = parent.index(sig)
    prev = sig.getprevious()
    saved = prev.tail if prev is not None else parent.text
    tail = sig.tail
    if tail is not None:
        if prev is None:
            parent.text = tail if parent.text is None else parent.text + tail
        else:
            prev.tail = tail if prev.tail is None else prev.tail + tail
    parent.remove(sig)  # lxml moves sig.tail along with sig

    def undo() -> None:
        if prev is None:
            parent.text = saved
        else:
            prev.tail = saved
        parent.insert(index, sig)

    return undo


detach = _detach  # also used by hub.edxml.sdk_signature


def _signed_copy(root: etree._Element) -> etree._Element | None:
    """A copy of ``root`` (its Signature detached) that holds exactly what the exclusive C14N
    without comments just covered, or None when it would not: then the caller parses the
    canonical bytes. C14N drops comments and the namespace declarations no element or
    attribute uses, and changes nothing else a reader sees (the parser already resolved
    character references, CDATA and line ends; a DOCTYPE is refused, so there are no default
    attributes or entities). So a tree without comments reads the same as the re-parsed
    canonical bytes; the copy costs about half the parse (same C14N, tests/edxml/test_dsig_fast.py)."""
    if next(root.iter(etree.Comment), None) is not None:
        return None
    return copy.deepcopy(root)


def _only(children: dict, tag: str) -> etree._Element:
    """The one child ``tag`` (XML-DSig namespace) in ``_children(el)``; Fallback unless exactly one."""
    found = children.get(_DS + tag, ())
    if len(found) != 1:
        raise Fallback(_DS + tag)
    return found[0]


def verify_fast(root: etree._Element, sig: etree._Element, leaf, *,
                restorer: list | None = None) -> tuple[bytes, etree._Element, str, str]:
    """Return (signed bytes, signed root, signature method, digest method) or raise Fallback.

    ``restorer``: a list the caller owns. When given and the tree has no comments, an accepted
    signature is left detached and ``root`` itself is the signed root (exactly the tree just
    canonicalised and digested, without the copy); the function that puts the Signature back
    where it was is appended to ``restorer``, and the caller must call it once it has read what
    it needs. On Fallback the tree is always restored first."""
    if not _DSIG_SCHEMA.validate(sig):
        raise Fallback("Signature not schema-valid")
    sig_kids = _children(sig)
    ki = sig_kids.get(_DS + "KeyInfo", (None,))[0]
    if ki is not None and any(c.tag in _KEY_VALUES for c in ki):
        raise Fallback("KeyValue present")
    si = _only(sig_kids, "SignedInfo")
    si_kids = _children(si)
    cm = _only(si_kids, "CanonicalizationMethod")
    if cm.get("Algorithm") != EXC_C14N or len(cm):
        raise Fallback("SignedInfo c14n")
    sm_uri = _only(si_kids, "SignatureMethod").get("Algorithm")
    if sm_uri not in SIGNATURE_METHODS:
        raise Fallback("signature method")
    kind, hash_cls = SIGNATURE_METHODS[sm_uri]
    key = public_key_cached(leaf)
    signed_info_c14n = _c14n(si)
    try:
        raw = b64decode(_only(sig_kids, "SignatureValue").text or "")
    except ValueError as e:
        raise Fallback("SignatureValue encoding") from e
    try:
        if kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(raw, signed_info_c14n, PKCS1v15(), hash_cls())
        elif kind == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
            n = (key.key_size + 7) // 8
            if len(raw) != 2 * n:
                raise Fallback("ECDSA length")
            der = utils.encode_dss_signature(int.from_bytes(raw[:n], "big"), int.from_bytes(raw[n:], "big"))
            key.verify(der, signed_info_c14n, ec.ECDSA(hash_cls()))
        else:
            raise Fallback("key type")
    except CryptoInvalidSignature as e:
        raise Fallback("signature value") from e
    # Read what was signed, not the raw tree: SignedInfo as canonicalised (without comments,
    # C14N changes nothing else read below: see _signed_copy), else its canonical bytes parsed.
    if next(si.iter(etree.Comment), None) is None:
        vsi_kids = si_kids
    else:
        vsi_kids = _children(etree.fromstring(signed_info_c14n, parser=_PARSER))
    ref = _only(vsi_kids, "Reference")
    if ref.get("URI") != "":
        raise Fallback("reference URI")
    ref_kids = _children(ref)
    transforms = find_all(_only(ref_kids, "Transforms"), _DS + "Transform")
    if [t.get("Algorithm") for t in transforms] != [ENVELOPED, EXC_C14N] or len(transforms[1]):
        raise Fallback("transforms")
    dm_uri = _only(ref_kids, "DigestMethod").get("Algorithm")
    if dm_uri not in DIGESTS:
        raise Fallback("digest method")
    try:
        expected = b64decode(_only(ref_kids, "DigestValue").text or "")
    except ValueError as e:
        raise Fallback("DigestValue encoding") from e
    undo = _detach(sig)
    in_place = False
    try:
        signed_bytes = _c14n(root)
        lifted = large.current()  # a large package's base64 runs are not in the tree: hash them from its bytes
        try:
            actual = lifted.digest(DIGESTS[dm_uri], signed_bytes) if lifted else DIGESTS[dm_uri](signed_bytes).digest()
        except LookupError as e:
            raise Fallback("lifted token") from e
        if not hmac.compare_digest(actual, expected):
            raise Fallback("digest")
        in_place = restorer is not None and next(root.iter(etree.Comment), None) is None
        signed_root = root if in_place else _signed_copy(root)
    finally:
        if in_place:
            restorer.append(undo)
        else:
            undo()
    if lifted:
        lifted.used = True  # only a matching digest over the lifted runs lets the lean check accept
    if signed_root is None:
        signed_root = etree.fromstring(signed_bytes, parser=_PARSER)
    return signed_bytes, signed_root, sm_uri, dm_uri
