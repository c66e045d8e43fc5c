"""Development PKI: a root CA, one signing key and certificate per agency, one for the hub.

Everything made here is DEVELOPMENT MATERIAL: the private keys are unencrypted files and the
root is self-made. Production agencies use certificates from the national CA (or the
ministry's own sub-CA), added with `hub trust add` and pinned with `hub agency add --cert`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

DEV_MARK = "DEVELOPMENT ONLY"


def new_key(kind: str = "rsa"):
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str, org: str = DEV_MARK) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])


def make_ca(cn: str = f"edXML hub development root ({DEV_MARK})", key=None, *, days: int = 3650,
            issuer: tuple[x509.Certificate, object] | None = None, not_before: datetime | None = None):
    """A CA certificate: self-signed root, or an intermediate when ``issuer`` is (cert, key)."""
    key = key or new_key()
    start = not_before or datetime.now(timezone.utc) - timedelta(days=1)
    subject = _name(cn)
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    cert = builder.sign(issuer_key, hashes.SHA256())
    return cert, key


def issue(ca_cert: x509.Certificate, ca_key, cn: str, *, key=None, days: int = 825,
          not_before: datetime | None = None, digital_signature: bool = True, org: str = DEV_MARK):
    """An end-entity signing certificate issued by ``ca_cert``."""
    key = key or new_key()
    start = not_before or datetime.now(timezone.utc) - timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature, content_commitment=True, key_encipherment=not digital_signature,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def make_crl(ca_cert: x509.Certificate, ca_key, revoked: list[tuple[int, datetime]] = (), *, days: int = 7):
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + timedelta(days=days))
    )
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    return builder.sign(ca_key, hashes.SHA256())


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_key(path: str | Path):
    return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)


def load_cert(path: str | Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@dataclass(frozen=True)
class DevPki:
    directory: Path
    ca_cert: Path
    agencies: dict[str, tuple[Path, Path]]  # code -> (key, cert)
    hub: tuple[Path, Path]
    crl: Path | None = None
    kept: frozenset[str] = frozenset()  # "ca" and codes whose existing files were reused


def _existing_pair(key_path: Path, cert_path: Path, what: str):
    """(key, cert) already on disk, or None; half a pair or a mismatch is an error."""
    from hub.errors import UsageError
    from hub.pki.certs import key_matches

    if not key_path.exists() and not cert_path.exists():
        return None
    if not (key_path.exists() and cert_path.exists()):
        have, missing = (key_path, cert_path) if key_path.exists() else (cert_path, key_path)
        raise UsageError(f"{have} exists but {missing} does not: restore it, or pass --force to replace {what}")
    key, cert = load_key(key_path), load_cert(cert_path)
    if not key_matches(key, cert):
        raise UsageError(f"{key_path} does not belong to {cert_path}: pass --force to replace {what}")
    return key, cert


def init_dev_pki(directory: str | Path, agencies: dict[str, str], hub_code: str, *, force: bool = False) -> DevPki:
    """Write a development root, one key+cert per agency ({code: name}) and one for the hub.

    Never replaces what is there unless ``force``: an existing root (``ca.key``/``ca.pem``) issues
    the new certificates, and an agency that already has a key and certificate keeps them
    (replacing a root would make everything signed and sealed under the old one unverifiable).
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    kept: set[str] = set()
    existing = None if force else _existing_pair(d / "ca.key", d / "ca.pem", "the CA")
    if existing is not None:
        ca_key, ca_cert = existing
        kept.add("ca")
    else:
        if not force:
            from hub.errors import UsageError

            orphans = sorted(p.stem for p in d.glob("*.key") if p.name != "ca.key")
            if orphans:
                raise UsageError(f"{d} holds keys ({', '.join(orphans)}) but no CA (ca.key, ca.pem): restore the CA, "
                                 "or pass --force to make a new CA and new keys")
        ca_cert, ca_key = make_ca()
        _write_secret(d / "ca.key", key_pem(ca_key))
        (d / "ca.pem").write_bytes(cert_pem(ca_cert))
    crl_path = d / "ca.crl"
    if "ca" not in kept or not crl_path.exists():
        crl_path.write_bytes(make_crl(ca_cert, ca_key, days=365).public_bytes(serialization.Encoding.PEM))
    out: dict[str, tuple[Path, Path]] = {}
    for code, name in {**agencies, hub_code: "edXML interchange hub"}.items():
        kp, cp = d / f"{code}.key", d / f"{code}.pem"
        if not force and _existing_pair(kp, cp, f"the key of {code}") is not None:
            kept.add(code)
        else:
            cert, key = issue(ca_cert, ca_key, f"{code} {name}".strip()[:64])
            _write_secret(kp, key_pem(key))
            cp.write_bytes(cert_pem(cert))
        out[code] = (kp, cp)
    (d / "README.txt").write_text(
        f"{DEV_MARK}: generated by `hub pki init`. The keys here are unencrypted and the root is\n"
        "self-made. Never use them for real documents; never commit them.\n"
    )
    hub = out.pop(hub_code)
    return DevPki(d, d / "ca.pem", out, hub, crl_path, frozenset(kept))
