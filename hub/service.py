"""Assemble and run the hub: engine, backbone, hub identity, workers (sharing one check-time
histogram), the dead-letter keeper and the audit sealer (``running_hub``), and the HTTP API
and console beside them (``running_api``, ``serve``). Used by `hub serve`, `hub demo`,
`hub bench` and the tests."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from prometheus_client import Histogram
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.backbone.base import Backbone
from hub.backbone.factory import connect
from hub.backbone.nodes import describe
from hub.metrics import check_seconds
from hub.pipeline.runner import CheckRunner
from hub.pipeline.worker import Worker
from hub.pki.identity import Identity
from hub.registry.feed import RegistryFeed
from hub.settings import Settings
from hub.store.engine import make_engine, migrate

log = logging.getLogger("hub.service")


@dataclass
class Hub:
    settings: Settings
    engine: AsyncEngine
    backbone: Backbone
    identity: Identity
    workers: list[Worker] = field(default_factory=list)
    broker: object | None = None  # the embedded broker, when HUB_AMQP_URL is unset
    keeper: object | None = None  # the dead-letter keeper
    sealer: object | None = None  # the audit-log sealer
    check_seconds: Histogram = field(default_factory=check_seconds)  # its workers' checks (GET /metrics)
    feed: RegistryFeed | None = None  # the registry and trust its workers and its API check with

    async def consume(self) -> None:
        """Open the intake of workers started with ``running_hub(..., consume=False)``."""
        for w in self.workers:
            await w.consume()

    async def connect_adapter(self, user: str, url: str | None = None) -> Backbone:
        """A backbone connection for an adapter: the embedded broker, or RabbitMQ at ``url``."""
        if self.broker is not None:
            return await connect(None, user=user, broker=self.broker)
        return await connect(url)


@asynccontextmanager
async def running_hub(settings: Settings, *, workers: int = 1, broker=None, batch_size: int = 200,
                      check_processes: int | None = None, consume: bool = True):
    """Start the hub's workers; stop them gracefully on exit. ``consume=False``: they take no package
    until ``hub.consume()`` (`hub serve` opens the intake once its API listens)."""
    from hub.pipeline.large import return_large_buffers_to_the_os

    return_large_buffers_to_the_os()  # large packages: bounded peak memory (see its docstring)
    engine = make_engine(settings.database_url)
    await migrate(engine)
    identity = Identity.load(settings.hub_organ_id, settings.key_file, settings.cert_file)
    if settings.amqp_url is None and broker is None:
        from hub.backbone.embedded import EmbeddedBroker

        broker = EmbeddedBroker()
    hub_bb = await connect(settings.amqp_url, broker=broker if not settings.amqp_url else None)
    hub = Hub(settings, engine, hub_bb, identity, broker=broker if not settings.amqp_url else None,
              feed=RegistryFeed(keep_hours=settings.registry_log_hours))
    procs = settings.check_processes if check_processes is None else check_processes
    try:
        for _ in range(workers):
            bb = await connect(settings.amqp_url, broker=hub.broker) if hub.workers else hub_bb
            w = Worker(settings, engine, bb, identity, runner=CheckRunner(procs, freeze=settings.gc_freeze),
                       batch_size=batch_size, reload_interval=settings.registry_poll_seconds, feed=hub.feed)
            w.stats.check_seconds = hub.check_seconds
            await w.start(consume=consume)
            hub.workers.append(w)
        from hub.pipeline.deadletters import DeadLetterKeeper

        hub.keeper = DeadLetterKeeper(engine, hub_bb)
        await hub.keeper.start()
        from hub.audit.sealer import Sealer

        hub.sealer = Sealer(engine, identity, every_entries=settings.seal_entries, every_seconds=settings.seal_seconds)
        await hub.sealer.start()
        yield hub
    finally:
        # Each step is bounded: with the broker or the database in trouble the hub still stops,
        # saying what it waited for; RabbitMQ redelivers whatever was left unsettled.
        if hub.sealer is not None:
            await _step(hub.sealer.stop(), "the audit sealer to stop")
        if hub.keeper is not None:
            await _step(hub.keeper.stop(), "the dead-letter keeper to stop")
        for w in hub.workers:
            await _step(w.stop(), "the worker to finish its in-flight packages", STOP_TIMEOUT + 10)
        for w in hub.workers[1:]:
            await _step(w.backbone.close(), "a worker's broker connection to close")
        await _step(hub_bb.close(), "the broker connection to close")
        await _step(engine.dispose(), "the database connections to close")


STEP_TIMEOUT = 8.0  # seconds for one shutdown step (each broker call inside has its own, shorter, bound)
STOP_TIMEOUT = 10.0  # seconds a worker waits for its in-flight packages (Worker.stop's default)
HARD_EXIT_AFTER = 90.0  # `hub serve`: exit anyway this long after SIGTERM (a step ignored its bound)


async def _step(step, what: str, seconds: float = STEP_TIMEOUT) -> None:
    log.info("stopping: waiting up to %.0f s for %s", seconds, what)
    try:
        async with asyncio.timeout(seconds):
            await step
    except TimeoutError:
        log.warning("stopping: gave up waiting for %s after %.0f s", what, seconds)
    except Exception as e:  # noqa: BLE001 - shutting down: log and go on with the next step
        log.warning("stopping: %s failed: %s", what, e)


@asynccontextmanager
async def running_api(hub: Hub, host: str = "127.0.0.1", port: int = 8080, ssl_context=None):
    """The HTTP API and the operators' console beside the workers, sharing their engine and broker."""
    from hub.api.app import ApiState, create_app, start_site
    from hub.web import pages

    state = ApiState(hub.settings, hub.engine, hub.backbone, hub.identity, hub=hub, feed=hub.feed)
    app = create_app(state)
    pages.setup(app)  # the console under /admin (it reads the API's state; the API knows nothing of it)
    runner = await start_site(app, host, port, ssl_context)
    try:
        yield app, runner
    finally:
        await runner.cleanup()


