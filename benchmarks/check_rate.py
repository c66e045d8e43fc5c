"""Full stateless checks on ONE core, as one JSON line: the `check/s` figure of `hub bench`
(``benchmarks/check_throughput.py`` has the per-stage breakdown).

    .venv/bin/python -m benchmarks.check_rate [--n 2000] [--warmup 100]

Same package and context as check_throughput (≈10 KB, one attachment, RSA-2048), the process
pinned to one CPU; run as its own process by `hub bench` so the pinning stays here.

What it measures: ``check_package`` alone, called in this process after ``--warmup`` calls
(caches warm), on the same bytes each time; process start-up, the broker, IPC to a check
process and the pipeline's other stages are *not* in it. Two rates: ``per_s`` per second of
wall clock (what the process got) and ``per_cpu_s`` per second of its own CPU time (what a
check costs). On a shared machine they differ by ``cpu_share``, the share of its core the
process got while timed; ``runqueue_wait_s`` is how long it waited for that core.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from benchmarks.check_throughput import make_bench, pin_one_cpu, timed
from hub.pipeline.checks import check_package

MEASURES = ("check_package alone, in one pinned process, after warm-up: no start-up, no broker, no IPC, "
            "no recording")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000, help="timed checks (default 2000)")
    p.add_argument("--warmup", type=int, default=100)
    args = p.parse_args(argv)
    pinned = pin_one_cpu(None)
    with tempfile.TemporaryDirectory() as tmp:
        b = make_bench(None, Path(tmp))
        v = check_package(b.data, b.ctx)
        if not v.accepted:
            print(json.dumps({"error": f"the benchmark package is refused: {v.reason}: {v.message}"}))
            return 1
        load_before = os.getloadavg()
        s = timed("full check_package", lambda: check_package(b.data, b.ctx), args.n, args.warmup)
    print(json.dumps({
        "n": args.n, "warmup": args.warmup, "measures": MEASURES,
        "per_s": s.per_s, "mean_us": s.mean_us, "p99_us": s.pct_us(99),
        "per_cpu_s": s.per_cpu_s, "cpu_us": s.cpu_us, "cpu_share": s.cpu_share,
        "runqueue_wait_s": None if s.runqueue_ns is None else s.runqueue_ns / 1e9,
        "loadavg_1min": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],  # before, after
        "package_bytes": len(b.data), "pinned": pinned}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
