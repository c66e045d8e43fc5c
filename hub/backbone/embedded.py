"""An in-process broker with the backbone contract, for ``hub demo`` and tests.

In memory, single process, single event loop, nothing persisted: **not for production**.
It imitates what the hub can observe of RabbitMQ 3.10 with quorum queues: fanout and
direct exchanges (and the default exchange), FIFO queues, publisher confirms (a publish
returns once routed), mandatory publishing, ``user_id`` validation, per-consumer prefetch,
unsettled messages requeued at the head of the queue when their connection or consumer
goes away, ``x-delivery-count``, ``x-delivery-limit`` and dead-lettering with ``x-death``
headers, and optional per-user permissions (``configure``/``write``/``read`` regexes).

Every operation runs without awaiting in between, so the broker is consistent within one
event loop; consumer callbacks run as tasks.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
import re
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import hub.backbone.headers as amqp_headers
import hub.backbone.topology as topology
from hub.backbone.base import DEFAULT_PREFETCH, Backbone, Callback, Message, Outgoing, new_message_id
from hub.errors import AuthorityError, TransientError, UsageError

log = logging.getLogger(__name__)

_DEFAULT_EXCHANGE = ""  # AMQP default exchange: routes to the queue named by the routing key


@dataclass
class _Stored:
    """A message inside a queue: what was published plus the broker's bookkeeping."""

    seq: int
    exchange: str
    routing_key: str
    body: bytes
    headers: dict[str, Any]
    user_id: str | None
    message_id: str
    priority: int
    timestamp: float
    delivery_count: int = 0  # times it came back unsettled (x-delivery-count)

    def as_message(self, queue: _Queue) -> Message:
        headers = copy.deepcopy(self.headers)
        if queue.quorum:
            headers["x-delivery-count"] = self.delivery_count
        return Message(body=self.body, headers=headers, routing_key=self.routing_key, exchange=self.exchange,
                       user_id=self.user_id, message_id=self.message_id, priority=self.priority,
                       redelivered=self.delivery_count > 0, timestamp=self.timestamp)


@dataclass(frozen=True)
class _Permissions:
    configure: re.Pattern[str]
    write: re.Pattern[str]
    read: re.Pattern[str]


class _Queue:
    def __init__(self, name: str, arguments: dict[str, Any]):
        self.name = name
        self.arguments = dict(arguments)
        self.quorum = arguments.get("x-queue-type") == "quorum"
        self.delivery_limit: int | None = arguments.get("x-delivery-limit")
        self.dead_letter_exchange: str | None = arguments.get("x-dead-letter-exchange")
        self.dead_letter_key: str | None = arguments.get("x-dead-letter-routing-key")
        self.returns: deque[_Stored] = deque()  # served first, like a quorum queue's returns
        self.ready: deque[_Stored] = deque()
        self.consumers: list[EmbeddedConsumer] = []
        self.deleted = False
        self._turn = 0

    def __len__(self) -> int:
        return len(self.returns) + len(self.ready)

    def pop(self) -> _Stored | None:
        if self.returns:
            return self.returns.popleft()
        if self.ready:
            return self.ready.popleft()
        return None

    def next_consumer(self) -> EmbeddedConsumer | None:
        """Round-robin over consumers that still have prefetch room."""
        n = len(self.consumers)
        for i in range(n):
            c = self.consumers[(self._turn + i) % n]
            if c.has_room():
                self._turn = (self._turn + i + 1) % n
                return c
        return None