async def serve(settings: Settings, stop: asyncio.Event, *, workers: int = 1, host: str = "127.0.0.1",
                port: int = 8080, ssl_context=None, hard_exit: bool = False) -> None:
    """Run until ``stop`` is set (the CLI sets it on SIGTERM/SIGINT). ``hard_exit`` (the CLI):
    should a shutdown step hang despite its bound, the process exits ``HARD_EXIT_AFTER`` s later."""
    # The intake opens once the API listens: importing and building it blocks the event loop
    # (0.4-2 s at load averages 3.5-6), and packages delivered meanwhile would wait that long in the
    # worker's hands.
    async with running_hub(settings, workers=workers, consume=False) as hub, \
            running_api(hub, host, port, ssl_context) as (app, runner):
        if settings.gc_freeze:  # what start-up built, out of the collector's sight before packages flow
            from hub import heap

            log.info("start-up's %d objects frozen out of the garbage collector's full passes", heap.settle())
        await hub.consume()
        from hub.api.state import STATE

        await app[STATE].readiness.check()  # /readyz: ready now, not at the next background check
        where = describe(settings.amqp_url) if settings.amqp_url else "embedded in-process broker"
        scheme = "https" if ssl_context else "http"
        bound = runner.addresses[0][1] if runner.addresses else port
        shown = f"[{host}]" if ":" in host else host
        base = f"{scheme}://{'127.0.0.1' if host in ('0.0.0.0', '') else shown}:{bound}"
        print(f"hub {settings.hub_organ_id}: {workers} worker(s) on {where}; database "
              f"{settings.database_url.split('@')[-1]}", flush=True)
        print(f"  HTTP API  {base}/api/v1/  (OpenAPI document {base}/api/v1/openapi.json)", flush=True)
        print(f"  console   {base}/admin  (sign in with an admin or auditor token: hub user add)", flush=True)
        print(f"  listening on {host}:{bound}; Ctrl-C or SIGTERM to stop", flush=True)
        await stop.wait()
        print("stopping: finishing in-flight packages…", flush=True)
        if hard_exit:
            _exit_later(HARD_EXIT_AFTER)
    s = _total(hub)
    print(f"stopped: accepted={s['accepted']} refused={s['refused']} duplicates={s['duplicates']} "
          f"dead={s['dead']} delivered={s['delivered']}", flush=True)


def _exit_later(seconds: float) -> None:
    """A last resort that does not depend on the event loop: exit the process after ``seconds``."""
    import os
    import threading

    def _exit() -> None:
        log.error("stopping took over %.0f s; exiting now (RabbitMQ redelivers what was unsettled)", seconds)
        logging.shutdown()
        os._exit(1)

    t = threading.Timer(seconds, _exit)
    t.daemon = True
    t.start()


def _total(hub: Hub) -> dict:
    keys = ("accepted", "refused", "duplicates", "dead", "delivered", "batches", "retries")
    return {k: sum(getattr(w.stats, k) for w in hub.workers) for k in keys}
