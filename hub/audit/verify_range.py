"""One contiguous range of the audit log verified on its own (``hub.audit.verify`` runs the
ranges, one per process on PostgreSQL, and joins them).

A range is leaves ``lo .. hi - 1`` (entries ``lo + 1 .. hi``), ``lo`` a multiple of
``2**top``, so every perfect subtree of level ``<= top`` lies inside one range. For its
entries, in pages, a range: recomputes every leaf from the row's stored fields
(``hub.audit.entry``) and compares it with the stored leaf hash; notices gaps (a missing
entry counts as a zero leaf so later positions stay aligned); folds the leaves level by level
up to ``top`` and compares every completed node with ``merkle_nodes`` (a node ending within
the latest checkpoint must be stored and equal, any other must not be stored); keeps the nodes
the checkpoint roots need (``wanted``) and the completed nodes of level ``top`` (for the
levels above, folded by the caller). Comparisons are one string per page and level (stored
hashes joined in the database, computed ones hex-joined here); only a page that differs is
compared row by row, to name the entries or nodes at fault.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import os
import pickle
import sys
from dataclasses import dataclass, field

from hub.audit.entry import entry_leaf, spliced_entry_leaf, stored_entry_leaf

PAGE = 20_000
MAX_PROBLEMS = 50
ZERO_LEAF = b"\x00" * 32  # stands for a missing entry: keeps the later positions aligned
_COLUMNS = ("seq", "at", "event", "actor", "document_id", "sender", "sha256", "reason", "message", "details",
            "leaf_hash")
# On PostgreSQL through asyncpg: details as its stored JSON text, parsed in the hashing thread.
# One window of at most PAGE sequence numbers per query (not "the next PAGE rows up to the range's
# end"): whatever plan PostgreSQL picks, a query reads at most PAGE rows. With "seq > $1 AND
# seq <= end of range ... LIMIT" and no statistics on records (a restored or bulk-loaded database
# before autovacuum's ANALYZE) it picked a bitmap scan of the whole rest of the range, sorted, with
# parallel workers, for every page: 4.5 s of backend CPU for 500,000 entries instead of 1.0 s.
_PG_ROWS = ("SELECT seq, at, event, actor, document_id, sender, sha256, reason, message, details::text, leaf_hash "
            "FROM records WHERE seq > $1 AND seq <= $2 ORDER BY seq")
# The verifying connections' own settings: no parallel workers (the ranges already use the CPUs).
PG_SETTINGS = {"max_parallel_workers_per_gather": "0"}
# The stored nodes of several (level, from, to) runs, each as count, first, last and the hashes
# joined by commas in index order: one row per run, one round trip per page.
_PG_RUNS = ("SELECT r.level, count(n.idx), min(n.idx), max(n.idx), string_agg(n.hash, ',' ORDER BY n.idx) "
            "FROM unnest($1::smallint[], $2::bigint[], $3::bigint[]) AS r(level, lo, hi) "
            "LEFT JOIN merkle_nodes n ON n.level = r.level AND n.idx >= r.lo AND n.idx < r.hi GROUP BY r.level")


@dataclass
class Job:
    lo: int  # first leaf (0-based); entries lo+1 .. hi
    hi: int
    top: int  # the highest level folded here
    sealed: int  # the latest checkpoint's size: nodes within it are stored, no others
    wanted: dict[int, list[int]]  # level -> sorted node indices the checkpoint roots need


@dataclass
class Result:
    lo: int
    hi: int
    pid: int = 0
    entries: int = 0
    entry_problems: list[str] = field(default_factory=list)  # reported before the checkpoints' ...
    node_problems: list[str] = field(default_factory=list)  # ... and these after them
    first_bad_entry: int | None = None
    first_bad_node: tuple[int, int] | None = None
    nodes: dict[tuple[int, int], bytes] = field(default_factory=dict)  # the wanted ones
    top_nodes: list[bytes] = field(default_factory=list)  # completed nodes of level top, from index lo >> top

    def bad_entry(self, seq: int, text: str) -> None:
        if len(self.entry_problems) < MAX_PROBLEMS:
            self.entry_problems.append(text)
        self.first_bad_entry = self.first_bad_entry or seq

    def bad_node(self, key: tuple[int, int], text: str) -> None:
        if len(self.node_problems) < MAX_PROBLEMS:
            self.node_problems.append(text)
        self.first_bad_node = self.first_bad_node or key


def node_name(level: int, idx: int) -> str:
    return f"subtree node (level {level}, index {idx}: entries {(idx << level) + 1}..{(idx + 1) << level})"


class Fold:
    """Pairs nodes level by level from ``base`` (fed in order from index ``start``) up to ``top``;
    ``feed`` returns the nodes each level completed, as ``{level: (first index, hashes)}``."""

    def __init__(self, base: int, start: int, top: int, wanted: dict[int, list[int]], res: Result):
        self.base, self.top, self.wanted, self.res = base, top, wanted, res
        self.next = {lv: start >> (lv - base) for lv in range(base, top + 1)}
        self.carry: dict[int, list[bytes]] = {lv: [] for lv in range(base, top + 1)}

    def feed(self, nodes: list[bytes]) -> dict[int, tuple[int, list[bytes]]]:
        sha, one, runs, level = hashlib.sha256, b"\x01", {}, self.base
        while nodes:
            first = self.next[level]
            runs[level] = (first, nodes)
            self.next[level] = first + len(nodes)
            self._keep(level, first, nodes)
            if level == self.top:
                self.res.top_nodes.extend(nodes)
                break
            buf = self.carry[level] + nodes if self.carry[level] else nodes
            even = len(buf) & ~1
            self.carry[level] = buf[even:]
            nodes = [sha(one + left + right).digest() for left, right in zip(buf[0:even:2], buf[1:even:2])]
            level += 1
        return runs

    def _keep(self, level: int, first: int, nodes: list[bytes]) -> None:
        want = self.wanted.get(level)
        if want:
            i = bisect.bisect_left(want, first)
            while i < len(want) and want[i] < first + len(nodes):
                self.res.nodes[(level, want[i])] = nodes[want[i] - first]
                i += 1


def page_leaves(rows, state: dict, res: Result, details_text: bool) -> list[bytes]:
    """The leaves of one page (tuples in ``_COLUMNS`` order), zero leaves for missing entries;
    each recomputed leaf compared with the stored one (one joined string, row by row if it
    differs). ``state``: ``expected`` (the next sequence number), ``gap_before`` (a gap at the
    range's start was already reported by the range before).

    With ``details_text`` (rows from PostgreSQL, details as their stored JSON text), a row whose
    text looks canonical (as ``hub.audit.log`` writes it: no ``": ``) is first hashed with that
    text as it is (``spliced_entry_leaf``); a row whose leaf then differs from the stored one is
    recomputed the full way (``stored_entry_leaf``: details parsed and written canonically)
    before it is called changed."""
    full = stored_entry_leaf if details_text else entry_leaf  # the same leaf, from the JSON text or the value
    leaves, computed, stored, spliced = [], [], [], []
    expected, gap_before = state["expected"], state.pop("gap_before", False)
    for i, (seq, at, event, actor, document_id, sender, sha256, reason, message, details, stored_leaf) in \
            enumerate(rows):
        if seq != expected:
            if not gap_before:
                res.bad_entry(expected, f"entry {expected} is missing: the log jumps from {expected - 1} to {seq} "
                                        "(deleted?)")
            leaves.extend([ZERO_LEAF] * (seq - expected))
        gap_before = False
        if details_text and (details is None or '": ' not in details):
            leaf = spliced_entry_leaf(seq, at, event, actor, document_id, sender, sha256, reason, message, details)
            spliced.append((i, len(leaves)))  # row i's leaf is leaves[len(leaves)]
        else:
            leaf = full(seq, at, event, actor, document_id, sender, sha256, reason, message, details)
        leaves.append(leaf)
        computed.append(leaf)
        stored.append(stored_leaf)
        expected = seq + 1
    state["expected"] = expected
    res.entries += len(rows)
    if ",".join(stored) != b"".join(computed).hex(",", 32):
        for i, pos in spliced:
            if computed[i].hex() != rows[i][10]:  # the stored details text was not the canonical one
                leaves[pos] = computed[i] = full(*rows[i][:10])
        for row, leaf in zip(rows, computed):
            if leaf.hex() != row[10]:
                res.bad_entry(row[0], f"entry {row[0]} ({row[2]}, {row[4] or '-'}) does not match its leaf hash: "
                                      "it was changed after it was written")
    return leaves


def must_store(level: int, first: int, count: int, sealed: int) -> int:
    """How many of the nodes ``first ..`` of ``level`` end within the latest checkpoint (stored)."""
    return max(0, min(count, (sealed >> level) - first))


def runs_match(level: int, first: int, nodes: list[bytes], sealed: int, agg) -> bool:
    """Whether the stored run ``agg`` (count, first, last, comma-joined hashes) is exactly the
    nodes that must be stored, with the recomputed hashes."""
    count, lo, hi, text = agg
    k = must_store(level, first, len(nodes), sealed)
    if count != k:
        return False
    return k == 0 or (lo == first and hi == first + k - 1 and text == b"".join(nodes[:k]).hex(",", 32))


def check_nodes(level: int, first: int, nodes: list[bytes], stored: dict[int, str], sealed: int, res: Result) -> None:
    """Row by row: name every node of the run that is missing, altered or stored but not sealed."""
    for i, h in enumerate(nodes):
        idx = first + i
        got = stored.get(idx)
        if (idx + 1) << level > sealed:
            if got is not None:
                res.bad_node((level, idx), f"{node_name(level, idx)} is stored but no checkpoint covers it (forged)")
        elif got is None:
            res.bad_node((level, idx), f"{node_name(level, idx)} is missing from merkle_nodes (deleted?); "
                                       "proofs over it fail")
        elif got != h.hex():
            res.bad_node((level, idx), f"{node_name(level, idx)} does not match the entries it covers: "
                                       "the stored hash was forged or altered")


class Reader:
    """The queries of a range: on PostgreSQL straight on asyncpg (all a range's process needs:
    it imports neither SQLAlchemy nor the store), elsewhere through SQLAlchemy."""

    def __init__(self, conn=None, raw=None):
        self.conn, self.raw = conn, raw
        self.details_text = raw is not None

    @classmethod
    async def open(cls, conn) -> Reader:
        """On an SQLAlchemy connection (asyncpg's own underneath it on PostgreSQL)."""
        if conn.dialect.driver == "asyncpg":
            return await cls.on_asyncpg((await conn.get_raw_connection()).driver_connection)
        return cls(conn)

    @classmethod
    async def on_asyncpg(cls, raw) -> Reader:
        reader = cls(None, raw)
        reader._rows = await raw.prepare(_PG_ROWS)
        return reader

    async def rows(self, after: int, upto: int):
        """The entries ``after + 1 .. upto`` (a window of at most PAGE sequence numbers), in order."""
        if self.raw is not None:
            return await self._rows.fetch(after, upto)
        from hub.store.tables import records

        return (await self.conn.execute(
            sa().select(*(records.c[c] for c in _COLUMNS)).where(records.c.seq > after, records.c.seq <= upto)
            .order_by(records.c.seq))).all()

    async def seq_near(self, seq: int, after: bool) -> int | None:
        """The first sequence number after ``seq``, or the last one up to it (above 0)."""
        sql = ("SELECT min(seq) FROM records WHERE seq > :s" if after else
               "SELECT max(seq) FROM records WHERE seq <= :s AND seq > 0")
        if self.raw is not None:
            return await self.raw.fetchval(sql.replace(":s", "$1"), seq)
        return (await self.conn.execute(sa().text(sql), {"s": seq})).scalar()

    async def runs(self, runs: list[tuple[int, int, int]]) -> dict[int, tuple]:
        """``{level: (count, first, last, comma-joined hashes)}`` of the stored nodes in each run."""
        if not runs:
            return {}
        if self.raw is not None:
            got = await self.raw.fetch(_PG_RUNS, [r[0] for r in runs], [r[1] for r in runs], [r[2] for r in runs])
            return {r[0]: tuple(r[1:]) for r in got}
        out = {}
        for level, lo, hi in runs:
            stored = await self.nodes(level, lo, hi)
            out[level] = (len(stored), min(stored, default=None), max(stored, default=None),
                          ",".join(stored[i] for i in sorted(stored)) or None)
        return out

    async def nodes(self, level: int, lo: int, hi: int) -> dict[int, str]:
        sql = "SELECT idx, hash FROM merkle_nodes WHERE level = :l AND idx >= :a AND idx < :b"
        if self.raw is not None:
            rows = await self.raw.fetch(sql.replace(":l", "$1").replace(":a", "$2").replace(":b", "$3"), level, lo, hi)
        else:
            rows = (await self.conn.execute(sa().text(sql), {"l": level, "a": lo, "b": hi})).all()
        return {ix: h for ix, h in rows}


def sa():
    import sqlalchemy

    return sqlalchemy


async def compare_runs(reader: Reader, runs: dict[int, tuple[int, list[bytes]]], sealed: int, res: Result) -> None:
    """Every completed node of ``runs`` (level >= 1) against ``merkle_nodes``."""
    asked = [(lv, first, first + len(nodes)) for lv, (first, nodes) in runs.items() if lv >= 1]
    stored = await reader.runs(asked)
    for lv, lo, hi in asked:
        first, nodes = runs[lv]
        if not await asyncio.to_thread(runs_match, lv, first, nodes, sealed, stored.get(lv, (0, None, None, None))):
            check_nodes(lv, first, nodes, await reader.nodes(lv, lo, hi), sealed, res)


async def verify_range(engine, job: Job, progress=None) -> Result:
    """Verify one range (see the module docstring) on two connections: the next page of
    entries is read on one while the current one is hashed in a thread and its nodes are
    compared with those read on the other."""
    async with engine.connect() as conn, engine.connect() as other:
        return await _verify_range(await Reader.open(conn), await Reader.open(other), job, progress)


async def _verify_range(reader: Reader, nodes: Reader, job: Job, progress) -> Result:
    res = Result(job.lo, job.hi, pid=os.getpid())
    fold = Fold(0, job.lo, job.top, job.wanted, res)
    state = {"expected": job.lo + 1}
    if job.lo and (await reader.seq_near(job.lo, after=False) or 0) < job.lo:
        state["gap_before"] = True  # the range before ends in a gap it reports
    upto = min(job.hi, job.lo + PAGE)
    pending = asyncio.ensure_future(reader.rows(job.lo, upto))
    try:
        while pending is not None:
            rows = await pending
            after, upto = upto, min(job.hi, upto + PAGE)
            pending = asyncio.ensure_future(reader.rows(after, upto)) if after < job.hi else None
            if not rows:  # a window of missing entries: reported with the next entry, or after the loop
                continue
            leaves = await asyncio.to_thread(page_leaves, rows, state, res, reader.details_text)
            runs = await asyncio.to_thread(fold.feed, leaves)
            await compare_runs(nodes, runs, job.sealed, res)
            if progress:
                progress(len(rows))
    finally:
        if pending is not None:
            if not pending.done():
                pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
    expected = state["expected"]
    if expected <= job.hi:  # the range ends in a gap (only before another range: hi is the last entry otherwise)
        after = await reader.seq_near(job.hi, after=True)
        if not state.get("gap_before"):
            res.bad_entry(expected, f"entry {expected} is missing: the log jumps from {expected - 1} to {after} "
                                    "(deleted?)")
        runs = fold.feed([ZERO_LEAF] * (job.hi - expected + 1))
        await compare_runs(nodes, runs, job.sealed, res)
    return res


# --- a range in a process of its own ---------------------------------------------------------
# ``python -m hub.audit.verify_range``: reads (asyncpg.connect arguments, Job) pickled on stdin, writes frames on
# stdout (8-byte length, then a pickled ("progress", n) per page, then ("done", Result) or
# ("error", text)). A plain child process: nothing of the parent's main module is imported.

def send(out, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(len(data).to_bytes(8, "big") + data)
    out.flush()


async def receive(stream):
    """The next frame from a child's stdout (an ``asyncio.StreamReader``); EOFError at its end."""
    try:
        head = await stream.readexactly(8)
        return pickle.loads(await stream.readexactly(int.from_bytes(head, "big")))
    except asyncio.IncompleteReadError:
        raise EOFError from None


async def verify_range_on(connect: dict, job: Job, progress=None) -> Result:
    """``verify_range`` on two asyncpg connections of its own (``asyncpg.connect`` arguments,
    with the verifying connections' settings, ``PG_SETTINGS``)."""
    import asyncpg

    rows, nodes = await asyncpg.connect(**connect), await asyncpg.connect(**connect)
    try:
        return await _verify_range(await Reader.on_asyncpg(rows), await Reader.on_asyncpg(nodes), job, progress)
    finally:
        await rows.close()
        await nodes.close()


async def _in_process(connect: dict, job: Job, out) -> Result:
    return await verify_range_on(connect, job, lambda n: send(out, ("progress", n)))


def main() -> int:
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # frames only on the real stdout
    try:
        connect, job = pickle.load(sys.stdin.buffer)
        send(out, ("done", asyncio.run(_in_process(connect, job, out))))
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which names it
        send(out, ("error", f"{type(e).__name__}: {e}"))
        return 1
    return 0


if __name__ == "__main__":
    from hub.audit.verify_range import main as _main  # Result pickled as this module's, not __main__'s

    sys.exit(_main())
