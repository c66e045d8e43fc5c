"""`hub audit verify`: recompute every leaf, every checkpoint root and every stored subtree
hash, check every checkpoint signature, re-hash every stored package, and name the first
entry, checkpoint, subtree node or package that does not match.

The log is cut into contiguous ranges of entries, each verified by ``hub.audit.verify_range``
(every leaf recomputed from its row's canonical bytes and compared with the stored one, gaps
found, the leaves folded up to a level ``top`` and every completed node compared with the
``merkle_nodes`` row the sealer stored); on PostgreSQL with a large log, one range per process
(``processes``, default the machine's CPUs, at most ``MAX_PROCESSES``), this process taking the
first. The ranges' boundaries are multiples of ``2**top``, so the nodes above ``top`` are folded
here from the ranges' top nodes and compared the same way. Each checkpoint's root is then
rebuilt from the nodes of its size (kept by the ranges) and compared with what it signed, and
its signature checked once. A node that differs, is missing below the latest checkpoint, or
is stored where no checkpoint or entry justifies it is named by level, index and the entries
it covers. Every stored package is re-hashed against the SHA-256 its entries name (on PostgreSQL
meanwhile, on a connection of its own; its findings are reported last all the same).
"""

from __future__ import annotations

import asyncio
import hashlib
import contextlib
import os
import pickle
import sys
import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.audit import checkpoint as cp
from hub.audit import verify_range as vr
from hub.audit.merkle import node_hash
from hub.store import dsn
from hub.store.tables import checkpoints, merkle_nodes, packages, records

PARALLEL_MIN = 200_000  # entries: below this one process verifies the log (a process costs ~0.5 s to start)
MAX_PROCESSES = 4
PACKAGE_BYTES = 16 << 20  # about this many package bytes per round trip (packages are up to the size cap each)
PACKAGE_ROWS = 5_000  # and at most this many rows (small packages)


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    packages: int = 0
    problems: list[str] = field(default_factory=list)
    first_bad_entry: int | None = None
    first_bad_checkpoint: int | None = None
    first_bad_package: str | None = None
    first_bad_node: tuple[int, int] | None = None  # (level, index) in merkle_nodes
    seconds: float = 0.0
    ranges: list[tuple[int, int, int]] = field(default_factory=list)  # (first entry, last entry, process id)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < vr.MAX_PROBLEMS:
            self.problems.append(text)


