"""Every sending agency and how its packages were authenticated (the overview shows the few that
need attention): paged, ordered by attention or by code, searchable by code or name."""

from __future__ import annotations

from aiohttp import web

from hub.web import data
from hub.web.i18n import _
from hub.web.links import pager, url_query
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
    return await render(
        ctx, "authentication.html", title=_("Authentication by agency"), active="overview", auth=auth, q=q,
        order=order, **pager("/admin/authentication", page_no, auth.agencies, len(auth.rows), PER_PAGE, q=q,
                             sort=None if order == "attention" else order),
        sort_urls={o: url_query("/admin/authentication", q=q, sort=None if o == "attention" else o)
                   for o in data.AUTH_ORDERS})
