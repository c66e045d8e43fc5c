"""The dashboard's page of VDXP systems (read-only: `hub vdxp` and the admin API change them)."""

from __future__ import annotations

from aiohttp import web

from hub.vdxp.systems import list_systems
from hub.web.layout import esc
from hub.web.pages import Ctx, render, view

routes = web.RouteTableDef()


@routes.get("/admin/vdxp")
@view()
async def vdxp_page(ctx: Ctx) -> web.Response:
    rows = await list_systems(ctx.state.engine)
    trs = []
    for r in rows:
        state = ('<span class="badge b-muted">revoked</span>' if r["revoked_at"]
                 else '<span class="badge b-ok">active</span>')
        created = r["created_at"].strftime("%Y-%m-%d %H:%M")
        trs.append(f'<tr><td class="mono nowrap">{esc(r["id"])}</td><td class="mono nowrap">{esc(r["agency"])}</td>'
                   f'<td>{state}</td><td class="nowrap">{esc(created)}</td><td>{esc(r["created_by"] or "")}</td></tr>')
    table = ('<div class="tablewrap"><table><thead><tr><th>System id</th><th>Agency</th><th>State</th><th>Created</th>'
             f'<th>By</th></tr></thead><tbody>{"".join(trs)}</tbody></table></div>'
             if rows else '<p class="empty">No VDXP system registered.</p>')
    body = f"""
<h1>VDXP systems</h1><p class="sub">Agencies' existing SDK clients, pointed at <span class="mono">/vdxp</span>:
each system id acts for its agency and the agencies that agency serves. Secrets are never shown here.
Add or revoke with <span class="mono">hub vdxp add|revoke</span> or the admin API.</p>
<div class="card">{table}</div>"""
    return render(ctx, "VDXP systems", body, active="vdxp")
