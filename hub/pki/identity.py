"""A signing identity: an agency's (or the hub's) key and certificate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from hub.errors import UsageError
from hub.pki.certs import fingerprint
from hub.pki.devpki import load_cert, load_key


@dataclass(frozen=True)
class Identity:
    organ_id: str
    key: object
    cert: x509.Certificate

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert)

    def sign(self, data: bytes) -> bytes:
        from hub.edxml.signature import sign_package

        return sign_package(data, self.key, self.cert)

    @classmethod
    def load(cls, organ_id: str, key_file: str | Path, cert_file: str | Path) -> "Identity":
        try:
            return cls(organ_id, load_key(key_file), load_cert(cert_file))
        except FileNotFoundError as e:
            raise UsageError(
                f"signing key or certificate for {organ_id} not found ({e.filename}); "
                "make a development one with `hub pki init` or set HUB_KEY_FILE / HUB_CERT_FILE"
            ) from e
