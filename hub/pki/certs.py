"""Small certificate helpers shared by the PKI, registry and signature code."""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER encoding, lowercase hex: how certificates are pinned."""
    fp = _FP_CACHE.get(id(cert))
    if fp is not None and fp[0] is cert:
        return fp[1]
    value = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    if len(_FP_CACHE) > 4096:
        _FP_CACHE.clear()
    _FP_CACHE[id(cert)] = (cert, value)  # holds the cert, so its id cannot be reused meanwhile
    return value


_FP_CACHE: dict[int, tuple[x509.Certificate, str]] = {}
_DER_CACHE: dict[bytes, x509.Certificate] = {}


def load_der_cached(der: bytes) -> x509.Certificate:
    """Parse a DER certificate once: the same few hundred signing certificates arrive all day."""
    cert = _DER_CACHE.get(der)
    if cert is None:
        if len(_DER_CACHE) > 4096:
            _DER_CACHE.clear()
        cert = _DER_CACHE[der] = x509.load_der_x509_certificate(der)
    return cert


_B64_CACHE: dict[str, tuple[bytes, x509.Certificate]] = {}


def load_b64_cached(b64: str) -> tuple[bytes, x509.Certificate]:
    """(DER, certificate) of a base64 certificate (whitespace already removed), decoded and
    parsed once per distinct text: a package carries its signing certificate, read twice per
    check (signature inspection, then verification). Raises as ``b64decode(validate=True)``
    and :func:`load_der_cached` do."""
    hit = _B64_CACHE.get(b64)
    if hit is None:
        der = base64.b64decode(b64, validate=True)
        hit = (der, load_der_cached(der))
        if len(_B64_CACHE) > 4096:
            _B64_CACHE.clear()
        _B64_CACHE[b64] = hit
    return hit


_TEXT_CACHE: dict[str, tuple[bytes, x509.Certificate]] = {}


def load_b64_text_cached(text: str) -> tuple[bytes, x509.Certificate]:
    """:func:`load_b64_cached` of an element's text as written (whitespace and line breaks
    included): the same signer's certificate arrives with the same text, so the lookup by it
    skips stripping the whitespace of ~1.2 KB of base64 on every check."""
    hit = _TEXT_CACHE.get(text)
    if hit is None:
        hit = load_b64_cached("".join(text.split()))  # raises before anything is cached
        if len(_TEXT_CACHE) > 4096:
            _TEXT_CACHE.clear()
        _TEXT_CACHE[text] = hit
    return hit


_KEY_CACHE: dict[int, tuple[x509.Certificate, object]] = {}


def public_key_cached(cert: x509.Certificate):
    """``cert.public_key()``, built once per certificate object (certificates come from
    :func:`load_der_cached`, so the same signer's is the same object)."""
    hit = _KEY_CACHE.get(id(cert))
    if hit is not None and hit[0] is cert:
        return hit[1]
    key = cert.public_key()
    if len(_KEY_CACHE) > 4096:
        _KEY_CACHE.clear()
    _KEY_CACHE[id(cert)] = (cert, key)  # holds the cert, so its id cannot be reused meanwhile
    return key


def load_pem_certs(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


def to_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def describe(cert: x509.Certificate) -> str:
    try:
        subject = cert.subject.rfc4514_string()
    except ValueError:
        subject = "<invalid subject>"
    return f"{subject} (serial {cert.serial_number:x})"


def key_matches(key, cert: x509.Certificate) -> bool:
    """Whether ``key`` is the private key of ``cert``'s public key."""
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        return key.public_key().public_bytes(*fmt) == cert.public_key().public_bytes(*fmt)
    except (AttributeError, ValueError, TypeError):
        return False
