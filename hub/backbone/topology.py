"""The hub's exchanges, queues and bindings, as data both backbones declare from.

``deploy/rabbitmq/definitions.json`` describes the same topology for operators who load
definitions at boot; a test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.constants import (
    EXCHANGE_DEAD,
    EXCHANGE_DELIVER,
    EXCHANGE_SUBMIT,
    INBOX_PREFIX,
    QUEUE_DEAD,
    QUEUE_INTAKE,
    URGENT_SUFFIX,
)
from hub.errors import UsageError

DEFAULT_DELIVERY_LIMIT = 5  # a message returned more often than this goes to hub.dead

FANOUT = "fanout"
DIRECT = "direct"


@dataclass(frozen=True)
class ExchangeSpec:
    """A durable exchange."""

    name: str
    type: str


@dataclass(frozen=True)
class QueueSpec:
    """A durable queue with its arguments and its (exchange, routing key) bindings."""

    name: str
    arguments: dict[str, Any]
    bindings: tuple[tuple[str, str], ...]


def quorum_args(delivery_limit: int | None, dead_letter: bool = True) -> dict[str, Any]:
    """Arguments of a quorum queue; with a dead-letter exchange unless ``dead_letter`` is False.

    A quorum queue with a delivery limit but no dead-letter exchange *drops* messages past
    the limit, so ``hub.dead`` (which has no dead-letter exchange) gets no limit.
    """
    args: dict[str, Any] = {"x-queue-type": "quorum"}
    if delivery_limit is not None:
        args["x-delivery-limit"] = delivery_limit
    if dead_letter:
        args["x-dead-letter-exchange"] = EXCHANGE_DEAD
    return args


def hub_exchanges() -> tuple[ExchangeSpec, ...]:
    """``edxml.submit`` (fanout), ``edxml.deliver`` (direct), ``hub.dead`` (fanout)."""
    return (ExchangeSpec(EXCHANGE_SUBMIT, FANOUT), ExchangeSpec(EXCHANGE_DELIVER, DIRECT),
            ExchangeSpec(EXCHANGE_DEAD, FANOUT))


def hub_queues(delivery_limit: int = DEFAULT_DELIVERY_LIMIT) -> tuple[QueueSpec, ...]:
    """``hub.intake`` behind ``edxml.submit`` and ``hub.dead`` behind ``hub.dead``."""
    return (
        QueueSpec(QUEUE_INTAKE, quorum_args(delivery_limit), ((EXCHANGE_SUBMIT, ""),)),
        QueueSpec(QUEUE_DEAD, quorum_args(None, dead_letter=False), ((EXCHANGE_DEAD, ""),)),
    )


def inbox_queues(code: str, delivery_limit: int = DEFAULT_DELIVERY_LIMIT) -> tuple[QueueSpec, ...]:
    """``inbox.<code>`` (key ``<code>``) and ``inbox.<code>.urgent`` (key ``<code>.urgent``)."""
    if not code or any(c in code for c in "#* \t\r\n"):
        raise UsageError(f"not a usable agency code for an inbox: {code!r}", code="usage.invalid")
    return tuple(
        QueueSpec(INBOX_PREFIX + key, quorum_args(delivery_limit), ((EXCHANGE_DELIVER, key),))
        for key in (code, code + URGENT_SUFFIX)
    )
