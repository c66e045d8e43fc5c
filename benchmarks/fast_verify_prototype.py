"""PROTOTYPE (benchmarks only, not used by the hub): verify the hub's strict XML-DSig profile
with lxml C14N + cryptography, keeping signxml as the fallback and the reference.

    .venv/bin/python benchmarks/fast_verify_prototype.py [--n 2000]

Why: ``verify_package`` hands the parsed tree to ``signxml.XMLVerifier.verify``, which makes
three full serialise+re-parse copies of the package (``get_root``, ``_verify_reference``,
``_apply_transforms``), a fourth copy of the Signature, re-validates the Signature against the
XML-DSig schema, canonicalises, then parses the canonical bytes (``signed_xml``). On a 10 KB
package that is ~60% of signxml's time and ~45% of the whole check.

What the fast path does, for exactly the profile the hub and the SDKs emit, and nothing else:

1. the hub's own ``_strict_profile`` and ``TrustStore.verify`` (unchanged, same errors);
2. the Signature is validated in place against signxml's XML-DSig schema (what signxml does);
3. C14N of ``SignedInfo`` in place (lxml's C14N of a subtree runs on a fake root document that
   carries the in-scope namespaces, i.e. what signxml gets from its tostring/fromstring copy);
4. the signature value is checked with ``cryptography`` (RSA PKCS#1 v1.5 or ECDSA r||s,
   SHA-256/384/512) against the chain-validated leaf, like signxml with ``x509_cert=``;
5. the canonical SignedInfo is parsed (694 bytes) and the Reference is read from *it*
   ("see what is signed"), re-checked: one Reference, ``URI=""``, enveloped + exc-c14n;
6. the enveloped transform is applied *in place*: the Signature is detached exactly as
   signxml's ``_remove_sig`` does (its tail merged into the previous sibling), the root is
   canonicalised (exclusive, no comments), and the tree is restored in ``finally``;
7. digest compared; the canonical bytes are parsed once into ``signed_root`` (as signxml's
   ``signed_xml``), so comments and anything unsigned are still gone from what is read.

Anything outside that profile (inclusive C14N, #WithComments, InclusiveNamespaces, KeyValue /
DEREncodedKeyValue, RSA-PSS, SHA-3, SHA-1 legacy), and every *failure* of steps 2–7, falls
back to the current ``verify_package`` (signxml), so refusals carry exactly today's codes and
messages and a discrepancy can only ever make the fast path fall back, never accept more.

The script cross-checks, on a set of variants, that the fast path is taken and returns the
same ``signed_bytes`` and ``signed_root`` as signxml and leaves the input tree byte-identical,
that the negative cases refuse with identical errors, then times both.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import shutil
import subprocess
import sys
import tempfile
from base64 import b64decode
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from lxml import etree
from signxml import XMLSigner, methods
from signxml.verifier import XMLVerifier

import hub.pipeline.checks as checks_module
from hub.constants import DSIG_NS
from hub.edxml.builder import build_edoc
from hub.edxml.model import header_of, read_package
from hub.edxml.parser import _PARSER, parse_xml
from hub.edxml.signature import (
    ENVELOPED,
    EXC_C14N,
    VerifiedPackage,
    _leaf_first,
    _strict_profile,
    sign_package,
    verify_package,
)
from hub.errors import HubError
from hub.pki import devpki
from hub.pki.chain import TrustStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_throughput import (  # noqa: E402  (sibling benchmark module)
    HEAD,
    RECIPIENT,
    SENDER,
    attachment,
    make_bench,
    make_edoc,
    pin_one_cpu,
    row,
    timed,
)

_DS = "{" + DSIG_NS + "}"

# The profile the fast path handles; everything else goes to signxml.
_SIG = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": ("rsa", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("rsa", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("rsa", hashes.SHA512),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": ("ec", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": ("ec", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": ("ec", hashes.SHA512),
}
_DIGEST = {
    "http://www.w3.org/2001/04/xmlenc#sha256": hashlib.sha256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": hashlib.sha384,
    "http://www.w3.org/2001/04/xmlenc#sha512": hashlib.sha512,
}
_DSIG_SCHEMA = XMLVerifier.schemas()[0]  # signxml's compiled xmldsig1-schema.xsd

STATS = {"fast": 0, "fallback": 0}


class _Fallback(Exception):
    """Not the fast profile, or a check failed: let signxml decide (and word the refusal)."""


def _c14n(el: etree._Element) -> bytes:
    return etree.tostring(el, method="c14n", exclusive=True, with_comments=False)


def _detach(sig: etree._Element):
    """signxml's ``_remove_sig`` in place; returns the undo closure."""
    parent = sig.getparent()
    index = parent.index(sig)
    prev = sig.getprevious()
    saved = (prev.tail if prev is not None else parent.text)
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