class EmbeddedBroker:
    """The in-memory broker. Create one per process and ``connect`` to it."""

    def __init__(self) -> None:
        self._exchanges: dict[str, str] = {_DEFAULT_EXCHANGE: topology.DIRECT}
        self._queues: dict[str, _Queue] = {}
        self._bindings: dict[str, list[tuple[str, str]]] = {}  # exchange -> [(queue, key)]
        self._permissions: dict[str, _Permissions] = {}
        self._seq = itertools.count(1)

    # --- connections and permissions --------------------------------------------------------

    def connect(self, user: str, *, delivery_limit: int = topology.DEFAULT_DELIVERY_LIMIT) -> EmbeddedBackbone:
        """A new connection authenticated as ``user`` (the embedded broker trusts the caller)."""
        return EmbeddedBackbone(self, user, delivery_limit)

    def set_permissions(self, user: str, *, write: str, read: str, configure: str = ".*") -> None:
        """Restrict ``user`` like RabbitMQ permissions: regexes matched against names with search().

        Users without permissions set may do everything.
        """
        self._permissions[user] = _Permissions(re.compile(configure), re.compile(write), re.compile(read))

    def clear_permissions(self, user: str) -> None:
        self._permissions.pop(user, None)

    def check(self, user: str, kind: str, resource: str, name: str) -> None:
        perms = self._permissions.get(user)
        if perms is None:
            return
        name_for_check = "amq.default" if resource == "exchange" and name == _DEFAULT_EXCHANGE else name
        if not getattr(perms, kind).search(name_for_check):
            raise AuthorityError(f"{kind} access to {resource} {name!r} refused for user {user!r}",
                                 code="authority.forbidden")

    # --- topology ---------------------------------------------------------------------------------

    def declare_exchange(self, spec: topology.ExchangeSpec) -> None:
        existing = self._exchanges.get(spec.name)
        if existing is not None and existing != spec.type:
            raise UsageError(f"exchange {spec.name!r} exists with type {existing!r}, not {spec.type!r}",
                             code="backbone.precondition_failed")
        self._exchanges[spec.name] = spec.type
        self._bindings.setdefault(spec.name, [])

    def declare_queue(self, spec: topology.QueueSpec) -> None:
        q = self._queues.get(spec.name)
        if q is None:
            self._queues[spec.name] = _Queue(spec.name, spec.arguments)
        elif q.arguments != spec.arguments:
            raise UsageError(f"queue {spec.name!r} exists with arguments {q.arguments!r}, not {spec.arguments!r}",
                             code="backbone.precondition_failed")
        for exchange, key in spec.bindings:
            if exchange not in self._exchanges:
                raise TransientError(f"no exchange {exchange!r}", code="backbone.not_found")
            if (spec.name, key) not in self._bindings[exchange]:
                self._bindings[exchange].append((spec.name, key))

    def queue(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            raise TransientError(f"no queue {name!r}", code="backbone.not_found")
        return q

    def delete_queue(self, name: str) -> None:
        q = self._queues.pop(name, None)
        if q is None:
            return
        q.deleted = True
        for bindings in self._bindings.values():
            bindings[:] = [b for b in bindings if b[0] != name]
        for consumer in list(q.consumers):
            consumer.broker_cancelled()
        q.returns.clear()
        q.ready.clear()

    # --- routing ----------------------------------------------------------------------------------

    def route(self, exchange: str, routing_key: str) -> list[_Queue]:
        if exchange == _DEFAULT_EXCHANGE:
            q = self._queues.get(routing_key)
            return [q] if q is not None else []
        kind = self._exchanges[exchange]
        names = [qn for qn, key in self._bindings.get(exchange, ()) if kind == topology.FANOUT or key == routing_key]
        return [self._queues[n] for n in dict.fromkeys(names)]

    def publish(self, user: str, item: Outgoing) -> None:
        """Route one message, in RabbitMQ's order of checks; raises instead of a nack/return."""
        self.check(user, "write", "exchange", item.exchange)
        if item.exchange not in self._exchanges:
            raise TransientError(f"no exchange {item.exchange!r}", code="backbone.not_found")
        if item.user_id is not None and item.user_id != user:
            raise AuthorityError(f"user_id property set to {item.user_id!r} but authenticated user was {user!r}",
                                 code="authority.impersonation")
        queues = self.route(item.exchange, item.routing_key)
        if not queues:
            raise TransientError(f"unroutable: exchange {item.exchange!r}, routing key {item.routing_key!r}",
                                 code="backbone.unroutable")
        stored = _Stored(seq=0, exchange=item.exchange, routing_key=item.routing_key, body=bytes(item.body),
                         headers=amqp_headers.normalize(item.headers), user_id=item.user_id,
                         message_id=item.message_id or new_message_id(), priority=item.priority,
                         timestamp=float(int(time.time())))
        self._enqueue(stored, queues)

    def _enqueue(self, stored: _Stored, queues: Iterable[_Queue]) -> None:
        for q in queues:
            q.ready.append(replace(stored, seq=next(self._seq)))
            self.dispatch(q)

    def dispatch(self, q: _Queue) -> None:
        """Hand ready messages to consumers with prefetch room (synchronously; callbacks as tasks)."""
        while len(q) and not q.deleted:
            consumer = q.next_consumer()
            if consumer is None:
                return
            stored = q.pop()
            assert stored is not None
            consumer.deliver(EmbeddedIncoming(self, q, stored, consumer.connection, consumer))

    # --- settling ---------------------------------------------------------------------------------

    def give_back(self, q: _Queue, stored: _Stored) -> None:
        """An unsettled message came back (requeue, closed connection): count it, requeue or dead-letter."""
        if q.deleted:
            return
        if q.quorum:
            stored.delivery_count += 1
            if q.delivery_limit is not None and stored.delivery_count > q.delivery_limit:
                self.dead_letter(q, stored, "delivery_limit")
                return
        q.returns.append(stored)
        self.dispatch(q)

    def dead_letter(self, q: _Queue, stored: _Stored, reason: str) -> None:
        """Republish to the queue's dead-letter exchange with an ``x-death`` header, or drop."""
        if q.dead_letter_exchange is None or q.dead_letter_exchange not in self._exchanges:
            return
        headers = copy.deepcopy(stored.headers)
        now = datetime.fromtimestamp(int(time.time()), timezone.utc)
        deaths: list[dict[str, Any]] = list(headers.get("x-death") or [])
        for i, d in enumerate(deaths):
            if d.get("queue") == q.name and d.get("reason") == reason:
                deaths.pop(i)
                deaths.insert(0, {**d, "count": d.get("count", 1) + 1, "time": now})
                break
        else:
            deaths.insert(0, {"count": 1, "reason": reason, "queue": q.name, "time": now,
                              "exchange": stored.exchange, "routing-keys": [stored.routing_key]})
        headers["x-death"] = deaths
        headers.setdefault("x-first-death-exchange", stored.exchange)
        headers.setdefault("x-first-death-queue", q.name)
        headers.setdefault("x-first-death-reason", reason)
        key = q.dead_letter_key if q.dead_letter_key is not None else stored.routing_key
        dead = replace(stored, exchange=q.dead_letter_exchange, routing_key=key, headers=headers, delivery_count=0)
        self._enqueue(dead, self.route(q.dead_letter_exchange, key))


class EmbeddedIncoming:
    """One delivery of a message to a connection (the embedded ``Incoming``)."""

    def __init__(self, broker: EmbeddedBroker, queue: _Queue, stored: _Stored, connection: EmbeddedBackbone,
                 consumer: EmbeddedConsumer | None):
        self._broker = broker
        self._queue = queue
        self._stored = stored
        self._connection = connection
        self._consumer = consumer
        self._settled = False
        self._orphaned = False  # its connection or consumer went away; the broker took it back
        self.message = stored.as_message(queue)
        connection.unsettled.add(self)
        if consumer is not None:
            consumer.unsettled.add(self)

    @property
    def settled(self) -> bool:
        return self._settled

    def _finish(self) -> None:
        if self._orphaned:
            raise TransientError("the connection or consumer of this delivery is gone; it was requeued",
                                 code="backbone.unavailable")
        if self._settled:
            raise UsageError("message already settled", code="backbone.already_settled")
        self._settled = True
        self._connection.unsettled.discard(self)
        if self._consumer is not None:
            self._consumer.unsettled.discard(self)

    async def ack(self) -> None:
        self._finish()
        self._broker.dispatch(self._queue)
        await asyncio.sleep(0)

    async def reject(self, requeue: bool) -> None:
        self._finish()
        if requeue:
            self._broker.give_back(self._queue, self._stored)
        else:
            self._broker.dead_letter(self._queue, self._stored, "rejected")
        self._broker.dispatch(self._queue)
        await asyncio.sleep(0)

    def take_back(self) -> None:
        """The connection or consumer went away unsettled: requeue (and count) the message."""
        if self._settled or self._orphaned:
            return
        self._orphaned = True
        self._connection.unsettled.discard(self)
        if self._consumer is not None:
            self._consumer.unsettled.discard(self)
        self._broker.give_back(self._queue, self._stored)


@dataclass(eq=False)
class EmbeddedConsumer:
    """A subscription of one connection to one queue (the embedded ``Consumer``)."""

    broker: EmbeddedBroker
    connection: EmbeddedBackbone
    q: _Queue
    callback: Callback
    prefetch: int
    unsettled: set[EmbeddedIncoming] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    active: bool = True

    @property
    def queue(self) -> str:
        return self.q.name

    def has_room(self) -> bool:
        return self.active and (self.prefetch == 0 or len(self.unsettled) < self.prefetch)

    def deliver(self, delivery: EmbeddedIncoming) -> None:
        task = asyncio.get_running_loop().create_task(self._run(delivery))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, delivery: EmbeddedIncoming) -> None:
        try:
            await self.callback(delivery)
        except Exception:
            log.exception("consumer callback failed on %s; requeueing the message", self.q.name)
            if not delivery.settled:
                try:
                    await delivery.reject(requeue=True)
                except TransientError:
                    pass

    def broker_cancelled(self) -> None:
        """The queue was deleted under the consumer."""
        self.active = False
        if self in self.q.consumers:
            self.q.consumers.remove(self)
        self.connection.subscriptions.discard(self)

    async def stop_deliveries(self) -> None:
        """No new deliveries; unsettled ones stay ours to settle (graceful stop)."""
        self.active = False
        if self in self.q.consumers:
            self.q.consumers.remove(self)

    async def cancel(self, *, abort: bool = False) -> None:
        """Stop, let running callbacks finish (or cancel them with ``abort``), requeue the rest."""
        await self.stop_deliveries()
        self.connection.subscriptions.discard(self)
        running = [t for t in self.tasks if t is not asyncio.current_task()]
        if abort:
            for t in running:
                t.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        for delivery in sorted(self.unsettled, key=lambda d: d._stored.seq):
            delivery.take_back()


