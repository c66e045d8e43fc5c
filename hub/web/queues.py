"""The queues page: per inbox the agency's name, ready, unacknowledged, consumers (none = no adapter
connected: an alarm), in/out rates and the age of the oldest message, judged against thresholds."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from hub import constants as C
from hub.api.admin import queue_stats
from hub.vdxp.systems import list_systems
from hub.web import data
from hub.web.i18n import N_, _
from hub.web.render import Ctx, render, view

routes = web.RouteTableDef()


@dataclass(frozen=True)
class Thresholds:
    ready_warn: int = 100
    ready_alarm: int = 1000
    age_warn: float = 300.0  # seconds the oldest message has waited
    age_alarm: float = 3600.0


THRESHOLDS = Thresholds()


def judge(q: dict, th: Thresholds = THRESHOLDS, polled: frozenset[str] = frozenset()) -> tuple[str, list[str]]:
    """("ok" | "warn" | "alarm", [problems as msgids]) for one queue from queue_stats. Inboxes of
    agencies in ``polled`` (VDXP systems: the hub drains them when the system polls) need no consumer."""
    if not q["exists"]:
        return "alarm", [N_("not declared on the broker")]
    problems, level = [], "ok"

    def raise_to(new: str, why: str) -> None:
        nonlocal level
        problems.append(why)
        if new == "alarm" or level == "ok":
            level = new

    name = q["name"]
    needs_consumer = name == C.QUEUE_INTAKE or (name.startswith(C.INBOX_PREFIX) and not name.endswith(C.URGENT_SUFFIX))
    if needs_consumer and q["consumers"] == 0 and owner(name) not in polled:
        raise_to("alarm", N_("no consumer: no adapter is connected") if name != C.QUEUE_INTAKE
                 else N_("no consumer: no hub worker is running"))
    depth = q["depth"] or 0
    if name == C.QUEUE_DEAD and depth:
        raise_to("warn", N_("dead letters are waiting for an admin"))
    elif depth >= th.ready_alarm:
        raise_to("alarm", N_("too many messages waiting"))
    elif depth >= th.ready_warn:
        raise_to("warn", N_("many messages waiting"))
    age = q.get("oldest_message_age_seconds")
    if age is not None and age >= th.age_alarm:
        raise_to("alarm", N_("the oldest message has waited too long"))
    elif age is not None and age >= th.age_warn:
        raise_to("warn", N_("the oldest message is waiting"))
    return level, problems


def owner(name: str) -> str | None:
    if not name.startswith(C.INBOX_PREFIX):
        return None
    code = name[len(C.INBOX_PREFIX):]
    return code[: -len(C.URGENT_SUFFIX)] if code.endswith(C.URGENT_SUFFIX) else code


@routes.get("/admin/queues")
@view()
async def queues_page(ctx: Ctx) -> web.Response:
    source, found = await queue_stats(ctx.state)
    names = await data.agency_names(ctx.state.engine, [owner(q["name"]) for q in found])
    polled = frozenset(s["agency"] for s in await list_systems(ctx.state.engine) if s["revoked_at"] is None)
    rows = []
    for q in found:
        level, problems = judge(q, polled=polled)
        rows.append({**q, "agency": owner(q["name"]), "level": level, "problems": [_(p) for p in problems]})
    order = {"alarm": 0, "warn": 1, "ok": 2}
    rows.sort(key=lambda r: (order[r["level"]], not r["name"].startswith("hub."), r["name"]))
    return await render(ctx, "queues.html", title=_("Queues"), active="queues", refresh=True, rows=rows,
                        names=names, source=source, th=THRESHOLDS,
                        alarms=sum(1 for r in rows if r["level"] == "alarm"))
