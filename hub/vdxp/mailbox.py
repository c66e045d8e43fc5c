"""A VDXP system's inbox as the protocol sees it: a list, not a queue.

The SDK lists what is waiting, fetches each item by ``docId`` and acknowledges it with
``updateStatus`` (``done`` / ``fail`` / ``processing``). So the packages RabbitMQ delivered to
the agency's inbox queues are moved into ``vdxp_inbox`` (the row commits before the broker
message is acked: nothing is lost) and listed from there, urgent first, until acknowledged
``done``. Each item is handed over at least once and listed until done.

``fail`` counts only after a fetch: a replayed ``fail`` (same request again, no ``getEdoc`` in
between) changes nothing, so a captured request cannot push an item to the dead letters.
After ``max_failures`` counted failures the item goes to the dead letters for an admin; a
replay from there puts it back in the list.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub import constants as C
from hub.backbone.base import Backbone, inbox_key, inbox_queue
from hub.pipeline.deadletters import _jsonable
from hub.store.engine import dialect_insert
from hub.audit.records import append_rows, record_row, utcnow
from hub.store import packages as stored_packages
from hub.store.packages import Stored
from hub.store.tables import dead_letters, packages, vdxp_inbox

DRAIN_LIMIT = 1000  # messages moved per list call; the rest come with the next call
# The list lives in the database, so any hub instance answers any call of a system; the lock
# below only keeps one process from draining the same inbox twice at once (across instances the
# broker hands each message to one of them and (owner, message_key) is unique).
MESSAGE_TYPES = ("edoc", "status")
LISTED = ("initial", "fetched", "processing", "fail")  # everything not done and not dead
_locks: dict[str, asyncio.Lock] = {}


def message_key(headers: dict, message_id: str | None) -> str:
    """The worker names each delivered copy ``kind:sender:DocumentId:recipient`` (its message_id)."""
    h = headers or {}
    return (message_id or f"{h.get(C.H_KIND)}:{h.get(C.H_SENDER)}:{h.get(C.H_DOCUMENT_ID)}:"
                          f"{h.get(C.H_RECIPIENT)}")[:400]


def kind_of(headers: dict) -> str:
    return "edoc" if (headers or {}).get(C.H_KIND) == "edoc" else "status"


async def drain(engine: AsyncEngine, backbone: Backbone, owner: str, limit: int = DRAIN_LIMIT,
                batch: int = 200) -> int:
    """Move what waits in ``inbox.<owner>`` (urgent first) into the list, ``batch`` messages per
    transaction; each broker message is acked only after its row committed. Returns how many."""
    lock = _locks.setdefault(owner, asyncio.Lock())
    moved = 0
    async with lock:
        for urgent in (True, False):
            while moved < limit:
                got = []
                while len(got) < batch:
                    incoming = await backbone.get(inbox_queue(owner, urgent))
                    if incoming is None:
                        break
                    got.append(incoming)
                if not got:
                    break
                try:
                    await _keep(engine, owner, [i.message for i in got], urgent)
                except BaseException:
                    for incoming in got:  # not kept: back to the queue now, not held until the channel closes
                        with contextlib.suppress(Exception):
                            await incoming.reject(requeue=True)
                    raise
                for incoming in got:
                    await incoming.ack()
                moved += len(got)
                if len(got) < batch:
                    break
    return moved


async def _keep(engine: AsyncEngine, owner: str, messages: list, urgent: bool) -> None:
    now = utcnow()
    items = []
    async with engine.begin() as conn:
        # Packages in SHA-256 order, rows in key order: instances draining the same inbox at once
        # lock them in one order (no deadlock).
        for m, headers in sorted(((m, _jsonable(m.headers or {})) for m in messages),
                                 key=lambda mh: stored_packages.name_of(mh[0].body, mh[1])):
            # Only the hub publishes to inboxes, so a blob reference there is its own (a large copy).
            kept = await stored_packages.keep(conn, m.body, headers, now)
            items.append({"id": str(uuid.uuid4()), "owner": owner, "message_key": message_key(headers, m.message_id),
                          "kind": kind_of(headers), "urgent": urgent, "sender": headers.get(C.H_SENDER),
                          "recipient": headers.get(C.H_RECIPIENT), "document_id": headers.get(C.H_DOCUMENT_ID),
                          "sha256": kept.sha256, "headers": headers, "state": "initial", "failures": 0,
                          "fetched": False, "created_at": now, "updated_at": now})
        items.sort(key=lambda i: i["message_key"])
        await conn.execute(dialect_insert(conn, vdxp_inbox).on_conflict_do_nothing(), items)
        # A dead letter an admin replayed comes back: list it again, with a clean count.
        await conn.execute(vdxp_inbox.update().where(
            vdxp_inbox.c.owner == owner, vdxp_inbox.c.message_key.in_([i["message_key"] for i in items]),
            vdxp_inbox.c.state == "dead").values(state="initial", failures=0, fetched=False, updated_at=now))


async def waiting(engine: AsyncEngine, owner: str, kind: str, *, since: datetime | None = None,
                  until: datetime | None = None, page: tuple[int, int] | None = None) -> list[dict]:
    """What is listed for ``owner``: urgent first, then oldest first."""
    q = sa.select(vdxp_inbox).where(vdxp_inbox.c.owner == owner, vdxp_inbox.c.kind == kind,
                                    vdxp_inbox.c.state.in_(LISTED))
    if since is not None:
        q = q.where(vdxp_inbox.c.created_at >= since)
    if until is not None:
        q = q.where(vdxp_inbox.c.created_at < until)
    q = q.order_by(vdxp_inbox.c.urgent.desc(), vdxp_inbox.c.created_at, vdxp_inbox.c.id)
    if page is not None:
        size, index = page
        q = q.limit(size).offset(size * index)
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(q)).mappings().all()]


async def count(engine: AsyncEngine, owner: str, kind: str) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(vdxp_inbox).where(
            vdxp_inbox.c.owner == owner, vdxp_inbox.c.kind == kind, vdxp_inbox.c.state.in_(LISTED)))).scalar_one()


async def fetch(engine: AsyncEngine, owner: str, item_id: str) -> tuple[dict, Stored] | None:
    """The item and where its bytes are (``hub.store.packages``) if it is ``owner``'s (another
    system's id is as unknown as a made-up one)."""
    async with engine.begin() as conn:
        row = (await conn.execute(sa.select(vdxp_inbox).where(
            vdxp_inbox.c.id == item_id, vdxp_inbox.c.owner == owner))).mappings().first()
        if row is None:
            return None
        stored = await stored_packages.locate(conn, row["sha256"])
        if stored is None:
            raise stored_packages.BlobMissing(f"the package {row['sha256'][:16]}… of docId {item_id} is not stored")
        if row["state"] in LISTED:
            await conn.execute(vdxp_inbox.update().where(vdxp_inbox.c.id == item_id).values(
                fetched=True, state="fetched" if row["state"] in ("initial", "fail") else row["state"],
                updated_at=utcnow()))
    return dict(row), stored