def _only(el: etree._Element, tag: str) -> etree._Element:
    found = el.findall(_DS + tag)
    if len(found) != 1:
        raise _Fallback(tag)
    return found[0]


def _fast(root: etree._Element, when: datetime, sig: etree._Element, chain) -> VerifiedPackage:
    if not _DSIG_SCHEMA.validate(sig):
        raise _Fallback("Signature not schema-valid")
    ki = sig.find(_DS + "KeyInfo")
    if ki is not None and (ki.find(_DS + "KeyValue") is not None
                           or ki.find("{http://www.w3.org/2009/xmldsig11#}DEREncodedKeyValue") is not None):
        raise _Fallback("KeyValue present")
    si = _only(sig, "SignedInfo")
    cm = _only(si, "CanonicalizationMethod")
    if cm.get("Algorithm") != EXC_C14N or len(cm):
        raise _Fallback("SignedInfo c14n")
    sm_uri = _only(si, "SignatureMethod").get("Algorithm")
    if sm_uri not in _SIG:
        raise _Fallback("signature method")
    kind, hash_cls = _SIG[sm_uri]
    leaf = chain[0]
    key = leaf.public_key()
    signed_info_c14n = _c14n(si)
    raw = b64decode(_only(sig, "SignatureValue").text or "")
    try:
        if kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(raw, signed_info_c14n, PKCS1v15(), hash_cls())
        elif kind == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
            n = (key.key_size + 7) // 8
            if len(raw) != 2 * n:
                raise _Fallback("ECDSA length")
            der = utils.encode_dss_signature(int.from_bytes(raw[:n], "big"), int.from_bytes(raw[n:], "big"))
            key.verify(der, signed_info_c14n, ec.ECDSA(hash_cls()))
        else:
            raise _Fallback("key type")
    except CryptoInvalidSignature as e:
        raise _Fallback("signature value") from e
    # See what is signed: read the Reference from the verified canonical SignedInfo.
    vsi = etree.fromstring(signed_info_c14n, parser=_PARSER)
    ref = _only(vsi, "Reference")
    if ref.get("URI") != "":
        raise _Fallback("reference URI")
    transforms = _only(ref, "Transforms").findall(_DS + "Transform")
    if [t.get("Algorithm") for t in transforms] != [ENVELOPED, EXC_C14N] or len(transforms[1]):
        raise _Fallback("transforms")
    dm_uri = _only(ref, "DigestMethod").get("Algorithm")
    if dm_uri not in _DIGEST:
        raise _Fallback("digest method")
    undo = _detach(sig)
    try:
        signed_bytes = _c14n(root)
    finally:
        undo()
    if not hmac.compare_digest(_DIGEST[dm_uri](signed_bytes).digest(), b64decode(_only(ref, "DigestValue").text or "")):
        raise _Fallback("digest")
    return VerifiedPackage(
        signed_root=etree.fromstring(signed_bytes, parser=_PARSER),
        signed_bytes=signed_bytes,
        certificate=leaf,
        chain=tuple(chain),
        signature_method=sm_uri,
        digest_method=dm_uri,
        legacy_sha1=False,
    )


def fast_verify(root: etree._Element, trust: TrustStore, *, at: datetime | None = None,
                allow_sha1: bool = False) -> VerifiedPackage:
    """Drop-in for :func:`hub.edxml.signature.verify_package`."""
    when = at or datetime.now(timezone.utc)
    sig, certs, _sig_alg, _dig_alg = _strict_profile(root, allow_sha1)  # same shape errors as today
    ordered = _leaf_first(certs)
    chain = trust.verify(ordered[0], ordered[1:], when)  # same trust errors as today
    try:
        result = _fast(root, when, sig, chain)
    except _Fallback:
        STATS["fallback"] += 1
        return verify_package(root, trust, at=at, allow_sha1=allow_sha1)
    STATS["fast"] += 1
    return result


# --- cross-check --------------------------------------------------------------------------

