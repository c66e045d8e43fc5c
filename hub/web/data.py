"""What the dashboard pages show, read from the workers, the broker and the database.

The SQL runs unchanged on PostgreSQL and SQLite: the only dialect-specific piece is how a
timestamp is cut to its minute (``date_trunc`` on PostgreSQL, ``strftime`` on SQLite).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from hub import constants as C
from hub.audit.sealer import latest_checkpoint
from hub.backbone.base import inbox_queue
from hub.errors import TransientError
from hub.registry.store import maintenance_mode
from hub.store.links import business_links
from hub.store.tables import agencies, agency_certs, deliveries, documents, outbox, records, status_history
from hub.web.layout import utc

COUNTERS = ("accepted", "refused", "duplicates", "dead", "delivered")
QUEUE_TIMEOUT = 8.0
# an accepted document is logged as package.accepted, an accepted status package as status.recorded
ACCEPTED_EVENTS = ("package.accepted", "status.recorded")


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def worker_counters(state) -> dict | None:
    """Totals of the workers running in this process (None when none run here)."""
    hub = state.hub
    if hub is None:
        return None
    workers = list(getattr(hub, "workers", []) or [])
    out = dict.fromkeys(COUNTERS, 0)
    for w in workers:
        for k in COUNTERS:
            out[k] += getattr(w.stats, k, 0)
    out["workers"] = len(workers)
    return out


@dataclass
class QueueRow:
    name: str
    depth: int | None  # None: not declared


async def queue_depths(state) -> list[QueueRow]:
    """hub.intake, hub.dead and each connected system's inbox and urgent inbox (passive declares)."""
    ctx = await state.check_context()
    names = [C.QUEUE_INTAKE, C.QUEUE_DEAD]
    for a in sorted(ctx.registry.systems(), key=lambda a: a.code):
        names += [inbox_queue(a.code, False), inbox_queue(a.code, True)]

    async def read() -> list[QueueRow]:
        out = []
        for name in names:
            try:
                out.append(QueueRow(name, await state.backbone.depth(name)))
            except TransientError as e:
                if e.code != "backbone.not_found":
                    raise
                out.append(QueueRow(name, None))
        return out

    try:
        return await asyncio.wait_for(read(), QUEUE_TIMEOUT)
    except asyncio.TimeoutError:
        raise TransientError(f"the broker did not answer within {QUEUE_TIMEOUT:.0f} s",
                             code="backbone.unavailable") from None


@dataclass
class HubState:
    maintenance: str
    outbox_backlog: int
    records: int
    checkpoint: dict | None


async def hub_state(engine) -> HubState:
    async with engine.connect() as conn:
        mode = await maintenance_mode(conn)
        backlog = (await conn.execute(sa.select(sa.func.count()).select_from(outbox).where(
            outbox.c.sent_at.is_(None)))).scalar() or 0
        top = (await conn.execute(sa.select(sa.func.max(records.c.seq)))).scalar() or 0
        cp = await latest_checkpoint(conn)
    return HubState(mode, backlog, top, dict(cp) if cp else None)


def _minute_expr(conn):
    if conn.dialect.name == "postgresql":
        return sa.func.date_trunc("minute", records.c.at)
    return sa.func.strftime("%Y-%m-%d %H:%M", records.c.at)


