"""What a VDXP system sends: ``sendEdoc`` into the hub's intake, ``getSentEdocList`` back out.

``sendEdoc`` goes through the same path as the HTTP gateway: the stateless checks run at
once with the VDXP system as the connection (``Connection("vdxp", agency, system id)``: under
the ``sdk`` profile it is what authenticates an unsigned package; a refusal is answered at once
and recorded in the audit log), then the package is published to ``edxml.submit`` as the hub's
own broker user naming that agency (``x-hub-gateway-agency``): the workers check it again,
record it, route it and answer later refusals with a status 02 in the system's status list.

De-duplication: (system, SHA-256 of the file, DocumentId) has one DocId. The SDK retries
POSTs after I/O errors and the protocol has no nonce, so a repeated ``sendEdoc`` (a retry or
a replay) is answered with the DocId it already got and is not published again.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from hub import constants as C
from hub.pipeline.checks import Verdict, check_package
from hub.pipeline.connection import Connection
from hub.store.records import append_rows, record_row, utcnow
from hub.store.tables import deliveries, documents, records, vdxp_inbox, vdxp_sent
from hub.vdxp.mailbox import iso
from hub.vdxp.systems import System
from hub.vdxp.wire import VdxpError

H_VDXP_SYSTEM = "x-hub-vdxp-system"  # the VDXP system that handed the package over (for the records)


def claimed_from(registry, system: System, value: str | None) -> None:
    """The signed ``from`` header is what the caller claims: its own system id, or an agency it serves."""
    if value is None or value in ("", system.id, system.agency):
        return
    if registry.system_of(value) != system.agency:
        raise VdxpError(f"system {system.id} acts for {system.agency} and the agencies it serves, not for {value} "
                        "(signed XroadVnpt-from)", code="authority.impersonation", element="XroadVnpt-from")


async def _known(engine, system: System, sha: str) -> str | None:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(vdxp_sent.c.doc_id).where(
            vdxp_sent.c.system == system.id, vdxp_sent.c.sha256 == sha))).scalar()


async def send(state, system: System, data: bytes) -> tuple[str, bool]:
    """Check and queue ``data`` as ``system``. Returns (DocId, whether it was a repeat)."""
    engine = state.engine
    ctx = await state.check_context()
    agency = ctx.registry.get(system.agency)
    # The system is authenticated (its HMAC); it vouches for packages as its agency's connected system.
    conn = Connection("vdxp", system.agency if agency is not None and agency.connected and agency.active else None,
                      system.id)
    loop = asyncio.get_running_loop()
    verdict: Verdict = await loop.run_in_executor(None, lambda: check_package(data, ctx, connection=conn))
    if not verdict.accepted:
        await _refused(engine, system, verdict)
        raise VdxpError(verdict.message or verdict.reason, code=verdict.reason, element=verdict.element)
    sha, package = verdict.sha256, verdict.package
    doc_id = str(uuid.uuid4())
    try:
        # One transaction: look up, remember, publish, commit. If publishing fails nothing is
        # remembered (the client's retry sends it again); if the commit fails after publishing,
        # the retry publishes again and the workers take the same bytes as a duplicate. Like the
        # gateway, no audit entry here on success: the workers record the package
        # (package.received, same SHA-256) and vdxp_sent maps the DocId to it (an entry here,
        # under the audit log's lock, cost a third of the sendEdoc rate).
        async with engine.begin() as conn:
            known = (await conn.execute(sa.select(vdxp_sent.c.doc_id).where(
                vdxp_sent.c.system == system.id, vdxp_sent.c.sha256 == sha))).scalar()
            if known is not None:
                raise _Repeated(known)
            other = (await conn.execute(sa.select(documents.c.sha256).where(
                documents.c.sender == package.sender.organ_id,
                documents.c.document_id == package.document_id))).scalar()
            if other is not None and other != sha:
                raise _Conflict()
            await conn.execute(vdxp_sent.insert().values(
                doc_id=doc_id, system=system.id, agency=system.agency, sha256=sha, document_id=package.document_id,
                sender=package.sender.organ_id, kind=package.kind,
                recipients=",".join(r.recipient for r in verdict.routes), sent_at=utcnow()))
            await state.backbone.publish(C.EXCHANGE_SUBMIT, "", data, user_id=state.backbone.user, headers={
                C.H_GATEWAY_AGENCY: system.agency, H_VDXP_SYSTEM: system.id, C.H_SUBMITTED_AT: time.time()})
    except _Repeated as r:  # the same request again (a retry, or a replay): its DocId, not sent twice
        async with engine.begin() as conn:
            await append_rows(conn, [record_row("vdxp.repeated", actor=f"vdxp:{system.id}", sha256=sha,
                                                document_id=package.document_id, sender=package.sender.organ_id,
                                                details={"docId": r.doc_id, "via": "vdxp"})])
        return r.doc_id, True
    except _Conflict:
        message = (f"DocumentId {package.document_id} of {package.sender.organ_id} was already used for a different "
                   "package; give a new document a new DocumentId")
        await _refused(engine, system, verdict, reason="state.duplicate_conflict", message=message)
        raise VdxpError(message, code="state.duplicate_conflict", element="MessageHeader/DocumentId") from None
    except IntegrityError:  # the same request raced itself: one DocId
        doc_id = await _known(engine, system, sha)
        if doc_id is None:
            raise
        return doc_id, True
    return doc_id, False


class _Repeated(Exception):
    def __init__(self, doc_id: str):
        super().__init__(doc_id)
        self.doc_id = doc_id


class _Conflict(Exception):
    pass


async def _refused(engine, system: System, v: Verdict, *, reason: str | None = None, message: str | None = None):
    async with engine.begin() as conn:
        await append_rows(conn, [record_row(
            "package.refused", actor=f"vdxp:{system.id}", document_id=v.document_id, sender=v.sender,
            sha256=v.sha256, reason=reason or v.reason, message=message or v.message,
            details={"size": v.size, "stage": v.stage if reason is None else "state", "element": v.element,
                     "via": "vdxp"})])


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

