"""The intake gate: whether a worker consumes ``hub.intake``, and the packages it holds meanwhile.

The worker consumes unless it is still starting (its process is not up yet), an outage paused
it, maintenance stopped it, or it is stopping.
Closing the gate only cancels the subscription (``basic.cancel``): the packages already
delivered stay held, unsettled, so they count no delivery towards the queue's delivery limit;
their channel is closed once every one of them is settled. Reopening subscribes anew.

An outage (``outage()``) closes the gate, probes the database with backoff until it
answers, and reopens it; stages that meet the same outage wait for that one recovery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from hub import constants as C
from hub.backbone.base import Backbone, Consumer, Incoming, bounded
from hub.pipeline.intake import IntakeMessage
from hub.retry import backoff, retry

log = logging.getLogger("hub.worker")

BROKER_STEP = 5.0  # seconds for one broker call while pausing or stopping
PROBE_TIMEOUT = 5.0  # seconds for one "is the database back?" probe


class IntakeGate:
    def __init__(self, backbone: Backbone, prefetch: int, deliver: Callable[[IntakeMessage], Awaitable[None]],
                 probe: Callable[[], Awaitable[None]], held: Callable[[], int] = lambda: 0):
        self.backbone = backbone
        self.prefetch = prefetch
        self._deliver = deliver  # the worker takes an intake message
        self._probe = probe  # raises while the database is unavailable
        self._in_flight = held  # for the log line: packages the worker holds
        self.paused = False  # an outage
        self.failing = False  # the store refuses every transaction (held_back)
        self.maintenance_stopped = False
        self.stopping = False
        self.starting = False  # held closed until the process is up (Worker.start(consume=False))
        self.pauses = 0
        self._consumer: Consumer | None = None
        self._generation = 0
        self._held: dict[int, int] = {}
        self._retired: dict[int, Consumer] = {}
        self._lock = asyncio.Lock()
        self._outage_lock = asyncio.Lock()
        self._healthy_at = 0.0

    @property
    def consuming(self) -> bool:
        """Subscribed to hub.intake right now."""
        return self._consumer is not None

    def _on_message_for(self, generation: int):
        def settled() -> None:
            self._held[generation] -= 1

        async def on_message(m: Incoming) -> None:
            self._held[generation] = self._held.get(generation, 0) + 1
            await self._deliver(IntakeMessage.of(m, self.backbone.user, settled))

        return on_message

    async def apply(self) -> None:
        """Subscribe or unsubscribe as the flags say; close paused channels whose packages are settled."""
        async with self._lock:
            want = not (self.paused or self.failing or self.maintenance_stopped or self.stopping or self.starting)
            if want and self._consumer is None:
                self._generation += 1
                self._consumer = await self.backbone.consume(C.QUEUE_INTAKE, self._on_message_for(self._generation),
                                                             prefetch=self.prefetch)
            elif not want and self._consumer is not None:
                consumer, self._consumer = self._consumer, None
                self._retired[self._generation] = consumer
                await bounded(consumer.stop_deliveries(), "cancelling the intake subscription", BROKER_STEP)
        await self.close_retired()

    async def close_retired(self, *, force: bool = False) -> None:
        for gen, consumer in list(self._retired.items()):
            if force or self._held.get(gen, 0) <= 0:
                del self._retired[gen]
                await bounded(consumer.cancel(), "closing a paused intake channel", BROKER_STEP)

    async def held_back(self, failing: bool, what: str = "", attempt: int = 0) -> None:
        """Recording fails for every package (not an outage the probe can see): take no more
        packages and wait before the next attempt (1 s doubling to 30 s); ``False`` resumes."""
        if not failing:
            if self.failing:
                self.failing = False
                log.warning("recording works again; consuming %s again", C.QUEUE_INTAKE)
                await self.apply()
            return
        if attempt in (1, 5) or attempt % 20 == 0:
            log.warning("%s fails for every package; holding %d package(s), taking no more, retrying (attempt %d)",
                        what, self._in_flight(), attempt)
        if not self.failing:
            self.failing = True
            try:
                await self.apply()
            except Exception as e:  # noqa: BLE001 - the broker may be down too
                log.warning("pausing intake: %s", e)
        await asyncio.sleep(backoff(attempt, first=1.0, cap=30.0))

    async def outage(self, what: str, exc: BaseException) -> None:
        """A dependency failed while ``what``: pause intake, probe with backoff until the database
        answers, resume. Concurrent callers wait for the same recovery."""
        failed_at = time.monotonic()
        async with self._outage_lock:
            if self._healthy_at > failed_at:
                return  # another stage waited this outage out meanwhile
            self.pauses += 1
            text = str(exc).splitlines()[0][:300] if str(exc) else ""
            log.warning("%s failed (%s: %s); pausing intake: holding %d package(s) unsettled, taking no more "
                        "until the database answers", what, type(exc).__name__, text, self._in_flight())
            self.paused = True
            try:
                await self.apply()
            except Exception as e:  # noqa: BLE001 - the broker may be down too; retried on resume
                log.warning("pausing intake: %s", e)
            async def probe() -> None:
                async with asyncio.timeout(PROBE_TIMEOUT):
                    await self._probe()

            def still_down(attempt: int, e: BaseException) -> None:
                if attempt in (1, 5) or attempt % 20 == 0:
                    log.info("database still unavailable after %.0f s (%s)", time.monotonic() - failed_at,
                             type(e).__name__)

            if not self.stopping:
                await asyncio.sleep(backoff(1))
                try:  # any failure of the probe means "still down" (or a probe timeout)
                    await retry(probe, transient=lambda _e: True, first=backoff(2), stop=lambda: self.stopping,
                                on_retry=still_down)
                except Exception:  # noqa: BLE001 - stopping while still down
                    pass
            self.paused = False
            self._healthy_at = time.monotonic()
            while not self.stopping:
                try:
                    await self.apply()
                    break
                except Exception as e:  # noqa: BLE001 - the broker is reconnecting
                    log.warning("resuming intake: %s; retrying", e)
                    await asyncio.sleep(1.0)
            if not self.stopping:
                log.warning("intake resumed after %.1f s: consuming %s again", time.monotonic() - failed_at,
                            C.QUEUE_INTAKE)
