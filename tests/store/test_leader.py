"""Leader election across processes (hub.store.leader) on the real PostgreSQL; SQLite: everyone leads.

Each contender has its own engine, as separate `hub serve` processes would. Takeover is
counted in polls (a contender's :meth:`lead` calls), never in seconds."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from hub.audit.sealer import Sealer
from hub.store import leader
from hub.store.engine import make_engine, migrate
from hub.store.leader import Leadership
from hub.audit.records import append_rows, record_row
from hub.store.tables import checkpoints
from hub.pki.identity import Identity
from tests.conftest import HUB

MAX_POLLS = 3  # a dead holder's role is taken within this many polls of a contender


async def _terminate(url: str, pid: int) -> None:
    e = make_engine(url)
    try:
        async with e.connect() as conn:
            assert (await conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})).scalar()
            await conn.commit()
    finally:
        await e.dispose()


@pytest.mark.postgres
async def test_one_leader_and_takeover_when_its_connection_dies(pg_url):
    engines = [make_engine(pg_url) for _ in range(3)]
    try:
        ls = [Leadership(e, leader.SWEEPER, f"sweeper {i}") for i, e in enumerate(engines)]
        first = [await l.lead() for l in ls]
        assert first == [True, False, False]
        assert [await l.lead() for l in ls] == [True, False, False]  # stays put while alive
        # another role is independent of this one
        other = Leadership(engines[1], leader.SEALER, "sealer")
        assert await other.lead()
        await other.release()

        await _terminate(pg_url, ls[0].backend_pid)  # the holder's connection dies (like a kill -9)
        for _ in range(MAX_POLLS):
            now = [await l.lead() for l in ls[1:]]
            if any(now):
                break
        assert now.count(True) == 1, now
        assert not await ls[0].lead(), "the old leader must step down once its connection is gone"
        new = ls[1] if now[0] else ls[2]
        assert new.backend_pid is not None and new.backend_pid != ls[0].backend_pid

        await new.release()  # a clean stop hands over at the contenders' next poll
        assert [await l.lead() for l in ls].count(True) == 1
    finally:
        for l in ls:
            await l.release()
        for e in engines:
            await e.dispose()


async def test_sqlite_keeps_the_single_process_behaviour(tmp_path):
    e = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    try:
        a, b = Leadership(e, leader.SEALER, "a"), Leadership(e, leader.SEALER, "b")
        assert await a.lead() and await b.lead()
        await a.release()
    finally:
        await e.dispose()


@pytest.mark.postgres
async def test_only_the_elected_sealer_seals_and_another_takes_over(pg_url, pki):
    ident = Identity(HUB, pki.ids[HUB].key, pki.ids[HUB].cert)
    engines = [make_engine(pg_url) for _ in range(2)]
    await migrate(engines[0])
    sealers = [Sealer(e, ident, every_entries=1, every_seconds=0.0, poll=0.02) for e in engines]

    async def fill(n: int) -> None:
        async with engines[0].begin() as conn:
            await append_rows(conn, [record_row("test.entry", details={"i": i}) for i in range(n)])

    async def sealed_size(at_least: int) -> int:
        for _ in range(2000):  # polls, not seconds: bounded however slow the machine is
            async with engines[0].connect() as conn:
                size = (await conn.execute(sa.select(sa.func.max(checkpoints.c.size)))).scalar() or 0
            if size >= at_least:
                return size
            await asyncio.sleep(0.02)
        return size

    try:
        for s in sealers:
            await s.start()
        await fill(5)
        assert await sealed_size(5) == 5
        holders = [s for s in sealers if s.leadership.leading]
        assert len(holders) == 1
        holder, other = holders[0], next(s for s in sealers if s is not holders[0])
        assert holder.sealed >= 1 and other.sealed == 0

        await _terminate(pg_url, holder.leadership.backend_pid)
        await holder.stop()  # the dead process seals nothing more
        await fill(3)
        assert await sealed_size(8) == 8
        assert other.sealed >= 1 and other.leadership.leading
    finally:
        for s in sealers:
            await s.stop()
        for e in engines:
            await e.dispose()