def _sign(raw: bytes, key, cert, *, sig_alg: str = "rsa-sha256", digest: str = "sha256", c14n: str = EXC_C14N,
          intermediates=()) -> bytes:
    """Like hub sign_package, with the algorithms as parameters (to reach other profiles)."""
    root = parse_xml(raw)
    header = header_of(root)
    placeholder = etree.SubElement(header, _DS + "Signature", nsmap={"ds": DSIG_NS})
    placeholder.set("Id", "placeholder")
    signer = XMLSigner(method=methods.enveloped, signature_algorithm=sig_alg, digest_algorithm=digest,
                       c14n_algorithm=c14n)
    signer.namespaces = {"ds": DSIG_NS}
    return etree.tostring(signer.sign(root, key=key, cert=[cert, *intermediates]), xml_declaration=True,
                          encoding="UTF-8")


def _xmlsec1_sign(raw: bytes, key, cert, kind: str, tmp: Path, pretty: bool) -> bytes | None:
    exe = shutil.which("xmlsec1")
    if exe is None:
        return None
    root = etree.fromstring(raw, etree.XMLParser(remove_blank_text=pretty))
    sig = etree.SubElement(header_of(root), _DS + "Signature", nsmap={"ds": DSIG_NS})

    def sub(p, t, **a):
        return etree.SubElement(p, _DS + t, a)

    si = sub(sig, "SignedInfo")
    sub(si, "CanonicalizationMethod", Algorithm=EXC_C14N)
    sub(si, "SignatureMethod", Algorithm=f"http://www.w3.org/2001/04/xmldsig-more#{kind}-sha256")
    ref = sub(si, "Reference", URI="")
    tr = sub(ref, "Transforms")
    sub(tr, "Transform", Algorithm=ENVELOPED)
    sub(tr, "Transform", Algorithm=EXC_C14N)
    sub(ref, "DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256")
    sub(ref, "DigestValue")
    sub(sig, "SignatureValue")
    sub(sub(sub(sig, "KeyInfo"), "X509Data"), "X509Certificate")
    (tmp / "t.xml").write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=pretty))
    (tmp / "k.pem").write_bytes(devpki.key_pem(key))
    (tmp / "c.pem").write_bytes(devpki.cert_pem(cert))
    subprocess.run([exe, "--sign", "--privkey-pem", f"{tmp / 'k.pem'},{tmp / 'c.pem'}", "--enabled-reference-uris",
                    "empty", "--output", str(tmp / "o.xml"), str(tmp / "t.xml")], check=True, capture_output=True)
    return (tmp / "o.xml").read_bytes()


def variants(b, tmp: Path) -> list[tuple[str, bytes, TrustStore, bool]]:
    """(name, package, trust, fast path expected)."""
    trust = b.ctx.trust
    raw = build_edoc(make_edoc(), [attachment(b.attachment_size)])
    ec_cert, ec_key = devpki.issue(b.ca_cert, b.ca_key, "ec bench", key=devpki.new_key("ec"))
    ica_cert, ica_key = devpki.make_ca("bench intermediate", issuer=(b.ca_cert, b.ca_key))
    leaf2, key2 = devpki.issue(ica_cert, ica_key, "leaf under intermediate")
    default_ns = raw.decode().replace("<edXML:", "<").replace("</edXML:", "</").replace('xmlns:edXML="', 'xmlns="').encode()
    commented = raw.replace("kết nối".encode(), "kết <!-- unsigned? --> nối".encode(), 1).replace(
        b"?>", b"?>\n<!-- top comment --><?hub-pi x?>", 1) + b"\n<!-- after root -->"
    pretty = etree.tostring(etree.fromstring(raw, etree.XMLParser(remove_blank_text=True)), pretty_print=True,
                            xml_declaration=True, encoding="UTF-8")
    out = [
        ("hub sign RSA-SHA256 (the benchmark package)", b.data, trust, True),
        ("hub sign ECDSA P-256", sign_package(raw, ec_key, ec_cert), trust, True),
        ("hub sign, default namespace", sign_package(default_ns, b.sender_key, b.sender_cert), trust, True),
        ("hub sign, comments + top-level PI", sign_package(commented, b.sender_key, b.sender_cert), trust, True),
        ("hub sign, pretty-printed", sign_package(pretty, b.sender_key, b.sender_cert), trust, True),
        ("RSA-SHA512 / SHA-512", _sign(raw, b.sender_key, b.sender_cert, sig_alg="rsa-sha512", digest="sha512"), trust, True),
        ("leaf + intermediate in X509Data", _sign(raw, key2, leaf2, intermediates=[ica_cert]), trust, True),
        ("inclusive C14N 1.0 (→ signxml)", _sign(raw, b.sender_key, b.sender_cert,
                                                 c14n="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"), trust, False),
        ("RSA-PSS (→ signxml)", _sign(raw, b.sender_key, b.sender_cert, sig_alg="sha256-rsa-MGF1"), trust, False),
    ]
    for kind, key, cert in (("rsa", b.sender_key, b.sender_cert), ("ecdsa", ec_key, ec_cert)):
        for pretty_print in (False, True):
            signed = _xmlsec1_sign(raw, key, cert, kind, tmp, pretty_print)
            if signed is not None:
                out.append((f"xmlsec1 {kind}{', pretty-printed (tails around Signature)' if pretty_print else ''}",
                            signed, trust, True))
    return out


