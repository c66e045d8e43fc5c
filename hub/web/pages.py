"""The admin dashboard: server-rendered HTML under /admin for admins and auditors (read-only).

GET  /admin/login              sign-in form (an admin or auditor API token)
POST /admin/login              check the token, set the ``hub_session`` cookie, go to /admin
POST /admin/logout             clear the session
GET  /admin                    overview: counters, packages per minute, refusals by reason, queues,
                               outbox backlog, maintenance, latest audit checkpoint, last refusals
GET  /admin/agencies           searchable, paginated registry with certificate expiry
GET  /admin/dead-letters       dead letters (pending first); admins replay or discard them
POST /admin/dead-letters       action=replay|discard, id=..., csrf -> settle_dead, back with a message
GET  /admin/documents          find a document by DocumentId; the latest documents
GET  /admin/documents/{id}     one document's timeline: recipients, status history, audit entries

No JavaScript and no external asset: CSS is inline, charts are inline SVG, actions are forms.
Pages without a valid session redirect (303) to the sign-in form; every POST checks its CSRF
field (see ``hub.web.auth``). Failures are explained in words, never as a stack trace.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from functools import wraps

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from aiohttp import web

from hub import constants as C
from hub.api.app import STATE
from hub.api.users import Principal, authenticate
from hub.errors import REASONS, AuthorityError, HubError, TransientError, UsageError
from hub.pipeline.deadletters import list_dead, settle_dead
from hub.registry.store import list_agencies
from hub.store.tables import dead_letters, documents
from hub.web import auth, data
from hub.web.layout import (
    esc,
    flash_box,
    fmt_duration,
    fmt_int,
    fmt_size,
    fmt_time,
    page,
    reason_cell,
    truncate,
    url_path,
    url_query,
    utc,
)
from hub.web.svg import ACCEPTED, REFUSED, Bar, Slot, hbar_chart, stacked_columns

log = logging.getLogger("hub.web")
routes = web.RouteTableDef()

READ = ("admin", "auditor")
WRITE = ("admin",)
AGENCIES_PER_PAGE = 50
DEAD_PER_PAGE = 100
MAX_SEARCH = 200
MAX_IDS = 1000
CERT_WARN_DAYS = 30
DEAD_STATES = ("pending", "replayed", "discarded")

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


# --- plumbing ---------------------------------------------------------------------------------

@dataclass
class Ctx:
    request: web.Request
    state: object
    user: Principal
    token: str
    form: object = None

    @property
    def csrf(self) -> str:
        return auth.csrf_for(self.token)

    @property
    def can_write(self) -> bool:
        return self.user.role in WRITE


def _headers(resp: web.StreamResponse) -> web.StreamResponse:
    for k, v in SECURITY_HEADERS.items():
        resp.headers[k] = v
    return resp


def redirect(location: str) -> web.Response:
    # a plain 303 response (raising HTTPSeeOther would also do, but this keeps cookies simple)
    return _headers(web.Response(status=303, headers={"Location": location}))


def html(body: str, status: int = 200) -> web.Response:
    return _headers(web.Response(text=body, status=status, content_type="text/html", charset="utf-8"))


def render(ctx: Ctx, title: str, body: str, *, active: str = "", status: int = 200, flash: str = "") -> web.Response:
    taken = auth.take_flash(ctx.request)
    if taken:
        flash = flash_box(taken[0], taken[1]) + flash
    resp = html(page(title, body, user=ctx.user, active=active, csrf=ctx.csrf, flash=flash,
                     organ_id=ctx.state.settings.hub_organ_id), status)
    if taken:
        auth.drop_flash(resp, ctx.request)
    return resp


def _detail(e: BaseException) -> str:
    inner = getattr(e, "orig", None) or e
    text = str(inner).strip() or inner.__class__.__name__
    return truncate(text.splitlines()[0], 300)


def explain(e: BaseException, state=None) -> tuple[int, str, str]:
    """(HTTP status, what failed and what to check, details) for an exception; never a traceback."""
    db = "PostgreSQL" if state is not None and state.engine.dialect.name == "postgresql" else "the database"
    if isinstance(e, TransientError) and e.code.startswith("backbone."):
        if e.code == "backbone.not_found":
            return 503, ("A queue or exchange the hub needs does not exist on the broker: check RabbitMQ's "
                         "topology (the hub declares it when it starts)."), _detail(e)
        return 503, "The broker is unreachable: check RabbitMQ (is it running and reachable from the hub?).", _detail(e)
    if isinstance(e, AuthorityError) and e.code == "authority.forbidden":
        return 503, "The broker refused the hub's user: check its RabbitMQ permissions.", _detail(e)
    if isinstance(e, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)) or (
            isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated):
        return 503, f"The database is unreachable: check {db} (is it running and reachable from the hub?).", _detail(e)
    if isinstance(e, sa_exc.SQLAlchemyError):
        return 500, f"The database refused a query: check {db} (migrations applied? `hub db upgrade`).", _detail(e)
    if isinstance(e, TransientError):
        return 503, "A service the hub depends on is unavailable; retry in a moment.", _detail(e)
    if isinstance(e, UsageError):
        return (404 if e.code == "usage.not_found" else 400), e.message, ""
    if isinstance(e, HubError):
        return 422, e.message, f"reason {e.code}"
    if type(e).__module__.split(".")[0] in ("aiormq", "aio_pika", "pamqp"):
        return 503, "The broker is unreachable: check RabbitMQ (is it running and reachable from the hub?).", _detail(e)
    if isinstance(e, (ConnectionError, asyncio.TimeoutError, TimeoutError, OSError)):
        return 503, "A service the hub depends on (database or broker) did not answer: check PostgreSQL and RabbitMQ.", _detail(e)
    incident = uuid.uuid4().hex[:12]
    log.error("dashboard error (incident %s): %s", incident, e, exc_info=e, extra={"incident": incident})
    return 500, "Something went wrong on the hub.", f"The operator can find incident {incident} in the logs."


def error_card(e: BaseException, state=None) -> str:
    _status, title, detail = explain(e, state)
    return flash_box("error", title, f"Details: {detail}" if detail else None)


def error_response(ctx: Ctx | None, request: web.Request, e: BaseException) -> web.Response:
    state = request.app[STATE]
    status, title, detail = explain(e, state)
    body = ('<h1>Something failed</h1><p class="sub">This page could not be shown.</p>'
            + flash_box("error", title, f"Details: {detail}" if detail else None)
            + '<p><a href="/admin">Back to the overview</a></p>')
    if ctx is None:
        return html(page("Error", body, organ_id=state.settings.hub_organ_id), status)
    return render(ctx, "Error", body, status=status)


def forbidden(ctx: Ctx, message: str) -> web.Response:
    body = f'<h1>Not allowed</h1>{flash_box("error", message)}<p><a href="/admin">Back to the overview</a></p>'
    return render(ctx, "Not allowed", body, status=403)


def view(roles: tuple[str, ...] = READ):
    """Authenticate the session cookie, check CSRF on POST and the role, turn failures into pages."""

    def wrap(handler):
        @wraps(handler)
        async def inner(request: web.Request) -> web.StreamResponse:
            state = request.app[STATE]
            try:
                user, token = await auth.session_user(state.engine, request)
            except Exception as e:  # noqa: BLE001 - e.g. the database is down: say so
                return error_response(None, request, e)
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
                if not auth.csrf_ok(token, ctx.form.get("csrf")):
                    return forbidden(ctx, "The form's security token is missing or out of date "
                                          "(the hub may have restarted): reload the page and try again.")
            if user.role not in roles:
                return forbidden(ctx, f"Your role ({user.role}) is read-only: only admins can do this.")
            try:
                return await handler(ctx)
            except Exception as e:  # noqa: BLE001 - explained, logged with an incident id if unexpected
                return error_response(ctx, request, e)

        return inner

    return wrap


async def _section(coro, state):
    """(value, None) or (None, error card) — one failing dependency does not blank the page."""
    try:
        return await coro, None
    except Exception as e:  # noqa: BLE001
        return None, error_card(e, state)


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    try:
        v = int(request.query.get(name, default))
    except ValueError:
        return default
    return max(lo, min(hi, v))


# --- login / logout -----------------------------------------------------------------------------

LOGIN_NOTES = {
    "expired": ("error", "Your session has ended (the token was revoked or is unknown). Sign in again."),
    "signedout": ("ok", "You are signed out."),
}


def _login_page(request: web.Request, *, status: int = 200, message: tuple[str, str] | None = None,
                nxt: str | None = None) -> web.Response:
    state = request.app[STATE]
    resp = web.Response(status=status, content_type="text/html", charset="utf-8")
    nonce = auth.new_login_nonce(resp, request)
    note = flash_box(*message) if message else ""
    body = f"""
