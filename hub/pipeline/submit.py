"""One way in: an HTTP entry point hands a package to ``hub.intake`` and waits for the worker's decision.

The HTTP gateway runs no checks and records no refusal of its own. It publishes the package to
``edxml.submit`` as the hub's broker user, naming the connection it authenticated (agency,
``gateway``/``tls``, token id) and a fresh submit id in ``x-hub-*`` headers (believed only from
the hub's own user, :mod:`hub.pipeline.intake`). The worker checks it with that connection like
any package, records its decision (accepted, duplicate, refused: once, with the one refusal
package to the sender's system) and, in the same batch transaction, writes the decision under
the submit id (``intake_decisions``). The gateway then answers its caller from that row.

A worker in the gateway's own process wakes the waiting request as soon as its transaction
committed; a gateway whose packages are taken by another hub instance polls the table, so any
number of instances share one intake. A decision not made within the wait (an outage, a long
backlog) is answered "queued": the package is in the intake and its decision will reach the
sender's inbox like any other.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from hub import constants as C
from hub.pipeline.connection import Connection
from hub.registry.model import Registry
from hub.store.engine import dialect_insert
from hub.store.tables import intake_decisions
from hub.audit.records import utcnow

log = logging.getLogger("hub.submit")

H_SUBMIT_ID = "x-hub-submit-id"  # hub user only: the entry point waits for the decision under this id
H_VIA = "x-hub-via"  # hub user only: the connection the entry point authenticated: gateway | tls | vdxp
H_VIA_USER = "x-hub-via-user"  # hub user only: its credential's name (token id, certificate, system id)

DECIDING = {"package.accepted": "recorded", "status.recorded": "recorded", "package.duplicate": "duplicate",
            "package.refused": "refused"}  # the one record per package that says what became of it
KEEP = timedelta(hours=1)  # decisions nobody came back for are deleted after this


@dataclass(frozen=True)
class Decision:
    """What the worker did with one handed-over package."""

    outcome: str  # recorded | duplicate | refused
    sha256: str
    document_id: str | None = None
    sender: str | None = None
    kind: str | None = None  # edoc | status
    status_code: str | None = None  # of a status package
    recipients: tuple[tuple[str, str], ...] = ()  # (recipient, its system)
    reason: str | None = None
    message: str | None = None
    element: str | None = None
    stage: str | None = None  # parse, schema, signature, trust, authority, state, record, check

    @property
    def accepted(self) -> bool:
        return self.outcome != "refused"

    def as_json(self) -> dict:
        d = asdict(self)
        d["recipients"] = [list(r) for r in self.recipients]
        return d

    @classmethod
    def from_json(cls, d: dict) -> Decision:
        return cls(**{**d, "recipients": tuple(tuple(r) for r in d.get("recipients") or ())})


# --- the worker's side --------------------------------------------------------------------

def connection_of(msg, hub_user: str, registry: Registry) -> Connection | None:
    """The connection an HTTP entry point authenticated for ``msg``, or None (an adapter's message:
    its broker user is its connection). Read only from the hub's own messages."""
    h = msg.headers or {}
    via, agency = h.get(H_VIA), h.get(C.H_GATEWAY_AGENCY)
    if not via or not agency or not msg.user_id or msg.user_id != hub_user:
        return None
    a = registry.get(str(agency))
    # the caller vouches for packages only if it is a connected system, as over AMQP
    return Connection(str(via), a.code if a is not None and a.connected else None, str(h.get(H_VIA_USER) or "") or None)


