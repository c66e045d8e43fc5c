"""What the console's pages show, read from the database and the broker.

Counters come from the audit log and the state tables (the same for every process and across
restarts), never from one worker's memory; the whole log's are kept as rows are written
(``hub.store.counts``), so the overview does not count 10 million entries per view. The SQL
runs unchanged on PostgreSQL and SQLite: the only dialect-specific piece is how a timestamp is
cut to its minute (``date_trunc`` on PostgreSQL, ``strftime`` on SQLite).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from hub.audit.sealer import latest_checkpoint
from hub.registry.store import maintenance_mode, search_filter
from hub.store import counts
from hub.store.links import business_links
from hub.followup.rules import aware as utc
from hub.store.tables import (
    agencies,
    agency_certs,
    crls,
    dead_letters,
    deliveries,
    document_counts,
    documents,
    outbox,
    records,
    status_history,
)

# an accepted document is logged as package.accepted, an accepted status package as status.recorded
ACCEPTED_EVENTS = ("package.accepted", "status.recorded")


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


# what each counter counts in the audit log
EVENTS = {
    "accepted": ACCEPTED_EVENTS,
    "refused": ("package.refused",),
    "duplicates": ("package.duplicate",),
    "dead": ("package.dead",),
    "delivered": ("edoc.delivered", "status.delivered", "refusal.delivered"),
}
WINDOWS = (("1h", timedelta(hours=1)), ("24h", timedelta(hours=24)), ("7d", timedelta(days=7)))


async def counters(engine, now: datetime | None = None) -> dict:
    """{"total": {counter: n}, "1h"|"24h"|"7d": {counter: n}} of the audit log.

    From the counters kept as entries are appended (``hub.store.counts``): the whole log's,
    and each window's whole hours, plus the entries of the window's first, partial hour
    counted in ``records`` (at most an hour of them) — the same numbers as counting the log."""
    now = now or now_utc()
    event_of = {e: k for k, events in EVENTS.items() for e in events}
    events = list(event_of)
    out = {"total": dict.fromkeys(EVENTS, 0), **{w: dict.fromkeys(EVENTS, 0) for w, _ in WINDOWS}}
    # each window: [start, its first whole hour) counted in records, whole hours from then on
    edges = {w: (now - span, counts.first_whole_hour(now - span)) for w, span in WINDOWS}
    async with engine.connect() as conn:
        kept = await counts.event_totals(conn, events, since_hour=min(h for _, h in edges.values()))
        partial = {}
        for w, (start, first_hour) in edges.items():
            partial[w] = (await conn.execute(
                sa.select(records.c.event, sa.func.count())
                .where(records.c.event.in_(events), records.c.at >= start,
                       records.c.at < counts.hour_start(first_hour))
                .group_by(records.c.event))).all()
    for (event, hour), n in kept.items():
        if hour == counts.WHOLE_LOG:
            out["total"][event_of[event]] += n
        for w, (_start, first_hour) in edges.items():
            if hour != counts.WHOLE_LOG and hour >= first_hour:
                out[w][event_of[event]] += n
    for w, rows in partial.items():
        for event, n in rows:
            out[w][event_of[event]] += n
    return out


@dataclass
class AuthRow:
    agency: str
    name: str
    signature: int  # SHA-256 or stronger XML-DSig
    sha1: int  # accepted under the legacy SHA-1 allowance
    connection: int | None  # authenticated by the connection alone (None: not recorded by this hub version)


@dataclass
class AuthTable:
    agencies: int  # senders with documents (matching the search, if any)
    totals: AuthRow  # summed over all of them
    rows: list[AuthRow]  # the page asked for


AUTH_ORDERS = ("attention", "code")


async def authentication_by_agency(engine, limit: int | None = None, offset: int = 0, order: str = "attention",
                                   search: str | None = None) -> AuthTable:
    """How each sender's accepted packages were authenticated (``documents.authenticated_by``,
    counted per sender as documents are written: ``hub.store.counts``; packages recorded
    before it existed count as signed, SHA-1 from ``legacy_sha1``): one page of senders and the
    totals over all of them.

    ``order`` "attention": the senders with the most packages not signed with SHA-256 or
    stronger (SHA-1, connection only) first, then the busiest; "code": by agency code.
    ``search``: code or name (accents ignored), as on the registry page."""
    dc = document_counts
    weak = dc.c.sha1 + dc.c.connection
    ordering = [dc.c.sender] if order == "code" else [weak.desc(), dc.c.n.desc(), dc.c.sender]
    joined = dc.outerjoin(agencies, agencies.c.code == dc.c.sender)
    where = [search_filter(search)] if search else []
    async with engine.connect() as conn:
        n, total, sha1, conn_only = (await conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(dc.c.n), 0),
                      sa.func.coalesce(sa.func.sum(dc.c.sha1), 0), sa.func.coalesce(sa.func.sum(dc.c.connection), 0))
            .select_from(joined).where(*where))).one()
        q = sa.select(dc, agencies.c.name).select_from(joined).where(*where).order_by(*ordering).offset(offset)
        rows = (await conn.execute(q.limit(limit) if limit is not None else q)).mappings().all()
    return AuthTable(n, AuthRow("", "", int(total) - int(sha1) - int(conn_only), int(sha1), int(conn_only)),
                     [AuthRow(r["sender"], r["name"] or "", r["n"] - r["sha1"] - r["connection"], r["sha1"],
                              r["connection"]) for r in rows])


async def trust_warnings(engine, days: int = 30, now: datetime | None = None) -> tuple[list[dict], list[dict]]:
    """(pinned certificates expiring within ``days`` days or expired, CRLs past their next update)."""
    now = now or now_utc()
    async with engine.connect() as conn:
        certs = (await conn.execute(
            sa.select(agency_certs.c.code, agencies.c.name, agency_certs.c.fingerprint, agency_certs.c.subject,
                      agency_certs.c.not_after)
            .select_from(agency_certs.outerjoin(agencies, agencies.c.code == agency_certs.c.code))
            .where(agency_certs.c.retired_at.is_(None), agency_certs.c.not_after < now + timedelta(days=days))
            .order_by(agency_certs.c.not_after))).mappings().all()
        stale = (await conn.execute(
            sa.select(crls.c.issuer, crls.c.this_update, crls.c.next_update, crls.c.fingerprint)
            .where(crls.c.next_update.is_not(None), crls.c.next_update < now)
            .order_by(crls.c.next_update))).mappings().all()
    return ([{**dict(c), "days": (utc(c["not_after"]) - now).days} for c in certs], [dict(c) for c in stale])


async def dead_counts(engine) -> dict[str, int]:
    async with engine.connect() as conn:
        return dict((await conn.execute(sa.select(dead_letters.c.state, sa.func.count())
                                        .group_by(dead_letters.c.state))).all())


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
    return [(r or "—", c) for r, c in rows]


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
