"""The rules counted by the database (hub.followup.sql) agree with the Python rules
(hub.followup.rules) copy by copy, on a seeded month plus the borders of the rules, on SQLite and
PostgreSQL; the Quá hạn list paginated by keyset is stable and complete."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from hub.followup import overdue as od
from hub.followup.query import BY, Filters, items, overdue, period_report, report_query
from hub.followup.rules import overdue_groups, report
from hub.store.tables import deliveries, documents
from hub.pipeline.status_rows import write_history
from tests.followup.seed import SENDER, seed_edges, seed_month

TODAY = date(2026, 10, 20)  # inside the seeded month: some copies overdue, some due soon, some not yet due
MONTH = (date(2026, 10, 1), date(2026, 10, 31))


@pytest.fixture
async def engine(migrated_engine):
    await seed_month(migrated_engine, 2026, 10, n=80)
    await seed_edges(migrated_engine, TODAY)
    return migrated_engine


def _same(sql_rows, py_rows) -> None:
    assert [r.recipient for r in sql_rows] == [r.recipient for r in py_rows]
    for s, p in zip(sql_rows, py_rows):
        a, b = dataclasses.asdict(s), dataclasses.asdict(p)
        ms, mp = a.pop("median_seconds"), b.pop("median_seconds")
        assert a == b, s.recipient
        assert (ms is None) == (mp is None) and (ms is None or abs(ms - mp) < 0.01), (s.recipient, ms, mp)


@pytest.mark.parametrize("today", [TODAY, date(2026, 11, 30)])
async def test_report_in_sql_agrees_with_the_python_rules(engine, today):
    scoped = Filters(received_from=MONTH[0], received_until=MONTH[1])
    copies = await items(engine, scoped, limit=10**9)
    expected = report(copies, today)
    got = await period_report(engine, *MONTH, today)
    _same(got, expected)
    # every outcome occurs, so the agreement means something
    assert all(sum(getattr(r, k) for r in got) > 0 for k in ("on_time", "late", "still_open", "open_overdue",
                                                            "withdrawn"))
    # grouped by document type: the same rules over the same copies
    by_type = report([dataclasses.replace(c, recipient=c.doc_type, recipient_name=c.type_name) for c in copies],
                     today)
    _same(await period_report(engine, *MONTH, today, by="type"), by_type)
    # filters narrow both alike
    only = Filters(agency="quang nam")
    _same(await period_report(engine, *MONTH, today, only),
          report([c for c in copies if c.recipient == "000.00.00.H44"], today))


async def test_the_borders_of_the_rules(engine):
    edge = Filters(agency="000.00.00.H44", doc_type="2")
    [row] = await period_report(engine, *MONTH, TODAY, edge)
    # 15 edge copies: answered on time = handled 23:59:59.999999 on the due date, 02 on the due date,
    # 06 without a due date, 06 before a later 02, 06 followed by 01; late = 00:00 the day after,
    # 02 late; withdrawn = 13 and 15; open = the rest (16 is still owed)
    assert (row.received, row.on_time, row.late, row.withdrawn) == (15, 5, 2, 2)
    assert row.still_open == 6 and row.open_overdue == 2  # due yesterday, refused recall; not due today
    totals = {t.recipient: t for t in await od.totals(engine, edge, TODAY, 1)}
    h44 = totals["000.00.00.H44"]
    # open and overdue: due yesterday, 16 (4 days), handled-then-01 (2 days: status 01 is open);
    # due soon: the two due today and the one due tomorrow
    assert (h44.overdue, h44.due_soon, h44.worst_days(TODAY)) == (3, 3, 4)


async def _copy(engine, recipient: str, received: datetime, statuses: list[tuple[str, datetime]]) -> None:
    """One document with one copy, its statuses written as the recorder writes them."""
    async with engine.begin() as conn:
        n = (await conn.execute(sa.select(sa.func.count()).select_from(documents))).scalar_one()
        pk = (await conn.execute(documents.insert().returning(documents.c.id).values(
            sender=SENDER, document_id=f"{SENDER},{received:%Y/%m/%d},x{n}/VPCP", kind="edoc", sha256="0" * 64,
            doc_type="1", priority=0, received_at=received, due_date=received.date() + timedelta(days=3)))).scalar_one()
        did = (await conn.execute(deliveries.insert().returning(deliveries.c.id).values(
            document=pk, recipient=recipient, system=recipient, status=statuses[-1][0] if statuses else None,
            updated_at=statuses[-1][1] if statuses else received, received_at=received,
            due_date=received.date() + timedelta(days=3), doc_type="1"))).scalar_one()
        for code, at in statuses:
            await write_history(conn, [{"delivery": did, "status_code": code, "actor": recipient, "at": at}])


async def test_every_recipient_of_the_period_is_counted_once(engine):
    """A recipient that no registry row names is counted; one whose copies all fall outside the
    period is not; the median of an even number of answers is the mean of the middle two, of one
    answer that answer (PostgreSQL takes it from each group's array of answers, SQLite from its
    middle rows)."""
    at = datetime(2026, 10, 10, 3, tzinfo=timezone.utc)
    for hours in (1, 2, 4, 8):  # even: the median is (2 + 4) / 2 hours
        await _copy(engine, "000.00.00.A00", at, [("06", at + timedelta(hours=hours))])
    await _copy(engine, "000.00.00.Z99", at, [("02", at + timedelta(hours=5))])  # not in the registry
    await _copy(engine, "000.00.00.Z99", at + timedelta(days=40), [])  # outside the period
    await _copy(engine, "000.00.00.Z98", at - timedelta(days=40), [])  # only outside the period
    scoped = Filters(received_from=MONTH[0], received_until=MONTH[1])
    got = await period_report(engine, *MONTH, TODAY)
    _same(got, report(await items(engine, scoped, limit=10**9), TODAY))
    rows = {r.recipient: r for r in got}
    assert "000.00.00.Z98" not in rows and got[0].recipient == "000.00.00.A00" and got[-1].recipient == "000.00.00.Z99"
    assert rows["000.00.00.A00"].median_seconds == 3 * 3600 and rows["000.00.00.A00"].name == ""
    assert (rows["000.00.00.Z99"].received, rows["000.00.00.Z99"].on_time, rows["000.00.00.Z99"].median_seconds) \
        == (1, 1, 5 * 3600)
    # one recipient chosen: the others are not read
    [only] = await period_report(engine, *MONTH, TODAY, Filters(agency="000.00.00.Z99"))
    assert only == rows["000.00.00.Z99"]


@pytest.fixture
async def pg_engine(pg_url):
    """The seeded month on PostgreSQL alone: the plan below is PostgreSQL's (SQLite has no such choice)."""
    from hub.store.engine import make_engine, migrate

    e = make_engine(pg_url)
    await migrate(e)
    await seed_month(e, 2026, 10, n=80)
    await seed_edges(e, TODAY)
    yield e
    await e.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("by", BY)
