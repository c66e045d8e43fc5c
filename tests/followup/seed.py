"""A seeded month of documents, deliveries and status answers written straight into the store (the
statuses through the recorder's ``write_history``, which keeps each copy's first answer), and the
expected report computed from the seed itself (not through hub.followup)."""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone


from hub.pipeline.status_rows import write_history
from hub.registry.store import add_agency
from hub.store.tables import deliveries, documents, packages

VN = timezone(timedelta(hours=7))  # Vietnam has no daylight saving: a fixed +07:00 is exact
SENDER = "000.00.00.G22"
AGENCIES = {"000.00.00.H41": "UBND tỉnh Nghệ An", "000.00.00.H44": "UBND tỉnh Quảng Nam",
            "000.00.00.H13": "UBND tỉnh Lào Cai"}


@dataclass
class Seeded:
    doc_id: str
    recipient: str
    received: datetime  # aware, Vietnam time
    due: date | None
    statuses: list[tuple[str, datetime]]  # in order


async def seed_month(engine, year: int = 2026, month: int = 10, n: int = 60, seed: int = 7) -> list[Seeded]:
    rnd = random.Random(seed)
    for code, name in {SENDER: "Văn phòng Chính phủ", **AGENCIES}.items():
        await add_agency(engine, code, name=name)
    out: list[Seeded] = []
    first = datetime(year, month, 1, tzinfo=VN)
    # a few just outside the month on each side (must not be counted)
    times = [first - timedelta(minutes=1), first + timedelta(days=31 if month != 2 else 28, minutes=1)]
    times += [first + timedelta(days=rnd.randrange(0, 30), hours=rnd.randrange(0, 24)) for _ in range(n)]
    times.append(first)  # exactly 00:00 on the first day (counted)
    async with engine.begin() as conn:
        await conn.execute(packages.insert().values(sha256="0" * 64, size=1, data=b"x", stored_at=first))
        for i, t in enumerate(times):
            due = None if i % 9 == 0 else (t + timedelta(days=rnd.randrange(1, 15))).date()
            recips = rnd.sample(sorted(AGENCIES), rnd.randrange(1, 4))
            doc_id = f"{SENDER},{t:%Y/%m/%d},{i}/VPCP"
            pk = (await conn.execute(documents.insert().returning(documents.c.id).values(
                sender=SENDER, document_id=doc_id, kind="edoc", sha256="0" * 64, doc_type="1", priority=i % 4,
                subject=f"Văn bản {i}", received_at=t.astimezone(timezone.utc), due_date=due, code=f"{i}/VPCP",
                type_name="Công văn"))).scalar_one()
            for r in recips:
                path = rnd.choice([[], ["01"], ["01", "03"], ["01", "03", "06"], ["01", "06"], ["02"],
                                   ["01", "03", "05", "06"], ["13", "15"], ["13", "16"]])
                at, statuses = t, []
                for code in path:
                    at = at + timedelta(hours=rnd.randrange(1, 24 * 12))
                    statuses.append((code, at))
                did = (await conn.execute(deliveries.insert().returning(deliveries.c.id).values(
                    document=pk, recipient=r, system=r, status=statuses[-1][0] if statuses else None,
                    updated_at=(statuses[-1][1] if statuses else t).astimezone(timezone.utc),
                    received_at=t.astimezone(timezone.utc), due_date=due, doc_type="1"))).scalar_one()
                for code, when in statuses:  # one at a time, as they arrive
                    await write_history(conn, [{"delivery": did, "status_code": code,
                                                "actor": r if code != "13" else SENDER,
                                                "at": when.astimezone(timezone.utc)}])
                out.append(Seeded(doc_id, r, t, due, statuses))
    return out