<div class="login"><div class="card">
<h1>edXML Hub — administration</h1>
<p class="muted" style="margin-top:0">Quản trị trục liên thông văn bản</p>
{note}
<form method="post" action="/admin/login">
<input type="hidden" name="csrf" value="{esc(auth.csrf_for(nonce, 'login'))}">
<input type="hidden" name="next" value="{esc(auth.safe_next(nxt))}">
<label for="token">API token</label>
<input id="token" type="password" name="token" autocomplete="off" required placeholder="hub_…">
<p class="small muted">Admins and auditors sign in with their API token (created with <code>hub user add</code>).
Auditors see everything and change nothing.</p>
<button class="primary" type="submit">Sign in</button>
</form></div>
<p class="footer">Hub {esc(state.settings.hub_organ_id)}</p></div>"""
    resp.text = page("Sign in", body)
    return _headers(resp)


@routes.get("/admin/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        user, _ = await auth.session_user(state.engine, request)
    except Exception:  # noqa: BLE001 - show the form anyway; signing in will say what fails
        user = None
    if user is not None:
        return redirect(auth.safe_next(request.query.get("next")))
    return _login_page(request, message=LOGIN_NOTES.get(request.query.get("reason", "")),
                       nxt=request.query.get("next"))


@routes.post("/admin/login")
async def login(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    form = await request.post()
    nxt = form.get("next") if isinstance(form.get("next"), str) else None
    if not auth.csrf_ok(request.cookies.get(auth.LOGIN_COOKIE), form.get("csrf"), "login"):
        return _login_page(request, status=403, nxt=nxt, message=(
            "error", "The sign-in form expired or did not come from this hub: please sign in again."))
    token = form.get("token")
    token = token.strip() if isinstance(token, str) else ""
    try:
        user = await authenticate(state.engine, token) if auth.well_formed(token) else None
    except Exception as e:  # noqa: BLE001 - the database is down, say so
        status, title, detail = explain(e, state)
        return _login_page(request, status=status, nxt=nxt, message=("error", f"{title} Details: {detail}"))
    if user is None:
        return _login_page(request, status=401, nxt=nxt, message=(
            "error", "This token is unknown or revoked. Ask an admin for a new one (`hub user add`)."))
    if user.role not in auth.DASHBOARD_ROLES:
        return _login_page(request, status=403, nxt=nxt, message=(
            "error", "This is an agency token: agency systems use the HTTP API (/api/v1, header "
                     "`Authorization: Bearer <token>`). The dashboard is for admins and auditors."))
    resp = redirect(auth.safe_next(nxt))
    auth.set_session(resp, request, token)
    auth.clear_login_nonce(resp, request)
    log.info("dashboard sign-in by %s", user.actor, extra={"actor": user.actor})
    return resp


@routes.post("/admin/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    token = request.cookies.get(auth.SESSION_COOKIE)
    if token and not auth.csrf_ok(token, form.get("csrf")):
        return html(page("Not allowed", flash_box("error", "The form's security token is missing or out of date: "
                                                           "reload the page and try again.")), 403)
    resp = redirect("/admin/login?reason=signedout")
    auth.clear_session(resp, request)
    return resp


# --- overview -------------------------------------------------------------------------------------

def _stat(key: str, label: str, value, cls: str, note: str) -> str:
    return (f'<div class="card stat {cls}"><div class="label">{esc(label)}</div>'
            f'<div class="num" data-counter="{esc(key)}">{esc(fmt_int(value))}</div>'
            f'<div class="small muted">{esc(note)}</div></div>')


def _per_minute_chart(series) -> str:
    slots = []
    for i, (t, acc, ref) in enumerate(series):
        hm = t.strftime("%H:%M")
        # round ten minutes on the axis, and the current minute unless it would crowd the previous label
        shown = t.minute % 10 == 0 or (i == len(series) - 1 and t.minute % 10 >= 4)
        slots.append(Slot(hm if shown else "", f"{hm} UTC — {acc} accepted, {ref} refused", (acc, ref)))
    total_a = sum(s[1] for s in series)
    total_r = sum(s[2] for s in series)
    svg = stacked_columns(slots, series=(("accepted", ACCEPTED), ("refused", REFUSED)),
                          label=f"Packages per minute, last 60 minutes: {total_a} accepted, {total_r} refused",
                          y_title="packages / minute", empty="no packages in the last hour", label_every=1)
    return (f'<div class="chart" data-chart="per-minute">{svg}</div>'
            f'<p class="small muted" style="margin:8px 0 0">Last hour: <b>{fmt_int(total_a)}</b> accepted, '
            f'<b>{fmt_int(total_r)}</b> refused (minutes in UTC, from the audit log; refusals include those answered at once by the HTTP gateway).</p>')


def _reasons_chart(rows) -> str:
    bars = [Bar(code, n, REASONS.get(code, "")) for code, n in rows[:12]]
    svg = hbar_chart(bars, label="Refusals by reason code, last 24 hours", color=REFUSED,
                     empty="no refusals in the last 24 hours")
    more = ""
    if len(rows) > 12:
        rest = sum(n for _, n in rows[12:])
        more = f'<p class="small muted">and {len(rows) - 12} more reason codes ({fmt_int(rest)} refusals)</p>'
    return f'<div class="chart" data-chart="reasons">{svg}</div>{more}'


def _queues_table(rows: list[data.QueueRow]) -> str:
    fixed = [r for r in rows if not r.name.startswith(C.INBOX_PREFIX)]
    inboxes = sorted((r for r in rows if r.name.startswith(C.INBOX_PREFIX)),
                     key=lambda r: (-(r.depth or 0), r.name))
    shown, hidden = inboxes[:20], inboxes[20:]
    peak = max([r.depth or 0 for r in rows] + [1])
    out = []
    for r in fixed + shown:
        if r.depth is None:
            depth, bar = '<span class="muted">not declared</span>', ""
        else:
            hot = ' class="hot"' if r.name == C.QUEUE_DEAD and r.depth else ""
            pct = 100.0 * r.depth / peak
            depth = fmt_int(r.depth)
            bar = f'<div class="bar" title="{r.depth} ready"><i{hot} style="width:{pct:.1f}%"></i></div>'
        out.append(f'<tr><td class="mono">{esc(r.name)}</td><td class="num">{depth}</td><td style="width:45%">{bar}</td></tr>')
    if hidden:
        total = sum(r.depth or 0 for r in hidden)
        out.append(f'<tr><td colspan="3" class="muted small">and {len(hidden)} more inbox queues '
                   f'holding {fmt_int(total)} messages</td></tr>')
    return ('<div class="tablewrap"><table><thead><tr><th>Queue</th><th class="num">Ready</th><th></th></tr></thead>'
            f'<tbody>{"".join(out)}</tbody></table></div>')


MAINTENANCE_BADGE = {"running": "b-ok", "draining": "b-warn", "stopped": "b-bad"}


def _refusals_table(rows: list[dict], names: dict[str, str]) -> str:
    if not rows:
        return '<p class="empty">No refusals recorded.</p>'
    out = []
    for r in rows:
        doc = (f'<a class="mono" href="{esc(url_path("admin", "documents", r["document_id"]))}">'
               f'{esc(truncate(r["document_id"], 60))}</a>' if r["document_id"] else '<span class="muted">—</span>')
        sender = (f'<span class="mono">{esc(r["sender"])}</span><br><span class="small muted">'
                  f'{esc(truncate(names.get(r["sender"], ""), 40))}</span>' if r["sender"]
                  else f'<span class="muted small">{esc(r["actor"] or "—")}</span>')
        out.append(f'<tr><td class="nowrap">{esc(fmt_time(r["at"]))}</td><td>{sender}</td><td>{doc}</td>'
                   f'<td>{reason_cell(r["reason"], REASONS.get(r["reason"] or ""))}</td>'
                   f'<td title="{esc(r["message"])}">{esc(truncate(r["message"], 180))}</td></tr>')
    return ('<div class="tablewrap"><table><thead><tr><th>Time</th><th>Sender</th><th>Document</th><th>Reason</th>'
            f'<th>Message</th></tr></thead><tbody>{"".join(out)}</tbody></table></div>')


@routes.get("/admin")
@view()
async def overview(ctx: Ctx) -> web.Response:
    state = ctx.state
    counters = data.worker_counters(state)
    (series, e_series), (reasons, e_reasons), (queues, e_queues), (hs, e_hs), (refusals, e_ref) = await asyncio.gather(
        _section(data.packages_per_minute(state.engine), state),
        _section(data.refusals_by_reason(state.engine), state),
        _section(data.queue_depths(state), state),
        _section(data.hub_state(state.engine), state),
        _section(data.last_refusals(state.engine), state),
    )
    names = {}
    if refusals:
        names, _ = await _section(data.agency_names(state.engine, [r["sender"] for r in refusals]), state)
        names = names or {}
    c = counters or {}
    stats = "".join([
        _stat("accepted", "Accepted", c.get("accepted"), "ok", "documents and status packages"),
        _stat("refused", "Refused", c.get("refused"), "bad", "by the checks, answered with status 02"),
        _stat("duplicates", "Duplicates", c.get("duplicates"), "dup", "the same package again, not re-sent"),
        _stat("dead", "Dead-lettered", c.get("dead"), "warn", "sent to hub.dead for an admin"),
        _stat("delivered", "Delivered", c.get("delivered"), "", "messages confirmed by the broker"),
    ])
    workers = (f"Counters since the workers started ({counters['workers']} in this process)" if counters
               else "No workers run in this process: the counters are empty")
    mode = hs.maintenance if hs else None
    badge = (f'<span class="badge {MAINTENANCE_BADGE.get(mode, "b-muted")}" data-maintenance="{esc(mode)}">'
             f'{esc(mode)}</span>' if mode else "")
    uptime = fmt_duration(time.time() - state.started)
    if hs:
        cp = hs.checkpoint
        if cp:
            unsealed = max(0, hs.records - cp["size"])
            cp_html = (f'<dl class="kv"><dt>Entries</dt><dd>{fmt_int(cp["size"])}</dd>'
                       f'<dt>Signed at</dt><dd>{esc(fmt_time(cp["at"]))} UTC</dd>'
                       f'<dt>Root</dt><dd class="mono" title="{esc(cp["root"])}">{esc(cp["root"][:16])}…</dd>'
                       f'<dt>Key</dt><dd class="mono">{esc(cp["key_id"])}</dd>'
                       f'<dt>Not yet sealed</dt><dd>{fmt_int(unsealed)} entries</dd></dl>')
        else:
            cp_html = f'<p class="muted">No checkpoint signed yet ({fmt_int(hs.records)} entries in the log).</p>'
        backlog_cls = "b-ok" if hs.outbox_backlog == 0 else "b-warn"
        ops = (
            f'<div class="card"><h2>Outbox backlog</h2><div class="big" data-outbox="{hs.outbox_backlog}">'
            f'{fmt_int(hs.outbox_backlog)}</div><p class="small muted">messages recorded but not yet confirmed '
            f'by the broker <span class="badge {backlog_cls}">{"clear" if hs.outbox_backlog == 0 else "pending"}</span></p></div>'
            f'<div class="card"><h2>Maintenance</h2><p style="font-size:18px;margin:6px 0">{badge}</p>'
            f'<p class="small muted">{esc(_maintenance_text(mode))}</p></div>'
            f'<div class="card"><h2>Latest audit checkpoint</h2>{cp_html}</div>')
    else:
        ops = f'<div class="card" style="grid-column:1/-1">{e_hs}</div>'
    body = f"""
