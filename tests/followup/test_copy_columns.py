"""What the report reads of a copy is kept on the copy (0038): its document's time, due date and
type, and its first answer, which statuses arriving later set once, lower only if stamped earlier,
and never clear (a recall is read from the current status). Through the recorder on real RabbitMQ
+ PostgreSQL and the embedded broker + SQLite; the store function on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa

from hub.followup.query import Filters, items, period_report
from hub.followup.rules import ANSWERS, aware, report, vn_date
from hub.pipeline.status_rows import write_history
from hub.store.engine import make_engine
from hub.store.tables import deliveries, documents, packages, status_history
from tests.conftest import G22, H41, H44, attachment, make_edoc
from tests.hubenv import drain

T0 = datetime(2026, 10, 5, 2, tzinfo=timezone.utc)


async def _copy(conn, recipient: str) -> int:
    pk = (await conn.execute(documents.insert().returning(documents.c.id).values(
        sender=G22, document_id=f"{G22},{recipient}", kind="edoc", sha256="0" * 64, doc_type="1",
        received_at=T0, due_date=date(2026, 10, 6)))).scalar_one()
    return (await conn.execute(deliveries.insert().returning(deliveries.c.id).values(
        document=pk, recipient=recipient, system=recipient, updated_at=T0, received_at=T0,
        due_date=date(2026, 10, 6), doc_type="1"))).scalar_one()


def _same(got, want) -> None:
    """Equal rows, the medians within a hundredth of a second (SQLite's times are to the millisecond)."""
    strip = lambda rows: [dataclasses.replace(r, median_seconds=None) for r in rows]  # noqa: E731
    assert strip(got) == strip(want)
    for g, w in zip(got, want):
        assert (g.median_seconds is None) == (w.median_seconds is None)
        assert g.median_seconds is None or abs(g.median_seconds - w.median_seconds) < 0.01


async def _answered(conn, delivery: int):
    at = (await conn.execute(sa.select(deliveries.c.answered_at).where(deliveries.c.id == delivery))).scalar_one()
    return aware(at)


async def test_later_statuses_keep_the_first_answer(migrated_engine):
    h = lambda d, code, hours: {"delivery": d, "status_code": code, "actor": H41,  # noqa: E731
                                "at": T0 + timedelta(hours=hours)}
    async with migrated_engine.begin() as conn:
        await conn.execute(packages.insert().values(sha256="0" * 64, size=1, data=b"x", stored_at=T0))
        a, b = await _copy(conn, H41), await _copy(conn, H44)
        await write_history(conn, [h(a, "01", 1), h(a, "03", 2)])
        assert await _answered(conn, a) is None  # no answer yet
        await write_history(conn, [h(a, "06", 30)])
        assert await _answered(conn, a) == T0 + timedelta(hours=30)  # the first answer (late: after the due date)
        await write_history(conn, [h(a, "02", 40)])
        assert await _answered(conn, a) == T0 + timedelta(hours=30)  # a later answer leaves it
        await write_history(conn, [h(a, "02", 20)])
        assert await _answered(conn, a) == T0 + timedelta(hours=20)  # one stamped earlier, committed later, lowers it
        await write_history(conn, [h(a, "13", 50), h(a, "15", 51)])
        assert await _answered(conn, a) == T0 + timedelta(hours=20)  # a recall does not clear it
        await write_history(conn, [h(b, "06", 9), h(b, "02", 8), h(b, "13", 7)])  # one batch, any order
        assert await _answered(conn, b) == T0 + timedelta(hours=8)
        await conn.execute(deliveries.update().where(deliveries.c.id == a).values(status="15"))
        await conn.execute(deliveries.update().where(deliveries.c.id == b).values(status="06"))
        # what is kept is what status_history says
        for d in (a, b):
            first = (await conn.execute(sa.select(sa.func.min(status_history.c.at)).where(
                status_history.c.delivery == d, status_history.c.status_code.in_(ANSWERS)))).scalar_one()
            assert await _answered(conn, d) == aware(first)
    rows = {r.recipient: r for r in await period_report(migrated_engine, date(2026, 10, 1), date(2026, 10, 31),
                                                        date(2026, 10, 20))}
    # the recalled copy is withdrawn despite its answer; the other answered on its due date (Vietnam time)
    assert (rows[H41].withdrawn, rows[H41].on_time + rows[H41].late) == (1, 0)
    assert (rows[H44].on_time, rows[H44].late, rows[H44].median_seconds) == (1, 0, 8 * 3600)


async def test_the_recorder_keeps_each_copys_columns(env):
    """A letter to H41 and H44: H41 answers 01 then 06, then the sender recalls H41's copy and H41
    agrees (15); H44 returns it (02). Each copy's row holds its document's columns and its first
    answer, and the report counted from them is the rules' report of the copies."""
    async with env.running():
        g, h41, h44 = await env.adapter(G22), await env.adapter(H41), await env.adapter(H44)
        doc = make_edoc(G22, (H41, H44))
        await g.send_document(doc, [attachment()])
        await drain(h41, 1)
        await drain(h44, 1)
        for code in ("01", "06"):
            await h41.send_status(G22, doc.document_id, code)
            await drain(g, 1)
        await h44.send_status(G22, doc.document_id, "02")
        await drain(g, 1)
        await g.send_status(H41, doc.document_id, "13")  # the sender recalls H41's copy
        await drain(h41, 1)
        await h41.send_status(G22, doc.document_id, "15")
        await drain(g, 1)
    q = (sa.select(deliveries.c.recipient, deliveries.c.status, deliveries.c.received_at, deliveries.c.due_date,
                   deliveries.c.doc_type, deliveries.c.answered_at, documents.c.received_at.label("doc_received"),
                   documents.c.due_date.label("doc_due"), documents.c.doc_type.label("doc_doc_type"))
         .join(documents, documents.c.id == deliveries.c.document).where(documents.c.document_id == doc.document_id))
    copies = {r.recipient: r for r in await env.scalar(q)}
    hist = await env.scalar(sa.select(deliveries.c.recipient, status_history.c.status_code, status_history.c.at)
                            .join(deliveries, deliveries.c.id == status_history.c.delivery)
                            .order_by(status_history.c.id))
    assert [(r, c) for r, c, _ in hist] == [(H41, "01"), (H41, "06"), (H44, "02"), (H41, "13"), (H41, "15")]
    answer = {r: at for r, c, at in hist if c in ANSWERS}
    for code, c in copies.items():
        assert (aware(c.received_at), c.due_date, c.doc_type) == (aware(c.doc_received), c.doc_due, c.doc_doc_type)
        assert c.due_date == doc.due_date and c.doc_type == "1"
        assert aware(c.answered_at) == aware(answer[code])
    assert (copies[H41].status, copies[H44].status) == ("15", "02")
    engine = make_engine(env.settings.database_url)
    try:
        day = vn_date(copies[H41].received_at)
        first, last = day - timedelta(days=1), day + timedelta(days=1)
        got = await period_report(engine, first, last, day)
        want = report(await items(engine, Filters(received_from=first, received_until=last)), day)
    finally:
        await engine.dispose()
    _same(got, want)
    assert [(r.recipient, r.withdrawn, r.on_time) for r in got] == [(H41, 1, 0), (H44, 0, 1)]
