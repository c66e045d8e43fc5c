"""Small certificate helpers shared by the PKI, registry and signature code."""

from __future__ import annotations

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
