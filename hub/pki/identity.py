"""A signing identity: an agency's (or the hub's) key and certificate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from hub.errors import UsageError
from hub.pki.certs import fingerprint, key_matches
from hub.pki.devpki import load_key


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
        key, certs = load_signing_pair(key_file, cert_file, organ_id)
        return cls(organ_id, key, certs[0])


def load_signing_pair(key_file: str | Path, cert_file: str | Path, who: str = "") -> tuple[object, list[x509.Certificate]]:
    """A private key and its certificate (then any intermediates) from PEM files, checked to match.

    Every problem is a :class:`UsageError` naming the file and what to do.
    """
    for_whom = f" for {who}" if who else ""
    try:
        key = load_key(key_file)
    except FileNotFoundError as e:
        raise UsageError(f"signing key{for_whom} not found ({e.filename}); make a development one with `hub pki init` "
                         "or set HUB_KEY_FILE / pass --key") from None
    except OSError as e:
        raise UsageError(f"cannot read the key {key_file}: {e.strerror}") from None
    except TypeError:
        raise UsageError(f"the key {key_file} is encrypted; give an unencrypted PEM key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise UsageError(f"{key_file} is not a PEM private key") from None
    try:
        certs = x509.load_pem_x509_certificates(Path(cert_file).read_bytes())
    except FileNotFoundError as e:
        raise UsageError(f"certificate{for_whom} not found ({e.filename}); make a development one with `hub pki init` "
                         "or set HUB_CERT_FILE / pass --cert") from None
    except OSError as e:
        raise UsageError(f"cannot read the certificate {cert_file}: {e.strerror}") from None
    except ValueError:
        raise UsageError(f"{cert_file} is not a PEM certificate") from None
    if not key_matches(key, certs[0]):
        raise UsageError(f"the key {key_file} does not belong to the certificate {cert_file} "
                         f"({certs[0].subject.rfc4514_string()}): give the key that was certified")
    return key, certs
