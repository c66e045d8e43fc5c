"""How long a registry change takes to reach the check processes, with 100,000 agencies.

    PYTHONPATH=. .venv/bin/python benchmarks/registry_change.py [--agencies 100000] [--processes 2] [--rounds 5]

A check pool of ``--processes`` holds a registry of ``--agencies`` agencies. Each round retires
one agency and times ``set_context`` plus the first check that must see the change (one package
per process), two ways in the same run, alternating:

* full: what the hub did before deltas: a new process pool loaded with the whole pickled snapshot;
* delta: the running processes apply the change (``hub.pipeline.snapshot``).

Prints the median and the range of each, in milliseconds. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import replace

from hub.edxml.schema import SchemaValidator
from hub.edxml.signature import sign_package
from hub.pipeline.checks import CheckContext
from hub.pipeline.runner import CheckRunner
from hub.pki import devpki
from hub.pki.chain import TrustStore
from hub.pki.identity import Identity
from hub.registry.model import Agency, Registry

G22, H41 = "000.00.00.G22", "000.00.00.H41"


def _world(n: int):
    ca_cert, ca_key = devpki.make_ca("bench root")
    cert, key = devpki.issue(ca_cert, ca_key, "G22 bench")
    ident = Identity(G22, key, cert)
    from hub.pki.certs import fingerprint

    agencies = {G22: Agency(G22, "G22", connected=True, fingerprints=frozenset({fingerprint(cert)})),
                H41: Agency(H41, "H41", connected=True)}
    i = 0
    while len(agencies) < n:
        i += 1
        code = f"{i // 100 % 1000:03d}.{i % 100:02d}.{i // 100000:02d}.H41"
        agencies.setdefault(code, Agency(code, f"Đơn vị {i}", served_by=H41))
    ctx = CheckContext(Registry(agencies, version=1), TrustStore(anchors=(ca_cert,)), SchemaValidator())
    return ctx, ident


def _package(ident: Identity) -> bytes:
    from tests.conftest import make_edoc  # the test suite's document factory

    from hub.edxml.builder import build_edoc

    return sign_package(build_edoc(make_edoc(G22, (H41,)), []), ident.key, ident.cert)


async def main(n: int, processes: int, rounds: int) -> None:
    ctx, ident = _world(n)
    data = _package(ident)
    runner = CheckRunner(processes)
    runner.set_context(ctx)
    await runner.check_many([(data, G22)] * processes)
    codes = [c for c in ctx.registry.agencies if c not in (G22, H41)]
    times: dict[str, list[float]] = {"full": [], "delta": []}
    try:
        for r in range(rounds):
            for way in ("full", "delta") if r % 2 == 0 else ("delta", "full"):
                code = codes[len(times["full"]) + len(times["delta"])]
                agencies = dict(ctx.registry.agencies)
                agencies[code] = replace(agencies[code], active=False)
                new = replace(ctx, registry=Registry(agencies, version=ctx.registry.version + 1))
                t0 = time.perf_counter()
                if way == "full":
                    runner._broken = True  # the old behaviour: a new pool with the full snapshot
                runner.set_context(new)
                verdicts = await runner.check_many([(data, G22)] * processes)
                times[way].append((time.perf_counter() - t0) * 1000)
                assert all(v.accepted for v in verdicts), verdicts[0].message
                ctx = new
    finally:
        runner.close()
    print(f"{n} agencies, {processes} check processes, {rounds} rounds (ms, change + first check):")
    for way, ms in times.items():
        print(f"  {way:5s}: median {statistics.median(ms):8.1f}  min {min(ms):8.1f}  max {max(ms):8.1f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agencies", type=int, default=100_000)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    asyncio.run(main(a.agencies, a.processes, a.rounds))
