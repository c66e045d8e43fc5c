"""Signed checkpoints: the hub's signed statement "my audit log had this root at this size".

The body follows the C2SP tlog-checkpoint layout, one item per line, each ending in ``\\n``::

    <origin>                        the hub's identity, e.g. "hub.example.gov.vn/audit"
    <size>                          decimal, no leading zeros
    <root>                          standard base64 (with padding) of the 32-byte Merkle root
    time <YYYY-MM-DDTHH:MM:SS.ffffffZ>   when it was signed, UTC (an extension line)

The signature is over exactly those UTF-8 bytes: RSA PKCS#1 v1.5 with SHA-256, or ECDSA
with SHA-256 (DER-encoded), depending on the hub's key. The portable text form is a C2SP
signed note: the body, an empty line, and one signature line::

    — <origin> <base64(key id (4 bytes) || signature)>

where ``—`` is U+2014 EM DASH followed by a space, and the key id is the first 4 bytes of
the SHA-256 of the signing certificate's DER (``key_id`` holds them as 8 hex digits). The
signature algorithms are not the note format's Ed25519, so generic note verifiers will not
check it; ``Checkpoint.verify`` (or any RSA/ECDSA library over the body bytes) does.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from hub.audit.entry import utc_timestamp
from hub.audit.merkle import EMPTY_ROOT, HASH_SIZE
from hub.errors import UsageError
from hub.pki.certs import fingerprint

MIN_RSA_BITS = 2048
SIGNATURE_DASH = "\u2014 "  # C2SP signed note: signature lines start with an em dash and a space
_KEY_ID = re.compile(r"[0-9a-f]{8}")
_SIZE = re.compile(r"0|[1-9][0-9]*")
_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def key_id_for(cert: x509.Certificate) -> str:
    """First 8 hex digits of the SHA-256 of the certificate's DER: the checkpoint key id."""
    return fingerprint(cert)[:8]


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head. Build one with ``sign``; check one with ``verify``.

    ``at`` is normalised to an aware UTC datetime (a naive one is taken as UTC).
    """

    origin: str  # the hub's identity; no whitespace, no "+", as a signed-note key name
    size: int  # number of leaves in the tree
    root: bytes  # 32-byte Merkle root (RFC 9162 MTH) of those leaves
    at: datetime  # signing time
    signature: bytes  # over signed_message()
    key_id: str  # 8 lowercase hex digits, see key_id_for()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin or self.origin.split() != [self.origin] or "+" in self.origin:
            raise UsageError(f"checkpoint origin {self.origin!r} must be non-empty, without whitespace or '+'")
        if type(self.size) is not int or self.size < 0:
            raise UsageError(f"checkpoint size {self.size!r} must be a non-negative integer")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise UsageError("checkpoint root must be 32 bytes")
        if self.size == 0 and self.root != EMPTY_ROOT:
            raise UsageError("an empty tree's root is SHA-256 of the empty string")
        if not isinstance(self.key_id, str) or not _KEY_ID.fullmatch(self.key_id):
            raise UsageError(f"checkpoint key id {self.key_id!r} must be 8 lowercase hex digits")
        if not isinstance(self.signature, bytes) or not self.signature:
            raise UsageError("checkpoint signature must be non-empty bytes")
        if not isinstance(self.at, datetime):
            raise UsageError("checkpoint time must be a datetime")
        utc = self.at.replace(tzinfo=timezone.utc) if self.at.utcoffset() is None else self.at.astimezone(timezone.utc)
        object.__setattr__(self, "at", utc)

    def signed_message(self) -> bytes:
        """The checkpoint body, the bytes the signature covers (see the module docstring)."""
        return _body(self.origin, self.size, self.root, self.at)

    def verify(self, key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | x509.Certificate) -> bool:
        """True when the signature verifies under ``key``.

        Given the certificate rather than its public key, it also checks that ``key_id``
        names that certificate, so a checkpoint cannot claim another key than the one that
        signed it.
        """
        if isinstance(key, x509.Certificate):
            if key_id_for(key) != self.key_id:
                return False
            try:
                key = key.public_key()
            except (ValueError, UnsupportedAlgorithm):
                return False
        message = self.signed_message()
        try:
            if isinstance(key, rsa.RSAPublicKey):
                if key.key_size < MIN_RSA_BITS:
                    return False
                key.verify(self.signature, message, padding.PKCS1v15(), hashes.SHA256())
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(self.signature, message, ec.ECDSA(hashes.SHA256()))
            else:
                return False
        except InvalidSignature:
            return False
        return True

    def to_text(self) -> str:
        """The portable signed-note text: body, empty line, ``— <origin> <base64>`` line."""
        blob = base64.b64encode(bytes.fromhex(self.key_id) + self.signature).decode("ascii")
        return self.signed_message().decode("utf-8") + "\n" + SIGNATURE_DASH + self.origin + " " + blob + "\n"

    @classmethod
    def from_text(cls, text: str | bytes) -> Checkpoint:
        """Parse ``to_text`` output. Strict: anything but that exact form is refused.

        Parsing does not verify the signature; call ``verify`` with the hub's certificate.
        """
        try:
            if isinstance(text, bytes):
                text = text.decode("utf-8")
            body, sep, note = text.partition("\n\n")
            lines = body.split("\n")
            if not sep or len(lines) != 4 or not note.startswith(SIGNATURE_DASH) or not note.endswith("\n"):
                raise ValueError("expected 4 body lines, an empty line and one signature line")
            origin, size, root, time = lines
            name, _, blob = note[len(SIGNATURE_DASH):-1].partition(" ")
            if name != origin:
                raise ValueError(f"signature line names {name!r}, not the origin {origin!r}")
            if not _SIZE.fullmatch(size):
                raise ValueError(f"size {size!r} is not a decimal without leading zeros")
            if not time.startswith("time "):
                raise ValueError("the fourth line must be 'time <UTC timestamp>'")
            raw = base64.b64decode(blob, validate=True)
            if len(raw) <= 4:
                raise ValueError("the signature line holds no signature")
            checkpoint = cls(
                origin=origin,
                size=int(size),
                root=base64.b64decode(root, validate=True),
                at=datetime.strptime(time[len("time "):], _TIME).replace(tzinfo=timezone.utc),
                signature=raw[4:],
                key_id=raw[:4].hex(),
            )
        except (ValueError, binascii.Error, UsageError) as e:
            raise UsageError(f"not a hub checkpoint: {e}") from e
        if checkpoint.to_text() != text:  # one text per checkpoint: no alternative spellings
            raise UsageError("not a hub checkpoint: not in canonical form (padding, spacing or line ends)")
        return checkpoint


def sign(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    origin: str,
    size: int,
    root: bytes,
    at: datetime,
    key_id: str,
) -> Checkpoint:
    """Sign a tree head with the hub's private key (RSA >= 2048 bits: PKCS#1 v1.5; EC: ECDSA).

    ``key_id`` is ``key_id_for(the certificate of key)``; ``at`` is the caller's clock
    (this module reads none).
    """
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise UsageError(f"RSA checkpoint keys need at least {MIN_RSA_BITS} bits, not {key.key_size}")
        sign_with = lambda message: key.sign(message, padding.PKCS1v15(), hashes.SHA256())  # noqa: E731
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        sign_with = lambda message: key.sign(message, ec.ECDSA(hashes.SHA256()))  # noqa: E731
    else:
        raise UsageError(f"checkpoints are signed with an RSA or EC key, not {type(key).__name__}")
    # Validate the fields before signing: the dataclass refuses a malformed tree head.
    unsigned = Checkpoint(origin=origin, size=size, root=root, at=at, signature=b"\x00", key_id=key_id)
    signature = sign_with(unsigned.signed_message())
    return Checkpoint(origin=origin, size=size, root=root, at=unsigned.at, signature=signature, key_id=key_id)


def _body(origin: str, size: int, root: bytes, at: datetime) -> bytes:
    return f"{origin}\n{size}\n{base64.b64encode(root).decode('ascii')}\ntime {utc_timestamp(at)}\n".encode("utf-8")
