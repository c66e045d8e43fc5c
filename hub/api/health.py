"""Operators' endpoints: /healthz (alive), /readyz (dependencies, checked in the background),
/metrics (Prometheus: values read at scrape time, and the histogram and counters of ``hub.metrics``)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

import sqlalchemy as sa
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from hub import constants as C
from hub.api.endpoint import Endpoints, Reply
from hub.api.replies import Health, Ready
from hub.api.state import STATE
from hub.backbone.base import inbox_queue
from hub.followup.query import overdue_counts
from hub.followup.rules import VN
from hub.metrics import check_seconds
from hub.store.tables import agency_certs, outbox

api = Endpoints("operations")
log = logging.getLogger("hub.api")
READY_INTERVAL = 1.0  # seconds between background readiness checks
PROBE_TIMEOUT = 2.0  # a dependency that has not answered by then counts as down
STALE_AFTER = 10.0  # no check finished for this long (the checker is stuck): not ready


@api.endpoint("GET", "/healthz", "Alive", response=Health)
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "uptime_seconds": round(time.time() - request.app[STATE].started, 1)})


async def _readiness(state) -> tuple[int, dict]:
    checks: dict[str, dict] = {}

    async def probe(name: str, coro) -> None:
        try:
            detail = await asyncio.wait_for(coro, PROBE_TIMEOUT)
            checks[name] = {"ok": True, **(detail or {})}
        except asyncio.TimeoutError:
            checks[name] = {"ok": False, "error": f"no answer within {PROBE_TIMEOUT:.0f} s"}
        except Exception as e:  # noqa: BLE001 - reported, not raised
            checks[name] = {"ok": False, "error": str(e) or e.__class__.__name__}

    async def db():
        async with state.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return {"dialect": state.engine.dialect.name}

    async def broker():
        return {"intake_depth": await state.backbone.depth(C.QUEUE_INTAKE)}

    async def consuming():
        n = await state.backbone.consumers(C.QUEUE_INTAKE)
        workers = state.hub.workers if state.hub is not None else []
        starting = sum(1 for w in workers if w.gate.starting)
        if starting:
            raise ValueError(f"{starting} of {len(workers)} worker(s) here are starting: they take packages from "
                             f"{C.QUEUE_INTAKE} once the API listens")
        paused = sum(1 for w in workers if not w.consuming)
        if paused:
            raise ValueError(f"{paused} of {len(workers)} worker(s) here take nothing from {C.QUEUE_INTAKE} "
                             "(maintenance, or waiting out an outage)")
        if n == 0:
            raise ValueError(f"no consumer on {C.QUEUE_INTAKE}: no worker takes packages")
        return {"intake_consumers": n, "workers": len(workers)}

    async def identity():
        cert = state.identity.cert
        now = datetime.now(timezone.utc)
        if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            raise ValueError(f"the hub certificate is not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d} "
                             f"to {cert.not_valid_after_utc:%Y-%m-%d})")
        if cert.public_key().public_numbers() != state.identity.key.public_key().public_numbers():
            raise ValueError("the hub key does not match its certificate")
        return {"organ_id": state.identity.organ_id, "days_to_expiry": (cert.not_valid_after_utc - now).days}

    await asyncio.gather(probe("database", db()), probe("rabbitmq", broker()), probe("consuming", consuming()),
                         probe("hub_identity", identity()))
    ok = all(c["ok"] for c in checks.values())
    return (200 if ok else 503), {"status": "ready" if ok else "not ready", "checks": checks}


class Readiness:
    """Readiness, checked in the background every READY_INTERVAL seconds: /readyz only reads the
    last result, so it answers at once and no number of requests adds load on the dependencies."""

    def __init__(self, state):
        self.state = state
        self.result: tuple[float, int, dict] | None = None

    async def check(self) -> None:
        status, body = await _readiness(self.state)
        self.result = (time.monotonic(), status, body)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(READY_INTERVAL)
            try:
                await self.check()
            except Exception as e:  # noqa: BLE001 - never let the loop die; a stale result reads as not ready
                log.warning("readiness check failed: %s", e)

    def answer(self) -> tuple[int, dict]:
        if self.result is None:
            return 503, {"status": "not ready", "checks": {}, "message": "the first readiness check has not finished"}
        at, status, body = self.result
        age = time.monotonic() - at
        if age > STALE_AFTER:
            return 503, {**body, "status": "not ready", "age_seconds": round(age, 1),
                         "message": f"no readiness check has finished for {age:.0f} s"}
        return status, {**body, "age_seconds": round(age, 1)}


async def readiness_ctx(app: web.Application):
    state = app[STATE]
    state.readiness = readiness = Readiness(state)
    await readiness.check()  # a first answer before the site takes requests (at most PROBE_TIMEOUT)
    task = asyncio.create_task(readiness.run(), name="hub-readiness")
    yield
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping
        pass


@api.endpoint("GET", "/readyz", "Ready: consuming hub.intake, database, broker and hub identity (checked in the "
                                  "background every second; answered at once)",
              replies={200: Reply(Ready), 503: Reply(Ready, "Not ready: a dependency failed")})
async def readyz(request: web.Request) -> web.Response:
    status, body = request.app[STATE].readiness.answer()
    return web.json_response(body, status=status)


class _HubCollector:
    """Values read at scrape time: the workers' outcome counters (a batch whose transaction does not
    commit takes back what it counted, which a prometheus_client ``Counter`` cannot), queue depths,
    the outbox, certificates and overdue documents from the broker and the database."""

    def __init__(self, state, snapshot: dict):
        self.state = state
        self.snapshot = snapshot

    def collect(self):
        s = self.snapshot
        pk = CounterMetricFamily("hub_packages", "Packages by outcome", labels=["outcome"])
        for outcome in ("accepted", "refused", "duplicates", "dead"):
            pk.add_metric([outcome], s.get("stats", {}).get(outcome, 0))
        yield pk
        rr = CounterMetricFamily("hub_refusals", "Refusals by reason code", labels=["reason"])
        for reason, n in sorted(s.get("by_reason", {}).items()):
            rr.add_metric([reason], n)
        yield rr
        au = CounterMetricFamily("hub_packages_authenticated", "Accepted packages by how they were authenticated "
                                 "(signature, signature-sha1, connection)", labels=["authenticated_by"])
        for method in ("signature", "signature-sha1", "connection"):
            au.add_metric([method], s.get("by_auth", {}).get(method, 0))
        yield au
        dl = CounterMetricFamily("hub_delivered_messages", "Messages published after broker confirm")
        dl.add_metric([], s.get("stats", {}).get("delivered", 0))
        yield dl
        st = CounterMetricFamily("hub_stage_seconds", "Time spent per worker stage", labels=["stage"])
        for stage, sec in s.get("seconds", {}).items():
            st.add_metric([stage], sec)
        yield st
        q = GaugeMetricFamily("hub_queue_depth", "Ready messages per queue", labels=["queue"])
        for name, depth in s.get("queues", {}).items():
            q.add_metric([name], depth)
        yield q
        ob = GaugeMetricFamily("hub_outbox_backlog", "Outbox messages not yet confirmed by the broker")
        ob.add_metric([], s.get("outbox", 0))
        yield ob
        ce = GaugeMetricFamily("hub_certificate_days_to_expiry", "Days until a pinned certificate expires",
                               labels=["agency", "fingerprint"])
        for code, fp, days in s.get("certs", []):
            ce.add_metric([code, fp[:16]], days)
        yield ce
        od = GaugeMetricFamily("hub_overdue_documents",
                               "Recipient copies past their DueDate (Vietnam date) without status 06 or 02",
                               labels=["agency"])
        for code, n in sorted(s.get("overdue", {}).items()):
            od.add_metric([code], n)
        yield od


async def _snapshot(state) -> dict:
    snap: dict = {"stats": {}, "by_reason": {}, "by_auth": {}, "seconds": {}, "queues": {}, "certs": []}
    hub = state.hub
    if hub is not None:
        for w in hub.workers:
            for k in ("accepted", "refused", "duplicates", "dead", "delivered"):
                snap["stats"][k] = snap["stats"].get(k, 0) + getattr(w.stats, k)
            for k, v in w.stats.by_reason.items():
                snap["by_reason"][k] = snap["by_reason"].get(k, 0) + v
            for k, v in w.stats.by_auth.items():
                snap["by_auth"][k] = snap["by_auth"].get(k, 0) + v
            for k, v in w.stats.seconds.items():
                snap["seconds"][k] = snap["seconds"].get(k, 0.0) + v
    ctx = await state.check_context()
    names = [C.QUEUE_INTAKE, C.QUEUE_DEAD] + [inbox_queue(a.code, u) for a in ctx.registry.systems() for u in (False, True)]
    for name in names:
        try:
            snap["queues"][name] = await state.backbone.depth(name)
        except Exception:  # noqa: BLE001 - a queue not declared yet
            continue
    now = datetime.now(timezone.utc)
    async with state.engine.connect() as conn:
        snap["outbox"] = (await conn.execute(sa.select(sa.func.count()).select_from(outbox).where(
            outbox.c.sent_at.is_(None)))).scalar()
        for code, fp, na in (await conn.execute(sa.select(
                agency_certs.c.code, agency_certs.c.fingerprint, agency_certs.c.not_after)
                .where(agency_certs.c.retired_at.is_(None)))).all():
            na = na if na.tzinfo else na.replace(tzinfo=timezone.utc)
            snap["certs"].append((code, fp, (na - now).days))
    snap["overdue"] = await overdue_counts(state.engine, now.astimezone(VN).date())
    return snap


@api.endpoint("GET", "/metrics", "Prometheus metrics",
              response=Reply({"type": "string"}, "Prometheus text format", "text/plain"))
async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    registry = CollectorRegistry()
    registry.register(_HubCollector(state, await _snapshot(state)))
    # counted as things happen (hub.metrics); without workers here, an empty histogram
    registry.register(getattr(state.hub, "check_seconds", None) or check_seconds())
    for collector in state.metrics.collectors():
        registry.register(collector)
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
