"""Auditor API under /api/v1/audit/: read the audit log, prove it, export evidence.

Auditors read everything and change nothing; admins may read too; agencies may not. There
is no route that changes an entry or a checkpoint (the tables are append-only in the
database as well). What an auditor takes away — a CSV export or an evidence bundle — is
itself logged as an ``audit.exported`` entry with the caller as actor.

GET /api/v1/audit/entries                   search: ?document_id, sender, recipient, type, event,
                                            reason, since, until, limit, offset, format=json|csv
GET /api/v1/audit/documents/{id}/trail      every event of one document in order, time between
                                            steps, each recipient's status history (?sender=)
GET /api/v1/audit/documents/{id}/bundle     the evidence zip (application/zip) for offline checking
GET /api/v1/audit/checkpoints               signed checkpoints, latest first (?limit, offset)
GET /api/v1/audit/consistency?old=&new=     proof that checkpoint ``new`` extends ``old``, verified

DocumentIds hold slashes and commas: send them percent-encoded (``{id:.+}`` takes the rest
of the path).
"""

from __future__ import annotations

import hashlib
import re

from aiohttp import web

from hub.api.endpoint import Endpoints, Reply
from hub.api.replies import AuditEntries, Checkpoints, Consistency, Trail
from hub.api.models import AuditEntriesQuery, CheckpointQuery, ConsistencyQuery, DocumentPath, SenderQuery
from hub.api.state import STATE, principal
from hub.api.errors import error
from hub.audit import query
from hub.audit.bundle import export_bundle, log_export
from hub.audit.checkpoint import key_id_for
from hub.pki.certs import fingerprint, to_pem
from hub.registry.store import load_trust

api = Endpoints("audit")
AUDITORS = ("auditor", "admin")
FILTERS = ("document_id", "sender", "recipient", "event", "reason", "since", "until")


@api.endpoint("GET", "/api/v1/audit/entries", "Search the audit log", roles=AUDITORS,
              response=Reply(AuditEntries, "One page of entries (JSON) or the export (CSV)",
                             also={"text/csv": {"type": "string"}}), errors=(400,), query=AuditEntriesQuery,
              description="Unknown query parameters are refused (400).")
async def entries(request: web.Request, args: AuditEntriesQuery) -> web.Response:
    state = request.app[STATE]
    fmt, limit, offset = args.format, args.limit, args.offset
    filters = {k: getattr(args, k) for k in FILTERS}
    filters["doc_type"] = args.type or args.doc_type
    found = await query.find(state.engine, **filters, limit=limit, offset=offset, count_cap=query.COUNT_CAP)
    total, rows = found.total, found.rows
    shown = {k: (query.iso(v) if k in ("since", "until") else v) for k, v in filters.items() if v is not None}
    if fmt == "csv":
        await log_export(state.engine, principal(request).actor, "entries.csv", filters=shown, offset=offset,
                         rows=len(rows), total=total)
        return web.Response(body=query.render_csv(rows).encode("utf-8"), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": 'attachment; filename="audit-entries.csv"',
                                     "X-Total-Count": str(total),
                                     "X-Total-Is-Lower-Bound": "true" if found.total_is_lower_bound else "false"})
    return web.Response(text=query.render_json(total, rows, limit=limit, offset=offset, filters=shown,
                                               total_is_lower_bound=found.total_is_lower_bound),
                        content_type="application/json")


@api.endpoint("GET", "/api/v1/audit/documents/{id:.+}/trail",
              "Every event of one document in order, with each recipient's status history", roles=AUDITORS,
              response=Trail, errors=(400, 404), path_model=DocumentPath, query=SenderQuery)
async def trail(request: web.Request, args: SenderQuery, path: DocumentPath) -> web.Response:
    state = request.app[STATE]
    try:
        t = await query.trail(state.engine, path.id, args.sender)
    except query.NotFound as e:
        return error(404, e.code, e.message)
    return web.json_response(t)


@api.endpoint("GET", "/api/v1/audit/documents/{id:.+}/bundle", "The evidence bundle (zip) to check offline",
              roles=AUDITORS, response=Reply({"type": "string", "format": "binary"}, "The bundle", "application/zip"),
              errors=(400, 404), path_model=DocumentPath, query=SenderQuery,
              description="Recorded as audit.exported with the caller as actor.")
async def bundle(request: web.Request, args: SenderQuery, path: DocumentPath) -> web.Response:
    state = request.app[STATE]
    p = principal(request)
    doc_id, sender = path.id, args.sender
    try:  # seal=True: the bundle proves every entry it holds (a new checkpoint only when one is needed)
        data = await export_bundle(state.engine, doc_id, state.identity.cert, await load_trust(state.engine), sender,
                                   identity=state.identity, exported_by=p.actor, seal=True)
    except query.NotFound as e:
        return error(404, e.code, e.message)
    digest = hashlib.sha256(data).hexdigest()
    await log_export(state.engine, p.actor, "bundle", document_id=doc_id, sender=sender, bundle_sha256=digest,
                     bytes=len(data))
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", doc_id)[:120]
    return web.Response(body=data, content_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="audit-{safe}.zip"', "X-Bundle-SHA256": digest})


@api.endpoint("GET", "/api/v1/audit/checkpoints", "Signed checkpoints, latest first", roles=AUDITORS,
              response=Checkpoints, errors=(400,), query=CheckpointQuery)
async def checkpoints(request: web.Request, args: CheckpointQuery) -> web.Response:
    state = request.app[STATE]
    limit, offset = args.limit, args.offset
    total, rows = await query.list_checkpoints(state.engine, limit, offset)
    cert = state.identity.cert
    return web.json_response({
        "total": total, "offset": offset, "limit": limit, "checkpoints": rows,
        "hub_certificate": {"pem": to_pem(cert), "sha256": fingerprint(cert), "key_id": key_id_for(cert)},
    })


@api.endpoint("GET", "/api/v1/audit/consistency", "Proof that checkpoint new extends checkpoint old, verified",
              roles=AUDITORS, response=Consistency, errors=(400, 404), query=ConsistencyQuery)
async def consistency(request: web.Request, args: ConsistencyQuery) -> web.Response:
    state = request.app[STATE]
    old, new = args.old, args.new
    if new is None:
        async with state.engine.connect() as conn:
            latest = await query.get_checkpoint(conn)
        if latest is None:
            return error(404, "usage.not_found", "no checkpoint has been signed yet")
        new = latest["size"]
    try:
        report = await query.consistency_report(state.engine, old, new, state.identity.cert)
    except query.NotFound as e:
        return error(404, e.code, e.message)
    return web.json_response(report)
