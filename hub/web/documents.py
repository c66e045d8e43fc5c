"""Documents: find one by DocumentId (the latest are listed) and read its timeline: recipients,
each recipient's status history with dates, the audit entries with the time between steps; and
any stored package's bytes (streamed, however large: ``hub.store.packages``)."""

from __future__ import annotations

from aiohttp import web
import sqlalchemy as sa

from hub import constants as C
from hub.api.blobs import stream
from hub.followup.rules import aware
from hub.store import packages as stored_packages
from hub.store.tables import documents
from hub.web import data
from hub.web.i18n import _, fmt_duration, priority_name, status_name
from hub.web.links import url_path
from hub.web.render import Ctx, redirect, render, view

routes = web.RouteTableDef()
DETAIL_KEYS = ("recipient", "inbox", "status", "recipients", "type", "priority", "size", "stage", "element", "via",
               "dead_letter")


def details_text(details) -> str:
    """The interesting fields of an audit entry's details, as ``key: value; …``."""
    if not isinstance(details, dict):
        return ""
    bits = []
    for k in DETAIL_KEYS:
        v = details.get(k)
        if v in (None, "", []):
            continue
        if k == "priority" and isinstance(v, int):
            v = priority_name(v)
        if k == "status" and isinstance(v, str):
            v = status_name(v)
        if isinstance(v, list):
            v = ", ".join("→".join(map(str, x)) if isinstance(x, (list, tuple)) else str(x) for x in v)
        bits.append(f"{k}: {v}")
    return "; ".join(bits)


@routes.get("/admin/documents")
@view()
async def documents_page(ctx: Ctx) -> web.Response:
    wanted = ctx.request.query.get("id", "").strip()
    if wanted:
        return redirect(url_path("admin", "documents", wanted[:255]))
    async with ctx.state.engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(documents.c.document_id, documents.c.sender, documents.c.kind, documents.c.subject,
                      documents.c.received_at, documents.c.status_code, documents.c.doc_type, documents.c.type_name,
                      documents.c.due_date)
            .order_by(documents.c.id.desc()).limit(25))).mappings().all()
    return await render(ctx, "documents.html", title=_("Documents"), active="documents", rows=rows)


@routes.get("/admin/documents/{id:.+}")
@view()
async def document_page(ctx: Ctx) -> web.Response:
    doc_id = ctx.request.match_info["id"]
    tl = await data.document_timeline(ctx.state.engine, doc_id)
    if not tl.documents and not tl.entries:
        return await render(ctx, "message.html", title=_("Document not found"), status=404,
                            heading=_("Document not found"), box={
                                "kind": "error", "title": _("The hub knows no document with DocumentId %(id)s.",
                                                            id=doc_id),
                                "detail": _("Check the DocumentId (it is case-sensitive and includes the sender code "
                                            "and date).")})
    codes = [d["sender"] for d in tl.documents] + [r.code for d in tl.documents for r in d["recipients"]]
    codes += [e["sender"] for e in tl.entries]
    names = await data.agency_names(ctx.state.engine, codes)
    entries, prev = [], None
    for e in tl.entries:
        at = aware(e["at"])
        entries.append({**e, "delta": None if prev is None else fmt_duration(max(0.0, (at - prev).total_seconds())),
                        "extra": details_text(e["details"])})
        prev = at
    return await render(ctx, "document.html", title=_("Document"), active="documents", doc_id=doc_id, tl=tl,
                        names=names, entries=entries, C=C)


@routes.get("/admin/packages/{sha256:[0-9a-f]{64}}")
@view()
async def package_download(ctx: Ctx) -> web.StreamResponse:
    """A stored package as the hub received it (a document's, a dead letter's), chunk by chunk."""
    sha = ctx.request.match_info["sha256"]
    async with ctx.state.engine.connect() as conn:
        stored = await stored_packages.locate(conn, sha)
    if stored is None:
        return await render(ctx, "message.html", title=_("Not found"), status=404, heading=_("Not found"),
                            box={"kind": "error", "title": _("The hub stores no package %(sha)s.", sha=sha[:16] + "…"),
                                 "detail": ""})
    return stream(ctx.state.engine, stored, filename=f"{sha[:16]}.edxml")
