"""The operators' console under /admin: server-rendered pages (Jinja2, autoescaped) for admins and
auditors, in Vietnamese by default (English per session).

GET  /admin/login, POST /admin/login, POST /admin/logout, GET /admin/lang     hub.web.login
GET  /admin                         overview                                   hub.web.overview
GET  /admin/authentication          every sender, how its packages were authenticated  hub.web.authentication
GET  /admin/overdue                 Quá hạn: overdue and due soon by recipient hub.web.followup
GET  /admin/report                  per-agency follow-up report (+ CSV, XLSX, printable)
GET  /admin/queues                  queues with agencies, consumers, rates, ages, thresholds  hub.web.queues
GET  /admin/dead-letters[/{id}]     dead letters and one's payload; POST replay | discard (confirmed)
GET  /admin/audit                   audit log search (+ CSV); /admin/audit/bundle/{id} evidence zip
GET  /admin/agencies                registry search (accent-insensitive)       hub.web.agencies
GET  /admin/documents[/{id}]        find a document; its timeline              hub.web.documents
GET  /admin/vdxp                    VDXP systems and what waits in their lists  hub.web.vdxp

No JavaScript: CSS is inline, charts are inline SVG, actions are forms, pages that watch the hub
refresh themselves with ``<meta http-equiv=refresh>``. Pages without a valid session redirect
(303) to the sign-in form; every POST checks its CSRF field (``hub.web.auth``).
"""

from __future__ import annotations

from aiohttp import web

from hub.web import agencies, audit, auth, authentication, deadletters, documents, followup, login, overview, queues, vdxp
from hub.web.i18n import _
from hub.web.render import Ctx, error_response, language_of, redirect, render, setup_templates, view

routes = web.RouteTableDef()


@routes.get("/admin/")
async def admin_slash(request: web.Request) -> web.StreamResponse:
    return redirect("/admin")


@routes.get("/admin/{tail:.*}")
@view()
async def not_found(ctx: Ctx) -> web.Response:
    return await render(ctx, "message.html", title=_("Not found"), status=404, heading=_("Page not found"),
                        box={"kind": "error", "title": _("There is no page %(p)s.", p=ctx.request.path), "detail": ""})


@web.middleware
async def csrf_key_loaded(request: web.Request, handler):
    """Console requests need the CSRF key; load it here if the database was down when the hub started."""
    if request.path.startswith("/admin") and request.app[auth.CSRF_KEY].key is None:
        try:
            await auth.ensure_csrf_key(request.app)
        except Exception as e:  # noqa: BLE001 - e.g. the database is still down: say so
            language_of(request)
            return await error_response(None, request, e)
    return await handler(request)


def setup(app: web.Application) -> None:
    """Templates, the CSRF key and every console route (the catch-all last)."""
    setup_templates(app)
    auth.setup_csrf(app)
    app.middlewares.append(csrf_key_loaded)
    for module in (login, overview, authentication, followup, queues, deadletters, audit, agencies, documents, vdxp):
        app.add_routes(module.routes)
    app.add_routes(routes)
