"""The ministry gateway: an adapter over the SDK for systems that cannot speak AMQP.

POST /api/v1/documents            submit a signed package (202, or 4xx with the reason at once)
GET  /api/v1/inbox                pending packages, urgent first, leased until acknowledged
POST /api/v1/inbox/ack            acknowledge leased packages (each is handed over once)
GET  /api/v1/documents/{id}       the package and each recipient's status history
POST /api/v1/documents/{id}/status  a status (01-06, 13, 15, 16), signed by the caller or by the gateway
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from aiohttp import web

from hub import constants as C
from hub.api.blobs import read_package_body
from hub.api.endpoint import Endpoints, Reply
from hub.api.models import AckRequest, StatusRequest
from hub.api.replies import AckResult, Document, Inbox, StatusQueued, SubmitAccepted
from hub.api.params import DOC_ID, SENDER, q
from hub.api.state import STATE, principal
from hub.api.errors import error
from hub.backbone.base import Incoming, inbox_queue
from hub.edxml.builder import build_status, now_local
from hub.edxml.model import Organization, ResponseFor, StatusPackage
from hub.errors import UsageError
from hub.pipeline.checks import check_package
from hub.pipeline.connection import Connection
from hub.store import blobs
from hub.store.blobs import BlobRef
from hub.store.links import business_links
from hub.pipeline.refusal import sha256_hex
from hub.registry.store import maintenance_mode
from hub.audit.records import append_rows, record_row, utcnow
from hub.store.tables import deliveries, documents, gateway_seen, packages, status_history

api = Endpoints("gateway")
PACKAGE_BODY = {
    "description": "the signed edXML package, as signed: Content-Type application/xml, text/xml or "
                   "application/octet-stream (anything else is 415 http.unsupported_media_type)",
    "required": True,
    "content": {"application/xml": {"schema": {"type": "string"}}, "text/xml": {"schema": {"type": "string"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
LEASE_SECONDS = 300
STATUS_CODES = ("01", "02", "03", "04", "05", "06", "13", "15", "16")
_HTTP_FOR_STAGE = {"parse": 400, "schema": 422, "signature": 422, "trust": 422, "authority": 403}
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


async def _check_and_queue(request: web.Request, data: bytes):
    """Run the stateless checks as the calling agency; refuse at once (recorded in the audit log)
    or publish to edxml.submit for the workers. Returns the verdict or the refusal response."""
    state = request.app[STATE]
    p = principal(request)
    ctx = await state.check_context()
    agency = ctx.registry.get(p.agency)
    # The caller is authenticated (token or pinned TLS client certificate); it vouches for
    # packages only if it is a connected system.
    conn = Connection("tls" if p.user_id is None else "gateway",
                      p.agency if agency is not None and agency.connected else None, p.user_id or p.name)
    loop = asyncio.get_running_loop()
    verdict = await loop.run_in_executor(None, lambda: check_package(data, ctx, connection=conn))
    if not verdict.accepted:
        async with state.engine.begin() as conn:
            await append_rows(conn, [record_row(
                "package.refused", actor=f"gateway:{p.agency}", document_id=verdict.document_id,
                sender=verdict.sender, sha256=verdict.sha256, reason=verdict.reason, message=verdict.message,
                details={"size": verdict.size, "stage": verdict.stage, "element": verdict.element, "via": "http"})])
        status = 413 if verdict.reason == "parse.too_large" else _HTTP_FOR_STAGE.get(verdict.stage, 422)
        return error(status, verdict.reason, verdict.message, element=verdict.element, sha256=verdict.sha256)
    headers = {C.H_GATEWAY_AGENCY: p.agency, C.H_SUBMITTED_AT: time.time()}
    if len(data) > state.settings.by_reference_bytes:  # over the broker's limit, or simply large: by reference
        async with state.engine.begin() as conn:
            ref = await blobs.put_pieces(conn, [memoryview(data)], verdict.sha256, len(data))
        data, headers = b"", {**headers, **ref.headers()}
    await state.backbone.publish(C.EXCHANGE_SUBMIT, "", data, user_id=state.backbone.user, headers=headers)
    return verdict


@api.endpoint("POST", "/api/v1/documents", "Submit a signed package", roles=("agency",), body=PACKAGE_BODY,
              response=Reply(SubmitAccepted, "Checked and queued"), status=202, errors=(400, 403, 415, 422, 503),
              description="Runs every stateless check at once: 400 parse, 413 too large, 422 schema/signature/trust, "
                          "403 authority; 503 in maintenance.")
async def submit(request: web.Request) -> web.Response:
    if request.content_type.lower() not in SUBMIT_MEDIA_TYPES:
        return error(415, "http.unsupported_media_type",
                     f"send the signed package with Content-Type {', '.join(SUBMIT_MEDIA_TYPES)}; "
                     f"not {request.content_type}")
    refused = await _in_maintenance(request)
    if refused is not None:
        return refused
    data = await read_package_body(request, request.app[STATE].settings.max_package_bytes + 64 * 1024)
    if not data:
        return error(400, "parse.not_xml", "the request body must be the signed edXML package")
    verdict = await _check_and_queue(request, data)
    if isinstance(verdict, web.Response):
        return verdict
    return web.json_response({
        "document_id": verdict.document_id, "sha256": verdict.sha256, "kind": verdict.package.kind,
        "recipients": [{"code": r.recipient, "system": r.system} for r in verdict.routes],
        "status": "queued", "message": "checked and queued; the hub records and delivers it",
    }, status=202)


# --- inbox --------------------------------------------------------------------------------

@dataclass
class _Lease:
    incoming: Incoming
    agency: str
    key: str
    expires: float


@dataclass
class Inboxes:
    """Packages handed out over HTTP, held unsettled until acknowledged or the lease expires."""

    leases: dict[str, _Lease] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def expire(self) -> None:
        now = time.monotonic()
        for lid, lease in list(self.leases.items()):
            if lease.expires < now:
                del self.leases[lid]
                try:
                    await lease.incoming.reject(requeue=True)  # back to the inbox for the next GET
                except Exception:  # noqa: BLE001 - connection gone: RabbitMQ requeued it already
                    pass


async def inboxes_ctx(app: web.Application):
    state = app[STATE]
    state.gateway = Inboxes()

    async def sweep() -> None:
        while True:
            await asyncio.sleep(5)
            await state.gateway.expire()

    task = asyncio.create_task(sweep())
    yield
    task.cancel()
    for lease in list(state.gateway.leases.values()):
        try:
            await lease.incoming.reject(requeue=True)
        except Exception:  # noqa: BLE001
            pass
    state.gateway.leases.clear()


def _key(incoming: Incoming) -> str:
    h = incoming.message.headers or {}
    return incoming.message.message_id or f"{h.get(C.H_KIND)}:{h.get(C.H_SENDER)}:{h.get(C.H_DOCUMENT_ID)}"


@api.endpoint("GET", "/api/v1/inbox", "Pending packages, urgent first, leased until acknowledged",
              roles=("agency",), response=Inbox, errors=(400, 409, 503),
              params=[q("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "at most this many")],
              description="409 when the agency has no own system (its packages go to the system that serves it).")
async def inbox(request: web.Request) -> web.Response:
    state = request.app[STATE]
    p = principal(request)
    try:
        limit = max(1, min(100, int(request.query.get("limit", "20"))))
    except ValueError:
        raise UsageError("limit must be a whole number from 1 to 100") from None
    ctx = await state.check_context()
    agency = ctx.registry.get(p.agency)
    if agency is None or not agency.connected:
        return error(409, "gateway.no_inbox", f"{p.agency} has no own system and so no inbox; its packages go to "
                                              f"{ctx.registry.system_of(p.agency) or 'no system'}")
    out = []
    inboxes: Inboxes = state.gateway
    async with inboxes.lock:
        await inboxes.expire()
        held = {lease.key for lease in inboxes.leases.values() if lease.agency == p.agency}
        for urgent in (True, False):
            while len(out) < limit:
                incoming = await state.backbone.get(inbox_queue(p.agency, urgent))
                if incoming is None:
                    break
                key = _key(incoming)
                async with state.engine.connect() as conn:
                    seen = (await conn.execute(sa.select(gateway_seen.c.at).where(
                        gateway_seen.c.agency == p.agency, gateway_seen.c.message_id == key))).first()
                if seen is not None or key in held:
                    await incoming.ack()  # a redelivered copy of something already handed over
                    continue
                lid = secrets.token_urlsafe(12)
                inboxes.leases[lid] = _Lease(incoming, p.agency, key, time.monotonic() + LEASE_SECONDS)
                h = incoming.message.headers or {}
                ref = BlobRef.of(h)  # a large package: its bytes at GET /api/v1/blobs/{sha256}
                out.append({
                    "id": lid, "kind": h.get(C.H_KIND), "document_id": h.get(C.H_DOCUMENT_ID),
                    "sender": h.get(C.H_SENDER), "recipient": h.get(C.H_RECIPIENT), "urgent": urgent,
                    "reason": h.get(C.H_REASON), "message": h.get(C.H_MESSAGE),
                    "sha256": ref.sha256 if ref else sha256_hex(incoming.message.body),
                    "package": base64.b64encode(incoming.message.body).decode("ascii"),
                    **({"blob": {"sha256": ref.sha256, "size": ref.size, "href": f"/api/v1/blobs/{ref.sha256}"}}
                       if ref else {}),
                })
    return web.json_response({"packages": out, "lease_seconds": LEASE_SECONDS,
                              "next": "POST /api/v1/inbox/ack with the ids once stored"})


@api.endpoint("POST", "/api/v1/inbox/ack", "Acknowledge leased packages", roles=("agency",), body=AckRequest,
              replies={200: Reply(AckResult, "All acknowledged"),
                       207: Reply(AckResult, "Some ids were unknown or expired")}, errors=(400,))
async def inbox_ack(request: web.Request, body: AckRequest) -> web.Response:
    state = request.app[STATE]
    p = principal(request)
    ids = body.ids
    acked, unknown = [], []
    inboxes: Inboxes = state.gateway
    async with inboxes.lock:
        for lid in ids:
            lease = inboxes.leases.get(lid)
            if lease is None or lease.agency != p.agency:
                unknown.append(lid)
                continue
            async with state.engine.begin() as conn:
                exists = (await conn.execute(sa.select(gateway_seen.c.at).where(
                    gateway_seen.c.agency == p.agency, gateway_seen.c.message_id == lease.key))).first()
                if exists is None:
                    await conn.execute(gateway_seen.insert().values(agency=p.agency, message_id=lease.key, at=utcnow()))
            del inboxes.leases[lid]  # only once it is remembered as handed over
            await lease.incoming.ack()
            acked.append(lid)
    return web.json_response({"acknowledged": acked, "unknown": unknown},
                             status=200 if not unknown else 207)


# --- documents ----------------------------------------------------------------------------

def iso_utc(value) -> str:
    """ISO 8601 with the UTC offset (SQLite hands back naive datetimes; they are UTC)."""
    from datetime import timezone

    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()


async def _find_document(request: web.Request, doc_id: str) -> dict:
    """The edoc with this DocumentId that the caller may see (404 otherwise)."""
    state = request.app[STATE]
    p = principal(request)
    q = sa.select(documents).where(documents.c.document_id == doc_id, documents.c.kind == "edoc")
    sender = request.query.get("sender")
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
              roles=("agency", "auditor", "admin"), response=Document, errors=(400, 404), params=[DOC_ID, SENDER],
              description="400 when several senders used the DocumentId (add ?sender=).")
async def get_document(request: web.Request) -> web.Response:
    state = request.app[STATE]
    doc = await _find_document(request, request.match_info["id"])
    async with state.engine.connect() as conn:
        data = (await conn.execute(sa.select(packages.c.data).where(packages.c.sha256 == doc["sha256"]))).scalar()
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
        "package": base64.b64encode(data or b"").decode("ascii"),
    })


@api.endpoint("POST", "/api/v1/documents/{id:.+}/status", "Send a status for a received document",
              roles=("agency",), body=StatusRequest, response=Reply(StatusQueued, "Checked and queued"), status=202,
              errors=(400, 404, 409, 422, 503), params=[DOC_ID, SENDER])
async def post_status(request: web.Request, body: StatusRequest) -> web.Response:
    state = request.app[STATE]
    p = principal(request)
    refused = await _in_maintenance(request)
    if refused is not None:
        return refused
    doc = await _find_document(request, request.match_info["id"])
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
    verdict = await _check_and_queue(request, data)
    if isinstance(verdict, web.Response):
        return verdict
    return web.json_response({"document_id": doc["document_id"], "status": verdict.package.status_code,
                              "queued": True, "message": "queued; the hub checks the transition and delivers it"},
                             status=202)


def _held_identity(state, code: str):
    """The key the gateway holds for an agency that lets it sign (HUB_GATEWAY_KEYS_DIR/<code>.key|.pem)."""
    from hub.pki.identity import Identity

    base = Path(state.settings.data_dir) / "gateway-keys"
    key, cert = base / f"{code}.key", base / f"{code}.pem"
    if not key.exists() or not cert.exists():
        raise UsageError(f"the gateway holds no signing key for {code}; sign the status package yourself and "
                         'send it as {"package": "<base64>"}, or ask the operator to place the key in ' + str(base))
    return Identity.load(code, key, cert)
