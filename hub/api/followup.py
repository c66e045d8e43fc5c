"""Deadline follow-up in the admin API (admins and auditors read it).

GET /api/v1/admin/followup/overdue   open copies past their DueDate or due within ``days`` days,
                                     by recipient agency, worst first (the console's Quá hạn page);
                                     ``limit`` copies an answer, ``after`` = the previous ``next``
GET /api/v1/admin/followup/report    per recipient agency for documents received ``from``..``to``:
                                     received, on time, late, still open, median handling hours

Filters (both): ``agency`` (recipient: code, or name without regard to accents and case),
``sender`` (same), ``from``/``to`` (received, Vietnam dates yyyy-mm-dd, inclusive), ``type``
(DocumentType/Type), ``priority`` (0-4). Times are ISO 8601 UTC; due dates yyyy-mm-dd.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from aiohttp import web

from hub.api.endpoint import Endpoints
from hub.api.replies import FollowupReport, Overdue
from hub.api.models import FollowupQuery, OverdueQuery
from hub.api.state import STATE
from hub.errors import UsageError
from hub.followup.overdue import Cursor
from hub.followup.overdue import page as overdue_page
from hub.followup.overdue import totals as overdue_list_totals
from hub.followup.query import Filters, period_report
from hub.followup.rules import VN, Item, aware

api = Endpoints("admin")
READ = ("admin", "auditor")


def filters(args: FollowupQuery) -> Filters:
    return Filters(agency=args.agency or "", sender=args.sender or "", received_from=args.from_,
                   received_until=args.to, doc_type=args.type or "", priority=args.priority)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else aware(value).isoformat().replace("+00:00", "Z")


def _item(it: Item, today: date, now: datetime) -> dict:
    return {"document_id": it.document_id, "sender": it.sender, "sender_name": it.sender_name,
            "code": it.code, "subject": it.subject, "doc_type": it.doc_type, "type_name": it.type_name,
            "priority": it.priority, "received_at": _iso(it.received_at), "due_date": it.due_date.isoformat(),
            "days_late": it.days_late(today), "status": it.status, "status_since": _iso(it.status_at),
            "waiting_seconds": round(it.waiting(now).total_seconds())}


@api.endpoint("GET", "/api/v1/admin/followup/overdue",
              "Documents past their due date (or due soon) that a recipient has not finished, by recipient",
              roles=READ, response=Overdue, errors=(400,), query=OverdueQuery)
async def overdue_list(request: web.Request, args: OverdueQuery) -> web.Response:
    f = filters(args)
    now = datetime.now(timezone.utc)
    today = now.astimezone(VN).date()
    engine = request.app[STATE].engine
    # the totals by recipient from one aggregate query; the copies a page at a time, most overdue
    # first, on the console's (due date, copy) keyset: any size of list answers in bounded time
    totals = await overdue_list_totals(engine, f, today, args.days)
    page = await overdue_page(engine, f, today, args.days, after=Cursor.parse(args.after), limit=args.limit)
    mine: dict[str, list[dict]] = {}
    for it in page.items:
        mine.setdefault(it.recipient, []).append(_item(it, today, now))
    return web.json_response({
        "today": today.isoformat(), "days": args.days, "total": sum(t.overdue + t.due_soon for t in totals),
        "next": page.next.text() if page.next else None,
        "agencies": [{"agency": t.recipient, "name": t.name, "overdue": t.overdue, "due_soon": t.due_soon,
                      "worst_days_late": t.worst_days(today), "documents": mine.get(t.recipient, [])}
                     for t in totals]})


@api.endpoint("GET", "/api/v1/admin/followup/report",
              "Per recipient agency: received, answered on time, late, still open, median handling time",
              roles=READ, response=FollowupReport, errors=(400,), query=FollowupQuery,
              description="Documents received from `from` to `to` (Vietnam dates, inclusive; default this month).")
async def report(request: web.Request, args: FollowupQuery) -> web.Response:
    f = filters(args)
    today = datetime.now(timezone.utc).astimezone(VN).date()
    first = f.received_from or today.replace(day=1)
    last = f.received_until or today
    if first > last:
        raise UsageError("from: must not be after to", element="from")
    rows = await period_report(request.app[STATE].engine, first, last, today, f)
    return web.json_response({"from": first.isoformat(), "to": last.isoformat(),
                              "agencies": [r.as_dict() for r in rows]})
