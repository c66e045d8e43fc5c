"""CPU seconds per package of the full pipeline, per component, and the SQL statements per batch.

``python -m benchmarks.pipeline_cpu --n 2000 --repeat 2 [--tree A=PATH --tree B=PATH]`` runs
`hub serve` (audit log on) through ``hub bench``'s harness (:class:`benchmarks.pipeline.Bench`:
a throw-away vhost and database per run, packages published as an adapter, received from the
recipient's inbox) and reads, between the hub starting to consume and the last package arriving:

- the hub process's CPU (``/proc/<pid>/stat`` utime+stime) and its check process(es)';
- the PostgreSQL backends serving the run's database (their pids from ``pg_stat_activity``; a
  backend is a process on this machine, so its ``/proc`` counters are the database's CPU for
  this hub alone, whatever else the shared server does), and the server's own processes
  (WAL writer, checkpointer, background writer, autovacuum: shared, so noisy);
- RabbitMQ's ``beam.smp`` (the node listening on the broker's port: shared with whatever else
  uses it, so its figure is an upper bound; the idle rate measured just before is given);
- ``pg_stat_database`` for the run's database: transactions, rows inserted/updated/fetched;
- every statement the hub sent (``benchmarks/statements.py`` wraps `hub serve`), by kind.

Figures are per package (ms of CPU) and per batch (statements), so two code trees measured in
alternation (``--tree``, each a checkout whose ``hub`` package `hub serve` imports) compare on a
shared machine where wall-clock rates swing with other people's load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from benchmarks.pipeline import G22, Bench, child_pids, make_packages
from hub.pki.identity import Identity
from hub.settings import Settings

TICK = os.sysconf("SC_CLK_TCK")
STATEMENTS = Path(__file__).with_name("statements.py")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, in seconds (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def listening_pid(port: int) -> int | None:
    """The process listening on a TCP port of this machine (``ss -ltnpH``), or None."""
    try:
        out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"pid=(\d+)", out)
    return int(m.group(1)) if m else None


def postgres_aux_pids() -> list[int]:
    """The PostgreSQL server's own processes (not backends): WAL writer, checkpointer, …"""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("postgres: ") and any(w in cmd for w in ("walwriter", "checkpointer", "background writer",
                                                                   "autovacuum")):
            out.append(int(p.name))
    return out


class CpuProbe:
    """Samples the components' CPU when the hub starts consuming and when the last package arrived."""

    def __init__(self, bench: Bench, statements_file: Path, rabbit_pid: int | None):
        self.bench = bench
        self.statements_file = statements_file
        self.rabbit_pid = rabbit_pid
        self.before: dict = {}
        self.after: dict = {}

    async def _backends(self, db_url: str) -> list[int]:
        name = db_url.rsplit("/", 1)[1]
        async with self.bench.admin.connect() as c:
            return list((await c.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :d"),
                                         {"d": name})).scalars())

    async def _db_stats(self, db_url: str) -> dict:
        name = db_url.rsplit("/", 1)[1]
        async with self.bench.admin.connect() as c:
            await c.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
            row = (await c.execute(sa.text(
                "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_fetched, tup_returned, blks_hit, "
                "blks_read FROM pg_stat_database WHERE datname = :d"), {"d": name})).mappings().one()
        return dict(row)

    async def _sample(self, procs, db_url: str) -> dict:
        for p in procs:  # the statement counts so far (benchmarks/statements.py writes them on SIGUSR1)
            os.kill(p.pid, signal.SIGUSR1)
        backends = await self._backends(db_url)
        s = {
            "t": time.monotonic(),
            "hub": {p.pid: cpu_seconds(p.pid) for p in procs},
            "check": {c: cpu_seconds(c) for p in procs for c in child_pids(p.pid)},
            "postgres": {b: cpu_seconds(b) for b in backends},
            "postgres_server": {a: cpu_seconds(a) for a in postgres_aux_pids()},
            "rabbitmq": {self.rabbit_pid: cpu_seconds(self.rabbit_pid)} if self.rabbit_pid else {},
            "db": await self._db_stats(db_url),
        }
        await asyncio.sleep(0.3)
        try:
            s["statements"] = json.loads(self.statements_file.read_text())
        except (OSError, ValueError):
            s["statements"] = {"statements": {}, "many": {}, "rows": {}, "texts": {}}
        return s

    async def started(self, procs, db_url: str) -> None:
        self.before = await self._sample(procs, db_url)

    async def received(self, procs, db_url: str) -> None:
        self.after = await self._sample(procs, db_url)

    def result(self, n: int, batches: int) -> dict:
        """CPU ms per package per component, statements per batch, the database's counters per package."""
        b, a = self.before, self.after
        out: dict = {"seconds": a["t"] - b["t"], "batches": batches, "cpu_ms_per_package": {}}
        for comp in ("hub", "check", "postgres", "postgres_server", "rabbitmq"):
            total = 0.0
            for pid, end in a[comp].items():
                if end is not None:  # a process that started during the run counts from 0
                    total += end - (b[comp].get(pid) or 0.0)
            out["cpu_ms_per_package"][comp] = 1000 * total / n
        out["db_per_package"] = {k: (a["db"][k] - b["db"][k]) / n for k in a["db"]}
        st_a, st_b = a["statements"], b["statements"]
        per = {k: v - st_b["statements"].get(k, 0) for k, v in st_a["statements"].items()}
        many = {k: v - st_b["many"].get(k, 0) for k, v in st_a["many"].items()}
        rows = {k: v - st_b["rows"].get(k, 0) for k, v in st_a["rows"].items()}
        out["statements"] = {k: {"n": v, "executemany": many.get(k, 0), "rows": rows.get(k, 0)}
                             for k, v in sorted(per.items(), key=lambda x: -x[1]) if v}
        out["statements_per_batch"] = sum(per.values()) / max(1, batches)
        # distinct texts seen by the end (from the hub's start: its first statements too), a bound on prepares
        out["distinct_texts"] = sum(st_a.get("texts", {}).values())
        out["distinct_texts_by_kind"] = st_a.get("texts", {})
        return out


