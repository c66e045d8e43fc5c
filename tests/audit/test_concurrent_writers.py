"""Several hub processes append to one audit log on PostgreSQL: sequence numbers stay gapless
and in commit order (hub.audit.log takes a transaction-scoped advisory lock), the sealer folds
them and `hub audit verify` says OK."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa

from hub.audit.sealer import seal
from hub.pki.identity import Identity
from hub.store.engine import make_engine, migrate
from hub.store.tables import records
from tests.conftest import HUB

WRITERS = 2
TRANSACTIONS = 40
PER_TRANSACTION = 5

WRITER = textwrap.dedent("""
    import asyncio, os, sys, time
    from hub.store.engine import make_engine
    from hub.audit.records import append_rows, record_row

    async def main(url, name, go, txs, per):
        e = make_engine(url)
        async with e.connect() as c:  # connected before the start signal
            await c.close()
        open(go + "." + name, "w").close()
        while not os.path.exists(go):  # every writer starts together
            time.sleep(0.01)
        for t in range(txs):
            async with e.begin() as conn:
                await append_rows(conn, [record_row("test.concurrent", actor=name, details={"n": t * per + i})
                                         for i in range(per)])
                await asyncio.sleep(0.001)  # hold the transaction open a moment: the others queue
        await e.dispose()

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
""")


@pytest.mark.postgres
async def test_two_processes_append_gapless_in_commit_order(pg_url, pki, tmp_path):
    engine = make_engine(pg_url)
    await migrate(engine)
    go = str(tmp_path / "go")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, pg_url, f"writer{i}", go, str(TRANSACTIONS),
                               str(PER_TRANSACTION)], env=env) for i in range(WRITERS)]
    try:
        for _ in range(6000):  # wait (bounded in polls) until both are connected, then start them together
            if all(os.path.exists(f"{go}.writer{i}") for i in range(WRITERS)) or any(p.poll() for p in procs):
                break
            await asyncio.sleep(0.01)
        open(go, "w").close()
        codes = [await asyncio.to_thread(p.wait, 120) for p in procs]
        assert codes == [0] * WRITERS

        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(records.c.seq, records.c.actor, records.c.details)
                                       .order_by(records.c.seq))).all()
        total = WRITERS * TRANSACTIONS * PER_TRANSACTION
        assert [r.seq for r in rows] == list(range(1, total + 1))  # gapless, nothing lost or doubled
        for i in range(WRITERS):
            mine = [r.details["n"] for r in rows if r.actor == f"writer{i}"]
            assert mine == list(range(TRANSACTIONS * PER_TRANSACTION))  # each writer's commits in order
        # each transaction's entries are contiguous: nobody's entries interleave inside another's
        blocks = [rows[k:k + PER_TRANSACTION] for k in range(0, total, PER_TRANSACTION)]
        assert all(len({r.actor for r in b}) == 1 for b in blocks)
        assert any(rows[k].actor != rows[k - 1].actor for k in range(1, total))  # the writers really interleaved

        ident = Identity(HUB, pki.ids[HUB].key, pki.ids[HUB].cert)
        assert (await seal(engine, ident)).size == total
        (tmp_path / "pki").mkdir()
        _, cert = pki.write(pki.ids[HUB], tmp_path / "pki")
        cli = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        cli.update(HUB_DATA_DIR=str(tmp_path / "cli"), HUB_DATABASE_URL=pg_url, HUB_ORGAN_ID=HUB)
        out = subprocess.run([sys.executable, "-m", "hub.cli", "audit", "verify", "--cert", str(cert), "--quiet"],
                             env=cli, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"checked {total:,} entries, 1 checkpoint(s)" in out.stdout and "OK:" in out.stdout
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        await engine.dispose()
