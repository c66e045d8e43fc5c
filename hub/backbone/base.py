"""The backbone contract: what the hub and the adapters need from a message broker.

Two implementations keep it: :mod:`hub.backbone.rabbit` (RabbitMQ through aio-pika, for
production) and :mod:`hub.backbone.embedded` (an in-process broker for ``hub demo`` and unit
tests); :func:`hub.backbone.factory.connect` opens either (this module imports neither). Both
behave like RabbitMQ 3.10 with quorum queues, as far as the hub can observe:

- publishing is persistent and returns only once the broker has confirmed the message;
  an unroutable message raises ``TransientError("backbone.unroutable")`` (mandatory flag);
- the ``user_id`` property is validated against the connection's user: a different one
  raises ``AuthorityError("authority.impersonation")`` and the connection stays usable;
- a message without ``message_id`` gets a random one (so every delivery has one);
- deliveries stay unsettled until ``ack``/``reject``; a closed connection's unsettled
  messages come back with ``redelivered=True``, a requeued message goes back to the head
  of its queue, and a message returned more than the queue's delivery limit is
  dead-lettered to ``hub.dead`` with an ``x-death`` header (reason ``delivery_limit``);
- the broker adds ``x-delivery-count`` to the headers of every delivery from a quorum queue;
- priorities are carried but do not reorder a queue (RabbitMQ 3.10 quorum queues are
  FIFO): urgent traffic goes to the separate ``inbox.<code>.urgent`` queue instead.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import hub.backbone.topology as topology
from hub.constants import INBOX_PREFIX, URGENT_SUFFIX
from hub.errors import UsageError

log = logging.getLogger("hub.backbone")

DEFAULT_PREFETCH = 100
DEFAULT_USER = "hub"


@dataclass(frozen=True)
class Message:
    """A message as a consumer receives it (the broker's view, not the publisher's)."""

    body: bytes
    headers: dict[str, Any]
    routing_key: str
    exchange: str
    user_id: str | None  # validated by the broker: equals the publishing connection's user
    message_id: str | None
    priority: int
    redelivered: bool
    timestamp: float | None  # epoch seconds, whole seconds (AMQP timestamps have no fraction)


@dataclass(frozen=True)
class Outgoing:
    """One message to publish: the arguments of :meth:`Backbone.publish` as a value."""

    exchange: str
    routing_key: str
    body: bytes
    headers: dict[str, Any] | None = None  # values as hub.backbone.headers allows
    user_id: str | None = None
    message_id: str | None = None
    priority: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.priority <= 255:
            raise UsageError(f"AMQP priority is an octet, not {self.priority}")
        if not isinstance(self.body, (bytes, bytearray, memoryview)):
            raise UsageError(f"a message body is bytes, not {type(self.body).__name__}")


class Incoming(Protocol):
    """A received message that is not settled yet. Settle it exactly once.

    Settling twice raises ``UsageError("backbone.already_settled")``; settling after the
    connection or consumer is gone raises ``TransientError("backbone.unavailable")`` (the
    broker has requeued the message already).
    """

    @property
    def message(self) -> Message: ...

    @property
    def settled(self) -> bool: ...

    async def ack(self) -> None: ...

    async def reject(self, requeue: bool) -> None:
        """``requeue=True`` puts it back at the head of the queue (counts as a delivery);
        ``requeue=False`` dead-letters it per the queue's arguments (``hub.dead``)."""


class Consumer(Protocol):
    """A running subscription to one queue."""

    @property
    def queue(self) -> str: ...

    async def stop_deliveries(self) -> None:
        """Stop new deliveries but keep the unsettled ones settleable (first step of a graceful stop)."""

    async def cancel(self) -> None:
        """Stop deliveries, wait for running callbacks, requeue what is still unsettled."""


Callback = Callable[[Incoming], Awaitable[None]]


