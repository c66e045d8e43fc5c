"""The auditors' page: search the audit log by sender, recipient, DocumentId (any part, case
ignored), number/notation, subject, reason, event and date range (Vietnam dates), with paging,
a CSV export and each document's evidence bundle."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import sqlalchemy as sa
from aiohttp import web

from hub.audit import query
from hub.audit.bundle import export_bundle, log_export
from hub.followup.rules import vn_day_start
from hub.registry.store import load_trust
from hub.store.tables import documents, records
from hub.web import data, exports
from hub.web.i18n import _, parse_date
from hub.web.links import url_query
from hub.web.render import Ctx, headers, int_param, render, view

routes = web.RouteTableDef()
PER_PAGE = 50
MAX_EXPORT = 100_000
FIELDS = ("sender", "recipient", "document", "number", "subject", "reason", "event", "from", "to")


def _contains(column, text: str):
    like = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return sa.func.lower(column).like(like, escape="\\")


def conditions(params: dict[str, str]) -> list:
    """The WHERE clauses for the search form's fields (each optional)."""
    p = {k: (params.get(k) or "").strip()[:255] for k in FIELDS}
    start, end = parse_date(p["from"]), parse_date(p["to"])
    where = query.search_conditions(
        sender=p["sender"] or None, recipient=p["recipient"] or None, event=p["event"] or None,
        reason=p["reason"] or None, since=vn_day_start(start) if start else None,
        until=vn_day_start(end + timedelta(days=1)) if end else None)
    if p["document"]:
        where.append(_contains(records.c.document_id, p["document"]))
    docs = []
    if p["number"]:
        docs.append(_contains(documents.c.code, p["number"]))
    if p["subject"]:
        docs.append(_contains(documents.c.subject, p["subject"]))
    if docs:
        where.append(records.c.document_id.in_(sa.select(documents.c.document_id).where(*docs)))
    return where


async def search(engine, params: dict[str, str], limit: int, offset: int,
                 count_cap: int | None = query.COUNT_CAP) -> query.Found:
    """One page of the form's search and the total, counted up to ``count_cap`` entries past the page."""
    where = conditions(params)
    # a recipient's entries come newest first from its range of the index (audit_recipients);
    # alone, it is also what the count reads (hub.audit.query.page)
    recipient = (params.get("recipient") or "").strip()[:255]
    alone = bool(recipient) and not any((params.get(k) or "").strip() for k in FIELDS if k != "recipient")
    columns = [records.c.seq, records.c.at, records.c.event, records.c.actor, records.c.sender,
               records.c.document_id, records.c.reason, records.c.message]
    async with engine.connect() as conn:
        # part of a DocumentId: a common part's newest entries are found by walking the log, a
        # rare part's through its trigram index (seq + 0: sorted after, not walked)
        walk = (records.c.seq + 0).desc() if (params.get("document") or "").strip() else None
        found = await query.page(conn, columns, where, records.c.seq.desc(), limit, offset, count_cap=count_cap,
                                 count=query.recipient_index(recipient) if alone else None, walk_first=walk)
    return query.Found(found.total, [{c.name: r[c.name] for c in columns} for r in found.rows],
                       found.total_is_lower_bound, found.counted_in_time)


@routes.get("/admin/audit")
@view()
async def audit_page(ctx: Ctx) -> web.Response:
    params = {k: ctx.request.query.get(k, "") for k in FIELDS}
    if ctx.request.query.get("format") == "csv":
        found = await search(ctx.state.engine, params, MAX_EXPORT, 0)
        rows = found.rows
        header = [_("Seq"), _("Time"), _("Event"), _("Actor"), _("Sender"), "DocumentId", _("Reason"), _("Message")]
        body = [[r["seq"], r["at"], r["event"], r["actor"], r["sender"], r["document_id"], r["reason"], r["message"]]
                for r in rows]
        payload = exports.to_csv(header, body)
        await log_export(ctx.state.engine, ctx.user.actor, "csv", rows=len(rows),
                         filters={k: v for k, v in params.items() if v})
        return headers(web.Response(body=payload, headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="nhat-ky-kiem-toan.csv"'}))
    searched = any(params.values())
    page_no = int_param(ctx.request, "page", 1, 1, 10**7)
    found = (await search(ctx.state.engine, params, PER_PAGE, (page_no - 1) * PER_PAGE, query.COUNT_CAP)
             if searched else query.Found(0, []))
    total, rows, more, in_time = found.total, found.rows, found.total_is_lower_bound, found.counted_in_time
    names = await data.agency_names(ctx.state.engine, [r["sender"] for r in rows])
    kept = {k: v for k, v in params.items() if v}
    return await render(
        ctx, "audit.html", title=_("Audit"), active="audit", q=params, rows=rows, total=total, more=more,
        in_time=in_time, names=names, searched=searched, page_no=page_no, pages=max(1, -(-total // PER_PAGE)),
        prev_url=url_query("/admin/audit", **kept, page=page_no - 1),
        next_url=url_query("/admin/audit", **kept, page=page_no + 1),
        csv_url=url_query("/admin/audit", **kept, format="csv"))


@routes.get("/admin/audit/bundle/{id:.+}")
@view()
async def bundle(ctx: Ctx) -> web.Response:
    """A document's evidence bundle (the same zip as GET /api/v1/audit/documents/{id}/bundle)."""
    state = ctx.state
    doc_id = ctx.request.match_info["id"]
    sender = ctx.request.query.get("sender") or None
    try:
        payload = await export_bundle(state.engine, doc_id, state.identity.cert, await load_trust(state.engine),
                                      sender, identity=state.identity, exported_by=ctx.user.actor, seal=True)
    except query.NotFound as e:
        return await render(ctx, "message.html", title=_("Not found"), status=404, heading=_("Not found"),
                            box={"kind": "error", "title": e.message, "detail": ""})
    digest = hashlib.sha256(payload).hexdigest()
    await log_export(state.engine, ctx.user.actor, "bundle", document_id=doc_id, sender=sender,
                     bundle_sha256=digest, bytes=len(payload))
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", doc_id)[:120]
    return headers(web.Response(body=payload, headers={
        "Content-Type": "application/zip", "Content-Disposition": f'attachment; filename="audit-{safe}.zip"',
        "X-Bundle-SHA256": digest}))
