"""The hub worker: a stage runner. intake → checks → one transaction → publish → ack.

Exactly-once recording, at-least-once delivery: the document, its deliveries, its records
and its outgoing messages (the outbox) commit in one transaction; the intake message is
acked only after that commit and after RabbitMQ confirmed every outgoing message. A
redelivered package finds its rows and only finishes its outbox.

Messages are processed in batches (one transaction and one round of confirms per batch),
in overlapping stages: the checks of batch N+2 run in the check process while batch N+1 is
recorded and batch N is published and acked (``HUB_PIPELINE_DEPTH`` batches at most between
record and ack). Transactions commit one at a time, in order, so the audit log's order is
the commit order; each batch is still published only after its commit and acked only after
its confirms.

What a batch records and sends is decided in :mod:`hub.pipeline.decide` (pure), written by
:mod:`hub.pipeline.recording` and relayed by :mod:`hub.pipeline.outbox`; this module runs
the stages, holds packages through outages and settles the intake messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub import constants as C
from hub.backbone.base import Backbone, Incoming, Outgoing
from hub.pipeline.checks import CheckContext, Verdict
from hub.pipeline.decide import UNRECORDABLE, Intake, Plan
from hub.pipeline import large
from hub.pipeline.gate import IntakeGate
from hub.pipeline.intake import IntakeMessage, ack_all
from hub.pipeline.outbox import Relay, Sent
from hub.pipeline.recording import Recorder
from hub.pipeline.runner import CheckRunner
from hub.pipeline import retention, submit
from hub.pipeline.stats import Stats
from hub.pki.identity import Identity
from hub.registry.feed import RegistryFeed
from hub.registry.model import Registry
from hub.registry.store import registry_version
from hub.retry import is_conflict, is_transient, retry
from hub.settings import Settings
from hub.store import leader

log = logging.getLogger("hub.worker")

# Confirmed rows wait for a batch's transaction only while a batch is on its way to one (taken
# from the intake and being checked, checked and waiting for the record stage, or being
# recorded): under load the next batch's transaction marks them (one commit less per batch); an
# idle hub marks them at once, so the outbox backlog and the audit log's deliveries never lag
# behind the inboxes (an auditor reading the trail right after a delivery finds it).
MARK_POLL = 0.02  # seconds between stage 4's looks at whether a transaction took them

__all__ = ["UNRECORDABLE", "Snapshot", "Stats", "Worker"]


@dataclass(frozen=True)
class Snapshot:
    """What the worker decides with: the registry and trust of one version (the check
    processes get the same, through the runner)."""

    checks: CheckContext
    version: int

    @property
    def registry(self) -> Registry:
        return self.checks.registry


class _NotTheMessage(Exception):
    """Recording failed for a reason that is not the package's own (its refusal fails too)."""

    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0][:300] if str(e) else ""