class EmbeddedBackbone(Backbone):
    """A connection to an :class:`EmbeddedBroker`."""

    def __init__(self, broker: EmbeddedBroker, user: str, delivery_limit: int):
        self.broker = broker
        self.user = user
        self.delivery_limit = delivery_limit
        self.unsettled: set[EmbeddedIncoming] = set()
        self.subscriptions: set[EmbeddedConsumer] = set()
        self._closed = False

    def _alive(self) -> EmbeddedBroker:
        if self._closed:
            raise TransientError("the backbone connection is closed", code="backbone.unavailable")
        return self.broker

    async def _declare(self, exchanges: tuple[topology.ExchangeSpec, ...],
                       queues: tuple[topology.QueueSpec, ...]) -> None:
        broker = self._alive()
        for ex in exchanges:
            broker.check(self.user, "configure", "exchange", ex.name)
            broker.declare_exchange(ex)
        for q in queues:
            broker.check(self.user, "configure", "queue", q.name)
            broker.declare_queue(q)
        await asyncio.sleep(0)

    async def publish_many(self, items: list[Outgoing]) -> None:
        broker = self._alive()
        first: Exception | None = None
        for item in items:
            try:
                broker.publish(self.user, item)
            except TransientError as e:
                if e.code != "backbone.unroutable":
                    first = first or e
                    break  # RabbitMQ closes the channel: the rest of the batch is lost
                first = first or e
            except AuthorityError as e:
                first = first or e
                break
        await asyncio.sleep(0)
        if first is not None:
            raise first

    async def consume(self, queue: str, callback: Callback, *, prefetch: int = DEFAULT_PREFETCH) -> EmbeddedConsumer:
        broker = self._alive()
        broker.check(self.user, "read", "queue", queue)
        q = broker.queue(queue)
        consumer = EmbeddedConsumer(broker, self, q, callback, prefetch)
        q.consumers.append(consumer)
        self.subscriptions.add(consumer)
        broker.dispatch(q)
        await asyncio.sleep(0)
        return consumer

    async def get(self, queue: str) -> EmbeddedIncoming | None:
        broker = self._alive()
        broker.check(self.user, "read", "queue", queue)
        q = broker.queue(queue)
        await asyncio.sleep(0)
        stored = q.pop()
        return None if stored is None else EmbeddedIncoming(broker, q, stored, self, None)

    async def depth(self, queue: str) -> int:
        await asyncio.sleep(0)
        return len(self._alive().queue(queue))

    async def consumers(self, queue: str) -> int:
        await asyncio.sleep(0)
        return len(self._alive().queue(queue).consumers)

    async def purge(self, queue: str) -> int:
        broker = self._alive()
        broker.check(self.user, "read", "queue", queue)
        q = broker.queue(queue)
        n = len(q)
        q.returns.clear()
        q.ready.clear()
        await asyncio.sleep(0)
        return n

    async def delete_queue(self, queue: str) -> None:
        broker = self._alive()
        broker.check(self.user, "configure", "queue", queue)
        broker.delete_queue(queue)
        await asyncio.sleep(0)

    async def close(self) -> None:
        """Cancel running callbacks and requeue everything this connection left unsettled."""
        if self._closed:
            return
        self._closed = True
        for consumer in list(self.subscriptions):
            await consumer.cancel(abort=True)
        for delivery in sorted(self.unsettled, key=lambda d: d._stored.seq):
            delivery.take_back()
