"""What a VDXP system sends: ``sendEdoc`` into the hub's intake, ``getSentEdocList`` back out.

``sendEdoc`` takes the one path every package takes (:mod:`hub.pipeline.submit`): the package
is published to ``edxml.submit`` as the hub's own broker user naming the VDXP system's agency
and connection (``Connection("vdxp", agency, system id)``: under the ``sdk`` profile it is what
authenticates an unsigned package), and the answer waits for the workers' decision. A refusal
(by the checks, or by the state: a used DocumentId, a backward status) is recorded once, by the
worker, answered at once in the envelope and, like any refusal, sent to the system's status list
as a status 02. An accepted package gets its DocId.

De-duplication: (system, SHA-256 of the file) has one DocId. The SDK retries POSTs after I/O
errors and the protocol has no nonce, so a repeated ``sendEdoc`` (a retry or a replay) is
answered with the DocId it already got and is not published again.
"""

from __future__ import annotations

import hashlib
import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from hub import constants as C
from hub.pipeline.submit import Handover, hand_over
from hub.audit.records import append_rows, record_row, utcnow
from hub.store.tables import deliveries, documents, records, vdxp_inbox, vdxp_sent
from hub.vdxp.mailbox import iso
from hub.vdxp.systems import System
from hub.vdxp.wire import VdxpError

H_VDXP_SYSTEM = "x-hub-vdxp-system"  # the VDXP system that handed the package over (for the records)
DECISION_WAIT = 10.0  # seconds sendEdoc waits for the workers' decision (the protocol's limit is 50)


def claimed_from(registry, system: System, value: str | None) -> None:
    """The signed ``from`` header is what the caller claims: its own system id, or an agency it serves."""
    if value is None or value in ("", system.id, system.agency):
        return
    if registry.system_of(value) != system.agency:
        raise VdxpError(f"system {system.id} acts for {system.agency} and the agencies it serves, not for {value} "
                        "(signed XroadVnpt-from)", code="authority.impersonation", element="XroadVnpt-from")


async def _known(engine, system: System, sha: str):
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(vdxp_sent).where(
            vdxp_sent.c.system == system.id, vdxp_sent.c.sha256 == sha))).mappings().first()


async def send(state, system: System, data: bytes) -> tuple[str, bool]:
    """Hand ``data`` over as ``system`` and wait for the decision. Returns (DocId, whether it was a repeat)."""
    engine = state.engine
    sha = hashlib.sha256(data).hexdigest()
    known = await _known(engine, system, sha)
    if known is not None:  # the same request again (a retry, or a replay): its DocId, not sent twice
        await _repeated(engine, system, known)
        return known["doc_id"], True
    decision = await hand_over(engine, state.backbone, Handover(
        data, system.agency, "vdxp", system.id, headers={H_VDXP_SYSTEM: system.id}), wait=DECISION_WAIT)
    if decision is None:
        raise VdxpError("the hub has not decided on the package yet (it is busy); send the same request again "
                        "later: it is not recorded twice", code="vdxp.unavailable")
    if not decision.accepted:
        raise VdxpError(decision.message or decision.reason or "refused", code=decision.reason or "hub.error",
                        element=decision.element)
    doc_id = str(uuid.uuid4())
    # No audit entry here: the worker recorded the package (package.received, same SHA-256) and
    # vdxp_sent maps the DocId to it.
    try:
        async with engine.begin() as conn:
            await conn.execute(vdxp_sent.insert().values(
                doc_id=doc_id, system=system.id, agency=system.agency, sha256=sha, document_id=decision.document_id,
                sender=decision.sender, kind=decision.kind,
                recipients=",".join(r for r, _ in decision.recipients), sent_at=utcnow()))
    except IntegrityError:  # the same request raced itself: one DocId
        known = await _known(engine, system, sha)
        if known is None:
            raise
        return known["doc_id"], True
    return doc_id, False


async def _repeated(engine, system: System, known) -> None:
    async with engine.begin() as conn:
        await append_rows(conn, [record_row("vdxp.repeated", actor=f"vdxp:{system.id}", sha256=known["sha256"],
                                            document_id=known["document_id"], sender=known["sender"],
                                            details={"docId": known["doc_id"], "via": "vdxp"})])


async def sent_list(engine, agency: str, kind: str) -> list[dict]:
    """One row per (package sent × recipient): the hub's decision and the recipient's latest status."""
    async with engine.connect() as conn:
        sent = (await conn.execute(sa.select(vdxp_sent).where(
            vdxp_sent.c.agency == agency, vdxp_sent.c.kind == kind).order_by(vdxp_sent.c.sent_at))).mappings().all()
        out = []
        for s in sent:
            doc = (await conn.execute(sa.select(documents).where(
                documents.c.sender == s["sender"], documents.c.document_id == s["document_id"],
                documents.c.sha256 == s["sha256"]))).mappings().first()
            dels = {}
            if doc is not None:
                dels = {d["recipient"]: d for d in (await conn.execute(sa.select(deliveries).where(
                    deliveries.c.document == doc["id"]))).mappings().all()}
                send_status, send_desc = "accepted", "checked, recorded and delivered by the hub"
            else:
                refusal = (await conn.execute(sa.select(records.c.reason, records.c.message).where(
                    records.c.document_id == s["document_id"], records.c.sha256 == s["sha256"],
                    records.c.event == "package.refused").order_by(records.c.seq.desc()))).first()
                send_status, send_desc = (("refused", f"{refusal.reason}: {refusal.message}") if refusal
                                          else ("pending", "queued for the hub's checks"))
            for recipient in [r for r in s["recipients"].split(",") if r]:
                out.append(await _row(conn, s, doc, dels.get(recipient), recipient, send_status, send_desc))
    return out


async def _row(conn, s, doc, delivery, recipient: str, send_status: str, send_desc: str) -> dict:
    receiver_doc, receive_status, receive_desc, received = "", "", "", ""
    if delivery is not None:
        item = (await conn.execute(sa.select(vdxp_inbox.c.id, vdxp_inbox.c.state, vdxp_inbox.c.updated_at).where(
            vdxp_inbox.c.owner == delivery["system"],
            vdxp_inbox.c.message_key == f"{s['kind']}:{s['sender']}:{s['document_id']}:{recipient}"))).first()
        if item is not None:
            receiver_doc, receive_status, receive_desc = item.id, item.state, f"transport: {item.state}"
            received = iso(item.updated_at) if item.state == "done" else ""
        if delivery["status"]:
            receive_status = delivery["status"]
            receive_desc = C.STATUS_NAMES.get(delivery["status"], "")
    notation = s["document_id"].rsplit(",", 1)[-1] if s["kind"] == "edoc" else ""
    return {"serviceType": "eDoc", "messageType": s["kind"], "senderDocId": s["doc_id"],
            "receiverDocId": receiver_doc, "fromCode": s["sender"], "toCode": recipient,
            "sendStatus": send_status, "sendStatusDesc": send_desc[:500], "receiveStatus": receive_status,
            "receiveStatusDesc": receive_desc, "title": (doc["subject"] or "") if doc is not None else "",
            "notation": notation, "sentTime": iso(s["sent_at"]), "receivedTime": received}

