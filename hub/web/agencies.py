"""The registry page: agencies searched by code or name (accents and case ignored), with systems,
accepted document types and certificate expiry."""

from __future__ import annotations

from aiohttp import web

from hub.registry.store import list_agencies
from hub.web import data
from hub.web.i18n import _
from hub.web.links import pager
from hub.web.render import Ctx, int_param, render, view

routes = web.RouteTableDef()
PER_PAGE = 50
MAX_SEARCH = 200
CERT_WARN_DAYS = 30


@routes.get("/admin/agencies")
@view()
async def agencies_page(ctx: Ctx) -> web.Response:
    q = ctx.request.query.get("q", "").strip()[:MAX_SEARCH]
    page_no = int_param(ctx.request, "page", 1, 1, 10**7)
    total, rows = await list_agencies(ctx.state.engine, q or None, PER_PAGE, (page_no - 1) * PER_PAGE)
    certs = await data.certificates_of(ctx.state.engine, [r["code"] for r in rows])
    return await render(
        ctx, "agencies.html", title=_("Agencies"), active="agencies", q=q, rows=rows, certs=certs, total=total,
        cert_days=CERT_WARN_DAYS, **pager("/admin/agencies", page_no, total, len(rows), PER_PAGE, q=q))
