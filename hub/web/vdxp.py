"""The VDXP systems page: which systems speak the national axis's protocol at /vdxp/, for which
agency, and what waits in their lists. Read-only (``hub vdxp`` and the admin API change them);
secrets are never shown."""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp import web

from hub.store.tables import vdxp_inbox
from hub.vdxp.mailbox import LISTED
from hub.vdxp.systems import list_systems
from hub.web import data
from hub.web.i18n import _
from hub.web.render import Ctx, render, view

routes = web.RouteTableDef()


async def waiting_by_agency(engine) -> dict[tuple[str, str], int]:
    """(agency, edoc|status) -> items listed and not acknowledged ``done``."""
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(vdxp_inbox.c.owner, vdxp_inbox.c.kind, sa.func.count()).where(
            vdxp_inbox.c.state.in_(LISTED)).group_by(vdxp_inbox.c.owner, vdxp_inbox.c.kind))).all()
    return {(owner, kind): n for owner, kind, n in rows}


@routes.get("/admin/vdxp")
@view()
async def vdxp_page(ctx: Ctx) -> web.Response:
    systems = await list_systems(ctx.state.engine)
    names = await data.agency_names(ctx.state.engine, [s["agency"] for s in systems])
    waiting = await waiting_by_agency(ctx.state.engine)
    return await render(ctx, "vdxp.html", title=_("VDXP systems"), active="vdxp", systems=systems, names=names,
                        waiting=waiting)
