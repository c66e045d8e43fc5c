"""How a package reached the hub: the authenticated connection the checks may rely on. Pure.

Every entry point authenticates the system that hands a package over and says so with a
:class:`Connection`: the broker-validated ``user_id`` (AMQP adapters), the HTTP gateway's
bearer token or TLS client certificate, the VDXP system id and HMAC. The checks use it to
refuse impersonation, and under the ``sdk`` signature profile it is what authenticates an
unsigned package (:mod:`hub.pipeline.authentication`).
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.registry.model import Registry

VIAS = ("amqp", "gateway", "tls", "vdxp")


@dataclass(frozen=True)
class Connection:
    """The connection a package arrived on.

    ``system`` is the connected system (its agency code) the entry point authenticated, or
    ``None`` when the connection proves no system (e.g. an AMQP message without ``user_id``).
    ``user`` names the credential for the records (broker user, token id, VDXP system id);
    never a secret.
    """

    via: str
    system: str | None
    user: str | None = None

    @property
    def authenticated_system(self) -> str | None:
        return self.system

    def describe(self) -> str:
        who = f"{self.user!r}" if self.user else "no credential"
        return f"{self.via} connection of {self.system or 'no registered system'} ({who})"


def from_adapter_user(user: str | None, registry: Registry) -> Connection | None:
    """The connection of an AMQP message: ``None`` = offline (no connection to check, ``hub
    check``); ``""`` = published without ``user_id`` (authenticates nobody)."""
    if user is None:
        return None
    return Connection("amqp", registry.agency_for_user(user) if user else None, user)
