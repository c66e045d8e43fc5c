"""Dead letters: the list (pending first, select all), each one's detail with its payload and reason
before a replay, and a confirmation step before a discard. Auditors read; admins act."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from aiohttp import web

from hub.api.admin import parsed_stored
from hub.errors import UsageError
from hub.pipeline.deadletters import get_dead, list_dead, settle_dead
from hub.store import packages as stored_packages
from hub.store.tables import dead_letters
from hub.web import auth, data
from hub.web.i18n import _, fmt_int
from hub.web.links import url_query
from hub.web.render import WRITE, Ctx, explain, int_param, redirect, render, view

log = logging.getLogger("hub.web")
routes = web.RouteTableDef()
PER_PAGE = 100
MAX_IDS = 1000
STATES = ("pending", "replayed", "discarded")
PAYLOAD_PREVIEW = 64 * 1024


@routes.get("/admin/dead-letters")
@view()
async def dead_letters_page(ctx: Ctx) -> web.Response:
    q = ctx.request.query
    which = q.get("state", "pending")
    which = which if which in (*STATES, "all") else "pending"
    page_no = int_param(ctx.request, "page", 1, 1, 10**7)
    total, rows = await list_dead(ctx.state.engine, None if which == "all" else which, PER_PAGE,
                                  (page_no - 1) * PER_PAGE)
    counts = await data.dead_counts(ctx.state.engine)
    selecting = q.get("select") == "all"
    return await render(
        ctx, "dead_letters.html", title=_("Dead letters"), active="dead", rows=rows, which=which, counts=counts,
        all_count=sum(counts.values()), states=STATES, selecting=selecting, page_no=page_no,
        pages=max(1, -(-total // PER_PAGE)),
        prev_url=url_query("/admin/dead-letters", state=which, page=page_no - 1),
        next_url=url_query("/admin/dead-letters", state=which, page=page_no + 1),
        select_url=url_query("/admin/dead-letters", state=which, page=page_no if page_no > 1 else None,
                             select=None if selecting else "all"),
        any_pending=any(r["state"] == "pending" for r in rows))


@routes.get("/admin/dead-letters/{id:[0-9]{1,18}}")
@view()
async def dead_letter_page(ctx: Ctx) -> web.Response:
    dead_id = int(ctx.request.match_info["id"])
    try:
        row, stored = await get_dead(ctx.state.engine, dead_id)
    except UsageError:
        return await render(ctx, "message.html", title=_("Not found"), status=404, heading=_("Not found"),
                            box={"kind": "error", "title": _("There is no dead letter #%(id)s.", id=dead_id),
                                 "detail": ""})
    # The first bytes only: a package stored by reference may be hundreds of MB.
    head = await stored_packages.head(ctx.state.engine, stored, PAYLOAD_PREVIEW + 1) if stored else b""
    size = stored.size if stored else 0
    return await render(
        ctx, "dead_letter.html", title=_("Dead letter #%(id)s", id=dead_id), active="dead", row=row,
        parsed=await parsed_stored(ctx.state.engine, stored, ctx.state.settings.max_package_bytes),
        preview=head[:PAYLOAD_PREVIEW].decode("utf-8", errors="replace"), truncated=size > PAYLOAD_PREVIEW,
        payload_size=size)


def _ids(form) -> list[int]:
    wanted: list[int] = []
    for raw in form.getall("id", []) + form.getall("ids", []):
        try:
            v = int(raw)
        except (TypeError, ValueError):
            continue
        if 1 <= v < 2**63 and v not in wanted:
            wanted.append(v)
    return wanted[:MAX_IDS]


def _back(ctx: Ctx, kind: str, text: str, to: str = "/admin/dead-letters") -> web.Response:
    resp = redirect(to)
    auth.set_flash(resp, ctx.request, kind, text)
    return resp


@routes.post("/admin/dead-letters")
@view(WRITE)
async def dead_letters_settle(ctx: Ctx) -> web.Response:
    state, form = ctx.state, ctx.form
    action = form.get("action")
    if action not in ("replay", "discard"):
        return _back(ctx, "error", _("Choose Replay or Discard."))
    wanted = _ids(form)
    if not wanted:
        return _back(ctx, "error", _("Select at least one dead letter first."))
    async with state.engine.connect() as conn:
        known = {r["id"]: dict(r) for r in (await conn.execute(
            sa.select(dead_letters.c.id, dead_letters.c.reason, dead_letters.c.message, dead_letters.c.state,
                      dead_letters.c.received_at).where(dead_letters.c.id.in_(wanted)))).mappings()}
    if action == "discard" and form.get("confirm") != "yes":
        return await render(ctx, "dead_confirm.html", title=_("Discard dead letters?"), active="dead",
                            rows=[known[i] for i in wanted if i in known], missing=[i for i in wanted if i not in known])
    try:
        present = [v for v in wanted if v in known]
        result = {"done": [], "skipped": []}
        if present:
            registry = (await state.check_context()).registry
            result = await settle_dead(state.engine, state.backbone, registry, present, action, ctx.user.actor)
        result["skipped"] += [{"id": v, "state": "not found"} for v in wanted if v not in known]
    except Exception as e:  # noqa: BLE001 - say what failed on the list page
        _status, title, detail = explain(e, state)
        return _back(ctx, "error", f"{title} {_('Details: %(d)s', d=detail)}" if detail else title)
    done = fmt_int(len(result["done"]))
    text = _("%(n)s replayed", n=done) if action == "replay" else _("%(n)s discarded", n=done)
    if result["skipped"]:
        names = {"not found": _("not found"), "pending": _("pending"), "replayed": _("replayed"),
                 "discarded": _("discarded")}
        listed = ", ".join(f"#{s['id']} ({names.get(s['state'], s['state'])})" for s in result["skipped"][:10])
        more = len(result["skipped"]) - 10
        text += "; " + _("skipped: %(list)s", list=listed) + (" " + _("and %(n)s more", n=more) if more > 0 else "")
    log.info("console: %s %s %s dead letter(s)", ctx.user.actor, action, len(result["done"]),
             extra={"actor": ctx.user.actor})
    return _back(ctx, "ok" if result["done"] else "error", text)
