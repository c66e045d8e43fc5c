"""`hub audit verify`: recompute every leaf and every checkpoint, check every signature, re-hash
every stored package, and name the first entry, checkpoint or package that does not match."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.audit import checkpoint as cp
from hub.audit.entry import entry_leaf
from hub.audit.merkle import CompactRange
from hub.store.tables import checkpoints, packages, records

CHUNK = 20_000
PACKAGE_CHUNK = 100  # packages are up to the size cap each: few rows per round trip


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    packages: int = 0
    problems: list[str] = field(default_factory=list)
    first_bad_entry: int | None = None
    first_bad_checkpoint: int | None = None
    first_bad_package: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(text)


async def verify_log(engine: AsyncEngine, cert: x509.Certificate, progress=None) -> Report:
    started = time.perf_counter()
    rep = Report()
    async with engine.connect() as conn:
        cps = (await conn.execute(sa.select(checkpoints).order_by(checkpoints.c.size))).mappings().all()
        total = (await conn.execute(sa.select(sa.func.max(records.c.seq)))).scalar() or 0
        pending = list(cps)
        tree = CompactRange()
        expected = 1
        last_seq = 0
        while True:
            rows = (await conn.execute(sa.select(records).where(records.c.seq > last_seq)
                                       .order_by(records.c.seq).limit(CHUNK))).mappings().all()
            if not rows:
                break
            for r in rows:
                seq = r["seq"]
                if seq != expected:
                    rep.problem(f"entry {expected} is missing: the log jumps from {expected - 1} to {seq} (deleted?)")
                    rep.first_bad_entry = rep.first_bad_entry or expected
                    while expected < seq:  # keep positions aligned; the missing leaves change every root after
                        tree.append(b"\x00" * 32)
                        expected += 1
                leaf = entry_leaf(seq, r["at"], r["event"], r["actor"], r["document_id"], r["sender"], r["sha256"],
                                  r["reason"], r["message"], r["details"])
                if leaf.hex() != r["leaf_hash"]:
                    rep.problem(f"entry {seq} ({r['event']}, {r['document_id'] or '-'}) does not match its leaf hash: "
                                "it was changed after it was written")
                    rep.first_bad_entry = rep.first_bad_entry or seq
                tree.append(leaf)
                expected += 1
                rep.entries += 1
                while pending and pending[0]["size"] == tree.size:
                    _check_checkpoint(pending.pop(0), tree, cert, rep)
            last_seq = rows[-1]["seq"]
            if progress:
                progress(rep.entries, total)
        for c in pending:  # checkpoints beyond the end of the log
            rep.checkpoints += 1
            rep.problem(f"checkpoint {c['size']} covers more entries than the log holds ({tree.size}): "
                        "entries were removed, or the checkpoint is forged")
            rep.first_bad_checkpoint = rep.first_bad_checkpoint or c["size"]
        await _verify_packages(conn, rep)
    rep.seconds = time.perf_counter() - started
    return rep


def _check_checkpoint(row, tree: CompactRange, cert: x509.Certificate, rep: Report) -> None:
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
    if tree.root() != signed.root:
        rep.problem(f"checkpoint {size}: the entries 1..{size} no longer hash to its root "
                    "(an entry was changed, removed, inserted or reordered)")
        rep.first_bad_checkpoint = rep.first_bad_checkpoint or size


async def _verify_packages(conn, rep: Report) -> None:
    """Every stored package is content-addressed: its bytes must still hash to the SHA-256 the
    entries name (and have their recorded size); every package.received entry's bytes must exist."""

    def bad(sha: str, text: str) -> None:
        rep.problem(text)
        rep.first_bad_package = rep.first_bad_package or sha

    async def named_by(sha: str) -> str:
        first = (await conn.execute(sa.select(records.c.seq, records.c.event).where(records.c.sha256 == sha)
                                    .order_by(records.c.seq).limit(1))).first()
        return f"entry {first.seq} ({first.event})" if first else "no entry"

    last = ""
    while True:
        rows = (await conn.execute(sa.select(packages.c.sha256, packages.c.size, packages.c.data)
                                   .where(packages.c.sha256 > last).order_by(packages.c.sha256)
                                   .limit(PACKAGE_CHUNK))).all()
        if not rows:
            break
        for sha, size, data in rows:
            rep.packages += 1
            actual = hashlib.sha256(data).hexdigest()
            if actual != sha:
                bad(sha, f"package {sha[:16]}… named by {await named_by(sha)} was changed after it was stored: "
                         f"its bytes now hash to {actual[:16]}…")
            elif size != len(data):
                bad(sha, f"package {sha[:16]}… named by {await named_by(sha)}: its recorded size {size} is not "
                         f"the {len(data)} bytes it holds")
        last = rows[-1][0]
    missing = (await conn.execute(
        sa.select(records.c.seq, records.c.sha256)
        .select_from(records.outerjoin(packages, packages.c.sha256 == records.c.sha256))
        .where(records.c.event == "package.received", records.c.sha256.is_not(None), packages.c.sha256.is_(None))
        .order_by(records.c.seq).limit(50))).all()
    for seq, sha in missing:
        bad(sha, f"package {sha[:16]}… named by entry {seq} (package.received) is missing: its bytes were deleted")