<h1>Overview</h1>
<p class="sub">Hub <span class="mono">{esc(state.settings.hub_organ_id)}</span> · {badge} · API up {esc(uptime)} ·
{esc(workers)}</p>
<div class="grid g5">{stats}</div>
<div class="card"><h2>Packages per minute <span class="muted">last 60 minutes</span></h2>
{e_series or _per_minute_chart(series)}</div>
<div class="grid g2">
<div class="card"><h2>Refusals by reason <span class="muted">last 24 hours · hover a bar for details</span></h2>
{e_reasons or _reasons_chart(reasons)}</div>
<div class="card"><h2>Queues <span class="muted">ready messages</span></h2>{e_queues or _queues_table(queues)}</div>
</div>
<div class="grid g3">{ops}</div>
<div class="card"><h2>Last 20 refusals</h2>{e_ref or _refusals_table(refusals, names)}</div>"""
    return render(ctx, "Overview", body, active="overview")


def _maintenance_text(mode: str | None) -> str:
    return {"running": "The hub takes and delivers packages.",
            "draining": "The hub finishes what it holds and takes no new packages.",
            "stopped": "The hub takes no new packages (maintenance)."}.get(mode or "", "")


# --- agencies ---------------------------------------------------------------------------------------

def _certs_cell(certs: list[dict]) -> str:
    if not certs:
        return '<span class="muted">none pinned</span>'
    out = []
    for c in certs:
        days = c["days"]
        cls = "exp-bad" if days < CERT_WARN_DAYS else "exp-ok"
        when = "expired" if days < 0 else f"{days} days left"
        out.append(f'<div class="small"><span class="mono" title="{esc(c["subject"])}">{esc(c["fingerprint"][:16])}</span> '
                   f'<span class="{cls}" data-days="{days}">{esc(when)}</span></div>')
    return "".join(out)


@routes.get("/admin/agencies")
@view()
async def agencies_page(ctx: Ctx) -> web.Response:
    request, state = ctx.request, ctx.state
    q = request.query.get("q", "").strip()[:MAX_SEARCH]
    page_no = _int_param(request, "page", 1, 1, 10**7)
    total, rows = await list_agencies(state.engine, q or None, AGENCIES_PER_PAGE, (page_no - 1) * AGENCIES_PER_PAGE)
    certs = await data.certificates_of(state.engine, [r["code"] for r in rows])
    trs = []
    for r in rows:
        if r["connected"]:
            system = '<span class="badge b-ok">own system</span>'
        elif r["served_by"]:
            system = (f'served by <a class="mono" href="{esc(url_query("/admin/agencies", q=r["served_by"]))}">'
                      f'{esc(r["served_by"])}</a>')
        else:
            system = '<span class="muted">not connected</span>'
        accepts = "all types" if r["accepts"] is None else (r["accepts"] or "none")
        st = '<span class="badge b-ok">active</span>' if r["active"] else '<span class="badge b-muted">retired</span>'
        trs.append(f'<tr><td class="mono nowrap">{esc(r["code"])}</td><td>{esc(r["name"])}</td><td>{system}</td>'
                   f'<td>{esc(accepts)}</td><td>{st}</td><td>{_certs_cell(certs.get(r["code"], []))}</td></tr>')
    pages = max(1, -(-total // AGENCIES_PER_PAGE))
    first = (page_no - 1) * AGENCIES_PER_PAGE + 1 if rows else 0
    last = first + len(rows) - 1 if rows else 0
    prev_link = (f'<a href="{esc(url_query("/admin/agencies", q=q, page=page_no - 1))}">← Previous</a>'
                 if page_no > 1 else "")
    next_link = (f'<a href="{esc(url_query("/admin/agencies", q=q, page=page_no + 1))}">Next →</a>'
                 if page_no < pages else "")
    table = (
        '<div class="tablewrap"><table><thead><tr><th>Code</th><th>Name</th><th>System</th><th>Accepts</th>'
        f'<th>State</th><th>Certificates</th></tr></thead><tbody>{"".join(trs)}</tbody></table></div>'
        if rows else f'<p class="empty">No agency matches “{esc(q)}”.</p>' if q else '<p class="empty">No agency registered.</p>')
    body = f"""
