"""Issue 15's cluster faults at 5,000 packages each, all four, outside the suite's time budget:

    .venv/bin/python benchmarks/cluster_faults.py [--n 5000] [--only hub,pg,cut,node]

On a cluster of its own (tests/faults/cluster.py: 3 RabbitMQ nodes with quorum queues and
pause_minority, node 0 splittable; a PostgreSQL server; a primary with a synchronous standby for
the failover; free ports under a temp folder, never the shared 5672/5432/4369), the scenarios of
tests/faults/scenarios.py: one hub of two killed -9 (the sealer and the sweeper move), the
PostgreSQL primary crashed and its standby promoted, the network to one RabbitMQ node cut for
30 s, one node killed and brought back. Each prints published/confirmed/delivered/duplicates/lost
and the time to recover, and checks 0 lost, 0 recorded twice, `hub audit verify` OK. The suite
runs the first two (tests/faults/test_cluster_faults.py). Exit 1 when a scenario fails.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.soak import make_pki  # noqa: E402
from tests.conftest import G22, H41, H44  # noqa: E402
from tests.faults import scenarios  # noqa: E402
from tests.faults.cluster import Postgres, PostgresPair, RabbitCluster, run_interruptible  # noqa: E402
from tests.faults.stream import Broker, signed  # noqa: E402

ALL = ("hub", "pg", "cut", "node")


async def main_async(args) -> int:
    root = Path(tempfile.mkdtemp(prefix="hub-cluster-faults-"))
    rmq = RabbitCluster(root / "rmq", nodes=3, splittable=0)
    pg = Postgres(root / "pg")
    pairs: list[PostgresPair] = []
    streams = []
    failed = []
    try:
        t = time.monotonic()
        await asyncio.to_thread(rmq.start)
        await asyncio.to_thread(pg.start)
        pki = make_pki(root)
        broker = await asyncio.to_thread(Broker.make, rmq)
        packages = await asyncio.to_thread(
            lambda: [signed(pki, G22, (H41, H44) if i % 3 == 0 else (H41,)) for i in range(args.n)])
        print(f"cluster up and {args.n:,} packages signed in {time.monotonic() - t:.0f} s", flush=True)
        for name in args.only:
            tmp = root / f"scenario-{name}"
            tmp.mkdir()
            t = time.monotonic()
            print(f"\n[{name}]", flush=True)
            try:
                if name == "hub":
                    await scenarios.hub_killed(broker, pg, pki, tmp, packages, streams)
                elif name == "pg":
                    pair = PostgresPair(tmp / "pair")
                    pairs.append(pair)
                    await asyncio.to_thread(pair.start)
                    await scenarios.postgres_failover(broker, pair, pki, tmp, packages, streams)
                elif name == "cut":
                    await scenarios.network_cut(broker, pg, pki, tmp, packages, rmq, streams)
                elif name == "node":
                    await scenarios.node_killed(broker, pg, pki, tmp, packages, rmq, streams)
                print(f"  PASS ({time.monotonic() - t:.0f} s)", flush=True)
            except Exception:  # noqa: BLE001 - reported; the next scenario runs
                failed.append(name)
                print(f"  FAIL ({time.monotonic() - t:.0f} s)\n{traceback.format_exc()[-3000:]}", flush=True)
            finally:
                for s in streams:
                    s.cleanup()
                streams.clear()
                for p in pairs:
                    p.close()
                pairs.clear()
                if rmq.members[0].process is None:  # whole again for the next scenario
                    rmq.start_node(0)
                    await asyncio.to_thread(rmq.wait_node, 0, 120)
        print(f"\n{len(args.only) - len(failed)} of {len(args.only)} scenarios clean"
              + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
        return 1 if failed else 0
    finally:
        for s in streams:
            s.cleanup()
        for p in pairs:
            p.close()
        rmq.close()
        pg.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5000, help="packages per scenario (default 5,000)")
    ap.add_argument("--only", default=",".join(ALL), help=f"scenarios, comma-separated (default {','.join(ALL)})")
    args = ap.parse_args()
    args.only = [x for x in args.only.split(",") if x]
    if not set(args.only) <= set(ALL):
        ap.error(f"--only takes {', '.join(ALL)}")
    return run_interruptible(lambda: main_async(args), quiet_amqp=True)


if __name__ == "__main__":
    sys.exit(main())