def negatives(b) -> list[tuple[str, bytes]]:
    d = b.data
    sv = d.index(b"<ds:SignatureValue>") + len(b"<ds:SignatureValue>")
    dv = d.index(b"<ds:DigestValue>") + len(b"<ds:DigestValue>")
    flip = lambda data, i: data[:i] + (b"A" if data[i:i + 1] != b"A" else b"B") + data[i + 1:]  # noqa: E731
    return [
        ("content tampered", d.replace("kết nối".encode(), "ngắt kết nối".encode(), 1)),
        ("SignatureValue tampered", flip(d, sv + 5)),
        ("DigestValue tampered", flip(d, dv + 5)),
        ("whitespace added after Signature", d.replace(b"</ds:Signature>", b"</ds:Signature>\n", 1)),
    ]


def cross_check(b, tmp: Path) -> bool:
    ok = True
    print("cross-check against signxml (verify_package):")
    for name, data, trust, expect_fast in variants(b, tmp):
        root = parse_xml(data)
        before = etree.tostring(root)
        ref = verify_package(parse_xml(data), trust)
        STATS.update(fast=0, fallback=0)
        got = fast_verify(root, trust)
        fast = STATS["fast"] == 1
        same = (got.signed_bytes == ref.signed_bytes
                and etree.tostring(got.signed_root) == etree.tostring(ref.signed_root)
                and read_package(got.signed_root) == read_package(ref.signed_root)
                and got.certificate == ref.certificate and got.chain == ref.chain
                and got.signature_method == ref.signature_method and got.digest_method == ref.digest_method)
        untouched = etree.tostring(root) == before
        good = same and untouched and fast == expect_fast
        ok &= good
        print(f"  {'ok ' if good else 'BAD'} {name:<58} {'fast' if fast else 'signxml'}; same result {same}; "
              f"input tree unchanged {untouched}")
    for name, data in negatives(b):
        errs = []
        for fn in (verify_package, fast_verify):
            try:
                fn(parse_xml(data), b.ctx.trust)
                errs.append(None)
            except HubError as e:
                errs.append((e.code, e.message))
        good = errs[0] is not None and errs[0] == errs[1]
        ok &= good
        print(f"  {'ok ' if good else 'BAD'} refuse: {name:<50} {errs[1][0] if errs[1] else 'ACCEPTED'} (identical: {errs[0] == errs[1]})")
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--cpu", type=int, default=None)
    args = p.parse_args(argv)
    pinned = pin_one_cpu(args.cpu)
    with tempfile.TemporaryDirectory() as tmp:
        b = make_bench(args.size, Path(tmp))
        ok = cross_check(b, Path(tmp))
        print()
        print(f"{pinned}; package {len(b.data):,} bytes; N={args.n}")
        root = parse_xml(b.data)
        results = [
            timed("verify_package (signxml)", lambda: verify_package(root, b.ctx.trust), args.n, args.warmup),
            timed("fast_verify (prototype)", lambda: fast_verify(root, b.ctx.trust), args.n, args.warmup),
        ]
        full_now = timed("check_package, today", lambda: checks_module.check_package(b.data, b.ctx), args.n, args.warmup)
        original = checks_module.verify_package
        checks_module.verify_package = fast_verify  # this process only, to time the whole check
        try:
            v = checks_module.check_package(b.data, b.ctx)
            assert v.accepted and [r.recipient for r in v.routes] == [RECIPIENT] and v.sender == SENDER, v
            STATS.update(fast=0, fallback=0)
            full_fast = timed("check_package, fast_verify", lambda: checks_module.check_package(b.data, b.ctx),
                              args.n, args.warmup)
            assert STATS["fallback"] == 0 and STATS["fast"] == args.n + args.warmup, STATS
        finally:
            checks_module.verify_package = original
        print(HEAD)
        for s in [*results, full_now, full_fast]:
            print(row(s))
        print(f"  signature+trust: {results[0].mean_us / results[1].mean_us:.2f}× faster; "
              f"full check: {full_now.per_s:,.0f}/s → {full_fast.per_s:,.0f}/s "
              f"({full_fast.per_s / full_now.per_s:.2f}×)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