def expected_report(seeded: list[Seeded], year: int, month: int, today: date) -> dict[str, dict]:
    """Counted directly from the seed: received in the month (Vietnam time), per recipient."""
    out: dict[str, dict] = {}
    for s in seeded:
        if (s.received.year, s.received.month) != (year, month):
            continue
        row = out.setdefault(s.recipient, {"received": 0, "on_time": 0, "late": 0, "still_open": 0,
                                           "open_overdue": 0, "withdrawn": 0, "hours": []})
        row["received"] += 1
        codes = [c for c, _ in s.statuses]
        current = codes[-1] if codes else None
        answer = next(((c, at) for c, at in s.statuses if c in ("06", "02")), None)
        if current in ("13", "15"):
            row["withdrawn"] += 1
        elif answer is None:
            row["still_open"] += 1
            if s.due is not None and today > s.due:
                row["open_overdue"] += 1
        else:
            row["hours"].append((answer[1] - s.received).total_seconds() / 3600)
            if s.due is None or answer[1].date() <= s.due:
                row["on_time"] += 1
            else:
                row["late"] += 1
    for row in out.values():
        hours = row.pop("hours")
        row["median_handling_hours"] = round(statistics.median(hours), 2) if hours else None
    return out


# (label, due date offset from today in days or None, statuses as (code, Vietnam time)) — the
# borders of the rules: due today, answered at the last instant of the due date and at the first
# of the next day, returned (02), recalled (13, 15) before or after an answer, a refused recall
# (16), an answer followed by more statuses, no status at all.
def _edges(today: date) -> list[tuple[str, int | None, list[tuple[str, datetime]]]]:
    def at(day_offset: int, h: int = 9, m: int = 0, s: int = 0, us: int = 0) -> datetime:
        d = today + timedelta(days=day_offset)
        return datetime(d.year, d.month, d.day, h, m, s, us, tzinfo=VN)

    return [
        ("open, due today", 0, []),
        ("received only, due today", 0, [("01", at(-1))]),
        ("open, due tomorrow", 1, [("01", at(-2))]),
        ("open, due yesterday", -1, []),
        ("handled at 23:59:59.999999 on the due date", -3, [("06", at(-3, 23, 59, 59, 999999))]),
        ("handled at 00:00 the day after", -3, [("06", at(-2, 0, 0, 0))]),
        ("returned 02 on the due date", -2, [("01", at(-4)), ("02", at(-2, 23, 0))]),
        ("returned 02 late", -5, [("02", at(-1))]),
        ("recalled 13, overdue", -6, [("13", at(-5))]),
        ("recalled and agreed 15 after an answer", -6, [("06", at(-8)), ("13", at(-4)), ("15", at(-3))]),
        ("recall refused 16, overdue", -4, [("13", at(-6)), ("16", at(-5))]),
        ("handled then received again", -2, [("06", at(-3)), ("01", at(-1))]),
        ("no due date, handled", None, [("06", at(-1))]),
        ("no due date, open", None, []),
        ("handled before 02 (first answer counts)", -1, [("06", at(-2)), ("02", at(0, 8))]),
    ]


async def seed_edges(engine, today: date, recipient: str = "000.00.00.H44") -> list[Seeded]:
    """One document per edge case, received 10 days before ``today`` (after seed_month's agencies exist)."""
    received = datetime(today.year, today.month, today.day, 8, tzinfo=VN) - timedelta(days=10)
    out = []
    async with engine.begin() as conn:
        if (await conn.execute(packages.select().where(packages.c.sha256 == "0" * 64))).first() is None:
            await conn.execute(packages.insert().values(sha256="0" * 64, size=1, data=b"x", stored_at=received))
        for i, (label, due_in, statuses) in enumerate(_edges(today)):
            due = None if due_in is None else today + timedelta(days=due_in)
            doc_id = f"{SENDER},{received:%Y/%m/%d},E{i}/VPCP"
            pk = (await conn.execute(documents.insert().returning(documents.c.id).values(
                sender=SENDER, document_id=doc_id, kind="edoc", sha256="0" * 64, doc_type="2", priority=1,
                subject=label, received_at=received.astimezone(timezone.utc), due_date=due, code=f"E{i}",
                type_name="Quyết định"))).scalar_one()
            did = (await conn.execute(deliveries.insert().returning(deliveries.c.id).values(
                document=pk, recipient=recipient, system=recipient, status=statuses[-1][0] if statuses else None,
                updated_at=(statuses[-1][1] if statuses else received).astimezone(timezone.utc),
                received_at=received.astimezone(timezone.utc), due_date=due, doc_type="2"))).scalar_one()
            for code, when in statuses:
                await write_history(conn, [{"delivery": did, "status_code": code,
                                            "actor": recipient if code not in ("13", "15") else SENDER,
                                            "at": when.astimezone(timezone.utc)}])
            out.append(Seeded(doc_id, recipient, received, due, statuses))
    return out
