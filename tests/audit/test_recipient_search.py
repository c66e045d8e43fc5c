"""Searching the audit log by recipient: the index of each entry's recipients written at append
(audit_recipients, hub.audit.recipients) holds exactly the entries the rule finds (its joins from
the recipient's deliveries, hub.audit.query.recipient_seqs, and entry by entry, addressed_to), and
the search finds the entries the earlier per-entry correlated EXISTS found, on the real pipeline's
entries and on a seeded log with what the pipeline's world lacks (recalls, a DocumentId two senders
used, refusals, several statuses, entries appended before their documents row)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from benchmarks.national_before import to_recipient as old_to_recipient  # the filter before issue 15
from hub.audit import log, query
from hub.audit.records import append_rows, record_row
from hub.web import audit as web_audit
from hub.store.tables import audit_recipients, deliveries, documents, packages, records
from tests.audit.test_query import world  # noqa: F401  (the fixture: entries the real pipeline wrote)
from tests.conftest import G22, H41, H44

AGENCIES = ["000.00.00.G22", "000.00.00.H41", "000.00.00.H44", "000.00.00.H45", "000.00.00.H46"]


async def both(engine, recipient: str, **filters) -> tuple[list[int], list[int]]:
    """The seqs (newest first) the new search returns, and those the old filter selects."""
    total, rows = await query.search(engine, recipient=recipient, limit=query.MAX_LIMIT, **filters)
    where = query.search_conditions(**filters) + [old_to_recipient(recipient)]
    async with engine.connect() as conn:
        old = (await conn.execute(sa.select(records.c.seq).where(*where)
                                  .order_by(records.c.seq.desc()))).scalars().all()
    assert total == len(rows)
    return [r["seq"] for r in rows], list(old)


async def test_same_entries_as_before_on_the_pipelines_log(world):  # noqa: F811
    for agency in (G22, H41, H44, "000.00.00.X99"):
        # the pipeline hands the index the recipients it knows (an accepted document's entries,
        # an edoc's delivery) without a read: the same pairs as the rule's two formulations
        index, joins, walk = await index_and_rule(world.engine, agency)
        assert index == joins == walk, agency
        for filters in ({}, {"event": "status.recorded", "doc_type": "1"}):
            new, old = await both(world.engine, agency, **filters)
            assert new == old, (agency, filters)
    new, _ = await both(world.engine, H41)
    assert new  # not vacuous


async def seed(engine, rnd: random.Random, n: int = 60, staged: bool = False) -> None:
    """Documents, deliveries, statuses (answers and recalls) and the entries the pipeline writes for them.
    ``staged``: written in several transactions, in an order the pipeline's batches may produce and
    worse: a share of the entries appended before any documents row exists, the documents (and
    their statuses) then written a few per transaction, each appending a share of the rest, and
    naming the DocumentIds it wrote (``append_rows``' ``document_ids``)."""
    at = datetime(2026, 11, 1, tzinfo=timezone.utc)
    rows, shas = [], []
    docs: list[dict] = []  # documents rows in writing order: "row", "to" (deliveries), "of" (an original's index)
    keys: dict[tuple[str, str], int] = {}
    for i in range(n):
        sender = rnd.choice(AGENCIES)
        # a few DocumentIds used by two senders
        doc_id = f"shared,{i % 5}" if i % 6 == 0 else f"{sender},{i}"
        to = rnd.sample([a for a in AGENCIES if a != sender], rnd.randint(1, 3))
        shas.append(sha := f"{len(shas) + 1:064x}")
        rows.append(record_row("package.received", sender=sender, document_id=doc_id, sha256=sha, at=at))
        if i % 9 == 4:  # refused: no documents row
            rows.append(record_row("package.refused", sender=sender, document_id=doc_id, sha256=sha, at=at,
                                   reason="authority.not_competent", details={"recipients": to}))
            continue
        if (sender, doc_id) in keys:
            rows.append(record_row("package.duplicate", sender=sender, document_id=doc_id, sha256=sha, at=at))
            continue
        original = keys[(sender, doc_id)] = len(docs)
        doc_type = rnd.choice("12")
        docs.append({"row": dict(sender=sender, document_id=doc_id, kind="edoc", sha256=sha, doc_type=doc_type,
                                 received_at=at), "to": to, "doc_type": doc_type, "of": None})
        rows.append(record_row("package.accepted", sender=sender, document_id=doc_id, sha256=sha, at=at,
                               details={"recipients": to}))
        for r in to:
            rows.append(record_row("edoc.delivered", sender=sender, document_id=doc_id, sha256=sha, at=at,
                                   details={"recipient": r, "inbox": r}))
        # answers from recipients, and now and then a recall by the sender (to all its recipients)
        for by in [r for r in to if rnd.random() < 0.6] + ([sender] if rnd.random() < 0.3 else []):
            code = "13" if by == sender else rnd.choice(["01", "03", "06"])
            st_id = f"status:{doc_id}:{by}:{code}:{len(shas)}"
            shas.append(st_sha := f"{len(shas) + 1:064x}")
            keys[(by, st_id)] = len(docs)
            docs.append({"row": dict(sender=by, document_id=st_id, kind="status", sha256=st_sha, status_code=code,
                                     received_at=at), "to": [], "of": original})
            targets = to if by == sender else [sender]
            rows.append(record_row("package.received", sender=by, document_id=st_id, sha256=st_sha, at=at))
            rows.append(record_row("status.recorded", sender=by, document_id=doc_id, sha256=st_sha, at=at,
                                   details={"status": code, "original_sender": sender, "recipients": targets}))
            for t in targets:
                rows.append(record_row("status.delivered", sender=by, document_id=st_id, sha256=st_sha, at=at,
                                       details={"recipient": t, "inbox": t}))
        at += timedelta(seconds=1)
    rnd.shuffle(rows[len(rows) // 2:])  # not all in document order
    pks: list[int] = []

    async def write(conn, chunk: list[dict]) -> None:
        for doc in chunk:
            row = doc["row"] if doc["of"] is None else {**doc["row"], "refers_to": pks[doc["of"]]}
            pks.append(pk := (await conn.execute(documents.insert().returning(documents.c.id).values(**row))).scalar_one())
            for r in doc["to"]:
                await conn.execute(deliveries.insert().values(document=pk, recipient=r, system=r, updated_at=at,
                                                              received_at=at, doc_type=doc["doc_type"]))

    async with engine.begin() as conn:
        await conn.execute(packages.insert(), [dict(sha256=sha, size=1, data=b"", stored_at=at) for sha in shas])
        if not staged:
            await write(conn, docs)
            await append_rows(conn, rows)
            return
        early = rnd.sample(range(len(rows)), len(rows) * 2 // 5)
        await append_rows(conn, [rows[i] for i in sorted(early)])
    taken = set(early)
    rest = [r for i, r in enumerate(rows) if i not in taken]
    while docs or rest:
        k, m = rnd.randint(1, 6), rnd.randint(0, 10)
        chunk, docs = docs[:k], docs[k:]
        now, rest = rest[:m], rest[m:]
        async with engine.begin() as conn:
            await write(conn, chunk)
            await append_rows(conn, now, [d["row"]["document_id"] for d in chunk])


async def test_same_entries_as_before_on_a_seeded_log(migrated_engine):
    rnd = random.Random(15)
    await seed(migrated_engine, rnd)
    found = 0
    for agency in AGENCIES + ["000.00.00.X99"]:
        for filters in ({}, {"event": "status."}, {"doc_type": "2"}, {"sender": AGENCIES[0]},
                        {"document_id": "shared,1"}):
            new, old = await both(migrated_engine, agency, **filters)
            assert new == old, (agency, filters)
            found += len(new)
    assert found > 300  # the seeded log really reaches every kind of entry
    # paging: the same pages as slicing the whole answer
    new, _ = await both(migrated_engine, AGENCIES[1])
    _, page = await query.search(migrated_engine, recipient=AGENCIES[1], limit=7, offset=7)
    assert [r["seq"] for r in page] == new[7:14]
    assert await query.search(migrated_engine, recipient=AGENCIES[1], limit=5, offset=len(new)) == (len(new), [])
    assert (await query.search(migrated_engine, recipient=AGENCIES[1], limit=0))[0] == len(new)
    # the console's search: the same entries, its own page and count
    found = await web_audit.search(migrated_engine, {"recipient": AGENCIES[1]}, 7, 7)
    total, rows = found.total, found.rows
    assert total == len(new) and not found.total_is_lower_bound and [r["seq"] for r in rows] == new[7:14]
    assert set(rows[0]) == {"seq", "at", "event", "actor", "sender", "document_id", "reason", "message"}


async def test_past_the_count_bound_the_total_is_a_lower_bound(migrated_engine):
    """A recipient with more entries than the count's bound: the total stops at the bound and says
    so, and the page (newest first from the recipient's range of the index) holds the same entries,
    in the same order, as the exact search and as the rule tested entry by entry (query.addressed_to)."""
    await seed(migrated_engine, random.Random(15))
    walked = 0
    for agency in AGENCIES + ["000.00.00.X99"]:
        for filters in ({}, {"event": "status."}, {"doc_type": "2"}, {"sender": AGENCIES[0]},
                        {"document_id": "shared,1"}):
            exact, _ = await both(migrated_engine, agency, **filters)
            where = query.search_conditions(**filters) + [query.addressed_to(agency)]
            async with migrated_engine.connect() as conn:
                assert (await conn.execute(sa.select(records.c.seq).where(*where)
                                           .order_by(records.c.seq.desc()))).scalars().all() == exact, agency
            for cap, offset, limit in ((3, 0, 5), (3, 5, 5), (0, 0, 7), (5, 7, 7), (len(exact), 0, 5), (2, 40, 9)):
                found = await query.find(migrated_engine, recipient=agency, limit=limit, offset=offset,
                                         count_cap=cap, **filters)
                assert [r["seq"] for r in found.rows] == exact[offset:offset + limit], (agency, filters, cap, offset)
                bound = max(cap, offset + limit)
                assert found.total_is_lower_bound == (len(exact) > bound)
                assert found.total == min(len(exact), bound)
                walked += found.total_is_lower_bound and bool(found.rows)
    assert walked > 20  # pages past the bound really served
    # the console's search: the same, with its own columns
    exact, _ = await both(migrated_engine, AGENCIES[1])
    found = await web_audit.search(migrated_engine, {"recipient": AGENCIES[1]}, 7, 7, count_cap=3)
    assert [r["seq"] for r in found.rows] == exact[7:14] and found.total_is_lower_bound and found.total == 14


async def index_and_rule(engine, agency: str) -> tuple[list[int], list[int], list[int]]:
    """A recipient's seqs (newest first) in the index, by the rule's joins, by the rule entry by entry."""
    async with engine.connect() as conn:
        index = (await conn.execute(sa.select(audit_recipients.c.seq).where(audit_recipients.c.recipient == agency)
                                    .order_by(audit_recipients.c.seq.desc()))).scalars().all()
        joins = sorted(set((await conn.execute(query.recipient_seqs(agency))).scalars().all()), reverse=True)
        walk = (await conn.execute(sa.select(records.c.seq).where(query.addressed_to(agency))
                                   .order_by(records.c.seq.desc()))).scalars().all()
    return list(index), joins, list(walk)


async def all_pairs(engine) -> list[tuple[str, int]]:
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(sa.select(audit_recipients).order_by(
            audit_recipients.c.recipient, audit_recipients.c.seq))).all()]


# on PostgreSQL the append writes the index in one statement with the entries (hub.audit.log.FUSED)
# or, as on SQLite, in statements of their own: both must write what the rule finds
both_appends = pytest.mark.parametrize("fused", [True, False], ids=["fused", "per-table"])


@both_appends
async def test_the_index_written_at_append_holds_what_the_rule_finds(migrated_engine, fused, monkeypatch):
    """Entries appended before their documents row exists (a share appended before any, the rest
    with the documents a few per transaction, in any order): the index written at each append
    holds, per recipient, exactly the entries the rule's two formulations find; the search agrees."""
    monkeypatch.setattr(log, "FUSED", fused)
    await seed(migrated_engine, random.Random(7), n=80, staged=True)
    found = 0
    for agency in AGENCIES + ["000.00.00.X99"]:
        index, joins, walk = await index_and_rule(migrated_engine, agency)
        assert index == joins == walk, agency
        found += len(index)
        for filters in ({}, {"event": "status."}, {"doc_type": "1"}, {"sender": AGENCIES[2]}):
            new, old = await both(migrated_engine, agency, **filters)
            assert new == old, (agency, filters)
    assert found > 400
    # every pair in the index is some recipient's by the rule: nothing else is written
    assert len(await all_pairs(migrated_engine)) == found


@both_appends
async def test_a_documents_row_written_later_indexes_the_entries_before_it(migrated_engine, fused, monkeypatch):
    """A package refused, then sent again and accepted in a later transaction: the refused attempt's
    entries become its recipients' when the documents row is written (and only then). An entry
    without a DocumentId concerns nobody, even when its writer names a recipient."""
    monkeypatch.setattr(log, "FUSED", fused)
    at = datetime(2026, 11, 2, tzinfo=timezone.utc)
    sender, to, doc_id = AGENCIES[0], AGENCIES[1], "later,1"
    async with migrated_engine.begin() as conn:
        await conn.execute(packages.insert(), [dict(sha256=s * 64, size=1, data=b"", stored_at=at) for s in "ab"])
        await append_rows(conn, [
            record_row("package.received", sender=sender, document_id=doc_id, sha256="a" * 64, at=at),
            record_row("package.refused", sender=sender, document_id=doc_id, sha256="a" * 64, at=at,
                       reason="signature.invalid")])
    assert await all_pairs(migrated_engine) == []
    async with migrated_engine.begin() as conn:
        pk = (await conn.execute(documents.insert().returning(documents.c.id).values(
            sender=sender, document_id=doc_id, kind="edoc", sha256="b" * 64, received_at=at))).scalar_one()
        await conn.execute(deliveries.insert().values(document=pk, recipient=to, system=to, updated_at=at,
                                                      received_at=at))
        await append_rows(conn, [
            record_row("package.received", sender=sender, document_id=doc_id, sha256="b" * 64, at=at),
            record_row("package.accepted", sender=sender, document_id=doc_id, sha256="b" * 64, at=at)], [doc_id])
    assert await all_pairs(migrated_engine) == [(to, 1), (to, 2), (to, 3), (to, 4)]
    assert (await index_and_rule(migrated_engine, to))[0] == [4, 3, 2, 1]
    async with migrated_engine.begin() as conn:
        await append_rows(conn, [record_row("edoc.delivered", details={"recipient": to}, recipients=[to], at=at)])
    assert await all_pairs(migrated_engine) == [(to, 1), (to, 2), (to, 3), (to, 4)]


async def test_the_migration_backfills_what_the_appends_write(migrated_engine):
    """0040's backfill from the log, documents and deliveries gives the same pairs as the appends."""
    from hub.store.engine import alembic_config

    await seed(migrated_engine, random.Random(11), n=60, staged=True)
    written = await all_pairs(migrated_engine)
    assert len(written) > 300

    def down_and_up(sync_conn) -> None:
        from alembic import command

        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.downgrade(cfg, "0039_overdue_open_due")
        command.upgrade(cfg, "0040_audit_recipients")

    async with migrated_engine.begin() as conn:
        await conn.run_sync(down_and_up)
    assert await all_pairs(migrated_engine) == written