<h1>Agencies</h1><p class="sub">The registry: who may send, who receives, through which system, with which certificates.
Certificates expiring within {CERT_WARN_DAYS} days are shown in red.</p>
<div class="card">
<form class="toolbar" method="get" action="/admin/agencies">
<input type="search" name="q" value="{esc(q)}" placeholder="Code or name, e.g. H41 or Nghệ An" aria-label="Search agencies by code or name">
<button type="submit">Search</button>{'<a href="/admin/agencies">Clear</a>' if q else ''}
<span class="muted" style="margin-left:auto">{f"{fmt_int(first)}–{fmt_int(last)} of " if rows else ""}{fmt_int(total)} agencies</span>
</form>
{table}
<div class="pager"><span class="muted">Page {page_no} of {pages}</span>{prev_link}{next_link}</div>
</div>"""
    return render(ctx, "Agencies", body, active="agencies")


# --- dead letters --------------------------------------------------------------------------------

@routes.get("/admin/dead-letters")
@view()
async def dead_letters_page(ctx: Ctx) -> web.Response:
    request, state = ctx.request, ctx.state
    which = request.query.get("state", "pending")
    if which not in (*DEAD_STATES, "all"):
        which = "pending"
    page_no = _int_param(request, "page", 1, 1, 10**7)
    total, rows = await list_dead(state.engine, None if which == "all" else which, DEAD_PER_PAGE,
                                  (page_no - 1) * DEAD_PER_PAGE)
    async with state.engine.connect() as conn:
        counts = dict((await conn.execute(sa.select(dead_letters.c.state, sa.func.count())
                                          .group_by(dead_letters.c.state))).all())
    tabs = "".join(
        f'<a href="{esc(url_query("/admin/dead-letters", state=s))}"{" class=on" if s == which else ""}>'
        f'{esc(s.capitalize())} ({fmt_int(counts.get(s, 0) if s != "all" else sum(counts.values()))})</a>'
        for s in (*DEAD_STATES, "all"))
    actionable = ctx.can_write
    trs = []
    for r in rows:
        pending = r["state"] == "pending"
        box = (f'<td><input type="checkbox" name="id" value="{r["id"]}" aria-label="select {r["id"]}"></td>'
               if actionable and pending else ("<td></td>" if actionable else ""))
        settled = ("" if pending else
                   f'<div class="small muted">{esc(r["state"])} by {esc(r["settled_by"])} at {esc(fmt_time(r["settled_at"]))}</div>')
        trs.append(
            f'<tr data-dead="{r["id"]}">{box}<td class="num">{r["id"]}</td>'
            f'<td class="nowrap">{esc(fmt_time(r["received_at"]))}</td>'
            f'<td>{reason_cell(r["reason"], REASONS.get(r["reason"] or ""))}</td>'
            f'<td title="{esc(r["message"])}">{esc(truncate(r["message"], 200))}{settled}</td>'
            f'<td class="num">{esc(fmt_size(r["size"]))}</td>'
            f'<td class="mono small">{esc(r["original_user"] or "—")}</td>'
            f'<td class="mono small" title="{esc(r["sha256"])}">{esc((r["sha256"] or "—")[:12])}</td></tr>')
    head = ("<th></th>" if actionable else "") + (
        '<th class="num">#</th><th>Received</th><th>Reason</th><th>Message</th><th class="num">Size</th>'
        '<th>Original user</th><th>SHA-256</th>')
    table = (f'<div class="tablewrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(trs)}</tbody></table></div>'
             if rows else '<p class="empty">No dead letters here.</p>')
    pages = max(1, -(-total // DEAD_PER_PAGE))
    pager = ""
    if pages > 1:
        prev_link = (f'<a href="{esc(url_query("/admin/dead-letters", state=which, page=page_no - 1))}">← Previous</a>'
                     if page_no > 1 else "")
        next_link = (f'<a href="{esc(url_query("/admin/dead-letters", state=which, page=page_no + 1))}">Next →</a>'
                     if page_no < pages else "")
        pager = f'<div class="pager"><span class="muted">Page {page_no} of {pages}</span>{prev_link}{next_link}</div>'
    if actionable and any(r["state"] == "pending" for r in rows):
        inner = (f'<form method="post" action="/admin/dead-letters">'
                 f'<input type="hidden" name="csrf" value="{esc(ctx.csrf)}">'
                 '<div class="toolbar"><button class="primary" type="submit" name="action" value="replay">'
                 'Replay selected</button><button class="danger" type="submit" name="action" value="discard">'
                 'Discard selected</button><span class="small muted">Replay publishes the package to intake again '
                 'as its original adapter; both actions are recorded in the audit log.</span></div>'
                 f'{table}</form>')
    else:
        note = ('' if actionable else '<p class="small muted">Read-only: auditors inspect dead letters; '
                'only admins replay or discard them.</p>')
        inner = note + table
    body = f"""