def _count(log_text: str, name: str) -> int:
    """A counter of the workers' stop lines (``batches=…``, ``marked_alone=…``), summed."""
    return sum(int(m) for m in re.findall(rf"\b{name}=(\d+)", log_text))


async def idle_rate(pid: int | None, seconds: float = 3.0) -> float:
    """CPU seconds per second of a process over ``seconds`` (RabbitMQ's load from everyone else)."""
    if pid is None:
        return float("nan")
    c0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    c1 = cpu_seconds(pid)
    return (c1 - c0) / (time.monotonic() - t0) if c0 is not None and c1 is not None else float("nan")


async def run(n: int, repeat: int, trees: list[tuple[str, str]], hub_env: dict[str, str], out_json: Path | None):
    settings = Settings.from_env()
    bench = Bench(settings, workers=1, processes=1, hub_env=hub_env)
    bench.serve = [sys.executable, str(STATEMENTS)]
    rabbit = listening_pid(bench.parts.port or 5672)
    results: dict[str, list[dict]] = {name: [] for name, _ in trees}
    print(f"pipeline CPU: {n:,} packages, {repeat} round(s), trees {', '.join(f'{k}={v}' for k, v in trees)}; "
          f"RabbitMQ pid {rabbit}; load average {os.getloadavg()}", flush=True)
    try:
        await bench.setup()
        ident = Identity.load(G22, *bench.pki.agencies[G22])
        bodies = make_packages(ident, n, 10_000)
        for r in range(repeat):
            for name, tree in (trees if r % 2 == 0 else trees[::-1]):
                bench.code_tree = tree
                sfile = bench.tmp / f"statements-{name}-{r}.json"
                probe = CpuProbe(bench, sfile, rabbit)
                idle = await idle_rate(rabbit)
                load = os.getloadavg()[0]
                run_ = await bench.hub(f"{name} round {r + 1}", bodies, audit=True, probe=probe,
                                       extra_env={"BENCH_STATEMENTS_FILE": str(sfile)})
                log_text = sorted(bench.tmp.glob(f"hub-{bench.runs:02d}-*.log"))[-1].read_text(errors="replace")
                res = {"round": r + 1, "rate": run_.rate, "load": load, "rabbitmq_idle_cpu_per_s": idle,
                       "marked_alone": _count(log_text, "marked_alone"), **probe.result(n, _count(log_text, "batches"))}
                res["rabbitmq_ms_per_package_less_idle"] = (res["cpu_ms_per_package"]["rabbitmq"]
                                                            - 1000 * idle * res["seconds"] / n)
                results[name].append(res)
                c = res["cpu_ms_per_package"]
                print(f"  {name} #{r + 1}: {run_.rate:6.0f} pkg/s (load {load:.1f}); CPU ms/package: hub {c['hub']:.2f}, "
                      f"check {c['check']:.2f}, postgres backends {c['postgres']:.2f} (+server {c['postgres_server']:.2f}), "
                      f"rabbitmq {c['rabbitmq']:.2f} (less its idle rate {res['rabbitmq_ms_per_package_less_idle']:.2f}); "
                      f"{res['batches']} batches ({res['marked_alone']} marks alone), {res['statements_per_batch']:.1f} statements/batch, "
                      f"{res['distinct_texts']} distinct statement texts; "
                      f"{res['db_per_package']['xact_commit']:.3f} commits/package", flush=True)
        for name, runs in results.items():
            med = {k: statistics.median(x["cpu_ms_per_package"][k] for x in runs) for k in runs[0]["cpu_ms_per_package"]}
            print(f"{name}: median CPU ms/package " + ", ".join(f"{k} {v:.2f}" for k, v in med.items())
                  + f"; rate {statistics.median(x['rate'] for x in runs):.0f} pkg/s; statements/batch "
                  f"{statistics.median(x['statements_per_batch'] for x in runs):.1f}", flush=True)
            last = runs[-1]
            print("  statements (last round): " + ", ".join(
                f"{k} {v['n']}" + (f" ({v['executemany']} executemany, {v['rows']} rows)" if v["executemany"] else "")
                for k, v in last["statements"].items()), flush=True)
            print("  database per package (last round): " + ", ".join(f"{k} {v:.2f}" for k, v in last["db_per_package"].items()),
                  flush=True)
    finally:
        await bench.teardown()
    if out_json:
        out_json.write_text(json.dumps(results, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--tree", action="append", metavar="NAME=PATH",
                    help="a code tree to measure (repeatable; default: this one)")
    ap.add_argument("--hub-env", action="append", default=[], metavar="HUB_X=V")
    ap.add_argument("--json", type=Path, help="write every round's figures here")
    a = ap.parse_args()
    here = str(Path(__file__).resolve().parents[1])
    trees = [tuple(t.split("=", 1)) for t in a.tree] if a.tree else [("this", here)]
    env = dict(e.split("=", 1) for e in a.hub_env)
    asyncio.run(run(a.n, a.repeat, trees, env, a.json))


if __name__ == "__main__":
    main()
