"""The check context as it travels to the check processes: one full snapshot, then deltas. Pure.

A check process receives the whole registry/trust snapshot once, when it starts. After that a
registry change travels as a :class:`ContextDelta`: the agencies added or changed (a retired
agency is a changed one), the codes removed, the trust anchors and CRLs when they changed, and
the check settings. Each process applies the deltas in order to its own copy
(:func:`apply_delta`), so a change to one agency among 100,000 costs a few kilobytes, not a new
process pool loading the whole directory again.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hub.pipeline.checks import CheckContext
from hub.pki.chain import TrustStore
from hub.registry.model import Agency, Registry

Trust = tuple[tuple[bytes, ...], tuple[bytes, ...]]  # anchors, CRLs (DER)


@dataclass(frozen=True)
class ContextDelta:
    """What changed from one check context to the next."""

    version: int  # the registry version it brings the context to
    upserts: tuple[Agency, ...] = ()  # added or changed agencies (retiring is a change)
    removed: tuple[str, ...] = ()  # codes no longer registered
    trust: Trust | None = None  # the whole trust store (small) when it changed; None = unchanged
    max_bytes: int = 0
    allow_sha1: bool = False
    relay_id: str | None = None

    @property
    def size(self) -> int:
        """Agencies it carries: the measure of whether a full snapshot is cheaper."""
        return len(self.upserts) + len(self.removed)


def trust_der(trust: TrustStore) -> Trust:
    return (tuple(c.public_bytes(serialization.Encoding.DER) for c in trust.anchors),
            tuple(c.public_bytes(serialization.Encoding.DER) for c in trust.crls))


def trust_from_der(der: Trust) -> TrustStore:
    anchors, crls = der
    return TrustStore(anchors=tuple(x509.load_der_x509_certificate(d) for d in anchors),
                      crls=tuple(x509.load_der_x509_crl(d) for d in crls))


def full(ctx: CheckContext) -> bytes:
    """The whole context, as a check process loads it at start (the schema validator is built there)."""
    return pickle.dumps((ctx.registry.agencies, ctx.registry.version, trust_der(ctx.trust), ctx.max_bytes,
                         ctx.allow_sha1, ctx.relay_id))


def load_full(blob: bytes, validator) -> CheckContext:
    agencies, version, trust, max_bytes, allow_sha1, relay_id = pickle.loads(blob)
    return CheckContext(Registry(agencies, version=version), trust_from_der(trust), validator, max_bytes, allow_sha1,
                        relay_id)


def delta_between(old: CheckContext, new: CheckContext) -> ContextDelta:
    """The delta that turns ``old`` into ``new`` (``apply_delta(old, delta)`` checks like ``new``)."""
    before, after = old.registry.agencies, new.registry.agencies
    upserts = tuple(a for code, a in after.items() if (b := before.get(code)) is not a and b != a)
    removed = tuple(code for code in before if code not in after)
    trust = None
    if old.trust is not new.trust:
        der = trust_der(new.trust)
        if der != trust_der(old.trust):
            trust = der
    return ContextDelta(new.registry.version, upserts, removed, trust, new.max_bytes, new.allow_sha1, new.relay_id)


def apply_delta(ctx: CheckContext, delta: ContextDelta) -> CheckContext:
    """``ctx`` with ``delta`` applied: a new context; ``ctx`` itself is left as it was."""
    registry = ctx.registry.changed(delta.upserts, delta.removed, delta.version)
    trust = trust_from_der(delta.trust) if delta.trust is not None else ctx.trust
    return CheckContext(registry, trust, ctx.validator, delta.max_bytes, delta.allow_sha1, delta.relay_id)