async def test_the_report_groups_by_hashing_not_by_sorting_every_copy(pg_engine, by):
    """At national size a week is 200,000 copies: the report's GROUP BY must be free to hash them
    (read once, each group's answers sorted alone for its median) rather than sort them all by
    key, to disk past work_mem, as an ordered-set aggregate (percentile_cont) in it forces."""
    from sqlalchemy.dialects import postgresql

    q = report_query(Filters(received_from=MONTH[0], received_until=MONTH[1]), TODAY, by)
    sql = str(q.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with pg_engine.begin() as conn:
        await conn.exec_driver_sql("SET LOCAL enable_sort = off")  # a few rows: sorting would be as cheap
        plan = "\n".join((await conn.exec_driver_sql("EXPLAIN " + sql)).scalars().all())
    assert "HashAggregate" in plan and "GroupAggregate" not in plan, plan


@pytest.mark.parametrize("days", [0, 3, 30])
async def test_overdue_totals_agree_with_the_python_groups(engine, days):
    for f in (Filters(), Filters(received_from=MONTH[0], received_until=MONTH[1]), Filters(agency="lao cai")):
        groups = await overdue(engine, f, TODAY, days)
        totals = await od.totals(engine, f, TODAY, days)
        assert [(t.recipient, t.overdue, t.due_soon, t.worst_days(TODAY)) for t in totals] == \
            [(g.recipient, len(g.overdue), len(g.due_soon), g.worst_days) for g in groups]
        assert sum(t.overdue + t.due_soon for t in totals) > 0 or f.agency


async def _walk(engine, f, days, order, limit):
    pages, after = [], None
    while True:
        p = await od.page(engine, f, TODAY, days, after=after, order=order, limit=limit)
        pages.append(p)
        if p.next is None:
            return pages
        after = p.next


@pytest.mark.parametrize("order", od.ORDERS)
async def test_pages_are_complete_ordered_and_walk_back(engine, order):
    days = 5
    expected = [i for g in overdue_groups(await items(engine, Filters(), open_due_by=TODAY + timedelta(days=days)),
                                          TODAY, days) for i in g.overdue + g.due_soon]
    pages = await _walk(engine, Filters(), days, order, 7)
    seen = [i for p in pages for i in p.items]
    assert len(pages) > 2 and all(len(p.items) == 7 for p in pages[:-1]) and 0 < len(pages[-1].items) <= 7
    assert len({i.key for i in seen}) == len(seen)  # nothing twice
    assert {i.key for i in seen} == {i.key for i in expected}  # nothing missing
    places = [(i.due_date, i.key) for i in seen]
    assert places == sorted(places, reverse=order == "soon")
    assert pages[0].previous is None and all(p.previous is not None for p in pages[1:])
    # back from the last page, page by page: the same pages
    back = pages[-1]
    for want in reversed(pages[:-1]):
        back = await od.page(engine, Filters(), TODAY, days, before=back.previous, order=order, limit=7)
        assert [i.key for i in back.items] == [i.key for i in want.items]
    assert back.previous is None
    # the export reads every copy, in the same order, a batch at a time
    exported = [i.key for batch in [b async for b in od.every(engine, Filters(), TODAY, days, order, batch=5)]
                for i in batch]
    assert exported == [i.key for i in seen]


async def test_pages_stay_stable_when_copies_close_or_appear(engine):
    first = await od.page(engine, Filters(), TODAY, 3, limit=10)
    rest = [i.key for p in await _walk(engine, Filters(), 3, "late", 10) for i in p.items][10:]
    # between two requests: a copy on the first page is answered, another copy (most overdue of all) appears
    async with engine.begin() as conn:
        await conn.execute(deliveries.update().where(deliveries.c.id == first.items[0].key).values(status="06"))
        doc = (await conn.execute(sa.select(documents.c.id).where(documents.c.due_date.is_not(None))
                                  .order_by(documents.c.id.desc()).limit(1))).scalar_one()
        await conn.execute(documents.update().where(documents.c.id == doc).values(due_date=date(2026, 9, 1)))
        moved = set((await conn.execute(sa.select(deliveries.c.id).where(deliveries.c.document == doc))).scalars())
    after = [i.key for p in await _walk_from(engine, first.next) for i in p.items]
    # the next pages hold what they held, less the copies that moved before the first page: nothing
    # skipped, nothing repeated
    assert after == [k for k in rest if k not in moved] and len(after) > 10


async def _walk_from(engine, after):
    pages = []
    while after is not None:
        p = await od.page(engine, Filters(), TODAY, 3, after=after, limit=10)
        pages.append(p)
        after = p.next
    return pages


def test_cursor_text():
    c = od.Cursor(date(2026, 10, 3), 42)
    assert od.Cursor.parse(c.text()) == c
    for bad in (None, "", "2026-10-03", "2026-13-03.4", "x.4", "2026-10-03.-4", "2026-10-03.4e3"):
        assert od.Cursor.parse(bad) is None, bad


def test_the_partial_indexes_hold_the_rules_codes():
    """0035's predicates are written out in SQL; they must name exactly the rules' codes, or
    PostgreSQL would stop matching the queries to them (or match them wrongly)."""
    import re

    from hub.followup.rules import ANSWERS, CLOSED
    from hub.store import tables

    index = {i.name: i for t in tables.metadata.tables.values() for i in t.indexes}

    def codes(name):
        where = str(index[name].dialect_options["postgresql"]["where"])
        assert where == str(index[name].dialect_options["sqlite"]["where"])
        return set(re.findall(r"'(\d\d)'", where))

    assert codes("ix_deliveries_open") == set(CLOSED)
    assert codes("ix_status_history_answers") == set(ANSWERS)
    from importlib import import_module

    m = import_module("hub.store.migrations.versions.0035_followup_indexes")
    assert set(re.findall(r"'(\d\d)'", m.OPEN)) == set(CLOSED) and set(re.findall(r"'(\d\d)'", m.ANSWERS)) == set(ANSWERS)
