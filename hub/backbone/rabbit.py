"""The backbone on RabbitMQ, through aio-pika (robust connection) and aiormq channels.

Channels, and why:

- **publishing**: a small pool of raw aiormq channels with publisher confirms. A
  ``publish_many`` call checks one out for its whole batch, so a batch stays in order
  (RabbitMQ orders per channel) and a channel-closing error (406 for a foreign
  ``user_id``) only fails the batch that caused it. aiormq matches a returned
  (unroutable) message to its publish by ``message_id``, so a batch is sent in waves
  without repeated ids; otherwise the wrong publish would be reported as unroutable.
- **get**: one channel for ``basic.get`` and the settling of what it returned.
- **probe**: one channel for declares, passive declares (depth, consumers), purge and
  delete, whose errors (404, 403, 406) close it; it reopens on the next use.
- **consume**: one robust aio-pika channel per consumer, with its ``basic.qos`` prefetch;
  aio-pika restores it and its consumer after a reconnect.

Broker errors become hub errors: 403 -> ``AuthorityError("authority.forbidden")``, 406 on
``user_id`` -> ``AuthorityError("authority.impersonation")``, 404 ->
``TransientError("backbone.not_found")``, basic.return -> ``TransientError("backbone.unroutable")``,
a nack -> ``TransientError("backbone.nacked")``, connection trouble and timeouts ->
``TransientError("backbone.unavailable")``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel, AbstractRobustConnection
from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp import commands as spec

import hub.backbone.acks as acks
import hub.backbone.headers as amqp_headers
import hub.backbone.topology as topology
from hub.backbone.base import DEFAULT_PREFETCH, Backbone, Callback, Message, Outgoing, bounded, new_message_id
from hub.backbone.nodes import user_of
from hub.backbone.rotating import connect_nodes
from hub.errors import AuthorityError, HubError, TransientError, UsageError

log = logging.getLogger(__name__)

PUBLISH_CHANNELS = 8  # concurrent publish_many batches per connection
OPERATION_TIMEOUT = 30.0  # seconds for any single broker operation (confirm included)
CLOSE_TIMEOUT = 3.0  # seconds for each step of a shutdown: cancel, channel close, connection close
PERSISTENT = 2


def hub_error(exc: BaseException) -> HubError:
    """The hub error for an aio-pika/aiormq/network exception."""
    if isinstance(exc, HubError):
        return exc
    text = str(exc) or type(exc).__name__
    if isinstance(exc, aiormq.exceptions.PublishError):
        frame = exc.frame
        where = f"exchange {getattr(frame, 'exchange', '?')!r}, routing key {getattr(frame, 'routing_key', '?')!r}"
        return TransientError(f"unroutable: {where}", code="backbone.unroutable")
    if isinstance(exc, aiormq.exceptions.DeliveryError):
        return TransientError(f"the broker refused the message (nack): {text}", code="backbone.nacked")
    if isinstance(exc, aiormq.exceptions.ChannelAccessRefused):
        return AuthorityError(text, code="authority.forbidden")
    if isinstance(exc, aiormq.exceptions.ChannelPreconditionFailed):
        if "user_id" in text:
            return AuthorityError(text, code="authority.impersonation")
        return UsageError(text, code="backbone.precondition_failed")
    if isinstance(exc, aiormq.exceptions.ChannelNotFoundEntity):
        return TransientError(text, code="backbone.not_found")
    return TransientError(f"RabbitMQ unavailable: {text}", code="backbone.unavailable")


_BROKER_ERRORS = (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError, OSError, TimeoutError)


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except _BROKER_ERRORS as e:
        raise hub_error(e) from e


def _message(m: AbstractIncomingMessage) -> Message:
    ts = m.timestamp
    return Message(body=m.body, headers=amqp_headers.decoded(m.headers), routing_key=m.routing_key or "",
                   exchange=m.exchange or "", user_id=m.user_id, message_id=m.message_id,
                   priority=m.priority or 0, redelivered=bool(m.redelivered),
                   timestamp=ts.timestamp() if isinstance(ts, datetime) else None)


class _Properties(spec.Basic.Properties):
    """Message properties whose headers table keeps floats as doubles (see ``headers``)."""

    def encode_property(self, name: str, value: Any) -> bytes:
        if name == "headers":
            return amqp_headers.encode_table(value)
        return super().encode_property(name, value)


def _waves(items: list[Outgoing]) -> list[list[tuple[int, Outgoing]]]:
    """Split a batch, keeping its order, into runs without a repeated message_id."""
    waves: list[list[tuple[int, Outgoing]]] = [[]]
    seen: set[str] = set()
    for i, item in enumerate(items):
        assert item.message_id is not None
        if item.message_id in seen:
            waves.append([])
            seen.clear()
        seen.add(item.message_id)
        waves[-1].append((i, item))
    return waves


class _Slot:
    """A raw aiormq channel on the robust connection, (re)opened when used after it closed."""

    def __init__(self, connection: AbstractRobustConnection, *, confirms: bool):
        self._connection = connection
        self._confirms = confirms
        self._channel: AbstractChannel | None = None
        self._lock = asyncio.Lock()

    async def channel(self) -> AbstractChannel:
        ch = self._channel
        if ch is not None and not ch.is_closed:
            return ch
        async with self._lock:
            if self._channel is None or self._channel.is_closed:
                await self._connection.ready()
                transport = self._connection.transport
                if transport is None:
                    raise aiormq.exceptions.ChannelInvalidStateError("no connection to RabbitMQ")
                self._channel = await transport.connection.channel(
                    publisher_confirms=self._confirms, on_return_raises=self._confirms)
            return self._channel

    async def close(self) -> None:
        ch, self._channel = self._channel, None
        if ch is not None and not ch.is_closed:
            with contextlib.suppress(Exception):
                await ch.close()


class RabbitIncoming:
    """A RabbitMQ delivery (consumed or got) not settled yet."""

    def __init__(self, raw: AbstractIncomingMessage):
        self._raw = raw
        self._settled = False
        self.message = _message(raw)
        self._tags = acks.tags_of(raw.channel) if raw.delivery_tag else None  # for acks by runs (hub.backbone.acks)

    @property
    def settled(self) -> bool:
        return self._settled

    def _settle(self) -> None:
        if self._settled:
            raise UsageError("message already settled", code="backbone.already_settled")
        self._settled = True

    def _done(self) -> None:
        # only once the frame is written: a concurrent run ack must not cover a tag acked alone after it
        if self._tags is not None:
            self._tags.settled((self._raw.delivery_tag,))

    async def ack(self) -> None:
        self._settle()
        with _mapped():
            await self._raw.ack()
        self._done()

    async def reject(self, requeue: bool) -> None:
        self._settle()
        with _mapped():
            await self._raw.reject(requeue=requeue)
        self._done()


async def _ack_run(messages: list[RabbitIncoming]) -> None:
    """Ack deliveries of one channel: one ``basic.ack(multiple=True)`` for the run of tags it may
    cover (``hub.backbone.acks``), the others one by one."""
    tags = messages[0]._tags  # noqa: SLF001 - same class
    by_tag = {m._raw.delivery_tag: m for m in messages}  # noqa: SLF001
    end, alone = acks.plan(tags, by_tag)
    if end:
        for m in messages:
            m._settle()  # noqa: SLF001
        covered = [t for t in by_tag if t <= end]
        with _mapped():
            await by_tag[end]._raw.ack(multiple=True)  # noqa: SLF001
        tags.settled(covered)
        for t in alone:
            m = by_tag[t]
            with _mapped():
                await m._raw.ack()  # noqa: SLF001
            m._done()  # noqa: SLF001
        return
    for t in alone:
        await by_tag[t].ack()


class RabbitConsumer:
    """A consumer on its own robust channel."""

    def __init__(self, queue: str, callback: Callback, registry: set[RabbitConsumer]):
        self.queue = queue
        self._registry = registry
        self._callback = callback
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self, connection: AbstractRobustConnection, prefetch: int) -> None:
        self._channel = channel = await connection.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=prefetch)
            self._queue = await channel.declare_queue(self.queue, passive=True)
            self._tag = await self._queue.consume(self._on_message, no_ack=False)
        except BaseException:
            with contextlib.suppress(Exception):
                await channel.close()
            raise

    async def _on_message(self, raw: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        incoming = RabbitIncoming(raw)
        try:
            await self._callback(incoming)
        except Exception:
            log.exception("consumer callback failed on %s; requeueing the message", self.queue)
            if not incoming.settled:
                with contextlib.suppress(HubError):
                    await incoming.reject(requeue=True)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def stop_deliveries(self) -> None:
        """basic.cancel only: no new deliveries; unsettled ones stay ours to ack (graceful stop)."""
        channel, tag = self._channel, self._tag
        self._tag = None
        if channel is not None and self._queue is not None and tag is not None and not channel.is_closed:
            await bounded(self._queue.cancel(tag), f"cancelling the consumer of {self.queue}", CLOSE_TIMEOUT)

    async def cancel(self, *, abort: bool = False) -> None:
        """Stop deliveries, let running callbacks finish (or cancel them), close the channel."""
        self._registry.discard(self)
        await self.stop_deliveries()
        channel, self._channel = self._channel, None
        if channel is None:
            return
        await asyncio.sleep(0)  # let deliveries that arrived before the CancelOk start their callbacks
        running = [t for t in self._tasks if t is not asyncio.current_task()]
        if abort:
            for t in running:
                t.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await bounded(channel.close(), f"closing the channel of {self.queue}", CLOSE_TIMEOUT)


class RabbitBackbone(Backbone):
    """A robust connection to RabbitMQ."""

    def __init__(self, connection: AbstractRobustConnection, user: str, delivery_limit: int, *,
                 publish_channels: int = PUBLISH_CHANNELS, timeout: float = OPERATION_TIMEOUT):
        self.user = user
        self.delivery_limit = delivery_limit
        self.timeout = timeout
        self._connection = connection
        self._publish_slots = [_Slot(connection, confirms=True) for _ in range(publish_channels)]
        self._idle: asyncio.Queue[_Slot] = asyncio.Queue()
        for slot in self._publish_slots:
            self._idle.put_nowait(slot)
        self._get = _Slot(connection, confirms=False)
        self._probe = _Slot(connection, confirms=False)
        self._consumers: set[RabbitConsumer] = set()

    @classmethod
    async def open(cls, url: str, *, delivery_limit: int = topology.DEFAULT_DELIVERY_LIMIT,
                   publish_channels: int = PUBLISH_CHANNELS, timeout: float = OPERATION_TIMEOUT) -> RabbitBackbone:
        """Connect (robustly: it reconnects by itself, rotating among the nodes of a comma-separated
        URL, see ``hub.backbone.nodes``) as the URL's user."""
        user = user_of(url)
        with _mapped():
            connection = await connect_nodes(url, timeout=timeout)
        return cls(connection, user, delivery_limit, publish_channels=publish_channels, timeout=timeout)

    # --- topology and queue operations -------------------------------------------------------

    async def _declare(self, exchanges: tuple[topology.ExchangeSpec, ...],
                       queues: tuple[topology.QueueSpec, ...]) -> None:
        with _mapped():
            async with asyncio.timeout(self.timeout):
                ch = await self._probe.channel()
                for ex in exchanges:
                    await ch.exchange_declare(exchange=ex.name, exchange_type=ex.type, durable=True)
                for q in queues:
                    await ch.queue_declare(queue=q.name, durable=True, arguments=q.arguments)
                    for exchange, key in q.bindings:
                        await ch.queue_bind(queue=q.name, exchange=exchange, routing_key=key)

    async def _passive(self, queue: str) -> spec.Queue.DeclareOk:
        with _mapped():
            async with asyncio.timeout(self.timeout):
                ch = await self._probe.channel()
                return await ch.queue_declare(queue=queue, passive=True)

    async def depth(self, queue: str) -> int:
        return (await self._passive(queue)).message_count or 0

    async def consumers(self, queue: str) -> int:
        return (await self._passive(queue)).consumer_count or 0

    async def purge(self, queue: str) -> int:
        with _mapped():
            async with asyncio.timeout(self.timeout):
                ch = await self._probe.channel()
                return (await ch.queue_purge(queue=queue)).message_count or 0

    async def delete_queue(self, queue: str) -> None:
        with _mapped():
            async with asyncio.timeout(self.timeout):
                ch = await self._probe.channel()
                await ch.queue_delete(queue=queue)

    # --- publishing -----------------------------------------------------------------------------

    async def publish_many(self, items: list[Outgoing]) -> None:
        if not items:
            return
        items = [i if i.message_id else _with_id(i) for i in items]
        slot = await self._idle.get()
        try:
            errors: dict[int, BaseException] = {}
            for wave in _waves(items):
                errors.update(await self._publish_wave(slot, wave))
            if any(isinstance(e, (aiormq.exceptions.DeliveryError, TimeoutError)) for e in errors.values()):
                # nacked or unconfirmed: the next attempt gets a fresh channel (one that was opened
                # while a quorum queue's leader moved can go on nacking everything it publishes)
                await bounded(slot.close(), "closing a publishing channel after a nack", CLOSE_TIMEOUT)
        finally:
            self._idle.put_nowait(slot)
        if errors:
            first = errors[min(errors)]
            raise hub_error(first) from first

    async def _publish_wave(self, slot: _Slot, wave: list[tuple[int, Outgoing]]) -> dict[int, BaseException]:
        try:
            async with asyncio.timeout(self.timeout):
                ch = await slot.channel()
        except _BROKER_ERRORS as e:
            return {i: e for i, _ in wave}
        now = datetime.fromtimestamp(int(datetime.now(timezone.utc).timestamp()), timezone.utc)
        try:
            async with asyncio.timeout(self.timeout):
                # one task per message; aiormq's fair channel lock keeps them in order on the wire
                results = await asyncio.gather(
                    *(ch.basic_publish(
                        item.body, exchange=item.exchange, routing_key=item.routing_key, mandatory=True,
                        properties=_Properties(
                            delivery_mode=PERSISTENT, headers=item.headers or None, user_id=item.user_id,
                            message_id=item.message_id, priority=item.priority, timestamp=now),
                        wait=False)
                      for _, item in wave),
                    return_exceptions=True)
        except TimeoutError as e:  # blocked by a memory/disk alarm, or no confirms coming
            return {i: e for i, _ in wave}
        errors: dict[int, BaseException] = {}
        for (i, _), result in zip(wave, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, (*_BROKER_ERRORS, asyncio.CancelledError)):
                    raise result  # a programming error (bad header value, priority > 255...)
                errors[i] = result
            elif not isinstance(result, spec.Basic.Ack):
                errors[i] = aiormq.exceptions.DeliveryError(None, result)
        return errors

    async def ack_many(self, messages: list[RabbitIncoming]) -> None:
        """Ack with one ``basic.ack(multiple=True)`` per channel where safe (``hub.backbone.acks``)."""
        runs: dict[int, list[RabbitIncoming]] = {}
        alone: list[RabbitIncoming] = []
        for m in messages:
            if isinstance(m, RabbitIncoming) and m._tags is not None:  # noqa: SLF001
                runs.setdefault(id(m._tags), []).append(m)  # noqa: SLF001
            else:
                alone.append(m)
        first: BaseException | None = None
        for run in runs.values():
            try:
                await _ack_run(run)
            except Exception as e:  # noqa: BLE001 - the others' channels may be fine
                first = first or e
        try:
            await super().ack_many(alone)
        except Exception as e:  # noqa: BLE001
            first = first or e
        if first is not None:
            raise first

    # --- consuming --------------------------------------------------------------------------------

    async def consume(self, queue: str, callback: Callback, *, prefetch: int = DEFAULT_PREFETCH) -> RabbitConsumer:
        consumer = RabbitConsumer(queue, callback, self._consumers)
        with _mapped():
            async with asyncio.timeout(self.timeout):
                await consumer.start(self._connection, prefetch)
        self._consumers.add(consumer)
        return consumer

    async def get(self, queue: str) -> RabbitIncoming | None:
        with _mapped():
            async with asyncio.timeout(self.timeout):
                ch = await self._get.channel()
                delivered: DeliveredMessage = await ch.basic_get(queue, no_ack=False)
        if not isinstance(delivered.delivery, spec.Basic.GetOk):
            return None
        return RabbitIncoming(aio_pika.IncomingMessage(delivered, no_ack=False))

    async def close(self) -> None:
        """Abort running callbacks and close; RabbitMQ requeues whatever is unsettled.

        Every step is bounded (``CLOSE_TIMEOUT``): a broker that does not answer cannot hold
        a shutdown; dropping the connection has the same effect for the broker."""
        for consumer in list(self._consumers):
            await consumer.cancel(abort=True)
        self._consumers.clear()
        await bounded(asyncio.gather(*(slot.close() for slot in (*self._publish_slots, self._get, self._probe))),
                      "closing the publishing channels", CLOSE_TIMEOUT)
        await bounded(self._connection.close(), "closing the connection", CLOSE_TIMEOUT)


def _with_id(item: Outgoing) -> Outgoing:
    return Outgoing(item.exchange, item.routing_key, item.body, item.headers, item.user_id, new_message_id(),
                    item.priority)