<h1>Dead letters</h1><p class="sub">What reached <span class="mono">hub.dead</span>: unparseable or poison input,
kept for inspection. Replay sends it through the checks again; discard closes it.</p>
<div class="card"><div class="tabs">{tabs}</div>{inner}{pager}</div>"""
    return render(ctx, "Dead letters", body, active="dead")


@routes.post("/admin/dead-letters")
@view(WRITE)
async def dead_letters_settle(ctx: Ctx) -> web.Response:
    state, form = ctx.state, ctx.form
    action = form.get("action")
    back = "/admin/dead-letters"
    if action not in ("replay", "discard"):
        resp = redirect(back)
        auth.set_flash(resp, ctx.request, "error", "Choose Replay or Discard.")
        return resp
    wanted: list[int] = []
    for raw in form.getall("id", []) + form.getall("ids", []):
        try:
            v = int(raw)
        except (TypeError, ValueError):
            continue
        if 1 <= v < 2**63 and v not in wanted:
            wanted.append(v)
    if not wanted:
        resp = redirect(back)
        auth.set_flash(resp, ctx.request, "error", "Select at least one dead letter first.")
        return resp
    wanted = wanted[:MAX_IDS]
    try:
        async with state.engine.connect() as conn:
            known = {i for (i,) in (await conn.execute(
                sa.select(dead_letters.c.id).where(dead_letters.c.id.in_(wanted))))}
        present = [v for v in wanted if v in known]
        result = {"done": [], "skipped": []}
        if present:
            registry = (await state.check_context()).registry
            result = await settle_dead(state.engine, state.backbone, registry, present, action, ctx.user.actor)
        result["skipped"] += [{"id": v, "state": "not found"} for v in wanted if v not in known]
    except Exception as e:  # noqa: BLE001 - say what failed on the list page
        _status, title, detail = explain(e, state)
        resp = redirect(back)
        auth.set_flash(resp, ctx.request, "error", f"{title} Details: {detail}" if detail else title)
        return resp
    verb = "replayed" if action == "replay" else "discarded"
    text = f"{len(result['done'])} {verb}"
    if result["skipped"]:
        text += "; skipped: " + ", ".join(f"#{s['id']} ({s['state']})" for s in result["skipped"][:10])
        if len(result["skipped"]) > 10:
            text += f" and {len(result['skipped']) - 10} more"
    log.info("dashboard: %s %s dead letter(s)", ctx.user.actor, text, extra={"actor": ctx.user.actor})
    resp = redirect(back)
    auth.set_flash(resp, ctx.request, "ok" if result["done"] else "error", text)
    return resp


# --- documents ------------------------------------------------------------------------------------

def _status_badge(code: str | None) -> str:
    if not code:
        return '<span class="badge b-muted">no status yet</span>'
    cls = {"02": "b-bad", "13": "b-warn", "16": "b-bad", "06": "b-ok", "03": "b-ok"}.get(code, "b-muted")
    return f'<span class="badge {cls}">{esc(code)} · {esc(C.STATUS_NAMES.get(code, "unknown status"))}</span>'


@routes.get("/admin/documents")
@view()
async def documents_page(ctx: Ctx) -> web.Response:
    wanted = ctx.request.query.get("id", "").strip()
    if wanted:
        return redirect(url_path("admin", "documents", wanted[:255]))
    async with ctx.state.engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(documents.c.document_id, documents.c.sender, documents.c.kind, documents.c.subject,
                      documents.c.received_at, documents.c.status_code)
            .order_by(documents.c.id.desc()).limit(25))).mappings().all()
    trs = "".join(
        f'<tr><td class="nowrap">{esc(fmt_time(r["received_at"]))}</td><td class="mono">{esc(r["sender"])}</td>'
        f'<td><a class="mono" href="{esc(url_path("admin", "documents", r["document_id"]))}">{esc(r["document_id"])}</a></td>'
        f'<td>{esc(r["kind"])}{" " + _status_badge(r["status_code"]) if r["kind"] == "status" else ""}</td>'
        f'<td>{esc(truncate(r["subject"], 90))}</td></tr>' for r in rows)
    table = (f'<div class="tablewrap"><table><thead><tr><th>Received</th><th>Sender</th><th>DocumentId</th>'
             f'<th>Kind</th><th>Subject</th></tr></thead><tbody>{trs}</tbody></table></div>'
             if rows else '<p class="empty">No documents yet.</p>')
    body = f"""
