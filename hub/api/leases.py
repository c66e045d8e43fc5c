"""The HTTP gateway's inbox leases, kept in the database so that any hub instance answers.

``GET /api/v1/inbox`` moves what waits in ``inbox.<agency>`` (urgent first) into
``gateway_leases``: the row (and the package bytes, content-addressed) commits before the
broker message is acked, so nothing is lost between the two, and a copy the broker hands out
again (the hub died between commit and ack) is recognised by its key and dropped. A lease
lasts ``lease_seconds``; the agency's next ``GET`` after that hands the package out again
under a new lease id (the old id is then refused), before anything newer of the same urgency.
``POST /api/v1/inbox/ack`` on any instance remembers the key in ``gateway_seen`` and deletes
the lease in one transaction: each package is handed over once. A late ack of a lease that
nobody has been handed again still counts (the agency has the package).

Concurrent instances need no lock: a broker message goes to one ``basic.get``; re-leasing an
expired row and acking it are compare-and-set on its lease id, so exactly one of them wins.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub import constants as C
from hub.audit.records import utcnow
from hub.backbone.base import Backbone, Incoming, inbox_queue
from hub.pipeline.deadletters import _jsonable
from hub.store import packages as stored_packages
from hub.store.engine import dialect_insert
from hub.store.tables import gateway_leases, gateway_seen, packages

LEASE_SECONDS = 300
_LEASE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what _new_id's token_urlsafe writes


@dataclass(frozen=True)
class Leased:
    """One package handed out: its lease id, how urgent, its AMQP headers and exact bytes."""

    lease_id: str
    urgent: bool
    headers: dict
    data: bytes


def message_key(headers: dict, message_id: str | None) -> str:
    """What names a delivered copy: the worker's message_id, else kind:sender:DocumentId."""
    h = headers or {}
    return (message_id or f"{h.get(C.H_KIND)}:{h.get(C.H_SENDER)}:{h.get(C.H_DOCUMENT_ID)}")[:400]


def _new_id() -> str:
    return secrets.token_urlsafe(12)


async def hand_out(engine: AsyncEngine, backbone: Backbone, agency: str, limit: int,
                   lease_seconds: float = LEASE_SECONDS) -> list[Leased]:
    """Up to ``limit`` packages for ``agency``, urgent first; in each urgency, leases that ran
    out before what still waits in the queue."""
    out: list[Leased] = []
    for urgent in (True, False):
        if len(out) < limit:
            out += await _lease_again(engine, agency, urgent, limit - len(out), lease_seconds)
        while len(out) < limit:
            got = await _take(backbone, agency, urgent, limit - len(out))
            if not got:
                break
            out += await _lease_new(engine, agency, urgent, got, lease_seconds)
    return out


def could_be_lease(lid: str) -> bool:
    """Whether ``lid`` is shaped like the lease ids this module hands out (``secrets.token_urlsafe``:
    URL-safe base64). Anything else is unknown without asking the database, which could not even
    compare some strings (PostgreSQL text holds no NUL, UTF-8 no lone surrogate)."""
    return _LEASE_ID.fullmatch(lid) is not None


async def settle(engine: AsyncEngine, agency: str, lease_ids: list[str]) -> tuple[list[str], list[str]]:
    """Acknowledge leases of ``agency``: (acknowledged, unknown or handed out again since)."""
    acked, unknown = [], []
    async with engine.begin() as conn:
        for lid in lease_ids:
            if not could_be_lease(lid):
                unknown.append(lid)
                continue
            key = (await conn.execute(sa.select(gateway_leases.c.message_key).where(
                gateway_leases.c.lease_id == lid, gateway_leases.c.agency == agency))).scalar()
            if key is None:
                unknown.append(lid)
                continue
            await conn.execute(dialect_insert(conn, gateway_seen).values(
                agency=agency, message_id=key, at=utcnow()).on_conflict_do_nothing())
            gone = await conn.execute(gateway_leases.delete().where(
                gateway_leases.c.lease_id == lid, gateway_leases.c.agency == agency))
            (acked if gone.rowcount == 1 else unknown).append(lid)
    return acked, unknown


async def _lease_again(engine: AsyncEngine, agency: str, urgent: bool, limit: int,
                       lease_seconds: float) -> list[Leased]:
    now = utcnow()
    async with engine.connect() as conn:
        due = (await conn.execute(
            sa.select(gateway_leases.c.message_key, gateway_leases.c.lease_id, gateway_leases.c.headers,
                      packages.c.data)
            .join(packages, packages.c.sha256 == gateway_leases.c.sha256)
            .where(gateway_leases.c.agency == agency, gateway_leases.c.urgent == urgent,
                   gateway_leases.c.leased_until < now)
            .order_by(gateway_leases.c.created_at, gateway_leases.c.message_key).limit(limit))).all()
    out = []
    for row in due:
        lid = _new_id()
        async with engine.begin() as conn:  # compare-and-set: another instance may take or settle it first
            moved = await conn.execute(gateway_leases.update().where(
                gateway_leases.c.agency == agency, gateway_leases.c.message_key == row.message_key,
                gateway_leases.c.lease_id == row.lease_id).values(
                lease_id=lid, leased_until=now + timedelta(seconds=lease_seconds)))
        if moved.rowcount == 1:
            out.append(Leased(lid, urgent, row.headers or {}, bytes(row.data)))
    return out


async def _take(backbone: Backbone, agency: str, urgent: bool, limit: int) -> list[Incoming]:
    got = []
    while len(got) < limit:
        incoming = await backbone.get(inbox_queue(agency, urgent))
        if incoming is None:
            break
        got.append(incoming)
    return got


async def _lease_new(engine: AsyncEngine, agency: str, urgent: bool, got: list[Incoming],
                     lease_seconds: float) -> list[Leased]:
    """Keep ``got`` as leases (one transaction), then ack them; copies of packages already
    leased or handed over are acked and dropped."""
    now = utcnow()
    until = now + timedelta(seconds=lease_seconds)
    out = []
    try:
        async with engine.begin() as conn:
            keyed = sorted(((message_key(i.message.headers, i.message.message_id), i) for i in got),
                           key=lambda pair: pair[0])  # one order in every instance: no deadlock
            keys = [k for k, _ in keyed]
            seen = set((await conn.execute(sa.select(gateway_seen.c.message_id).where(
                gateway_seen.c.agency == agency, gateway_seen.c.message_id.in_(keys)))).scalars())
            for key, incoming in keyed:
                if key in seen:
                    continue
                body = incoming.message.body
                headers = _jsonable(incoming.message.headers or {})
                # only the hub publishes to inboxes: a blob reference there names its own large copy
                sha = (await stored_packages.keep(conn, body, headers, now)).sha256
                lid = _new_id()
                kept = (await conn.execute(dialect_insert(conn, gateway_leases).values(
                    agency=agency, message_key=key, lease_id=lid, urgent=urgent, sha256=sha, headers=headers,
                    created_at=now, leased_until=until).on_conflict_do_nothing()
                    .returning(gateway_leases.c.lease_id))).scalar()
                if kept is not None:  # else: a copy of a package leased already
                    seen.add(key)
                    out.append(Leased(lid, urgent, headers, body))
    except BaseException:
        for incoming in got:  # not kept: back to the queue now, not when the channel closes
            with contextlib.suppress(Exception):
                await incoming.reject(requeue=True)
        raise
    for incoming in got:
        await incoming.ack()
    return out
