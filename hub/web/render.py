"""The console's plumbing: sessions on every page, CSRF on every POST, Jinja2 templates with
autoescape, the language of the request, and failures explained in words (never a traceback).

Templates live in ``hub/web/templates`` and get, besides their own data, the signed-in user,
the CSRF field, the active navigation entry, pending dead letters (shown in the navigation), the
flash message, when the page was made and how often it refreshes itself (``<meta refresh>``:
no script runs in the console, the Content-Security-Policy forbids it).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import wraps

import aiohttp_jinja2
import jinja2
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from aiohttp import web

from hub.api.state import STATE
from hub.api.users import Principal
from hub.cli_errors import from_database
from hub.errors import AuthorityError, HubError, TransientError, UsageError
from hub.store.tables import dead_letters
from hub.web import auth, i18n
from hub.web.i18n import _
from hub.web.links import url_path, url_query

log = logging.getLogger("hub.web")

READ = ("admin", "auditor")
WRITE = ("admin",)
LANG_COOKIE = "hub_lang"
REFRESH_SECONDS = 15

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def setup_templates(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.PackageLoader("hub.web", "templates"), autoescape=True,
        undefined=jinja2.StrictUndefined, extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    # Jinja's newstyle gettext formats (and escapes) the parameters itself: hand it the bare lookups
    env.install_gettext_callables(lambda s: i18n.translations(i18n.language()).gettext(s),
                                  lambda s, p, n: i18n.translations(i18n.language()).ngettext(s, p, n),
                                  newstyle=True)
    env.globals.update(
        t=i18n.fmt_time, d=i18n.fmt_date, n=i18n.fmt_int, num=i18n.fmt_num, dur=i18n.fmt_duration,
        size=i18n.fmt_size, priority_name=i18n.priority_name, status_name=i18n.status_name,
        doc_type_name=i18n.doc_type_name, reason_meaning=i18n.reason_meaning, url_path=url_path,
        url_query=url_query, PRIORITIES=i18n.PRIORITIES, maintenance_name=lambda m: _(i18n.MAINTENANCE.get(m, m)))


@dataclass
class Ctx:
    request: web.Request
    state: object
    user: Principal
    token: str
    form: object = None
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def csrf(self) -> str:
        return auth.csrf_for(auth.csrf_key(self.request), self.token)

    @property
    def can_write(self) -> bool:
        return self.user.role in WRITE


def headers(resp: web.StreamResponse) -> web.StreamResponse:
    for k, v in SECURITY_HEADERS.items():
        resp.headers[k] = v
    return resp


def redirect(location: str) -> web.Response:
    return headers(web.Response(status=303, headers={"Location": location}))


def page_response(request: web.Request, template: str, data: dict, status: int = 200) -> web.Response:
    text = aiohttp_jinja2.render_string(template, request, {"lang": i18n.language(), **data})
    return headers(web.Response(text=text, status=status, content_type="text/html", charset="utf-8"))


async def pending_dead(engine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(dead_letters)
                                   .where(dead_letters.c.state == "pending"))).scalar() or 0


async def render(ctx: Ctx, template: str, *, title: str, active: str = "", status: int = 200,
                 refresh: bool = False, flash: list | None = None, **data) -> web.Response:
    taken = auth.take_flash(ctx.request)
    flashes = ([{"kind": taken[0], "title": taken[1], "detail": ""}] if taken else []) + (flash or [])
    try:
        dead = await pending_dead(ctx.state.engine)
    except Exception:  # noqa: BLE001 - the page says what failed; the badge is optional
        dead = None
    paused = ctx.request.query.get("refresh") == "0"
    kept = {k: v for k, v in ctx.request.query.items() if k != "refresh"}
    resp = page_response(ctx.request, template, {
        "title": title, "user": ctx.user, "csrf": ctx.csrf, "active": active, "flashes": flashes,
        "organ_id": ctx.state.settings.hub_organ_id, "dead_pending": dead, "now": ctx.now,
        "refresh": REFRESH_SECONDS if refresh and not paused else None, "can_refresh": refresh, "paused": paused,
        "path": ctx.request.path_qs, "can_write": ctx.can_write, "resume_url": url_query(ctx.request.path, **kept),
        "pause_url": url_query(ctx.request.path, **kept, refresh="0"), **data}, status)
    if taken:
        auth.drop_flash(resp, ctx.request)
    return resp


def _detail(e: BaseException) -> str:
    inner = getattr(e, "orig", None) or e
    text = str(inner).strip() or inner.__class__.__name__
    text = text.splitlines()[0]
    return text if len(text) <= 300 else text[:299] + "…"


def explain(e: BaseException, state=None) -> tuple[int, str, str]:
    """(HTTP status, what failed and what to check, details) for an exception; never a traceback."""
    db = "PostgreSQL" if state is not None and state.engine.dialect.name == "postgresql" else _("the database")
    broker_down = _("The broker is unreachable: check RabbitMQ (is it running and reachable from the hub?).")
    if isinstance(e, TransientError) and e.code.startswith("backbone."):
        if e.code == "backbone.not_found":
            return 503, _("A queue or exchange the hub needs does not exist on the broker: check RabbitMQ's "
                          "topology (the hub declares it when it starts)."), _detail(e)
        return 503, broker_down, _detail(e)
    if isinstance(e, AuthorityError) and e.code == "authority.forbidden":
        return 503, _("The broker refused the hub's user: check its RabbitMQ permissions."), _detail(e)
    if isinstance(e, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)) or (
            isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated) or (
            isinstance(e, OSError) and from_database(e)):  # asyncpg's refused connect is a bare OSError
        return 503, _("The database is unreachable: check %(db)s (is it running and reachable from the hub?).",
                      db=db), _detail(e)
    if isinstance(e, sa_exc.SQLAlchemyError):
        return 500, _("The database refused a query: check %(db)s (migrations applied?).", db=db), _detail(e)
    if isinstance(e, TransientError):
        return 503, _("A service the hub depends on is unavailable; retry in a moment."), _detail(e)
    if isinstance(e, UsageError):
        return (404 if e.code == "usage.not_found" else 400), e.message, ""
    if isinstance(e, HubError):
        return 422, e.message, _("reason %(code)s", code=e.code)
    if type(e).__module__.split(".")[0] in ("aiormq", "aio_pika", "pamqp"):
        return 503, broker_down, _detail(e)
    if isinstance(e, (ConnectionError, asyncio.TimeoutError, TimeoutError, OSError)):
        return 503, _("A service the hub depends on (database or broker) did not answer: check PostgreSQL and "
                      "RabbitMQ."), _detail(e)
    incident = uuid.uuid4().hex[:12]
    log.error("console error (incident %s): %s", incident, e, exc_info=e, extra={"incident": incident})
    return 500, _("Something went wrong on the hub."), _("The operator can find incident %(id)s in the logs.",
                                                          id=incident)


def problem(e: BaseException, state=None) -> dict:
    """A failure as a flash box for a page section: {"kind", "title", "detail"}."""
    _status, title, detail = explain(e, state)
    return {"kind": "error", "title": title, "detail": _("Details: %(d)s", d=detail) if detail else ""}


async def section(coro, state):
    """(value, None) or (None, problem) — one failing dependency does not blank the page."""
    try:
        return await coro, None
    except Exception as e:  # noqa: BLE001
        return None, problem(e, state)


def message_page(request: web.Request, ctx: Ctx | None, title: str, flash: dict, status: int):
    data = {"heading": title, "box": flash}
    if ctx is None:
        return page_response(request, "message.html", {
            "title": title, "user": None, "flashes": [], "organ_id": request.app[STATE].settings.hub_organ_id,
            "active": "", "path": request.path_qs, "refresh": None, "can_refresh": False,
            "now": datetime.now(timezone.utc), **data}, status)
    return render(ctx, "message.html", title=title, status=status, **data)


async def error_response(ctx: Ctx | None, request: web.Request, e: BaseException) -> web.Response:
    status, title, detail = explain(e, request.app[STATE])
    box = {"kind": "error", "title": title, "detail": _("Details: %(d)s", d=detail) if detail else ""}
    resp = message_page(request, ctx, _("Something failed"), box, status)
    return await resp if asyncio.iscoroutine(resp) else resp


async def forbidden(ctx: Ctx, message: str) -> web.Response:
    return await render(ctx, "message.html", title=_("Not allowed"), status=403, heading=_("Not allowed"),
                        box={"kind": "error", "title": message, "detail": ""})


def language_of(request: web.Request) -> str:
    return i18n.set_language(request.cookies.get(LANG_COOKIE))


def view(roles: tuple[str, ...] = READ):
    """Authenticate the session cookie, check CSRF on POST and the role, turn failures into pages."""

    def wrap(handler):
        @wraps(handler)
        async def inner(request: web.Request) -> web.StreamResponse:
            language_of(request)
            state = request.app[STATE]
            try:
                user, token = await auth.session_user(state.engine, request)
            except Exception as e:  # noqa: BLE001 - e.g. the database is down: say so
                return await error_response(None, request, e)
            if user is None:
                nxt = request.raw_path if request.method == "GET" else None
                resp = redirect(url_query("/admin/login", next=nxt if nxt and nxt != "/admin" else None,
                                          reason="expired" if token else None))
                if token:
                    auth.clear_session(resp, request)
                return resp
            ctx = Ctx(request, state, user, token)
            if request.method == "POST":
                ctx.form = await request.post()
                if not auth.csrf_ok(auth.csrf_key(request), token, ctx.form.get("csrf")):
                    return await forbidden(ctx, _("The form's security token is missing or out of date: reload the "
                                                  "page and try again."))
            if user.role not in roles:
                return await forbidden(ctx, _("Your role (%(role)s) is read-only: only admins can do this.",
                                              role=user.role))
            try:
                return await handler(ctx)
            except Exception as e:  # noqa: BLE001 - explained, logged with an incident id if unexpected
                return await error_response(ctx, request, e)

        return inner

    return wrap


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    try:
        v = int(request.query.get(name, default))
    except ValueError:
        return default
    return max(lo, min(hi, v))