class Backbone(ABC):
    """One authenticated connection to the broker.

    ``user`` is the user the connection authenticated as; it is what the broker accepts
    in ``user_id``. Every method may raise ``TransientError`` when the broker is
    unreachable (code ``backbone.unavailable``) or an exchange/queue does not exist
    (code ``backbone.not_found``), and ``AuthorityError("authority.forbidden")`` when
    the user lacks the permission.
    """

    user: str
    delivery_limit: int

    async def declare_topology(self) -> None:
        """Declare the hub's exchanges and the ``hub.intake``/``hub.dead`` queues (idempotent)."""
        await self._declare(topology.hub_exchanges(), topology.hub_queues(self.delivery_limit))

    async def declare_inbox(self, code: str) -> None:
        """Declare ``inbox.<code>`` and ``inbox.<code>.urgent`` bound to ``edxml.deliver`` (idempotent)."""
        await self._declare((), topology.inbox_queues(code, self.delivery_limit))

    @abstractmethod
    async def _declare(self, exchanges: tuple[topology.ExchangeSpec, ...],
                       queues: tuple[topology.QueueSpec, ...]) -> None:
        """Declare the exchanges, then the queues with their bindings."""

    async def publish(self, exchange: str, routing_key: str, body: bytes, *,
                      headers: dict[str, Any] | None = None, user_id: str | None = None,
                      message_id: str | None = None, priority: int = 0) -> None:
        """Publish one persistent message and wait for the broker's confirm."""
        await self.publish_many([Outgoing(exchange, routing_key, body, headers, user_id, message_id, priority)])

    @abstractmethod
    async def publish_many(self, items: list[Outgoing]) -> None:
        """Publish all items in order, confirms awaited together (pipelined).

        Returns once every item is confirmed. Otherwise waits until every item is settled
        and raises the error of the first failed item (earlier items may have been
        delivered: at-least-once, retry the whole batch).
        """

    async def ack_many(self, messages: list[Incoming]) -> None:
        """Ack every message (a broker may do it in fewer frames); after trying them all, raise the
        first failure (the broker redelivers what stayed unacked)."""
        first: BaseException | None = None
        for m in messages:
            try:
                await m.ack()
            except Exception as e:  # noqa: BLE001 - ack the others
                first = first or e
        if first is not None:
            raise first

    @abstractmethod
    async def consume(self, queue: str, callback: Callback, *, prefetch: int = DEFAULT_PREFETCH) -> Consumer:
        """Call ``callback`` for each message of ``queue``; at most ``prefetch`` unsettled at once.

        Callbacks run concurrently. A callback that raises without settling its message
        gets it rejected with ``requeue=True`` (so the delivery limit eventually
        dead-letters a poison message).
        """

    @abstractmethod
    async def get(self, queue: str) -> Incoming | None:
        """Take the head of ``queue`` unsettled (``basic.get`` without auto-ack), or None."""

    @abstractmethod
    async def depth(self, queue: str) -> int:
        """Number of ready (not unsettled) messages in ``queue``."""

    @abstractmethod
    async def consumers(self, queue: str) -> int:
        """Number of consumers subscribed to ``queue``."""

    @abstractmethod
    async def purge(self, queue: str) -> int:
        """Drop the ready messages of ``queue``; returns how many."""

    @abstractmethod
    async def delete_queue(self, queue: str) -> None:
        """Delete ``queue`` (and its messages). Deleting a missing queue is not an error."""

    @abstractmethod
    async def close(self) -> None:
        """Close the connection; its unsettled messages are redelivered to others."""

    async def __aenter__(self) -> Backbone:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def bounded(step: Awaitable[Any], what: str, seconds: float) -> bool:
    """Await a broker call of a shutdown or pause for at most ``seconds``; False (logged, with what
    was being waited for) when it timed out or failed. A broker in trouble cannot hold a shutdown."""
    try:
        async with asyncio.timeout(seconds):
            await step
        return True
    except TimeoutError:
        log.warning("the broker did not answer while %s within %.0f s; going on without it", what, seconds)
    except Exception as e:  # noqa: BLE001 - the connection is gone: the broker requeues what was unsettled
        log.warning("%s failed (%s); going on without it", what, e)
    return False


def inbox_key(code: str, urgent: bool = False) -> str:
    """Routing key on ``edxml.deliver`` for an agency: ``<code>`` or ``<code>.urgent``."""
    return code + URGENT_SUFFIX if urgent else code


def inbox_queue(code: str, urgent: bool = False) -> str:
    """Inbox queue of an agency: ``inbox.<code>`` or ``inbox.<code>.urgent``."""
    return INBOX_PREFIX + inbox_key(code, urgent)


def new_message_id() -> str:
    """A random message id (what a message without one gets)."""
    return uuid.uuid4().hex
