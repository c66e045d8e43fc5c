"""Chain validation against configured trust anchors, with CRLs, at a given time.

Built on ``cryptography.x509.verification``: the end-entity policy requires the KeyUsage
extension with digitalSignature; CA certificates follow the WebPKI CA profile (basic
constraints, keyCertSign). Revocation is checked against every CRL whose issuer signed it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from cryptography import x509
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError

from hub.errors import TrustError
from hub.pki.certs import describe, fingerprint


def _utc(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(timezone.utc)
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


def _require_digital_signature(policy, cert, key_usage) -> None:  # signature fixed by cryptography
    if key_usage is None or not key_usage.digital_signature:
        raise ValueError("KeyUsage does not allow digitalSignature")


_EE_POLICY = ExtensionPolicy.permit_all().require_present(
    x509.KeyUsage, Criticality.AGNOSTIC, _require_digital_signature
)
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca()


@dataclass(frozen=True)
class Revocation:
    serial: int
    when: datetime


@dataclass(frozen=True)
class TrustStore:
    """An immutable snapshot of trust anchors and CRLs. Build a new one when they change."""

    anchors: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    _store: Store | None = field(default=None, init=False, repr=False, compare=False)
    _revoked: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    # Per CRL of this snapshot (by position): whether a given issuer (by fingerprint) signed it,
    # and its revoked serials. A CRL or anchor change builds a new TrustStore, so neither can
    # outlive the CRL it was computed from; the revocation date is still compared with the
    # checking time on every verify.
    _crl_signed: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _crl_serials: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.anchors:
            object.__setattr__(self, "_store", Store(list(self.anchors)))
        # Index CRLs by issuer name; a CRL only counts once its signature is checked against
        # the issuing certificate of a validated chain (see _check_revocation).
        for i, crl in enumerate(self.crls):
            self._revoked.setdefault(crl.issuer.public_bytes(), []).append((i, crl))

    def verify(self, leaf: x509.Certificate, intermediates: list[x509.Certificate] = (), at: datetime | None = None) -> list[x509.Certificate]:
        """Validate ``leaf`` at time ``at`` (default: now); return the chain leaf→anchor.

        Raises :class:`TrustError` with ``trust.expired``, ``trust.key_usage``,
        ``trust.untrusted`` or ``trust.revoked``.
        """
        when = _utc(at)
        key = (fingerprint(leaf),) + tuple(fingerprint(c) for c in intermediates)
        cached = self._cache.get(key)
        if cached is not None and cached[1] <= when <= cached[2]:
            chain = cached[0]
        else:
            chain = self._build(leaf, list(intermediates), when)
            self._cache[key] = (
                chain,
                max(c.not_valid_before_utc for c in chain),
                min(c.not_valid_after_utc for c in chain),
            )
        self._check_revocation(chain, when)
        return chain

    def _build(self, leaf: x509.Certificate, intermediates: list[x509.Certificate], when: datetime) -> list[x509.Certificate]:
        for cert in [leaf, *intermediates]:
            if when < cert.not_valid_before_utc:
                raise TrustError(
                    f"certificate {describe(cert)} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M}Z "
                    f"(checked at {when:%Y-%m-%d %H:%M}Z)",
                    code="trust.expired",
                )
            if when > cert.not_valid_after_utc:
                raise TrustError(
                    f"certificate {describe(cert)} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z "
                    f"(checked at {when:%Y-%m-%d %H:%M}Z); sign with a current certificate pinned in the registry",
                    code="trust.expired",
                )
        try:
            ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            ku = None
        except ValueError as e:  # a malformed extension
            raise TrustError(f"certificate {describe(leaf)} has malformed extensions ({e})",
                             code="trust.untrusted") from e
        if ku is None or not ku.digital_signature:
            raise TrustError(
                f"certificate {describe(leaf)} does not allow digitalSignature (KeyUsage); it cannot sign packages",
                code="trust.key_usage",
            )
        if self._store is None:
            raise TrustError("no trust anchors are configured; add one with `hub trust add CA.pem`", code="trust.untrusted")
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(when)
            .extension_policies(ee_policy=_EE_POLICY, ca_policy=_CA_POLICY)
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(leaf, intermediates)
        except VerificationError as e:
            raise TrustError(
                f"certificate {describe(leaf)} does not chain to a trusted CA: {e}", code="trust.untrusted"
            ) from e
        return list(verified.chain)

    def _check_revocation(self, chain: list[x509.Certificate], when: datetime) -> None:
        if not self._revoked:
            return
        for cert, issuer in zip(chain, chain[1:]):
            for i, crl in self._revoked.get(cert.issuer.public_bytes(), ()):
                if not self._signed_by(i, crl, issuer):
                    continue
                revoked_at = self._serials(i, crl).get(cert.serial_number)
                if revoked_at is not None and revoked_at <= when:
                    raise TrustError(
                        f"certificate {describe(cert)} was revoked on {revoked_at:%Y-%m-%d %H:%M}Z "
                        f"(CRL of {describe(issuer)})",
                        code="trust.revoked",
                    )

    def _signed_by(self, i: int, crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
        """``crl.is_signature_valid(issuer.public_key())``, computed once per CRL and issuer:
        without this every check verified each CRL's signature again (an RSA verification)."""
        key = (i, fingerprint(issuer))
        ok = self._crl_signed.get(key)
        if ok is None:
            ok = self._crl_signed[key] = crl.is_signature_valid(issuer.public_key())
        return ok

    def _serials(self, i: int, crl: x509.CertificateRevocationList) -> dict[int, datetime]:
        """Revoked serial -> revocation date (the first entry of a serial, as
        ``get_revoked_certificate_by_serial_number`` finds it); read once per CRL, not
        scanned per check."""
        serials = self._crl_serials.get(i)
        if serials is None:
            serials = {}
            for entry in crl:
                serials.setdefault(entry.serial_number, entry.revocation_date_utc)
            self._crl_serials[i] = serials
        return serials
