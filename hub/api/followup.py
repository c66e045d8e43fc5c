"""Deadline follow-up in the admin API (admins and auditors read it).

GET /api/v1/admin/followup/overdue   open copies past their DueDate or due within ``days`` days,
                                     by recipient agency, worst first (the console's Quá hạn page)
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
from hub.api.params import FOLLOWUP_FILTERS, q
from hub.api.state import STATE
from hub.errors import UsageError
from hub.followup.query import Filters, overdue, period_report
from hub.followup.rules import VN, Item, aware

api = Endpoints("admin")
READ = ("admin", "auditor")


def _bad(field: str, message: str) -> UsageError:
    return UsageError(f"{field}: {message}", element=field)


def _day(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name, "")
    if not raw:
        return None
    try:
        if len(raw) == 10 and raw.isascii():
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise _bad(name, f"{raw!r} is not a date yyyy-mm-dd")


def _text(request: web.Request, name: str, max_len: int) -> str:
    raw = request.query.get(name, "")
    if len(raw) > max_len or "\x00" in raw:
        raise _bad(name, f"must be text of at most {max_len} characters, without NUL")
    return raw.strip()


def filters(request: web.Request) -> Filters:
    prio = request.query.get("priority", "")
    if prio and not (prio.isascii() and prio.isdigit() and len(prio) == 1 and int(prio) <= 4):
        raise _bad("priority", "must be 0 (normal) to 4 (express at a set time)")
    return Filters(agency=_text(request, "agency", 200), sender=_text(request, "sender", 200),
                   received_from=_day(request, "from"), received_until=_day(request, "to"),
                   doc_type=_text(request, "type", 8), priority=int(prio) if prio else None)


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
              roles=READ, response=Overdue, errors=(400,), params=[
                  q("days", {"type": "integer", "minimum": 0, "maximum": 365, "default": 3}, "also those due within"),
                  *FOLLOWUP_FILTERS])
async def overdue_list(request: web.Request) -> web.Response:
    f = filters(request)
    raw = request.query.get("days", "3")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and int(raw) <= 365):
        raise _bad("days", "must be a whole number of days from 0 to 365")
    now = datetime.now(timezone.utc)
    today = now.astimezone(VN).date()
    groups = await overdue(request.app[STATE].engine, f, today, int(raw))
    return web.json_response({"today": today.isoformat(), "days": int(raw), "agencies": [
        {"agency": g.recipient, "name": g.name, "overdue": len(g.overdue), "due_soon": len(g.due_soon),
         "worst_days_late": g.worst_days, "documents": [_item(i, today, now) for i in g.overdue + g.due_soon]}
        for g in groups]})


@api.endpoint("GET", "/api/v1/admin/followup/report",
              "Per recipient agency: received, answered on time, late, still open, median handling time",
              roles=READ, response=FollowupReport, errors=(400,), params=FOLLOWUP_FILTERS,
              description="Documents received from `from` to `to` (Vietnam dates, inclusive; default this month).")
async def report(request: web.Request) -> web.Response:
    f = filters(request)
    today = datetime.now(timezone.utc).astimezone(VN).date()
    first = f.received_from or today.replace(day=1)
    last = f.received_until or today
    if first > last:
        raise _bad("from", "must not be after to")
    rows = await period_report(request.app[STATE].engine, first, last, today, f)
    return web.json_response({"from": first.isoformat(), "to": last.isoformat(),
                              "agencies": [r.as_dict() for r in rows]})
