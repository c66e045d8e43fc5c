"""Deadline follow-up (đôn đốc): the "Quá hạn" page (overdue and due soon, by recipient, worst
first, with the time each copy has waited at its current status) and the per-agency report for a
period (received, answered on time, late, still open, median handling time) as a page, a
printable page, CSV and XLSX."""

from __future__ import annotations

from datetime import date, datetime, timezone

from aiohttp import web

from hub.followup.query import Filters, overdue, period_report
from hub.followup.rules import VN
from hub.web import exports
from hub.web.i18n import PRIORITIES, _, fmt_date, parse_date
from hub.web.links import url_query
from hub.web.render import Ctx, headers, int_param, render, view

routes = web.RouteTableDef()
MAX_TEXT = 200


_date = parse_date


def filters_of(request: web.Request) -> Filters:
    q = request.query
    prio = q.get("priority", "")
    return Filters(agency=q.get("agency", "").strip()[:MAX_TEXT], sender=q.get("sender", "").strip()[:MAX_TEXT],
                   received_from=_date(q.get("from")), received_until=_date(q.get("to")),
                   doc_type=q.get("type", "").strip()[:8],
                   priority=int(prio) if prio.isdigit() and int(prio) in PRIORITIES else None)


def today_vn(now: datetime | None = None) -> date:
    return (now or datetime.now(timezone.utc)).astimezone(VN).date()


@routes.get("/admin/overdue")
@view()
async def overdue_page(ctx: Ctx) -> web.Response:
    f = filters_of(ctx.request)
    days = int_param(ctx.request, "days", 3, 0, 365)
    today = today_vn(ctx.now)
    groups = await overdue(ctx.state.engine, f, today, days)
    return await render(
        ctx, "overdue.html", title=_("Overdue"), active="overdue", refresh=True, groups=groups, f=f, days=days,
        today=today, q=ctx.request.query, total_overdue=sum(len(g.overdue) for g in groups),
        total_soon=sum(len(g.due_soon) for g in groups))


def period_of(request: web.Request, today: date) -> tuple[date, date]:
    first = _date(request.query.get("from")) or today.replace(day=1)
    last = _date(request.query.get("to")) or today
    return (first, last) if first <= last else (last, first)


def report_table(rows) -> tuple[list[str], list[list]]:
    header = [_("Agency code"), _("Agency"), _("Received"), _("Answered on time"), _("Answered late"),
              _("Still open"), _("of which overdue"), _("Withdrawn"), _("Median handling time (hours)")]
    body = [[r.recipient, r.name, r.received, r.on_time, r.late, r.still_open, r.open_overdue, r.withdrawn,
             r.median_hours] for r in rows]
    return header, body


@routes.get("/admin/report")
@view()
async def report_page(ctx: Ctx) -> web.Response:
    today = today_vn(ctx.now)
    first, last = period_of(ctx.request, today)
    f = filters_of(ctx.request)
    rows = await period_report(ctx.state.engine, first, last, today, f)
    fmt = ctx.request.query.get("format", "")
    period = _("Period: %(a)s – %(b)s", a=fmt_date(first), b=fmt_date(last))
    if fmt in ("csv", "xlsx"):
        header, body = report_table(rows)
        name = f"bao-cao-don-doc-{first:%Y%m%d}-{last:%Y%m%d}.{fmt}"
        if fmt == "csv":
            payload, ctype = exports.to_csv(header, body), "text/csv; charset=utf-8"
        else:
            payload = exports.to_xlsx(_("Follow-up report"), header, body, heading=[
                _("Follow-up report: documents received and their answers"), period,
                _("Made on %(t)s (Vietnam time)", t=exports.fmt_time(ctx.now))])
            ctype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        return headers(web.Response(body=payload, headers={
            "Content-Type": ctype, "Content-Disposition": f'attachment; filename="{name}"'}))
    kept = {k: v for k, v in ctx.request.query.items() if k not in ("format", "print")}
    totals = [sum(getattr(r, k) for r in rows) for k in ("received", "on_time", "late", "still_open",
                                                          "open_overdue", "withdrawn")]
    return await render(
        ctx, "report.html", title=_("Follow-up report"), active="report", rows=rows, first=first, last=last,
        f=f, q={**ctx.request.query, "from": fmt_date(first), "to": fmt_date(last)}, period=period, totals=totals, printing=ctx.request.query.get("print") == "1",
        csv_url=url_query("/admin/report", **kept, format="csv"),
        xlsx_url=url_query("/admin/report", **kept, format="xlsx"),
        print_url=url_query("/admin/report", **kept, print="1"))