def decisions(batch: list, verdicts: list, records: list[dict], actor) -> dict[str, Decision]:
    """Submit id -> decision for the handed-over packages of a batch, from the batch's records.

    Each package gets exactly one deciding record (accepted, status recorded, duplicate or refused),
    written with its SHA-256 and its publisher as actor; packages of the same bytes from the same
    publisher are decided in batch order, so the k-th such record is the k-th such package's.
    The deciding record of a handed-over package also names, in its details, the entry point and
    the credential that handed it over (``via``, ``via_user``): the audit log keeps which token or
    VDXP system it came through (the records are appended after this)."""
    if not any((m.message.headers or {}).get(H_SUBMIT_ID) for m in batch):
        return {}
    found: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        if r["event"] in DECIDING:
            found[(r["sha256"], r["actor"])].append(r)
    keys = [(v.sha256, actor(m.message)) for m, v in zip(batch, verdicts)]
    short = {k for k in set(keys) if keys.count(k) > len(found.get(k, ()))}  # some were recorded before
    out = {}
    for (m, v), key in zip(zip(batch, verdicts), keys):
        queue = found.get(key)
        if not queue or (key in short and m.message.redelivered):
            continue  # recorded by an earlier attempt (a redelivery): its decision is stored already
        r = queue.pop(0)
        sid = (m.message.headers or {}).get(H_SUBMIT_ID)
        if not sid:
            continue  # an adapter's package: decided, nobody waits
        h = m.message.headers
        details = r["details"] = {**(r.get("details") or {}), "via": h.get(H_VIA), "via_user": h.get(H_VIA_USER)}
        pkg = v.package if v.accepted else None
        out[str(sid)] = Decision(
            outcome=DECIDING[r["event"]], sha256=v.sha256, document_id=v.document_id or r.get("document_id"),
            sender=v.sender or r.get("sender"), kind=pkg.kind if pkg is not None else None,
            status_code=getattr(pkg, "status_code", None),
            recipients=tuple((x.recipient, x.system) for x in v.routes) if pkg is not None else (),
            reason=r.get("reason"), message=r.get("message"), element=details.get("element"),
            stage=details.get("stage"))
    return out


async def record(conn, decided: dict[str, Decision]) -> None:
    """Write the decisions in the batch's transaction (a redone transaction writes nothing twice)."""
    if decided:
        now = utcnow()
        await conn.execute(dialect_insert(conn, intake_decisions).on_conflict_do_nothing(), [
            {"submit_id": sid, "decided_at": now, "decision": d.as_json()} for sid, d in decided.items()])


class _Waiters:
    """The requests of this process waiting for a decision; a worker here wakes them after its commit."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def add(self, sid: str) -> asyncio.Event:
        ev = self._events[sid] = asyncio.Event()
        return ev

    def remove(self, sid: str) -> None:
        self._events.pop(sid, None)

    def wake(self, sids) -> None:
        for sid in sids:
            ev = self._events.get(sid)
            if ev is not None:
                ev.set()


WAITERS = _Waiters()


def wake(decided: dict[str, Decision]) -> None:
    """After the batch committed: wake the requests of this process that wait for these decisions."""
    WAITERS.wake(decided)


# --- the entry point's side ---------------------------------------------------------------

@dataclass
class Handover:
    """A package to hand over, and what the entry point authenticated."""

    data: bytes
    agency: str  # the calling agency
    via: str  # gateway | tls | vdxp
    user: str | None  # its credential's name
    headers: dict = field(default_factory=dict)  # more headers (hub's own)


async def hand_over(engine, backbone, h: Handover, *, wait: float = 10.0) -> Decision | None:
    """Publish ``h`` to the intake and return the worker's decision; None when not decided within ``wait``
    seconds (the package is queued: the worker decides later and answers the sender's inbox)."""
    sid = secrets.token_hex(16)
    event = WAITERS.add(sid)
    try:
        await backbone.publish(C.EXCHANGE_SUBMIT, "", h.data, user_id=backbone.user, headers={
            **h.headers, C.H_GATEWAY_AGENCY: h.agency, H_VIA: h.via, H_VIA_USER: str(h.user or ""), H_SUBMIT_ID: sid,
            C.H_SUBMITTED_AT: time.time()})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        poll = 0.05
        while True:
            try:
                async with asyncio.timeout(max(0.0, min(poll, deadline - loop.time()))):
                    await event.wait()
            except TimeoutError:
                pass
            decision = await _take(engine, sid)
            if decision is not None:
                return decision
            if loop.time() >= deadline:
                log.info("no decision on %s within %.0f s; answered as queued", hashlib.sha256(h.data).hexdigest()[:16],
                         wait)
                return None
            event.clear()
            poll = min(poll * 2, 0.5)
    finally:
        WAITERS.remove(sid)


async def _take(engine, sid: str) -> Decision | None:
    async with engine.begin() as conn:
        row = (await conn.execute(intake_decisions.delete().where(intake_decisions.c.submit_id == sid)
                                  .returning(intake_decisions.c.decision))).first()
        if row is not None:
            await conn.execute(intake_decisions.delete().where(intake_decisions.c.decided_at < utcnow() - KEEP))
    return Decision.from_json(row[0]) if row is not None else None
