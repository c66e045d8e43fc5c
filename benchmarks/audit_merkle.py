"""What ``hub audit verify`` costs on one core: canonical encoding, leaf hashing and the root.

    .venv/bin/python benchmarks/audit_merkle.py [--n 1000000] [--cpu K]

Makes N realistic audit entries in memory (``hub.audit.entry.canonical_entry``, about 300
bytes each: an accept decision with a document id, sender, package hash and small details),
then times, single-threaded and pinned to one CPU:

* encoding: ``canonical_entry`` for every row (what re-reading the log costs besides I/O);
* leaf hashing + root: ``merkle.leaf_hashes`` then ``merkle.root`` (the headline number);
* the sealer's path: ``CompactRange.from_leaves`` and appending every leaf one by one;
* proofs: ``inclusion_proofs`` for 20 entries in one pass, one ``consistency_proof``.

No database: the point is the pure core's share of a full verification.
"""

from __future__ import annotations

import argparse
import gc
import platform
import time
from datetime import datetime, timedelta

from benchmarks.check_throughput import pin_one_cpu
from hub.audit import merkle
from hub.audit.entry import canonical_entry


def rows(n: int):
    """N audit rows as the records table would return them (naive UTC datetimes, as SQLite does)."""
    start = datetime(2024, 5, 1, 8, 0, 0)
    senders = ["000.00.00.G22", "000.00.00.H41", "000.00.00.H44", "000.00.01.H41"]
    for seq in range(1, n + 1):
        sender = senders[seq % 4]
        yield (
            seq,
            start + timedelta(microseconds=seq * 1_234_567),
            "accepted",
            f"adapter:{sender}",
            f"{seq:08d}-2024/CV-UBND-{sender[-3:]}",
            sender,
            f"{seq * 2654435761 % 2**256:064x}",
            None,
            None,
            {"recipients": ["000.00.00.G22"], "type": 1, "size": 10_000 + seq % 5000},
        )


def clock(label: str, fn):
    gc.collect()
    t0 = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - t0
    print(f"  {label:<44} {elapsed:8.3f} s")
    return result, elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="number of audit entries (default 1,000,000)")
    p.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: first allowed)")
    args = p.parse_args(argv)
    n = args.n

    pinned = pin_one_cpu(args.cpu)
    print(f"python {platform.python_version()} · {platform.machine()} · {pinned}; single thread; N={n:,}")
    data = list(rows(n))  # untimed: stands in for the rows the database hands back

    entries, t_encode = clock("canonical_entry x N (encoding)", lambda: [canonical_entry(*r) for r in data])
    del data
    mean = sum(map(len, entries)) / n
    print(f"  {'':<44} mean entry {mean:.0f} bytes, {t_encode / n * 1e6:.2f} µs each")
    leaves, t_leaf = clock("leaf_hashes x N", lambda: merkle.leaf_hashes(entries))
    root, t_root = clock("root (level by level)", lambda: merkle.root(leaves))
    print(f"  {'leaf hashing + root':<44} {t_leaf + t_root:8.3f} s   <- headline")
    print(f"  {'encoding + leaf hashing + root':<44} {t_encode + t_leaf + t_root:8.3f} s")
    print(f"  root = {root.hex()}")

    frontier, _ = clock("CompactRange.from_leaves", lambda: merkle.CompactRange.from_leaves(leaves))
    assert frontier.root() == root

    def append_all():
        one_by_one = merkle.CompactRange()
        for leaf in leaves:
            one_by_one.append(leaf)
        return one_by_one

    appended, _ = clock("CompactRange.append x N", append_all)
    assert appended == frontier
    step = max(1, n // 20)
    indices = list(range(0, n, step))[:20]
    proofs, _ = clock(f"inclusion_proofs, {len(indices)} indices, one pass", lambda: merkle.inclusion_proofs(leaves, indices, n))
    assert all(merkle.verify_inclusion(leaves[i], i, n, pr, root) for i, pr in zip(indices, proofs))
    old = n * 2 // 3 + 1
    proof, _ = clock(f"consistency_proof {old:,} -> {n:,}", lambda: merkle.consistency_proof(leaves, old, n))
    assert merkle.verify_consistency(old, n, merkle.root(leaves[:old]), root, proof)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
