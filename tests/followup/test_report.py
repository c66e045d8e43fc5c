"""The follow-up report and the overdue list on a seeded month, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from hub.followup.query import Filters, overdue, overdue_counts, period_report
from hub.followup.rules import Item, classify, overdue_groups, report
from tests.followup.seed import AGENCIES, expected_report, seed_month

TODAY = date(2026, 11, 30)


@pytest.fixture
def engine(migrated_engine):
    return migrated_engine


async def test_report_for_a_seeded_month_matches_an_independent_count(engine):
    seeded = await seed_month(engine, 2026, 10)
    expected = expected_report(seeded, 2026, 10, TODAY)
    got = {r.recipient: r.as_dict() for r in await period_report(engine, date(2026, 10, 1), date(2026, 10, 31), TODAY)}
    assert set(got) == set(AGENCIES) == set(expected)
    for code, row in got.items():
        assert row.pop("agency") == code and row.pop("name") == AGENCIES[code]
        assert row == expected[code], code
        assert row["received"] == row["on_time"] + row["late"] + row["still_open"] + row["withdrawn"]
    # every kind of outcome occurs in the seed, so the comparison means something
    total = {k: sum(r[k] for r in expected.values()) for k in ("on_time", "late", "still_open", "withdrawn")}
    assert all(v > 0 for v in total.values()), total
    # a filter by agency name typed without accents
    only = await period_report(engine, date(2026, 10, 1), date(2026, 10, 31), TODAY, Filters(agency="nghe an"))
    assert [r.recipient for r in only] == ["000.00.00.H41"]
    # the overdue list agrees with the report's open-and-overdue count for that month
    groups = await overdue(engine, Filters(received_from=date(2026, 10, 1), received_until=date(2026, 10, 31)),
                           TODAY, 0)
    assert {g.recipient: len(g.overdue) for g in groups if g.overdue} == \
        {c: r["open_overdue"] for c, r in expected.items() if r["open_overdue"]}
    assert [len(g.overdue) for g in groups] == sorted((len(g.overdue) for g in groups), reverse=True)
    counts = await overdue_counts(engine, TODAY)
    assert sum(counts.values()) >= sum(r["open_overdue"] for r in expected.values())


def _item(due, status=None, answered=None, recipient="000.00.00.H41", received=datetime(2026, 11, 1, tzinfo=timezone.utc)):
    return Item(recipient, "d", "000.00.00.G22", received, due, status, received, answered)


def test_rules():
    today = date(2026, 11, 30)
    assert classify(_item(date(2026, 11, 29)), today, 3) == "overdue"
    assert classify(_item(date(2026, 11, 30)), today, 3) == "due_soon"  # the due date itself is not late
    assert classify(_item(date(2026, 12, 3)), today, 3) == "due_soon"
    assert classify(_item(date(2026, 12, 4)), today, 3) is None
    assert classify(_item(date(2026, 11, 1), "06"), today, 3) is None
    assert classify(_item(date(2026, 11, 1), "13"), today, 3) is None
    assert classify(_item(date(2026, 11, 1), "16"), today, 3) == "overdue"  # a refused recall: still owed
    assert classify(_item(None), today, 3) is None
    # answered at 23:30 Vietnam time on the due date: on time (16:30 UTC)
    on_due = _item(date(2026, 11, 10), "06", datetime(2026, 11, 10, 16, 30, tzinfo=timezone.utc))
    next_day = _item(date(2026, 11, 10), "06", datetime(2026, 11, 10, 17, 30, tzinfo=timezone.utc))
    [row] = report([on_due, next_day], today)
    assert (row.on_time, row.late, row.still_open) == (1, 1, 0)
    groups = overdue_groups([_item(date(2026, 11, 20), recipient="A"), _item(date(2026, 11, 1), recipient="B"),
                             _item(date(2026, 11, 25), recipient="A"), _item(date(2026, 12, 1), recipient="C")],
                            today, 5)
    assert [g.recipient for g in groups] == ["A", "B", "C"] and groups[1].worst_days == 29
    assert [i.due_date for i in groups[0].overdue] == [date(2026, 11, 20), date(2026, 11, 25)]
    assert _item(None).waiting(datetime(2026, 11, 2, tzinfo=timezone.utc)) == timedelta(days=1)
