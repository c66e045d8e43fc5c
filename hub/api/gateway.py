"""The ministry gateway: an adapter over the SDK for systems that cannot speak AMQP.

POST /api/v1/documents            submit a signed package (202 once recorded, or 4xx with the reason)
GET  /api/v1/inbox                pending packages, urgent first, leased until acknowledged
POST /api/v1/inbox/ack            acknowledge leased packages (each is handed over once)
GET  /api/v1/documents/{id}       the package and each recipient's status history
POST /api/v1/documents/{id}/status  a status (01-06, 13, 15, 16), signed by the caller or by the gateway

Submissions take the broker's path (:mod:`hub.pipeline.submit`): the gateway publishes the
package to ``edxml.submit`` naming the caller's authenticated connection and waits for the
worker's decision; it runs no check and records no refusal of its own.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import sqlalchemy as sa
from aiohttp import web

from hub import constants as C
from hub.api import leases
from hub.api.blobs import package_fields, receive_package
from hub.api.endpoint import Endpoints, Reply
from hub.api.leases import LEASE_SECONDS
from hub.api.models import AckRequest, DocumentPath, InboxQuery, SenderQuery, StatusRequest
from hub.api.replies import AckResult, Document, Inbox, StatusQueued, SubmitAccepted
from hub.api.state import STATE, principal
from hub.api.errors import error
from hub.edxml.builder import build_status, now_local
from hub.edxml.model import Organization, ResponseFor, StatusPackage
from hub.errors import UsageError
from hub.pipeline.submit import Decision, Handover, hand_over
from hub.store import blobs
from hub.store.blobs import BlobRef
from hub.store import packages as stored_packages
from hub.store.links import business_links
from hub.pipeline.refusal import sha256_hex
from hub.registry.store import maintenance_mode
from hub.store.tables import deliveries, documents, status_history

api = Endpoints("gateway")
PACKAGE_BODY = {
    "description": "the signed edXML package, as signed: Content-Type application/xml, text/xml or "
                   "application/octet-stream (anything else is 415 http.unsupported_media_type)",
    "required": True,
    "content": {"application/xml": {"schema": {"type": "string"}}, "text/xml": {"schema": {"type": "string"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
STATUS_CODES = ("01", "02", "03", "04", "05", "06", "13", "15", "16")
_HTTP_FOR_STAGE = {"parse": 400, "schema": 422, "signature": 422, "trust": 422, "authority": 403, "state": 409}
DECISION_WAIT = 10.0  # seconds a submission waits for the worker's decision before it is answered "queued"
# A package is XML, sent as signed: application/xml or text/xml, or application/octet-stream for
# clients that upload raw bytes (and what HTTP libraries send for a bytes body without a type).
# Anything else (form posts, JSON, text/plain...) is refused: such a body was not meant as a package.
SUBMIT_MEDIA_TYPES = ("application/xml", "text/xml", "application/octet-stream")




# --- submit -------------------------------------------------------------------------------

async def _in_maintenance(request: web.Request) -> web.Response | None:
    async with request.app[STATE].engine.connect() as conn:
        mode = await maintenance_mode(conn)
    if mode != "running":
        return error(503, "hub.maintenance", "the hub is in maintenance and takes no new packages; retry later",
                     retry_after=30)
    return None


async def _hand_over(request: web.Request, data: bytes | bytearray | BlobRef) -> Decision | web.Response | None:
    """Hand ``data`` (or the blob an upload was streamed into) to the intake as the calling agency
    and wait for the worker's decision: the decision, the refusal as an error response, or None
    when it is queued undecided."""
    state = request.app[STATE]
    p = principal(request)
    # The caller is authenticated (token or pinned TLS client certificate); the worker lets it
    # vouch for packages only if it is a connected system.
    more: dict = {}
    if isinstance(data, BlobRef):  # streamed to the blob store on arrival (hub.api.blobs.receive_package)
        data, more = b"", data.headers()
    elif len(data) > state.settings.by_reference_bytes:  # over the broker's limit, or simply large: by reference
        async with state.engine.begin() as conn:
            ref = await blobs.put_pieces(conn, [memoryview(data)], sha256_hex(data), len(data))
        data, more = b"", ref.headers()
    decision = await hand_over(state.engine, state.backbone, Handover(
        data, p.agency, "tls" if p.user_id is None else "gateway", p.user_id or p.name, headers=more),
        wait=DECISION_WAIT)
    if decision is None or decision.accepted:
        return decision
    status = 413 if decision.reason == "parse.too_large" else _HTTP_FOR_STAGE.get(decision.stage, 422)
    return error(status, decision.reason, decision.message or "", element=decision.element, sha256=decision.sha256)


@api.endpoint("POST", "/api/v1/documents", "Submit a signed package", roles=("agency",), body=PACKAGE_BODY,
              response=Reply(SubmitAccepted, "Checked and recorded (or queued)"), status=202,
              errors=(400, 403, 409, 413, 415, 422, 503),
              description="Hands the package to the hub's workers and answers with their decision: 202 recorded "
                          "(or duplicate: the same bytes were recorded before); 400 parse, 413 too large, 422 "
                          "schema/signature/trust, 403 authority, 409 state (a used DocumentId, an unknown "
                          "ResponseFor); the refusal is recorded once and also sent to the sender's inbox as a "
                          "status 02. 202 queued when the workers did not decide within 10 s (their decision "
                          "then reaches the inbox); 503 in maintenance.")
async def submit(request: web.Request) -> web.Response:
    if request.content_type.lower() not in SUBMIT_MEDIA_TYPES:
        return error(415, "http.unsupported_media_type",
                     f"send the signed package with Content-Type {', '.join(SUBMIT_MEDIA_TYPES)}; "
                     f"not {request.content_type}")
    refused = await _in_maintenance(request)
    if refused is not None:
        return refused
    settings = request.app[STATE].settings
    data = await receive_package(request, settings.max_package_bytes + 64 * 1024, settings.by_reference_bytes)
    if not data:
        return error(400, "parse.not_xml", "the request body must be the signed edXML package")
    decision = await _hand_over(request, data)
    if isinstance(decision, web.Response):
        return decision
    if decision is None:
        sha256 = data.sha256 if isinstance(data, BlobRef) else sha256_hex(data)
        return web.json_response({
            "document_id": None, "sha256": sha256, "kind": None, "recipients": [], "status": "queued",
            "message": "queued; the hub is busy and has not decided yet: its decision reaches your inbox"},
            status=202)
    return web.json_response({
        "document_id": decision.document_id, "sha256": decision.sha256, "kind": decision.kind,
        "recipients": [{"code": r, "system": s} for r, s in decision.recipients], "status": decision.outcome,
        "message": "checked and recorded; the hub delivers it" if decision.outcome == "recorded" else
                   "already recorded: the same package was received before and is not delivered again",
    }, status=202)


# --- inbox --------------------------------------------------------------------------------
# Leases live in the database (hub.api.leases): fetch on one instance, acknowledge on another.

@api.endpoint("GET", "/api/v1/inbox", "Pending packages, urgent first, leased until acknowledged",
              roles=("agency",), response=Inbox, errors=(400, 409, 503),
              query=InboxQuery,
              description="409 when the agency has no own system (its packages go to the system that serves it).")
async def inbox(request: web.Request, args: InboxQuery) -> web.Response:
    state = request.app[STATE]
    p = principal(request)
    limit = args.limit
    ctx = await state.check_context()
    agency = ctx.registry.get(p.agency)
    if agency is None or not agency.connected:
        return error(409, "gateway.no_inbox", f"{p.agency} has no own system and so no inbox; its packages go to "
                                              f"{ctx.registry.system_of(p.agency) or 'no system'}")
    out = []
    for item in await leases.hand_out(state.engine, state.backbone, p.agency, limit, LEASE_SECONDS):
        h = item.headers
        ref = BlobRef.of(h)  # a large package: its bytes at GET /api/v1/blobs/{sha256}
        out.append({
            "id": item.lease_id, "kind": h.get(C.H_KIND), "document_id": h.get(C.H_DOCUMENT_ID),
            "sender": h.get(C.H_SENDER), "recipient": h.get(C.H_RECIPIENT), "urgent": item.urgent,
            "reason": h.get(C.H_REASON), "message": h.get(C.H_MESSAGE),
            "sha256": ref.sha256 if ref else sha256_hex(item.data),
            "package": base64.b64encode(item.data).decode("ascii"),
            **({"blob": {"sha256": ref.sha256, "size": ref.size, "href": f"/api/v1/blobs/{ref.sha256}"}}
               if ref else {}),
        })
    return web.json_response({"packages": out, "lease_seconds": LEASE_SECONDS,
                              "next": "POST /api/v1/inbox/ack with the ids once stored"})


@api.endpoint("POST", "/api/v1/inbox/ack", "Acknowledge leased packages", roles=("agency",), body=AckRequest,
              replies={200: Reply(AckResult, "All acknowledged"),
                       207: Reply(AckResult, "Some ids were unknown or expired")}, errors=(400,))
async def inbox_ack(request: web.Request, body: AckRequest) -> web.Response:
    acked, unknown = await leases.settle(request.app[STATE].engine, principal(request).agency, body.ids)
    return web.json_response({"acknowledged": acked, "unknown": unknown},
                             status=200 if not unknown else 207)


# --- documents ----------------------------------------------------------------------------

def iso_utc(value) -> str:
    """ISO 8601 with the UTC offset (SQLite hands back naive datetimes; they are UTC)."""
    from datetime import timezone

    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()


async def _find_document(request: web.Request, doc_id: str, sender: str | None) -> dict:
    """The edoc with this DocumentId that the caller may see (404 otherwise)."""
    state = request.app[STATE]
    p = principal(request)
    q = sa.select(documents).where(documents.c.document_id == doc_id, documents.c.kind == "edoc")
    if sender:
        q = q.where(documents.c.sender == sender)
    async with state.engine.connect() as conn:
        rows = (await conn.execute(q)).mappings().all()
        visible = []
        for row in rows:
            if p.role in ("auditor", "admin") or row["sender"] == p.agency:
                visible.append(dict(row))
                continue
            hit = (await conn.execute(sa.select(deliveries.c.id).where(
                deliveries.c.document == row["id"],
                sa.or_(deliveries.c.recipient == p.agency, deliveries.c.system == p.agency)))).first()
            if hit is not None:
                visible.append(dict(row))
    if not visible:
        raise web.HTTPNotFound(text=f"no document {doc_id} that you sent or received")
    if len(visible) > 1:
        raise UsageError(f"{len(visible)} senders used DocumentId {doc_id}; add ?sender=CODE")
    return visible[0]


@api.endpoint("GET", "/api/v1/documents/{id:.+}",
              "A document the caller sent or received, with each recipient's status history",
              roles=("agency", "auditor", "admin"), response=Document, errors=(400, 404), path_model=DocumentPath,
              query=SenderQuery,
              description="400 when several senders used the DocumentId (add ?sender=).")
async def get_document(request: web.Request, args: SenderQuery, path: DocumentPath) -> web.Response:
    state = request.app[STATE]
    doc = await _find_document(request, path.id, args.sender)
    async with state.engine.connect() as conn:
        stored = await stored_packages.locate(conn, doc["sha256"])
        dels = (await conn.execute(sa.select(deliveries).where(deliveries.c.document == doc["id"])
                                   .order_by(deliveries.c.id))).mappings().all()
        hist = (await conn.execute(sa.select(status_history).where(
            status_history.c.delivery.in_([d["id"] for d in dels])).order_by(status_history.c.id))).mappings().all()
        links = await business_links(conn, doc)
    by_delivery: dict[int, list] = {}
    for h in hist:
        by_delivery.setdefault(h["delivery"], []).append({
            "code": h["status_code"], "name": C.STATUS_NAMES.get(h["status_code"], ""), "by": h["actor"],
            "description": h["description"], "at": iso_utc(h["at"])})
    return web.json_response({
        "document_id": doc["document_id"], "sender": doc["sender"], "sha256": doc["sha256"],
        "type": doc["doc_type"], "priority": doc["priority"], "subject": doc["subject"],
        "received_at": iso_utc(doc["received_at"]), "legacy_sha1": doc["legacy_sha1"],
        "authenticated_by": doc["authenticated_by"],
        "acts_on": links["acts_on"],
        "acted_on_by": [{**x, "at": iso_utc(x["at"])} for x in links["acted_on_by"]],
        "recipients": [{"code": d["recipient"], "system": d["system"], "status": d["status"],
                        "history": by_delivery.get(d["id"], [])} for d in dels],
        **package_fields(stored),
    })


@api.endpoint("POST", "/api/v1/documents/{id:.+}/status", "Send a status for a received document",
              roles=("agency",), body=StatusRequest, response=Reply(StatusQueued, "Checked and recorded (or queued)"), status=202,
              errors=(400, 403, 404, 409, 422, 503), path_model=DocumentPath, query=SenderQuery)
async def post_status(request: web.Request, body: StatusRequest, args: SenderQuery, path: DocumentPath) -> web.Response:
    state = request.app[STATE]
    p = principal(request)
    refused = await _in_maintenance(request)
    if refused is not None:
        return refused
    doc = await _find_document(request, path.id, args.sender)
    if body.package is not None:
        try:
            data = base64.b64decode(body.package, validate=True)
        except ValueError:
            raise UsageError("package must be the base64 of a signed status package") from None
    else:
        code = body.code or ""
        if code not in STATUS_CODES:
            raise UsageError(f"code must be one of {', '.join(STATUS_CODES)}")
        reason = body.reason or ""
        if code == "02" and not reason:
            raise UsageError("status 02 (rejected) needs a reason")
        ident = _held_identity(state, p.agency)
        st = StatusPackage(sender=Organization(p.agency), response_for=ResponseFor(doc["sender"], doc["document_id"]),
                           status_code=code, description=reason, timestamp=now_local())
        data = ident.sign(build_status(st))
    decision = await _hand_over(request, data)
    if isinstance(decision, web.Response):
        return decision
    if decision is None:
        return web.json_response({"document_id": doc["document_id"], "status": body.code, "queued": True,
                                  "message": "queued; the hub has not decided yet: its decision reaches your inbox"},
                                 status=202)
    return web.json_response({"document_id": doc["document_id"], "status": decision.status_code, "queued": True,
                              "message": "checked and recorded; the hub delivers it"}, status=202)


def _held_identity(state, code: str):
    """The key the gateway holds for an agency that lets it sign (HUB_GATEWAY_KEYS_DIR/<code>.key|.pem)."""
    from hub.pki.identity import Identity

    base = Path(state.settings.data_dir) / "gateway-keys"
    key, cert = base / f"{code}.key", base / f"{code}.pem"
    if not key.exists() or not cert.exists():
        raise UsageError(f"the gateway holds no signing key for {code}; sign the status package yourself and "
                         'send it as {"package": "<base64>"}, or ask the operator to place the key in ' + str(base))
    return Identity.load(code, key, cert)
