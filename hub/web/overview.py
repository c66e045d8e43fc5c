"""The overview: counters and throughput from the database, packages per minute, refusals by
reason, queues at a glance, outbox, maintenance, the latest checkpoint, certificates and CRLs
needing attention, how each agency's packages were authenticated, the last refusals."""

from __future__ import annotations

import asyncio

from aiohttp import web

from hub.api.admin import queue_stats
from hub.web import data
from hub.web.i18n import _, fmt_int, reason_meaning, vn
from hub.web.render import Ctx, render, section, view
from hub.web.svg import ACCEPTED, REFUSED, Bar, Slot, hbar_chart, stacked_columns

routes = web.RouteTableDef()
CERT_WARN_DAYS = 30
# the overview lists the agencies most in need of attention; /admin/authentication lists them all
AUTH_TOP = 10


def per_minute_chart(series):
    slots = []
    for i, (t, acc, ref) in enumerate(series):
        local = vn(t)
        hm = local.strftime("%H:%M")
        shown = local.minute % 10 == 0 or (i == len(series) - 1 and local.minute % 10 >= 4)
        slots.append(Slot(hm if shown else "", _("%(t)s — %(a)s accepted, %(r)s refused", t=hm, a=fmt_int(acc),
                                                  r=fmt_int(ref)), (acc, ref)))
    total_a, total_r = sum(s[1] for s in series), sum(s[2] for s in series)
    svg = stacked_columns(
        slots, series=((_("accepted"), ACCEPTED), (_("refused"), REFUSED)), label_every=1,
        label=_("Packages per minute, last 60 minutes: %(a)s accepted, %(r)s refused", a=fmt_int(total_a),
                r=fmt_int(total_r)),
        y_title=_("packages / minute"), empty=_("no packages in the last hour"))
    return svg, total_a, total_r


def reasons_chart(rows):
    bars = [Bar(code, n, reason_meaning(code)) for code, n in rows[:12]]
    return hbar_chart(bars, label=_("Refusals by reason code, last 24 hours"), color=REFUSED, fmt=fmt_int,
                      empty=_("no refusals in the last 24 hours"))


@routes.get("/admin")
@view()
async def overview(ctx: Ctx) -> web.Response:
    engine = ctx.state.engine
    st = ctx.state
    (counts, e_counts), (series, e_series), (reasons, e_reasons), (queues, e_queues), (hs, e_hs), \
        (refusals, e_ref), (trust, e_trust), (auth_rows, e_auth) = await asyncio.gather(
            section(data.counters(engine), st), section(data.packages_per_minute(engine), st),
            section(data.refusals_by_reason(engine), st), section(queue_stats(st), st),
            section(data.hub_state(engine), st), section(data.last_refusals(engine), st),
            section(data.trust_warnings(engine, CERT_WARN_DAYS), st),
            section(data.authentication_by_agency(engine, limit=AUTH_TOP), st))
    names = {}
    if refusals:
        names, _e = await section(data.agency_names(engine, [r["sender"] for r in refusals]), st)
    chart = per_minute_chart(series) if series is not None else None
    inbox_alarms = []
    if queues:
        inbox_alarms = [q for q in queues[1] if q["name"].startswith("inbox.") and q["exists"]
                        and not q["name"].endswith(".urgent") and q["consumers"] == 0]
    return await render(
        ctx, "overview.html", title=_("Overview"), active="overview", refresh=True,
        counts=counts, e_counts=e_counts, chart=chart, e_series=e_series,
        reasons=reasons_chart(reasons) if reasons is not None else None, more_reasons=(reasons or [])[12:],
        e_reasons=e_reasons, queues=queues[1] if queues else None, e_queues=e_queues, inbox_alarms=inbox_alarms,
        hs=hs, e_hs=e_hs, refusals=refusals, e_ref=e_ref, names=names or {},
        certs=trust[0] if trust else None, stale_crls=trust[1] if trust else None, e_trust=e_trust,
        cert_days=CERT_WARN_DAYS, auth=auth_rows, e_auth=e_auth)
