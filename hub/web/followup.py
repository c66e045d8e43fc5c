"""Deadline follow-up (đôn đốc): the "Quá hạn" page (overdue and due soon: totals by recipient,
worst first, then the copies 50 a page, most overdue first, with the time each has waited at its
current status; every copy as a streamed CSV) and the per-agency (or per-type) report for a
period (received, answered on time, late, still open, median handling time) as a page, a
printable page, CSV (streamed) and XLSX."""

from __future__ import annotations

from datetime import date, datetime, timezone

from aiohttp import web

from hub.followup import overdue as od
from hub.followup.query import BY, Filters, period_report, report_batches
from hub.followup.rules import VN, Item
from hub.web import exports
from hub.web.i18n import PRIORITIES, _, fmt_date, parse_date, priority_name, status_name
from hub.web.links import url_query
from hub.web.render import Ctx, headers, int_param, render, view

routes = web.RouteTableDef()
MAX_TEXT = 200
SUMMARY = 20  # recipients in the totals table (the worst); the rest are counted


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
async def overdue_page(ctx: Ctx) -> web.StreamResponse:
    f = filters_of(ctx.request)
    q = ctx.request.query
    days = int_param(ctx.request, "days", 3, 0, 365)
    order = q.get("order") if q.get("order") in od.ORDERS else "late"
    today = today_vn(ctx.now)
    if q.get("format") == "csv":
        name = f"qua-han-{today:%Y%m%d}.csv"
        resp = headers(web.StreamResponse(headers={
            "Content-Type": "text/csv; charset=utf-8", "Content-Disposition": f'attachment; filename="{name}"'}))
        rows = (overdue_rows(batch, today, ctx.now) async for batch in od.every(ctx.state.engine, f, today, days, order))
        return await exports.stream_csv(ctx.request, resp, overdue_header(), rows)
    totals = await od.totals(ctx.state.engine, f, today, days)
    pg = await od.page(ctx.state.engine, f, today, days, after=od.Cursor.parse(q.get("after")),
                       before=od.Cursor.parse(q.get("before")), order=order)
    kept = {k: v for k, v in q.items() if k not in ("after", "before", "format")}
    return await render(
        ctx, "overdue.html", title=_("Overdue"), active="overdue", refresh=True, totals=totals[:SUMMARY],
        more_agencies=max(0, len(totals) - SUMMARY), copies=pg.items, f=f, days=days, order=order, today=today, q=q,
        total_overdue=sum(t.overdue for t in totals), total_soon=sum(t.due_soon for t in totals),
        next_url=pg.next and url_query("/admin/overdue", **kept, after=pg.next.text()),
        prev_url=pg.previous and url_query("/admin/overdue", **kept, before=pg.previous.text()),
        first_url=url_query("/admin/overdue", **kept) if pg.previous else None,
        csv_url=url_query("/admin/overdue", **kept, format="csv"))


def overdue_header() -> list[str]:
    return [_("Agency code"), _("Agency"), _("Due date"), _("Days late"), _("DocumentId"), _("Code"),
            _("Subject"), _("Sender code"), _("Sender"), _("Document type"), _("Priority"), _("Received"),
            _("Current status"), _("At this status since")]


def overdue_rows(items: list[Item], today: date, now: datetime) -> list[list]:
    return [[i.recipient, i.recipient_name, i.due_date, i.days_late(today), i.document_id, i.code, i.subject,
             i.sender, i.sender_name, i.type_name or i.doc_type, priority_name(i.priority), i.received_at,
             status_name(i.status), i.status_at] for i in items]


def period_of(request: web.Request, today: date) -> tuple[date, date]:
    first = _date(request.query.get("from")) or today.replace(day=1)
    last = _date(request.query.get("to")) or today
    return (first, last) if first <= last else (last, first)


def report_header(by: str) -> list[str]:
    first = [_("Agency code"), _("Agency")] if by == "recipient" else [_("Type code"), _("Document type")]
    return first + [_("Received"), _("Answered on time"), _("Answered late"), _("Still open"),
                    _("of which overdue"), _("Withdrawn"), _("Median handling time (hours)")]


def report_body(rows) -> list[list]:
    return [[r.recipient, r.name, r.received, r.on_time, r.late, r.still_open, r.open_overdue, r.withdrawn,
             r.median_hours] for r in rows]


@routes.get("/admin/report")
@view()
async def report_page(ctx: Ctx) -> web.StreamResponse:
    today = today_vn(ctx.now)
    first, last = period_of(ctx.request, today)
    f = filters_of(ctx.request)
    by = ctx.request.query.get("by") if ctx.request.query.get("by") in BY else "recipient"
    fmt = ctx.request.query.get("format", "")
    period = _("Period: %(a)s – %(b)s", a=fmt_date(first), b=fmt_date(last))
    if fmt in ("csv", "xlsx"):
        name = f"bao-cao-don-doc-{first:%Y%m%d}-{last:%Y%m%d}.{fmt}"
        if fmt == "csv":
            resp = headers(web.StreamResponse(headers={
                "Content-Type": "text/csv; charset=utf-8", "Content-Disposition": f'attachment; filename="{name}"'}))
            rows = (report_body(batch) async for batch in report_batches(ctx.state.engine, first, last, today, f, by))
            return await exports.stream_csv(ctx.request, resp, report_header(by), rows)
        body = report_body(await period_report(ctx.state.engine, first, last, today, f, by))
        payload = exports.to_xlsx(_("Follow-up report"), report_header(by), body, heading=[
            _("Follow-up report: documents received and their answers"), period,
            _("Made on %(t)s (Vietnam time)", t=exports.fmt_time(ctx.now))])
        return headers(web.Response(body=payload, headers={
            "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "Content-Disposition": f'attachment; filename="{name}"'}))
    rows = await period_report(ctx.state.engine, first, last, today, f, by)
    kept = {k: v for k, v in ctx.request.query.items() if k not in ("format", "print")}
    totals = [sum(getattr(r, k) for r in rows) for k in ("received", "on_time", "late", "still_open",
                                                          "open_overdue", "withdrawn")]
    return await render(
        ctx, "report.html", title=_("Follow-up report"), active="report", rows=rows, first=first, last=last, by=by,
        f=f, q={**ctx.request.query, "from": fmt_date(first), "to": fmt_date(last)}, period=period, totals=totals,
        printing=ctx.request.query.get("print") == "1",
        csv_url=url_query("/admin/report", **kept, format="csv"),
        xlsx_url=url_query("/admin/report", **kept, format="xlsx"),
        print_url=url_query("/admin/report", **kept, print="1"))