def _as_minute(value) -> datetime:
    if isinstance(value, str):
        return datetime.strptime(value[:16], "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
    return utc(value).replace(second=0, microsecond=0)


async def packages_per_minute(engine, minutes: int = 60, now: datetime | None = None) -> list[tuple[datetime, int, int]]:
    """[(minute, accepted, refused)] for the last ``minutes`` minutes, oldest first, gaps as zero.

    Accepted counts documents and status packages (as the workers' ``accepted`` counter does)."""
    end = (now or now_utc()).replace(second=0, microsecond=0)
    start = end - timedelta(minutes=minutes - 1)
    async with engine.connect() as conn:
        minute = _minute_expr(conn).label("minute")
        rows = (await conn.execute(
            sa.select(minute, records.c.event, sa.func.count())
            .where(records.c.event.in_(ACCEPTED_EVENTS + ("package.refused",)), records.c.at >= start)
            .group_by(minute, records.c.event))).all()
    counts: dict[datetime, list[int]] = {}
    for m, event, n in rows:
        slot = counts.setdefault(_as_minute(m), [0, 0])
        slot[0 if event in ACCEPTED_EVENTS else 1] += n
    return [(t, *counts.get(t, [0, 0])) for t in (start + timedelta(minutes=i) for i in range(minutes))]


async def refusals_by_reason(engine, hours: int = 24) -> list[tuple[str, int]]:
    since = now_utc() - timedelta(hours=hours)
    async with engine.connect() as conn:
        n = sa.func.count().label("n")
        rows = (await conn.execute(
            sa.select(records.c.reason, n)
            .where(records.c.event == "package.refused", records.c.at >= since)
            .group_by(records.c.reason).order_by(n.desc(), records.c.reason))).all()
    return [(r or "(none)", c) for r, c in rows]


async def last_refusals(engine, limit: int = 20) -> list[dict]:
    async with engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(records.c.seq, records.c.at, records.c.sender, records.c.document_id, records.c.reason,
                      records.c.message, records.c.actor)
            .where(records.c.event == "package.refused")
            .order_by(records.c.at.desc(), records.c.seq.desc()).limit(limit))).mappings().all()
    return [dict(r) for r in rows]


async def certificates_of(engine, codes: list[str]) -> dict[str, list[dict]]:
    if not codes:
        return {}
    now = now_utc()
    async with engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(agency_certs.c.code, agency_certs.c.fingerprint, agency_certs.c.subject,
                      agency_certs.c.not_after)
            .where(agency_certs.c.code.in_(codes), agency_certs.c.retired_at.is_(None))
            .order_by(agency_certs.c.not_after))).mappings().all()
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["code"], []).append({**dict(r), "days": (utc(r["not_after"]) - now).days})
    return out


async def agency_names(engine, codes) -> dict[str, str]:
    codes = [c for c in set(codes) if c]
    if not codes:
        return {}
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(agencies.c.code, agencies.c.name).where(agencies.c.code.in_(codes)))).all()
    return {c: n for c, n in rows}


@dataclass
class Recipient:
    code: str
    system: str
    status: str | None
    updated_at: datetime | None
    history: list[dict] = field(default_factory=list)


@dataclass
class DocumentView:
    document_id: str
    documents: list[dict]  # each with "recipients": [Recipient]
    entries: list[dict]  # audit entries, oldest first
    truncated: bool = False


async def document_timeline(engine, document_id: str, max_entries: int = 500) -> DocumentView:
    async with engine.connect() as conn:
        docs = [dict(r) for r in (await conn.execute(
            sa.select(documents).where(documents.c.document_id == document_id).order_by(documents.c.id)
        )).mappings().all()]
        for d in docs:
            dels = (await conn.execute(sa.select(deliveries).where(deliveries.c.document == d["id"])
                                       .order_by(deliveries.c.recipient))).mappings().all()
            hist = (await conn.execute(
                sa.select(status_history).where(status_history.c.delivery.in_([x["id"] for x in dels]))
                .order_by(status_history.c.at, status_history.c.id))).mappings().all() if dels else []
            by_delivery: dict[int, list[dict]] = {}
            for h in hist:
                by_delivery.setdefault(h["delivery"], []).append(dict(h))
            d["recipients"] = [Recipient(x["recipient"], x["system"], x["status"], x["updated_at"],
                                         by_delivery.get(x["id"], [])) for x in dels]
            d["links"] = await business_links(conn, d)
        rows = (await conn.execute(
            sa.select(records.c.seq, records.c.at, records.c.event, records.c.actor, records.c.sender,
                      records.c.sha256, records.c.reason, records.c.message, records.c.details)
            .where(records.c.document_id == document_id).order_by(records.c.seq).limit(max_entries + 1)
        )).mappings().all()
    entries = [dict(r) for r in rows[:max_entries]]
    return DocumentView(document_id, docs, entries, truncated=len(rows) > max_entries)