async def acknowledge(engine: AsyncEngine, owner: str, item_id: str, status: str, *, actor: str,
                      description: str = "", max_failures: int = 5) -> dict | None:
    """``done`` (leaves the list), ``fail`` (listed again; counted when fetched since the last fail;
    dead letter after ``max_failures``), anything else (e.g. ``processing``) noted. Idempotent."""
    now = utcnow()
    async with engine.begin() as conn:
        row = (await conn.execute(sa.select(vdxp_inbox).where(
            vdxp_inbox.c.id == item_id, vdxp_inbox.c.owner == owner).with_for_update())).mappings().first()
        if row is None:
            return None
        row = dict(row)
        if row["state"] in ("done", "dead"):
            return row  # final: a late or replayed acknowledgement changes nothing
        event, details = None, {"docId": item_id, "status": status, "inbox": owner}
        if status == "done":
            values, event = {"state": "done"}, "vdxp.handed_over"
        elif status == "fail":
            if not row["fetched"]:
                return row
            failures = row["failures"] + 1
            values, event = {"state": "fail", "failures": failures, "fetched": False}, "vdxp.fetch_failed"
            details["failures"] = failures
            if failures >= max_failures:
                values["state"] = "dead"
                await _dead_letter(conn, row, failures, now)
        else:
            values = {"state": "processing"}
        await conn.execute(vdxp_inbox.update().where(vdxp_inbox.c.id == item_id).values(updated_at=now, **values))
        if event:
            if description:
                details["description"] = description[:500]
            await append_rows(conn, [record_row(event, actor=actor, document_id=row["document_id"],
                                                sender=_code(row["sender"]), sha256=row["sha256"], details=details,
                                                at=now)])
        row.update(values)
        return row


async def _dead_letter(conn, row: dict, failures: int, now: datetime) -> None:
    size = (await conn.execute(sa.select(packages.c.size).where(packages.c.sha256 == row["sha256"]))).scalar_one()
    await conn.execute(dead_letters.insert().values(
        received_at=now, reason="vdxp.delivery_failed",
        message=f"the VDXP system of {row['owner']} acknowledged docId {row['id']} `fail` {failures} times; "
                "replay puts it back in its list, discard drops it",
        original_user=None, original_exchange=C.EXCHANGE_DELIVER,
        original_routing_key=inbox_key(row["owner"], row["urgent"]), headers=row["headers"] or {},
        sha256=row["sha256"], size=size, state="pending"))


def _code(value: str | None) -> str | None:
    return value if value and len(value) <= 13 else None


VIETNAM = timezone(timedelta(hours=7))  # edXML times are Vietnam time without an offset; so are ours


def iso(value: datetime | None) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in Vietnam time, as list items carry it (the SDK prints it, never parses it)."""
    if value is None:
        return ""
    value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return value.astimezone(VIETNAM).strftime("%Y-%m-%d %H:%M:%S")