class Worker:
    """One hub worker. Many may run against the same broker and database."""

    def __init__(self, settings: Settings, engine: AsyncEngine, backbone: Backbone, hub: Identity, *,
                 runner: CheckRunner | None = None, batch_size: int = 200, batch_wait: float = 0.005,
                 reload_interval: float = 2.0, feed: RegistryFeed | None = None):
        self.settings = settings
        self.engine = engine
        self.backbone = backbone
        self.hub = hub
        self.runner = runner or CheckRunner(settings.check_processes, freeze=settings.gc_freeze)
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        self.reload_interval = reload_interval
        # the registry and trust from the change log (an instance's workers and API share one)
        self.feed = feed or RegistryFeed(keep_hours=settings.registry_log_hours)
        self.stats = Stats()
        self.snapshot: Snapshot | None = None  # the registry and trust the worker decides with
        self.relay = Relay(engine, backbone, hub.organ_id, audit=settings.audit)
        self.recorder = Recorder(engine, self.relay, hub, audit=settings.audit,
                                 by_reference_bytes=settings.by_reference_bytes)
        self._queue: asyncio.Queue[Incoming] = asyncio.Queue()
        self._checked: asyncio.Queue[tuple[list[Incoming], list[Verdict]]] = asyncio.Queue(maxsize=1)
        self._recorded: asyncio.Queue[tuple[list[Incoming], Sent]] = asyncio.Queue()
        self._depth = asyncio.Semaphore(settings.pipeline_depth)  # batches recorded, not yet acked
        self._to_mark: Sent = []  # confirmed outbox rows not marked sent yet (the next transaction takes them)
        self._marks = asyncio.Event()  # set when _to_mark got rows
        self._unrecorded = 0  # batches taken from the intake whose transaction has not ended yet
        self._marking = False
        self._tasks: list[asyncio.Task] = []
        self._last_reload = 0.0
        self._inboxes: set[str] = set()
        self._in_flight = 0
        self.sweeper = leader.Leadership(engine, leader.SWEEPER, "outbox sweeper")
        self.gate = IntakeGate(backbone, settings.prefetch, self._take, self._probe_database,
                               held=lambda: self._in_flight)

    @property
    def registry(self) -> Registry:
        assert self.snapshot is not None, "start() or reload() first"
        return self.snapshot.registry

    @property
    def _version(self) -> int:
        return self.snapshot.version if self.snapshot is not None else -1

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, *, consume: bool = True) -> None:
        """Declare, load the registry, finish the outbox, run the stages and consume ``hub.intake``;
        ``consume=False``: everything but the subscription, which :meth:`consume` opens once the
        process is up (its API imported and listening: that blocks the event loop for a while, and a
        package delivered meanwhile would wait that long in the worker's hands)."""
        self.gate.starting = not consume
        await self.backbone.declare_topology()
        await self.reload(force=True)
        await self.relay_pending(older_than=0)
        self._tasks = [
            asyncio.create_task(self._check_stage(), name="hub-check-stage"),
            asyncio.create_task(self._record_stage(), name="hub-record-stage"),
            asyncio.create_task(self._deliver_stage(), name="hub-deliver-stage"),
            asyncio.create_task(self._sent_stage(), name="hub-sent-stage"),
            asyncio.create_task(self._sweep_loop(), name="hub-outbox-sweeper"),
        ]
        await self.gate.apply()

    async def consume(self) -> None:
        """Open the intake subscription that ``start(consume=False)`` held closed."""
        if self.gate.starting:
            self.gate.starting = False
            await self.gate.apply()

    async def _take(self, m: IntakeMessage) -> None:
        self._in_flight += 1
        await self._queue.put(m)

    async def _probe_database(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    @property
    def consuming(self) -> bool:
        """Subscribed to hub.intake now (not paused by an outage, stopped by maintenance or stopping)."""
        return self.gate.consuming

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work, finish in-flight batches within ``timeout``, then close.

        Every broker call here is bounded (``hub.backbone.base.bounded``): with the broker in
        trouble the worker still stops, leaving unsettled packages to RabbitMQ's redelivery."""
        log.info("stop: cancelling the intake subscription")
        self.gate.stopping = True
        await self.gate.apply()
        log.info("stop: waiting up to %.0f s for %d in-flight package(s)", timeout, self._in_flight)
        try:
            await asyncio.wait_for(self._drain(), timeout)
        except asyncio.TimeoutError:
            log.warning("stop: %d package(s) not finished in %.0f s; RabbitMQ will redeliver them",
                        self._in_flight, timeout)
        await self.gate.close_retired(force=True)
        for t in self._tasks:
            t.cancel()
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        await self.sweeper.release()
        await self.recorder.close()
        log.info("stop: closing the check process(es)")
        self.runner.close()
        s = self.stats
        log.info("worker stopped: accepted=%d refused=%d duplicates=%d dead=%d delivered=%d batches=%d retries=%d "
                 "marked_alone=%d seconds=%s", s.accepted, s.refused, s.duplicates, s.dead, s.delivered, s.batches,
                 s.retries, s.marked_alone,
                 {k: round(v, 2) for k, v in s.seconds.items()})

    async def _drain(self) -> None:
        while self._in_flight > 0 or self._to_mark or self._marking:
            await asyncio.sleep(0.01)

    async def _reload_until_done(self) -> None:
        """Reload the snapshot, waiting out an outage; a failure that is no outage keeps the old one."""
        async def outage(_attempt: int, e: BaseException) -> None:
            await self.gate.outage("reloading the registry", e)

        try:
            await retry(self.reload, stop=lambda: self.gate.stopping, wait=outage)
        except Exception:  # noqa: BLE001 - a bug or a bad registry: check with what we have
            log.exception("registry reload failed; checking with the snapshot of version %d", self._version)

    async def reload(self, force: bool = False) -> None:
        """Bring the registry/trust snapshot up to the database's version (the feed applies the
        change log's deltas, or loads everything); declare new inboxes. ``force``: now, whatever
        the time since the last look."""
        now = time.monotonic()
        if not force and now - self._last_reload < self.reload_interval:
            return
        self._last_reload = now
        loaded = await self.feed.refresh(self.engine)
        if self.snapshot is not None and loaded.version == self._version:
            return
        from hub.context import schema_validator

        checks = CheckContext(loaded.registry, loaded.trust, schema_validator(), self.settings.max_package_bytes,
                              self.settings.allow_sha1, relay_id=self.hub.organ_id)
        self.runner.set_context(checks)
        for a in loaded.registry.systems():
            if a.code not in self._inboxes:
                await self.backbone.declare_inbox(a.code)
                self._inboxes.add(a.code)
        self.snapshot = Snapshot(checks, loaded.version)

    async def _registry_moved(self) -> bool:
        """Reload now if the registry changed since the snapshot (another instance's change may be
        younger than ``reload_interval``); False when unchanged or unreadable (the record stage
        meets the outage)."""
        try:
            async with self.engine.connect() as conn:
                if await registry_version(conn) == self._version:
                    return False
            await self.reload(force=True)
        except Exception as e:  # noqa: BLE001 - keep the verdicts of the snapshot in use
            log.warning("could not look for a newer registry: %s", _first_line(e))
            return False
        return True

    # --- stage 1: batch and check ---------------------------------------------------------

    def adapter_user(self, msg) -> str:
        """The broker-validated publisher, as the checks see it.

        The HTTP gateway publishes as the hub's own user with the calling agency in a header
        (it authenticated the caller); only the hub's connection can publish with that
        user_id, so no adapter can forge it. ``""`` = no user_id (refused).
        """
        user = msg.user_id or ""
        agency = (msg.headers or {}).get(C.H_GATEWAY_AGENCY)
        if agency and user == self.backbone.user:
            a = self.registry.get(agency)
            return (a.amqp_user or a.code) if a is not None and a.connected else ""
        return user

    def _downstream(self, batch: list[Incoming]) -> int:
        """Packages of earlier batches still on their way (checked, being recorded, published or acked)."""
        return self._in_flight - len(batch) - self._queue.qsize()

    async def _next_batch(self) -> list[Incoming]:
        """Up to ``batch_size`` packages: what the intake holds now and, only while earlier batches are
        still on their way, what arrives within ``batch_wait`` (they could not be recorded sooner).
        An idle pipeline takes a lone package on at once: a wait there would only add to its latency."""
        batch = [await self._queue.get()]
        deadline = time.monotonic() + self.batch_wait
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                if self._downstream(batch) <= 0:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), left))
                except asyncio.TimeoutError:
                    break
        return batch

    async def _check_stage(self) -> None:
        while True:
            batch = await self._next_batch()
            self._unrecorded += 1  # until its transaction ends (_record_stage), or it is requeued here
            await self._reload_until_done()
            try:
                t0 = time.perf_counter()
                verdicts = await self._check(batch)
                if any(not v.accepted for v in verdicts) and await self._registry_moved():
                    verdicts = await self._check(batch)  # refuse on the registry as it is now, never an old one
                self.stats.seconds["check"] += time.perf_counter() - t0
                for v in verdicts:
                    self.stats.observe_check(v.seconds)
            except Exception:  # noqa: BLE001 - a bug: the delivery limit dead-letters a poison batch
                log.exception("checks of a batch of %d failed; requeueing", len(batch))
                self._unrecorded -= 1
                await self._requeue(batch)
                continue
            await self._checked.put((batch, verdicts))
            # not held while the next batch is awaited: a large package's bytes would stay alive idle
            batch = verdicts = None  # type: ignore[assignment]

    async def _check(self, batch: list[Incoming]) -> list[Verdict]:
        await large.resolve_intake(self.engine, batch)  # by-reference packages get their bytes
        registry = self.snapshot.checks.registry  # a package an HTTP entry point handed over: its connection
        items = [(m.message.body, submit.connection_of(m.message, self.backbone.user, registry)
                  or self.adapter_user(m.message)) for m in batch]

        def new_pool(attempt: int, _e: BaseException) -> None:
            # a check process died (OOM killer...): a new pool, same batch
            log.warning("the check process pool broke; starting a new one (attempt %d)", attempt)
            self.runner.set_context(self.snapshot.checks)

        async def no_wait(_attempt: int, _e: BaseException) -> None:
            pass

        return await retry(lambda: self.runner.check_many(items), attempts=4,
                           transient=lambda e: isinstance(e, BrokenProcessPool), on_retry=new_pool, wait=no_wait)

    # --- stage 2: record; stage 3: publish, ack ------------------------------------------

    async def _record_stage(self) -> None:
        """Record batches one transaction after another, in order; hand each to the deliver stage.

        An outage (database or broker) is waited out with the batch held: nothing is requeued,
        so no outage counts towards the delivery limit. A redone transaction first looks for
        what an attempt that may have committed recorded, so nothing is recorded twice. A
        failure that is no outage belongs to a message: the batch is split and that message
        alone is refused (``hub.unrecordable``)."""
        while True:
            batch, verdicts = await self._checked.get()
            taken = 1
            try:
                await self._depth.acquire()
                # the batches checked while this one waited join its transaction: the record stage
                # is the one a batch's fixed cost (its round trips) holds, so a backlog is recorded
                # in one transaction rather than one after another (the check stage, if it waits to
                # hand over a batch, first puts it in the queue this get made room in); taken until
                # the batch size is reached, so at most one batch over it (and never more than the
                # intake's prefetch: only that many messages are in flight)
                await asyncio.sleep(0)
                while len(batch) < self.batch_size:
                    try:
                        more, more_verdicts = self._checked.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                    batch, verdicts, taken = batch + more, verdicts + more_verdicts, taken + 1
                t0 = time.perf_counter()
                outgoing = await self._record_held(batch, verdicts)
            except Exception:  # noqa: BLE001 - a bug: one bad batch must not kill the worker
                self._depth.release()
                log.exception("batch of %d failed; requeueing", len(batch))
                await self._requeue(batch)
                continue
            finally:
                self._unrecorded -= taken
            self.stats.seconds["record"] += time.perf_counter() - t0
            if outgoing is None:  # stopping during an outage: RabbitMQ redelivers what we held
                self._depth.release()
                self._in_flight -= len(batch)
                continue
            self._recorded.put_nowait((batch, outgoing))
            # not held while the next batch is awaited: a large package's bytes would stay alive idle
            batch = verdicts = outgoing = None  # type: ignore[assignment]

    async def _deliver_stage(self) -> None:
        """Publish (confirmed) and ack recorded batches, in the order they committed."""
        while True:
            batch, outgoing = await self._recorded.get()
            try:
                await self.deliver(batch, outgoing)
            except Exception:  # noqa: BLE001 - a bug: the redelivery finds the batch recorded
                log.exception("publishing a batch of %d failed; requeueing", len(batch))
                await self._requeue(batch)
            finally:
                self._depth.release()
            batch = outgoing = None  # type: ignore[assignment]  # as in _record_stage

    async def deliver(self, batch: list[Incoming], outgoing: Sent) -> None:
        """Publish what a committed batch sends (confirmed, retried through a broker outage with the
        batch held), then ack its intake messages."""
        sec = self.stats.seconds
        t2 = time.perf_counter()
        if outgoing and not await self._publish_held([o for _, o in outgoing]):
            self._in_flight -= len(batch)  # stopping: the redelivery (or the sweeper) finishes the outbox
            return
        t3 = time.perf_counter()
        try:
            await self._ack(batch)
        except Exception as e:  # noqa: BLE001 - the connection is gone: RabbitMQ redelivers, we finish
            log.warning("ack failed (%s); the redelivery will find the package recorded", e)
        t4 = time.perf_counter()
        if outgoing:
            # Marking the outbox sent (and logging the deliveries) is off the critical path, in the
            # next batch's transaction: if the worker dies first, the rows are published again.
            # (without their bodies: marking needs the row ids and headers, and a body held here
            # until then would keep its bytes alive)
            self._to_mark += [(i, replace(o, body=b"")) for i, o in outgoing if i is not None]
            self._marks.set()
        sec["publish"] += t3 - t2
        sec["ack"] += t4 - t3
        self.stats.delivered += len(outgoing)
        self.stats.batches += 1
        self._in_flight -= len(batch)

    async def _record_held(self, batch: list[Incoming], verdicts: list[Verdict], *, retry: bool = False):
        """The batch's transaction, retried through outages; None only when stopping meanwhile.

        Only an outage is retried as such. A conflict (``IntegrityError``: another worker recorded
        the same package or DocumentId meanwhile) is decided again, once, with what the store now
        holds; anything else belongs to a message: the batch is split to find it."""
        systemic = 0
        redecided = False
        while True:
            try:
                out = await self._record(batch, verdicts, retry=retry)
                if systemic:
                    await self.gate.held_back(False)
                return out
            except Exception as e:  # noqa: BLE001 - classified below
                if self.gate.stopping:
                    return None
                retry = True  # the failed attempt may have committed (a lost COMMIT reply)
                self.stats.retries += 1
                if is_transient(e):
                    await self.gate.outage(f"recording a batch of {len(batch)}", e)
                    continue
                if is_conflict(e) and not redecided:
                    redecided = True
                    log.info("recording a batch of %d met a conflicting row (%s); deciding again with what the "
                             "store holds now", len(batch), _first_line(e))
                    continue
                if len(batch) > 1:
                    log.warning("recording a batch of %d failed (%s: %s); recording its packages one by one",
                                len(batch), type(e).__name__, _first_line(e))
                    out: Sent = []
                    for m, v in zip(batch, verdicts):
                        one = await self._record_held([m], [v], retry=retry)
                        if one is None:
                            return None
                        out += one
                    return out
                try:
                    return await self._record_unrecordable(batch[0], verdicts[0], e)
                except _NotTheMessage as failed:
                    # even its refusal cannot be recorded: the fault is the store's, not this
                    # package's (a trigger, a permission, a migration): hold it and take no more
                    systemic += 1
                    await self.gate.held_back(True, f"recording ({failed.cause})", systemic)

    async def _record_unrecordable(self, m: Incoming, v: Verdict, exc: BaseException):
        """One package whose own content fails the transaction: refuse it alone (audited, status 02).
        Raises ``_NotTheMessage`` when the refusal fails too; None when stopping during an outage."""
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        sender = v.sender if v.sender and len(v.sender) <= 13 else None
        refusal = replace(v, accepted=False, reason=UNRECORDABLE, stage="record", element=None, package=None,
                          routes=(), claimed_sender=sender, claimed_document_id=(v.document_id or "")[:255] or None,
                          message=f"the hub cannot record this package ({detail}); only this package is refused")

        async def outage(_attempt: int, e: BaseException) -> None:
            await self.gate.outage("recording a refusal", e)

        try:
            out = await retry(lambda: self._record([m], [refusal], retry=True), stop=lambda: self.gate.stopping,
                              wait=outage)
        except Exception as e:  # noqa: BLE001 - classified below
            if is_transient(e):  # stopping during an outage
                return None
            raise _NotTheMessage(f"{type(e).__name__}: {_first_line(e)}") from e
        log.error("package %s from %s cannot be recorded (%s: %s); refused it alone",
                  v.document_id or v.sha256[:16], v.sender or m.message.user_id or "?", type(exc).__name__, detail)
        return out

    async def _publish_held(self, items: list[Outgoing]) -> bool:
        """Publish (confirmed), retrying with backoff while the broker is away; False only when stopping."""

        def count(_attempt: int, _e: BaseException) -> None:
            self.stats.retries += 1

        return await self.relay.publish(items, stopping=lambda: self.gate.stopping, on_retry=count)

    async def _ack(self, batch: list[Incoming]) -> None:
        if all(isinstance(m, IntakeMessage) for m in batch):
            await ack_all(self.backbone, batch)  # one basic.ack(multiple=True) where safe
            return
        await self.backbone.ack_many(batch)

    async def _requeue(self, batch: list[Incoming]) -> None:
        self.stats.retries += 1
        await asyncio.sleep(1.0)  # back off before the broker redelivers (delivery limit then dead-letters)
        for m in batch:
            try:
                await m.reject(requeue=True)
            except Exception:  # noqa: BLE001 - connection gone: RabbitMQ redelivers anyway
                pass
        self._in_flight -= len(batch)

    # --- recording ------------------------------------------------------------------------

    async def _record(self, batch: list[Incoming], verdicts: list[Verdict], *, retry: bool = False) -> Sent:
        """One attempt at the batch's transaction. Packages count as accepted/refused/... only once
        it committed. ``retry``: an earlier attempt may have committed; what it recorded is not
        recorded again."""
        items = [Intake(m.message, self.adapter_user(m.message)) for m in batch]
        marks, self._to_mark = self._to_mark, []  # confirmed rows of earlier batches: marked in this transaction
        try:
            out, plan = await self.recorder.record(items, verdicts, self.registry, retry=retry, marks=marks)
        except BaseException:
            self._to_mark = marks + self._to_mark
            raise
        self._count(plan)
        return out

    def _count(self, plan: Plan) -> None:
        s = self.stats
        s.accepted += plan.accepted
        s.refused += plan.refused
        s.duplicates += plan.duplicates
        s.dead += plan.dead
        for k, n in plan.by_reason.items():
            s.by_reason[k] = s.by_reason.get(k, 0) + n
        for k, n in plan.by_auth.items():
            s.by_auth[k] = s.by_auth.get(k, 0) + n

    # --- stage 3 and housekeeping: the outbox ---------------------------------------------

    async def _sent_stage(self) -> None:
        """Stage 4: mark confirmed outbox rows sent and log their deliveries, alone only when no batch is on
        its way to a transaction that would take them (the next batch's does: one commit less per batch)."""
        while True:
            await self._marks.wait()
            while self._to_mark and self._unrecorded > 0:
                await asyncio.sleep(MARK_POLL)
            self._marks.clear()
            sent, self._to_mark = self._to_mark, []
            if not sent:
                continue
            self._marking = True
            try:
                t0 = time.perf_counter()
                await self.relay.mark_sent_retrying(sent)
                self.stats.seconds["mark_sent"] += time.perf_counter() - t0
                self.stats.marked_alone += 1
            except Exception:  # noqa: BLE001 - the sweeper republishes what stayed unmarked
                log.exception("marking %d outbox rows sent failed", len(sent))
            finally:
                self._marking = False
                sent = None  # type: ignore[assignment]  # its messages' bodies, not kept till the next

    async def relay_pending(self, older_than: float = 30.0, limit: int = 1000) -> int:
        """Publish outbox rows left unsent (a worker died between commit and confirm)."""
        return await self.relay.relay_pending(older_than, limit)

    async def prune_seen(self) -> int:
        """Forget recorded intake messages older than ``HUB_INTAKE_SEEN_DAYS`` (``hub.pipeline.retention``)."""
        n = await retention.prune_seen(self.engine, self.settings.intake_seen_days)
        if n:
            log.info("sweeper pruned %d idempotency row(s) older than %g days", n, self.settings.intake_seen_days)
        return n

    async def _sweep_loop(self) -> None:
        """Housekeeping: follow the maintenance switch (every 2 s), relay stuck outbox rows (every 15 s)
        and prune the idempotency table (hourly), both in the one worker elected sweeper among all
        the hub's processes."""
        last_sweep = time.monotonic()
        last_prune = last_sweep - retention.EVERY_SECONDS + 60  # the first a minute after start
        while True:
            await asyncio.sleep(2)
            try:
                await self.follow_maintenance()
            except Exception as e:  # noqa: BLE001 - retried next round
                log.warning("maintenance check failed: %s", e)
            if time.monotonic() - last_sweep >= 15:
                last_sweep = time.monotonic()
                leading = False
                try:
                    leading = await self.sweeper.lead()
                    if not leading:
                        continue
                    n = await self.relay_pending(older_than=30)
                    if n:
                        log.info("outbox sweeper relayed %d pending message(s)", n)
                except Exception as e:  # noqa: BLE001 - retried next round
                    log.warning("outbox sweep failed: %s", e)
                if leading and time.monotonic() - last_prune >= retention.EVERY_SECONDS:
                    last_prune = time.monotonic()
                    try:
                        await self.prune_seen()
                    except Exception as e:  # noqa: BLE001 - retried next hour
                        log.warning("pruning the idempotency table failed: %s", e)

    async def follow_maintenance(self) -> None:
        """``stopped``: take nothing from hub.intake (in-flight packages finish); otherwise consume."""
        from hub.registry.store import maintenance_mode

        async with self.engine.connect() as conn:
            mode = await maintenance_mode(conn)
        stopped = mode == "stopped"
        if stopped == self.gate.maintenance_stopped or not self._tasks:
            await self.gate.close_retired()
            return
        self.gate.maintenance_stopped = stopped
        await self.gate.apply()
        if stopped:
            log.info("maintenance: stopped taking packages from %s", C.QUEUE_INTAKE)
        else:
            log.info("maintenance: consuming %s again", C.QUEUE_INTAKE)
