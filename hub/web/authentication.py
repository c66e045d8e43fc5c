"""Every sending agency and how its packages were authenticated (the overview shows the few that
need attention): paged, ordered by attention or by code, searchable by code or name."""

from __future__ import annotations

from aiohttp import web

from hub.web import data
from hub.web.i18n import _
from hub.web.links import url_query
from hub.web.render import Ctx, int_param, render, view

routes = web.RouteTableDef()
PER_PAGE = 50
MAX_SEARCH = 200


@routes.get("/admin/authentication")
@view()
async def authentication_page(ctx: Ctx) -> web.Response:
    q = ctx.request.query.get("q", "").strip()[:MAX_SEARCH]
    order = ctx.request.query.get("sort", "attention")
    order = order if order in data.AUTH_ORDERS else "attention"
    page_no = int_param(ctx.request, "page", 1, 1, 10**7)
    auth = await data.authentication_by_agency(ctx.state.engine, limit=PER_PAGE, offset=(page_no - 1) * PER_PAGE,
                                               order=order, search=q or None)
    pages = max(1, -(-auth.agencies // PER_PAGE))
    first = (page_no - 1) * PER_PAGE + 1 if auth.rows else 0
    kept = {"q": q, "sort": None if order == "attention" else order}
    return await render(
        ctx, "authentication.html", title=_("Authentication by agency"), active="overview", auth=auth, q=q,
        order=order, page_no=page_no, pages=pages, first=first, last=first + len(auth.rows) - 1 if auth.rows else 0,
        prev_url=url_query("/admin/authentication", **kept, page=page_no - 1),
        next_url=url_query("/admin/authentication", **kept, page=page_no + 1),
        sort_urls={o: url_query("/admin/authentication", q=q, sort=None if o == "attention" else o)
                   for o in data.AUTH_ORDERS})