<h1>Documents</h1><p class="sub">Find a document by its DocumentId to see its timeline.</p>
<div class="card"><form class="toolbar" method="get" action="/admin/documents">
<input type="text" name="id" placeholder="000.00.00.G22,2026/11/27,1/VPCP-TTĐT" aria-label="DocumentId" style="width:480px">
<button class="primary" type="submit">Show timeline</button></form></div>
<div class="card"><h2>Latest documents</h2>{table}</div>"""
    return render(ctx, "Documents", body, active="documents")


def _details_text(details) -> str:
    if not isinstance(details, dict):
        return ""
    bits = []
    for k in ("recipient", "inbox", "status", "recipients", "type", "priority", "size", "stage", "element", "via",
              "dead_letter"):
        if k in details and details[k] not in (None, "", []):
            v = details[k]
            if k == "priority" and isinstance(v, int):
                v = C.PRIORITY_NAMES.get(v, v)
            if k == "status" and isinstance(v, str):
                v = f"{v} ({C.STATUS_NAMES.get(v, '?')})"
            if isinstance(v, list):
                v = ", ".join("→".join(map(str, x)) if isinstance(x, (list, tuple)) else str(x) for x in v)
            bits.append(f"{k}: {v}")
    return "; ".join(bits)


def _doc_link(document_id: str) -> str:
    return f'<a class="mono" href="{esc(url_path("admin", "documents", document_id))}">{esc(document_id)}</a>'


def _links_rows(links: dict | None) -> str:
    """The revocation/update/replacement links of a document, as definition-list rows."""
    if not links:
        return ""
    out = ""
    if links["acts_on"]:
        a = links["acts_on"]
        out += f'<dt>{esc(a["action"].capitalize())} of</dt><dd>{_doc_link(a["document_id"])}</dd>'
    for x in links["acted_on_by"]:
        out += (f'<dt>{esc(x["action"].capitalize())} by</dt><dd>{_doc_link(x["document_id"])} '
                f'<span class="muted">{esc(fmt_time(x["at"]))} UTC</span></dd>')
    return out


@routes.get("/admin/documents/{id:.+}")
@view()
async def document_page(ctx: Ctx) -> web.Response:
    doc_id = ctx.request.match_info["id"]
    state = ctx.state
    tl = await data.document_timeline(state.engine, doc_id)
    if not tl.documents and not tl.entries:
        body = ('<h1>Document not found</h1>'
                + flash_box("error", f"The hub knows no document with DocumentId {doc_id}.",
                            "Check the DocumentId (it is case-sensitive and includes the sender code and date).")
                + '<p><a href="/admin/documents">Find another document</a></p>')
        return render(ctx, "Document not found", body, active="documents", status=404)
    codes = [d["sender"] for d in tl.documents] + [r.code for d in tl.documents for r in d["recipients"]]
    codes += [e["sender"] for e in tl.entries]
    names = await data.agency_names(state.engine, codes)

    def who(code: str | None) -> str:
        if not code:
            return '<span class="muted">—</span>'
        n = names.get(code)
        return f'<span class="mono">{esc(code)}</span>' + (f' <span class="muted">{esc(n)}</span>' if n else "")

    cards = []
    for d in tl.documents:
        rec_rows = []
        for r in d["recipients"]:
            hist = "".join(
                f'<div class="small"><span class="nowrap">{esc(fmt_time(h["at"]))}</span> · {_status_badge(h["status_code"])} '
                f'by <span class="mono">{esc(h["actor"])}</span>'
                + (f' — {esc(truncate(h["description"], 200))}' if h["description"] else "") + "</div>"
                for h in r.history) or '<span class="small muted">no status received</span>'
            via = "" if r.system == r.code else f'<div class="small muted">via {esc(r.system)}</div>'
            rec_rows.append(f"<tr><td>{who(r.code)}{via}</td><td>{_status_badge(r.status)}</td><td>{hist}</td></tr>")
        recipients = (
            '<div class="tablewrap"><table><thead><tr><th>Recipient</th><th>Current status</th><th>Status history</th>'
            f'</tr></thead><tbody>{"".join(rec_rows)}</tbody></table></div>'
            if rec_rows else '<p class="muted">No recipients recorded for this package.</p>')
        prio = C.PRIORITY_NAMES.get(d["priority"], str(d["priority"]))
        cards.append(f"""
