"""A soak on a local cluster: packages at half the saturated rate for --minutes (1 hour by default),
the hubs' memory and the queue depths sampled every --every seconds; do they stay flat?

    .venv/bin/python benchmarks/soak.py --minutes 60            # on demand: the 1-hour soak
    .venv/bin/python benchmarks/soak.py --minutes 5 --every 10  # the short run quoted in the README

Starts its own cluster (tests/faults/cluster.py: 3 RabbitMQ nodes with quorum queues, a
PostgreSQL server, on free ports under a temp folder; never the shared 5672/5432) and --hubs
`hub serve` processes sharing it. First it measures the saturated rate (a burst of --burst
packages published as fast as confirms allow, until every copy is delivered), then publishes
fresh signed packages at half that rate (or --rate) from one adapter to two recipients (every
third package to both), received by independent consumers. Every sample prints the hubs'
resident memory (each hub with its check processes), the RabbitMQ nodes' memory and the depth
of hub.intake and of the inboxes. At the end: published/confirmed/delivered/duplicates/lost, the
RSS drift (first vs last third of the samples, and a fitted slope in MB/hour), the largest queue
depth in the last third, and `hub audit verify`. Exit 1 when something was lost or recorded
twice, the audit log does not verify, or memory or queues did not stay flat.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hub import constants as C  # noqa: E402
from hub.backbone.base import inbox_queue  # noqa: E402
from hub.backbone.factory import connect  # noqa: E402
from hub.pki import devpki  # noqa: E402
from tests.conftest import G22, H41, H44, HUB, Pki  # noqa: E402
from tests.faults.cluster import Postgres, RabbitCluster, run_interruptible  # noqa: E402
from tests.faults.hubproc import group_members  # noqa: E402
from tests.faults.stream import Broker, Stream, signed  # noqa: E402

RSS_FLAT = 0.15  # the last third's median RSS within 15 % (or 30 MB) of the first third's
RSS_FLAT_MB = 30.0


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def make_pki(tmp: Path) -> Pki:
    ca_cert, ca_key = devpki.make_ca("soak root", not_before=datetime.now(timezone.utc) - timedelta(days=800))
    p = Pki(ca_cert, ca_key, tmp=tmp)
    for code in (G22, H41, H44, HUB):
        p.ids[code] = p.issue(code)
    return p


def slope_per_hour(ts: list[float], ys: list[float]) -> float:
    if len(ts) < 2:
        return 0.0
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    var = sum((t - mt) ** 2 for t in ts)
    return 0.0 if var == 0 else sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / var * 3600


class Soak:
    def __init__(self, s: Stream, rmq: RabbitCluster, pki: Pki):
        self.s, self.rmq, self.pki = s, rmq, pki
        self.n = 0

    def fresh(self, k: int) -> list[tuple[str, tuple[str, ...], bytes]]:
        out = []
        for _ in range(k):
            self.n += 1
            out.append(signed(self.pki, G22, (H41, H44) if self.n % 3 == 0 else (H41,)))
        return out

    async def publish(self, pkgs, concurrency: int = 100) -> None:
        s = self.s
        s.expected |= {(d, r) for d, to, _ in pkgs for r in to}
        await s.publish_all([data for _, _, data in pkgs], chunk=concurrency, pause=0.0)

    async def saturated_rate(self, burst: int) -> float:
        pkgs = await asyncio.to_thread(self.fresh, burst)
        want = sum(len(to) for _, to, _ in pkgs)
        before = len(self.s.got)
        t0 = time.monotonic()
        await self.publish(pkgs, concurrency=200)
        while len(self.s.got) - before < want:
            if time.monotonic() - t0 > 600:
                raise RuntimeError(f"the burst was not delivered in 600 s ({len(self.s.got) - before}/{want})")
            await asyncio.sleep(0.2)
        return burst / (time.monotonic() - t0)

    async def depths(self, admin) -> dict[str, int]:
        out = {}
        for name, queues in (("intake", [C.QUEUE_INTAKE]), ("inboxes", [inbox_queue(c, u) for c in (H41, H44)
                                                                     for u in (False, True)]),
                             ("dead", [C.QUEUE_DEAD])):
            total = 0
            for q in queues:
                try:
                    total += await admin.depth(q)
                except Exception:  # noqa: BLE001 - a node moving; counted next time
                    pass
            out[name] = total
        return out

    async def run(self, rate: float, minutes: float, every: float) -> list[dict]:
        s = self.s
        samples: list[dict] = []
        admin = await connect(s.broker.url())
        stop = time.monotonic() + minutes * 60
        t0 = time.monotonic()
        sent = 0
        next_sample = t0
        print(f"{'t(s)':>6} {'published':>9} {'delivered':>9} {'pkg/s':>6} {'hub RSS MB':>18} {'rabbit MB':>9} "
              f"{'intake':>6} {'inboxes':>7}", flush=True)
        last_t, last_conf = t0, s.counts.confirmed
        try:
            while time.monotonic() < stop:
                now = time.monotonic()
                due = int(rate * (now - t0)) - sent
                if due > 0:
                    pkgs = await asyncio.to_thread(self.fresh, due)
                    await self.publish(pkgs)
                    sent += due
                if now >= next_sample:
                    next_sample += every
                    hubs = [rss_mb(group_members(h.proc.pid)) for h in s.hubs]
                    rabbit = sum(rss_mb(group_members(n.process.pid)) for n in self.rmq.members if n.process)
                    d = await self.depths(admin)
                    pace = (s.counts.confirmed - last_conf) / max(now - last_t, 1e-6)
                    last_t, last_conf = now, s.counts.confirmed
                    samples.append({"t": now - t0, "hubs": hubs, "rabbit": rabbit, **d})
                    print(f"{now - t0:6.0f} {s.counts.confirmed:9d} {len(s.got):9d} {pace:6.1f} "
                          f"{' '.join(f'{h:8.1f}' for h in hubs):>18} {rabbit:9.0f} {d['intake']:6d} {d['inboxes']:7d}",
                          flush=True)
                await asyncio.sleep(0.1)
        finally:
            await admin.close()
        return samples


def verdict(samples: list[dict], rate: float, every: float) -> tuple[bool, list[str]]:
    lines, ok = [], True
    body = samples[max(1, len(samples) // 10):]  # after the warm-up
    third = max(1, len(body) // 3)
    first, last = body[:third], body[-third:]
    for k in range(len(body[0]["hubs"]) if body else 0):
        a = statistics.median(x["hubs"][k] for x in first)
        b = statistics.median(x["hubs"][k] for x in last)
        slope = slope_per_hour([x["t"] for x in body], [x["hubs"][k] for x in body])
        flat = b - a <= max(RSS_FLAT * a, RSS_FLAT_MB)
        ok &= flat
        lines.append(f"hub-{k} RSS: {a:.1f} MB (first third) -> {b:.1f} MB (last third), fitted {slope:+.1f} MB/h: "
                     f"{'flat' if flat else 'GROWING'}")
    if body:
        a = statistics.median(x["rabbit"] for x in first)
        b = statistics.median(x["rabbit"] for x in last)
        lines.append(f"RabbitMQ nodes RSS (3 together): {a:.0f} MB -> {b:.0f} MB")
        bound = max(200, int(2 * rate * every))  # what arrives in two sampling periods
        for q in ("intake", "inboxes"):
            peak = max(x[q] for x in last)
            flat = peak <= bound
            ok &= flat
            lines.append(f"{q} depth: largest {peak} in the last third (bound {bound}): "
                         f"{'flat' if flat else 'GROWING'}")
    return ok, lines


async def main_async(args) -> int:
    root = Path(tempfile.mkdtemp(prefix="hub-soak-"))
    rmq = RabbitCluster(root / "rmq", nodes=3)
    pg = Postgres(root / "pg")
    s: Stream | None = None
    try:
        print(f"cluster: 3 RabbitMQ nodes and PostgreSQL under {root} …", flush=True)
        await asyncio.to_thread(rmq.start)
        await asyncio.to_thread(pg.start)
        pki = make_pki(root)
        broker = await asyncio.to_thread(Broker.make, rmq)
        (root / "hubs").mkdir()
        s = Stream(broker, pg, pki, root / "hubs", [], hubs=args.hubs)
        await s.setup()
        await s.start_hub(*range(args.hubs))
        await s.start_receivers()
        soak = Soak(s, rmq, pki)
        if args.rate:
            rate = args.rate
            print(f"rate: {rate:.1f} packages/s (given)", flush=True)
        else:
            sat = await soak.saturated_rate(args.burst)
            rate = sat / 2
            print(f"saturated: {sat:.1f} packages/s ({args.burst} as fast as confirms allow, {args.hubs} hubs); "
                  f"soak at half: {rate:.1f} packages/s", flush=True)
        samples = await soak.run(rate, args.minutes, args.every)
        deadline = time.monotonic() + 300
        while len(s.got & s.expected) < len(s.expected) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        c = await s.finish(f"soak {args.minutes:g} min at {rate:.1f}/s")
        ok, lines = verdict(samples, rate, args.every)
        for line in lines:
            print("  " + line)
        audit_ok = s.audit.returncode == 0
        print(f"  hub audit verify: {'OK' if audit_ok else 'FAILED'} {s.audit.stdout.strip().splitlines()[-1:]}")
        good = ok and audit_ok and c.lost == 0 and c.twice == 0 and c.dead == 0
        print("RESULT: " + ("flat, nothing lost" if good else "NOT CLEAN"), flush=True)
        return 0 if good else 1
    finally:
        if s is not None:
            s.cleanup()
        rmq.close()
        pg.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="soak duration (default 60)")
    ap.add_argument("--every", type=float, default=30.0, help="seconds between samples (default 30)")
    ap.add_argument("--hubs", type=int, default=2, help="`hub serve` instances (default 2)")
    ap.add_argument("--burst", type=int, default=3000, help="packages of the saturation burst (default 3000)")
    ap.add_argument("--rate", type=float, default=0.0, help="packages/s instead of half the measured saturation")
    args = ap.parse_args()
    return run_interruptible(lambda: main_async(args), quiet_amqp=True)


if __name__ == "__main__":
    sys.exit(main())