def split(total: int, processes: int) -> tuple[int, list[tuple[int, int]]]:
    """``(top, [(lo, hi), ...])``: ``total`` leaves cut into about equal ranges whose bounds
    are multiples of ``2**top`` (one range folding every level when ``processes`` is 1)."""
    if processes <= 1 or total < 2 * processes:
        return 63, [(0, total)]
    top = max(0, (total // processes).bit_length() - 3)  # bounds within an eighth of equal shares
    unit = 1 << top
    bounds = sorted({0, total} | {min(total, round(total * i / processes / unit) * unit) for i in range(1, processes)})
    return top, list(zip(bounds, bounds[1:]))


def peaks(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees ``(level, index)`` whose hashes, folded right to left, are the root
    of the tree of ``size`` leaves, largest first."""
    out, pos = [], 0
    for level in reversed(range(size.bit_length())):
        if size >> level & 1:
            out.append((level, pos >> level))
            pos += 1 << level
    return out


async def verify_log(engine: AsyncEngine, cert: x509.Certificate, progress=None, processes: int | None = None) -> Report:
    """Verify the whole log (see the module docstring); ``progress(done, total, stage)`` after
    each page of entries (stage "entries") and each chunk of stored packages ("packages")."""
    started = time.perf_counter()
    rep = Report()
    # On PostgreSQL the stored packages are re-hashed on a connection of their own while the entries
    # are verified (their queries and the ranges' keep the two CPUs busier than one after the other).
    side = asyncio.ensure_future(_packages_apart(engine, progress)) if engine.dialect.driver == "asyncpg" else None
    try:
        return await _verify_log(engine, cert, progress, processes, started, rep, side)
    finally:
        if side is not None and not side.done():
            side.cancel()
            with contextlib.suppress(BaseException):
                await side


async def _packages_apart(engine: AsyncEngine, progress) -> Report:
    """The stored packages' findings, verified on a connection of their own."""
    prep = Report()
    async with engine.connect() as conn:
        await _verify_packages(conn, prep, progress)
    return prep


async def _verify_log(engine, cert, progress, processes, started, rep: Report, side) -> Report:
    async with engine.connect() as conn:
        cps = (await conn.execute(sa.select(checkpoints).order_by(checkpoints.c.size))).mappings().all()
        total = (await conn.execute(sa.select(sa.func.max(records.c.seq)))).scalar() or 0
        sealed = cps[-1]["size"] if cps else 0  # the sealer stored the nodes of entries 1..sealed
        if processes is None:
            processes = min(os.cpu_count() or 1, MAX_PROCESSES) if total >= PARALLEL_MIN else 1
        if conn.dialect.driver != "asyncpg":
            processes = 1  # the other processes read PostgreSQL on their own connections
        top, ranges = split(max(total, 0), processes)
        wanted: dict[int, set[int]] = {}
        for c in cps:
            if 0 < c["size"] <= total:
                for level, idx in peaks(c["size"]):
                    wanted.setdefault(level, set()).add(idx)
        jobs = [vr.Job(lo, hi, top, sealed, {lv: sorted(ix) for lv, ix in wanted.items() if lv <= top})
                for lo, hi in ranges if hi > lo]
        results = await _run_ranges(engine, jobs, total, progress)
        nodes: dict[tuple[int, int], bytes] = {}
        for res in results:
            rep.entries += res.entries
            rep.ranges.append((res.lo + 1, res.hi, res.pid))
            nodes.update(res.nodes)
        if len(results) > 1:  # the levels above top, from the ranges' top nodes
            upper = vr.Result(0, total)
            fold = vr.Fold(top, 0, 63, {lv: sorted(ix) for lv, ix in wanted.items() if lv > top}, upper)
            reader = await vr.Reader.open(conn)
            runs = fold.feed([h for res in results for h in res.top_nodes])
            runs.pop(top, None)  # compared by the ranges
            await vr.compare_runs(reader, runs, sealed, upper)
            nodes.update(upper.nodes)
            results.append(upper)
        for res in results:  # entries first, in order; then checkpoints; then subtree nodes
            for text in res.entry_problems:
                rep.problem(text)
            rep.first_bad_entry = rep.first_bad_entry or res.first_bad_entry
        for c in cps:
            if 0 < c["size"] <= total:
                h = None
                for part in reversed(peaks(c["size"])):
                    h = nodes[part] if h is None else node_hash(nodes[part], h)
                _check_checkpoint(c, h, cert, rep)
            else:  # checkpoints beyond the end of the log
                rep.checkpoints += 1
                rep.problem(f"checkpoint {c['size']} covers more entries than the log holds ({total}): "
                            "entries were removed, or the checkpoint is forged")
                rep.first_bad_checkpoint = rep.first_bad_checkpoint or c["size"]
        for res in results:
            for text in res.node_problems:
                rep.problem(text)
            rep.first_bad_node = rep.first_bad_node or res.first_bad_node
        beyond = await _stored_nodes(conn, total)
        for level, idx in sorted(beyond):
            rep.problem(f"{vr.node_name(level, idx)} is stored but covers entries the log does not hold (forged)")
            rep.first_bad_node = rep.first_bad_node or (level, idx)
        if side is None:
            await _verify_packages(conn, rep, progress)
        else:  # after every entry, checkpoint and node finding, as in one pass
            prep = await side
            for text in prep.problems:
                rep.problem(text)
            rep.packages, rep.first_bad_package = prep.packages, prep.first_bad_package
    rep.seconds = time.perf_counter() - started
    return rep


async def _run_ranges(engine: AsyncEngine, jobs: list[vr.Job], total: int, progress) -> list[vr.Result]:
    """The first range here, each other one in a process of its own; progress summed over all."""
    done = [0]

    def step(n: int) -> None:
        done[0] += n
        if progress:
            progress(done[0], total, "entries")

    if not jobs:
        return []
    connect = engine.dialect.create_connect_args(engine.url)[1]  # host(s), port(s), user, password, database...
    connect.update(timeout=dsn.CONNECT_TIMEOUT, server_settings={  # as make_engine's, and named in pg_stat_activity
        "statement_timeout": str(dsn.STATEMENT_TIMEOUT_MS), "application_name": "hub audit verify", **vr.PG_SETTINGS})
    children = []
    try:
        for job in jobs[1:]:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hub.audit.verify_range", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            children.append(proc)
            proc.stdin.write(pickle.dumps((connect, job)))
            proc.stdin.close()
        waits = [asyncio.ensure_future(_child(proc, step)) for proc in children]
        try:
            if engine.dialect.driver == "asyncpg":  # on connections of its own, as the other ranges'
                first = await vr.verify_range_on(connect, jobs[0], step)
            else:
                first = await vr.verify_range(engine, jobs[0], step)
            return [first] + list(await asyncio.gather(*waits))
        finally:
            for w in waits:
                w.cancel()
    finally:
        for proc in children:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()


async def _child(proc, step) -> vr.Result:
    """Progress and then the result of one range's process."""
    while True:
        try:
            kind, value = await vr.receive(proc.stdout)
        except EOFError:
            err = (await proc.stderr.read()).decode(errors="replace").strip().splitlines()
            raise RuntimeError("audit verify: the process verifying a range stopped"
                               f"{': ' + err[-1] if err else ''}") from None
        if kind == "progress":
            step(value)
        elif kind == "done":
            return value
        else:
            raise RuntimeError(f"audit verify: the process verifying a range failed: {value}")


async def _stored_nodes(conn, size: int) -> dict[tuple[int, int], str]:
    """Stored subtree hashes that no tree of ``size`` leaves completes (level < 1, or beyond its end)."""
    top = (await conn.execute(sa.select(sa.func.max(merkle_nodes.c.level)))).scalar() or 0
    conds = [merkle_nodes.c.level < 1]
    for level in range(1, top + 1):  # (idx + 1) << level > size
        conds.append(sa.and_(merkle_nodes.c.level == level, merkle_nodes.c.idx >= size >> level))
    rows = (await conn.execute(sa.select(merkle_nodes.c.level, merkle_nodes.c.idx, merkle_nodes.c.hash)
                               .where(sa.or_(*conds)))).all()
    return {(lv, ix): h for lv, ix, h in rows}


def _check_checkpoint(row, root: bytes, cert: x509.Certificate, rep: Report) -> None:
    rep.checkpoints += 1
    size = row["size"]
    try:
        signed = cp.Checkpoint.from_text(row["text"])
    except Exception as e:  # noqa: BLE001 - any malformed text is a finding
        rep.problem(f"checkpoint {size}: its signed text is malformed ({e})")
        rep.first_bad_checkpoint = rep.first_bad_checkpoint or size
        return
    if not signed.verify(cert):
        rep.problem(f"checkpoint {size}: the signature does not verify with the hub certificate (forged or altered)")
        rep.first_bad_checkpoint = rep.first_bad_checkpoint or size
    if signed.size != size or signed.root.hex() != row["root"]:
        rep.problem(f"checkpoint {size}: the stored size/root differ from what was signed")
        rep.first_bad_checkpoint = rep.first_bad_checkpoint or size
    if root != signed.root:
        rep.problem(f"checkpoint {size}: the entries 1..{size} no longer hash to its root "
                    "(an entry was changed, removed, inserted or reordered)")
        rep.first_bad_checkpoint = rep.first_bad_checkpoint or size


async def _verify_packages(conn, rep: Report, progress=None) -> None:
    """Every stored package is content-addressed: its bytes must still hash to the SHA-256 the
    entries name (and have their recorded size); every package.received entry's bytes must exist."""

    def bad(sha: str, text: str) -> None:
        rep.problem(text)
        rep.first_bad_package = rep.first_bad_package or sha

    async def named_by(sha: str) -> str:
        first = (await conn.execute(sa.select(records.c.seq, records.c.event).where(records.c.sha256 == sha)
                                    .order_by(records.c.seq).limit(1))).first()
        return f"entry {first.seq} ({first.event})" if first else "no entry"

    last, limit = "", 10
    total = (await conn.execute(sa.select(sa.func.count()).select_from(packages))).scalar() if progress else 0
    while True:
        rows = (await conn.execute(sa.select(packages.c.sha256, packages.c.size, packages.c.data)
                                   .where(packages.c.sha256 > last).order_by(packages.c.sha256)
                                   .limit(limit))).all()
        if not rows:
            break
        held = sum(len(r[2]) for r in rows) // len(rows) + 1  # the next chunk's rows from this one's sizes
        limit = max(1, min(PACKAGE_ROWS, PACKAGE_BYTES // held))
        hashed = await asyncio.to_thread(lambda rows=rows: [hashlib.sha256(r[2]).hexdigest() for r in rows])
        in_blobs = await _blob_sizes(conn, [r[0] for r in rows if not r[2] and r[1]])
        for (sha, size, data), actual in zip(rows, hashed):
            rep.packages += 1
            if not data and size and in_blobs.get(sha) == size:
                continue  # a large package: its bytes are a blob of the same name (hub.store.blobs)
            if actual != sha:
                bad(sha, f"package {sha[:16]}… named by {await named_by(sha)} was changed after it was stored: "
                         f"its bytes now hash to {actual[:16]}…")
            elif size != len(data):
                bad(sha, f"package {sha[:16]}… named by {await named_by(sha)}: its recorded size {size} is not "
                         f"the {len(data)} bytes it holds")
        last = rows[-1][0]
        if progress:
            progress(rep.packages, total, "packages")
    missing = (await conn.execute(
        sa.select(records.c.seq, records.c.sha256)
        .select_from(records.outerjoin(packages, packages.c.sha256 == records.c.sha256))
        .where(records.c.event == "package.received", records.c.sha256.is_not(None), packages.c.sha256.is_(None))
        .order_by(records.c.seq).limit(50))).all()
    for seq, sha in missing:
        bad(sha, f"package {sha[:16]}… named by entry {seq} (package.received) is missing: its bytes were deleted")



async def _blob_sizes(conn, shas: list[str]) -> dict[str, int]:
    """Sizes of the blobs among ``shas`` whose stored chunks still hash to their name (large
    packages keep their bytes there, hub.store.blobs); a changed or missing blob is left out."""
    from hub.store.blobs import rehash

    out = {}
    for sha in shas:
        found = await rehash(conn, sha)
        if found is not None and found[0] == sha:
            out[sha] = found[1]
    return out
