"""National size: a directory of 111,000 agency codes of which 100 run their own system (200
inbox queues), on a cluster of this benchmark's own (3 RabbitMQ nodes, one PostgreSQL, free
ports under a temp folder; never the shared 5672/5432).

    .venv/bin/python benchmarks/national.py [--codes 111000] [--systems 100] [--fill 20]

Prints: the directory import; the registry load (what every hub does at start and after each
registry change) and its shipping to the check processes (pickled once per reload); routing
cost per recipient and per package (111,000 codes, most served through an ancestor, a cold and
a warm route cache); RabbitMQ memory of the 200 quorum inbox queues (3 replicas each), empty
and with --fill messages of 10 KB in each; then the time from one `hub agency add` commit on
instance A to instance B's checks accepting a package to that agency (B: a real Worker with a
check process, on this database), B reloading everything (before the change log) and B applying
the change log's delta (now), alternated over --change-rounds rounds each.
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hub import constants as C  # noqa: E402
from hub.backbone.base import Outgoing, inbox_key  # noqa: E402
from hub.backbone.factory import connect  # noqa: E402
from hub.registry.store import import_csv, load_registry  # noqa: E402
from hub.store.engine import make_engine, migrate  # noqa: E402
from tests.faults.cluster import Postgres, RabbitCluster, run_interruptible  # noqa: E402


def directory(codes: int, systems: int) -> tuple[str, list[str], list[str]]:
    """CSV text; the systems' codes; every code. Systems are level-1 codes (G01.., H01..);
    the rest are their descendants (levels 2 and 3), every tenth naming its system in served_by."""
    tops = [f"000.00.00.{'G' if i % 2 else 'H'}{i // 2 + 1:02d}" for i in range(systems)]
    lines = ["code,name,served_by,accepts,connected"]
    lines += [f"{t},Hệ thống {t},,,true" for t in tops]
    every: list[str] = list(tops)
    per = (codes - systems) // systems + 1
    for t in tops:
        l1 = t.split(".")[3]
        made = 0
        for l2 in range(0, 100):
            for l3 in range(0, 1000):
                if (l2, l3) == (0, 0):
                    continue
                if made >= per or len(every) >= codes:
                    break
                code = f"{l3:03d}.{l2:02d}.00.{l1}"
                served = t if made % 10 == 0 else ""
                lines.append(f"{code},Cơ quan {code},{served},,false")
                every.append(code)
                made += 1
            if made >= per or len(every) >= codes:
                break
    return "\n".join(lines) + "\n", tops, every


async def change_to_another_instance(engine, tops: list[str], rounds: int) -> None:
    """Instance A adds an agency (what `hub agency add` commits); instance B (a Worker with one
    check process and its own registry feed) takes it up as its check stage does at its next poll
    (``Worker.reload``) and checks a package to it in its check process. Full (B reloads
    everything, as before the change log) and delta (B applies the log) alternate."""
    from hub.backbone.embedded import EmbeddedBroker
    from hub.edxml.builder import build_edoc
    from hub.edxml.signature import sign_package
    from hub.pipeline.runner import CheckRunner
    from hub.pipeline.worker import Worker
    from hub.pki import devpki
    from hub.pki.identity import Identity
    from hub.registry.feed import RegistryFeed
    from hub.registry.store import add_agency, add_trust_anchor
    from hub.settings import Settings
    from tests.conftest import make_edoc

    ca, ca_key = devpki.make_ca("national bench CA")
    sender = tops[0]
    cert, key = devpki.issue(ca, ca_key, f"{sender} bench")
    hub_cert, hub_key = devpki.issue(ca, ca_key, "hub bench")
    await add_trust_anchor(engine, ca, actor="bench")
    await add_agency(engine, sender, certs=[cert], actor="bench")
    settings = Settings.from_env({}, data_dir=Path(tempfile.gettempdir()), database_url="sqlite+aiosqlite://")
    bb = await connect(None, broker=EmbeddedBroker())  # B's broker does not matter here: its registry does
    await bb.declare_topology()
    feed = RegistryFeed()
    worker = Worker(settings, engine, bb, Identity("000.00.99.G22", hub_key, hub_cert), runner=CheckRunner(1),
                    feed=feed)
    t = time.perf_counter()
    await worker.reload(force=True)  # B starts: a full load, shipped to its check process
    print(f"instance B started (full load and its check process loaded) in {time.perf_counter() - t:.1f} s",
          flush=True)
    times: dict[str, list[tuple[float, float]]] = {"full": [], "delta": []}
    try:
        for r in range(rounds * 2):
            way = ("full", "delta")[(r + r // 2) % 2]  # full, delta, delta, full, full, delta, ...
            new = f"000.00.00.A{r + 1:02d}"
            data = sign_package(build_edoc(make_edoc(sender, (new,)), []), key, cert)
            [v] = await worker.runner.check_many([(data, sender)])
            assert v.reason == "authority.recipient_unknown", v.reason
            feed.deltas = way == "delta"
            await add_agency(engine, new, name=f"Bench {new}", actor="bench")  # A's commit returns here
            t, cpu = time.perf_counter(), time.process_time()
            await worker.reload(force=True)  # B's check stage at its next poll
            [v] = await worker.runner.check_many([(data, sender)])
            times[way].append((time.perf_counter() - t, time.process_time() - cpu))
            assert v.accepted, v.reason
    finally:
        worker.runner.close()
        await bb.close()
    print(f"a `hub agency add` on A to B's checks using it (plus up to HUB_REGISTRY_POLL_SECONDS, 2 s, "
          f"until B's next look), {rounds} rounds each, alternated; B's loads {feed.loads}:", flush=True)
    for way, label in (("full", "before (B reloads everything)"), ("delta", "now (B applies the change log)")):
        wall = [w for w, _ in times[way]]
        cpu = [c for _, c in times[way]]
        print(f"  {label}: median {statistics.median(wall) * 1000:,.0f} ms (min {min(wall) * 1000:,.0f}, "
              f"max {max(wall) * 1000:,.0f}); CPU of B's main process median {statistics.median(cpu) * 1000:,.0f} ms",
              flush=True)


def node_memory_mb(rmq: RabbitCluster) -> list[float]:
    return [int(rmq.ctl(i, "eval", "erlang:memory(total).", timeout=60).stdout.strip()) / 2**20
            for i in range(rmq.nodes)]


async def main_async(args) -> int:
    root = Path(tempfile.mkdtemp(prefix="hub-national-"))
    rmq = RabbitCluster(root / "rmq", nodes=3)
    pg = Postgres(root / "pg")
    try:
        print(f"cluster: 3 RabbitMQ nodes and PostgreSQL under {root} …", flush=True)
        await asyncio.to_thread(rmq.start)
        await asyncio.to_thread(pg.start)
        engine = make_engine(await asyncio.to_thread(pg.create_database, "national"))
        await migrate(engine)

        csv, tops, every = directory(args.codes, args.systems)
        t = time.perf_counter()
        res = await import_csv(engine, csv)
        print(f"directory import: {res.added:,} codes ({len(tops)} with their own system) in "
              f"{time.perf_counter() - t:.1f} s; errors {len(res.errors)}", flush=True)

        loads = []
        for _ in range(3):
            t = time.perf_counter()
            reg = await load_registry(engine)
            loads.append(time.perf_counter() - t)
        assert len(reg.agencies) == len(every) and len(list(reg.systems())) == len(tops)
        t = time.perf_counter()
        blob = pickle.dumps(reg)
        dump = time.perf_counter() - t
        t = time.perf_counter()
        pickle.loads(blob)
        load = time.perf_counter() - t
        print(f"registry load (hub start, and each reload after a change): median {statistics.median(loads):.2f} s "
              f"(min {min(loads):.2f}, max {max(loads):.2f}); snapshot to each check process: "
              f"{len(blob) / 2**20:.1f} MB pickled in {dump * 1000:.0f} ms, unpickled in {load * 1000:.0f} ms",
              flush=True)

        rng = random.Random(15)
        # recipients: registered codes and unregistered level-4 codes under them (served by an ancestor)
        sample = [rng.choice(every) for _ in range(args.routes)]
        sample = [c if i % 4 else f"{c[:7]}{rng.randrange(1, 99):02d}{c[9:]}" for i, c in enumerate(sample)]
        for label in ("cold cache", "warm cache"):
            t = time.perf_counter()
            for code in sample:
                reg.route(code)
            per = (time.perf_counter() - t) / len(sample) * 1e6
            print(f"routing ({label}): {per:.1f} µs per recipient over {len(sample):,} recipients "
                  f"(a package to 2 recipients: {2 * per:.1f} µs)", flush=True)
        reg2 = await load_registry(engine)  # what a reload leaves: an empty cache again
        t = time.perf_counter()
        for code in sample[:10000]:
            reg2.route(code)
        print(f"routing right after a reload: {(time.perf_counter() - t) / 10000 * 1e6:.1f} µs per recipient",
              flush=True)

        before = await asyncio.to_thread(node_memory_mb, rmq)
        bb = await connect(rmq.url())
        try:
            await bb.declare_topology()
            t = time.perf_counter()
            for code in tops:
                await bb.declare_inbox(code)
            declared = time.perf_counter() - t
            await asyncio.sleep(5)
            empty = await asyncio.to_thread(node_memory_mb, rmq)
            body = b"x" * 10240
            t = time.perf_counter()
            for urgent in (False, True):
                items = [Outgoing(C.EXCHANGE_DELIVER, inbox_key(code, urgent), body, None, None, None, 0)
                         for code in tops for _ in range(args.fill)]
                for i in range(0, len(items), 500):
                    await bb.publish_many(items[i:i + 500])
            filled_in = time.perf_counter() - t
            await asyncio.sleep(5)
            filled = await asyncio.to_thread(node_memory_mb, rmq)
        finally:
            await bb.close()
        n_q = 2 * len(tops)
        print(f"RabbitMQ: {n_q} inbox queues (quorum, 3 replicas) declared in {declared:.1f} s; memory of the 3 nodes "
              f"{sum(before):.0f} MB before, {sum(empty):.0f} MB with the queues empty "
              f"(+{(sum(empty) - sum(before)) / n_q * 1024:.0f} KB per queue, all replicas), "
              f"{sum(filled):.0f} MB with {args.fill} messages of 10 KB in each "
              f"({n_q * args.fill:,} messages, published in {filled_in:.1f} s); per node "
              f"{', '.join(f'{m:.0f}' for m in filled)} MB", flush=True)
        await change_to_another_instance(engine, tops, args.change_rounds)
        return 0
    finally:
        rmq.close()
        pg.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--codes", type=int, default=111_000, help="agency codes in the directory (default 111,000)")
    ap.add_argument("--systems", type=int, default=100, help="of which run their own system (default 100)")
    ap.add_argument("--routes", type=int, default=100_000, help="recipients routed (default 100,000)")
    ap.add_argument("--fill", type=int, default=20, help="10 KB messages put in each inbox queue (default 20)")
    ap.add_argument("--change-rounds", type=int, default=3,
                    help="rounds of each way of taking up a registry change on another instance (default 3)")
    args = ap.parse_args()
    return run_interruptible(lambda: main_async(args))


if __name__ == "__main__":
    sys.exit(main())
