"""What the hub believes of an intake message's headers: adapters' headers are untrusted input.

Only the broker-validated ``user_id`` says who published. Headers in the ``x-hub-`` family
carry the hub's own word (the gateway's calling agency, an admin's replay, reasons), so
they are believed only from the hub's own broker user, which no adapter can publish as
(RabbitMQ checks ``user_id``). From anyone else every ``x-hub-*`` header is dropped, except
``x-hub-submitted-at`` when it is what it claims to be: the publish time as epoch seconds
(a finite number, or a plain decimal string of one, which the hub carries on for latency). Nothing an adapter sets can then
reach the hub's records, outbox or outgoing copies, so no header can fail a batch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from hub import constants as C
from hub.backbone.base import Message

HUB_PREFIX = "x-hub-"


def trusted_headers(headers: dict[str, Any] | None, *, from_hub: bool) -> dict[str, Any]:
    """The headers of an intake message as the worker may use them."""
    out: dict[str, Any] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str):
            continue
        if not name.lower().startswith(HUB_PREFIX):
            out[name] = value
            continue
        if name == C.H_SUBMITTED_AT:
            seconds = submitted_at(value)
            if seconds is not None:
                out[name] = seconds
        elif from_hub:
            out[name] = value
    return out


_DECIMAL = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")  # epoch seconds as a plain decimal string


def submitted_at(value: Any) -> float | None:
    """Epoch seconds from an ``x-hub-submitted-at`` value, or None when it is not a plain finite number.

    A decimal string (``"1732950000.123456"``) counts too: pamqp sends a Python float as a
    32-bit float, which loses the seconds, so publishers send ``repr(time.time())`` as text."""
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            return None
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    seconds = float(value)
    return seconds if math.isfinite(seconds) and 0 <= seconds < 2**40 else None


@dataclass
class IntakeMessage:
    """An intake delivery with its headers made trustworthy; settles through the delivery it wraps.

    ``on_settle`` runs once, when the message is acked or rejected (the worker counts what it holds).
    """

    incoming: Any
    message: Message
    on_settle: Any = None

    @classmethod
    def of(cls, incoming: Any, hub_user: str, on_settle=None) -> IntakeMessage:
        msg = incoming.message
        clean = trusted_headers(msg.headers, from_hub=bool(msg.user_id) and msg.user_id == hub_user)
        return cls(incoming, replace(msg, headers=clean), on_settle)

    @property
    def settled(self) -> bool:
        return self.incoming.settled

    def _settled(self) -> None:
        cb, self.on_settle = self.on_settle, None
        if cb is not None:
            cb()

    async def ack(self) -> None:
        try:
            await self.incoming.ack()
        finally:
            self._settled()

    async def reject(self, requeue: bool) -> None:
        try:
            await self.incoming.reject(requeue)
        finally:
            self._settled()


async def ack_all(backbone: Any, messages: list[IntakeMessage]) -> None:
    """Ack a batch of intake messages through ``backbone.ack_many`` (fewer frames); raises the first
    failure after trying them all (RabbitMQ redelivers what stayed unacked)."""
    try:
        await backbone.ack_many([m.incoming for m in messages])
    finally:
        for m in messages:
            m._settled()  # noqa: SLF001 - same module