<div class="card"><h2>{esc(d["kind"]).capitalize()} from {who(d["sender"])}</h2>
<dl class="kv"><dt>Subject</dt><dd>{esc(d["subject"] or "—")}</dd>
<dt>Document type</dt><dd>{esc(d["doc_type"] or "—")}</dd>
<dt>Priority</dt><dd>{esc(prio)}</dd>
<dt>Received</dt><dd>{esc(fmt_time(d["received_at"]))} UTC</dd>
<dt>Adapter user</dt><dd class="mono">{esc(d["adapter_user"] or "—")}</dd>
<dt>Authenticated by</dt><dd class="mono">{esc(d.get("authenticated_by") or "—")}</dd>{_links_rows(d.get("links"))}
<dt>SHA-256</dt><dd class="mono">{esc(d["sha256"])}</dd></dl>
<h2 style="margin-top:18px">Recipients</h2>{recipients}</div>""")
    trs = []
    prev = None
    for e in tl.entries:
        at = utc(e["at"])
        delta = "start" if prev is None else "+" + fmt_duration(max(0.0, (at - prev).total_seconds()))
        prev = at
        extra = _details_text(e["details"])
        what = reason_cell(e["reason"], REASONS.get(e["reason"] or "")) if e["reason"] else ""
        msg = f'<div class="small">{esc(truncate(e["message"], 300))}</div>' if e["message"] else ""
        trs.append(f'<tr><td class="num">{e["seq"]}</td><td class="nowrap">{esc(fmt_time(at))}'
                   f'<div class="delta">{esc(delta)}</div></td><td><code>{esc(e["event"])}</code></td>'
                   f'<td>{who(e["sender"])}<div class="small muted mono">{esc(e["actor"] or "")}</div></td>'
                   f'<td>{what}{msg}<div class="small muted">{esc(extra)}</div></td></tr>')
    more = '<p class="small muted">Only the first 500 entries are shown.</p>' if tl.truncated else ""
    timeline = (f'<div class="tablewrap"><table class="timeline"><thead><tr><th class="num">Seq</th><th>Time</th>'
                f'<th>Event</th><th>Sender / actor</th><th>Details</th></tr></thead><tbody>{"".join(trs)}</tbody>'
                f'</table></div>{more}' if trs else '<p class="muted">No audit entries.</p>')
    body = (f'<h1>Document timeline</h1><p class="sub mono">{esc(doc_id)}</p>' + "".join(cards)
            + f'<div class="card"><h2>Audit log entries <span class="muted">time since the previous step under '
              f'each time</span></h2>{timeline}</div>')
    return render(ctx, "Document", body, active="documents")


# --- anything else under /admin ----------------------------------------------------------------------

@routes.get("/admin/")
async def admin_slash(request: web.Request) -> web.StreamResponse:
    return redirect("/admin")


@routes.get("/admin/{tail:.*}")
@view()
async def not_found(ctx: Ctx) -> web.Response:
    body = (f'<h1>Page not found</h1>{flash_box("error", f"There is no page {ctx.request.path}.")}'
            '<p><a href="/admin">Back to the overview</a></p>')
    return render(ctx, "Not found", body, status=404)

