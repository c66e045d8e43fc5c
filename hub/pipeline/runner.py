"""Run the CPU-bound stateless checks off the event loop.

``processes=0`` checks inline (tests, tiny deployments); otherwise a process pool whose
processes hold the registry/trust snapshot. The whole snapshot (100,000 agencies) is shipped
once, when the pool starts; a new version then travels as a delta (:mod:`hub.pipeline.snapshot`)
with the next chunks of work, and each process applies the deltas it has not seen, in order.
The pool is started again (full snapshot) only when a process died, or when the deltas not yet
applied by every process carry more agencies than a full snapshot would be worth.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import pickle
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime

from concurrent.futures.process import BrokenProcessPool

from hub.pipeline import snapshot
from hub.pipeline.checks import CheckContext, Verdict, check_package
from hub.pipeline.connection import Connection

# In a check process: its context and the number of the last delta it applied.
_CTX: CheckContext | None = None
_SEQ = 0
MAX_PENDING = 64  # deltas not yet applied by every process beyond which the pool starts again
# Packages from this size are checked in a thread of the hub's own process: their check holds
# no tree of their attachments (hub.edxml.large), and pickling one to a check process and its
# relayed copy back would cost two more copies of it.
LARGE_INLINE = 4 * 1024 * 1024


PR_SET_PDEATHSIG = 1  # linux/prctl.h
WATCH_INTERVAL = 1.0  # seconds between the orphan watchdog's looks at the parent


def _die_with_parent(parent: int) -> None:
    """A check process must not outlive the hub (a kill -9 leaves no one to shut the pool down).

    Linux: the kernel sends SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``).
    Everywhere: a daemon thread exits the process once its parent is gone (reparented)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still covers it
    ppid = os.getppid()  # the hub itself, or a fork server that the hub started

    def orphaned() -> bool:
        if os.getppid() != ppid:
            return True
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        return False

    if orphaned():  # the parent died before the prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(WATCH_INTERVAL)
            if orphaned():
                os._exit(1)

    threading.Thread(target=watch, name="hub-orphan-watchdog", daemon=True).start()


def _init_worker(blob: bytes, parent: int | None = None, freeze: bool = False) -> None:
    global _CTX, _SEQ
    if parent is not None:
        _die_with_parent(parent)
    from hub.context import schema_validator

    _CTX, _SEQ = snapshot.load_full(blob, schema_validator()), 0
    if freeze:  # the registry and the schema, loaded for the process's life (hub.heap)
        from hub import heap

        heap.settle(collect=False)


def _catch_up(deltas: list[tuple[int, bytes]]) -> None:
    """Apply, in order, the deltas this process has not applied yet."""
    global _CTX, _SEQ
    assert _CTX is not None
    for seq, blob in deltas:
        if seq <= _SEQ:
            continue
        if seq != _SEQ + 1:  # the parent keeps every delta some process lacks: a gap is a bug
            raise RuntimeError(f"check process {os.getpid()} at delta {_SEQ} was sent delta {seq}")
        _CTX, _SEQ = snapshot.apply_delta(_CTX, pickle.loads(blob)), seq


def _check_one(data: bytes, who: str | Connection | None, ctx: CheckContext, at: datetime | None) -> Verdict:
    """``who``: the broker user that published ``data`` or, from other entry points, its Connection."""
    if isinstance(who, Connection):
        return check_package(data, ctx, connection=who, at=at)
    return check_package(data, ctx, adapter_user=who, at=at)


def _check_chunk(items: list[tuple[bytes, str | Connection | None]], at: datetime | None,
                 deltas: list[tuple[int, bytes]] = ()) -> tuple[int, int, list[Verdict]]:
    """Catch up with ``deltas``, then check: (this process's pid, the delta it is at, verdicts)."""
    _catch_up(deltas)
    return os.getpid(), _SEQ, [_check_one(data, who, _CTX, at) for data, who in items]


def _ready() -> None:
    """A no-op task that makes the executor start a check process."""


class CheckRunner:
    def __init__(self, processes: int = 1, *, max_pending: int = MAX_PENDING, freeze: bool = False):
        self.processes = processes
        self.freeze = freeze  # each check process freezes its heap once loaded (hub.heap)
        self.max_pending = max_pending
        self._pool: ProcessPoolExecutor | None = None
        self._ctx: CheckContext | None = None
        self._broken = False
        self._seq = 0  # deltas sent since the pool started
        self._deltas: list[tuple[int, bytes, int]] = []  # (seq, pickled delta, agencies it carries)
        self._applied: dict[int, int] = {}  # pid -> the last delta that process applied
        self.starts = 0  # pools started (full snapshots shipped)

    @property
    def context(self) -> CheckContext:
        assert self._ctx is not None, "set_context() first"
        return self._ctx

    def pids(self) -> set[int]:
        """The check processes running now."""
        return set(getattr(self._pool, "_processes", None) or ())

    def set_context(self, ctx: CheckContext) -> None:
        """Check with ``ctx`` from now on: a delta to the running processes, or a new pool."""
        old, self._ctx = self._ctx, ctx
        if self.processes <= 0:
            return
        if self._pool is not None and old is not None and not self._broken:
            delta = snapshot.delta_between(old, ctx)
            self._seq += 1
            self._deltas.append((self._seq, pickle.dumps(delta), delta.size))
            self._prune()
            if (len(self._deltas) <= self.max_pending
                    and sum(n for _, _, n in self._deltas) * 2 <= len(ctx.registry.agencies) + 64):
                return
        self._start(ctx)

    def _prune(self) -> None:
        """Forget the deltas every running process has applied."""
        pids = self.pids()
        done = min((self._applied.get(pid, 0) for pid in pids), default=0)
        self._deltas = [d for d in self._deltas if d[0] > done]

    def _start(self, ctx: CheckContext) -> None:
        """A new pool, loaded with the full snapshot."""
        self.starts += 1
        self._broken = False
        self._seq, self._deltas, self._applied = 0, [], {}
        old = self._pool
        self._pool = ProcessPoolExecutor(self.processes, initializer=_init_worker,
                                         initargs=(snapshot.full(ctx), os.getpid(), self.freeze))
        # the executor starts its processes on demand: start them now, so the first batch
        # does not wait for a process to start and load the context
        for _ in range(self.processes):
            self._pool.submit(_ready)
        if old is not None:
            old.shutdown(wait=False, cancel_futures=False)

    async def check_many(self, items: list[tuple[bytes, str | Connection | None]], at: datetime | None = None) -> list[Verdict]:
        if not items:
            return []
        if self._pool is None:
            return [_check_one(d, u, self.context, at) for d, u in items]
        big = [i for i, (d, _) in enumerate(items) if len(d) >= LARGE_INLINE]
        if big:  # shipping a large package to a check process would copy it twice (pickles both ways)
            done = dict(zip(big, await asyncio.gather(*(
                asyncio.to_thread(_check_one, items[i][0], items[i][1], self.context, at) for i in big))))
            rest = await self.check_many([x for i, x in enumerate(items) if i not in done], at)
            it = iter(rest)
            return [done[i] if i in done else next(it) for i in range(len(items))]
        loop = asyncio.get_running_loop()
        n = self.processes
        size = max(1, -(-len(items) // n))
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        deltas = [(seq, blob) for seq, blob, _ in self._deltas]
        try:
            results = await asyncio.gather(*(loop.run_in_executor(self._pool, _check_chunk, c, at, deltas)
                                             for c in chunks))
        except BrokenProcessPool:
            self._broken = True  # the next set_context starts a new pool with the full snapshot
            raise
        for pid, seq, _ in results:
            self._applied[pid] = max(seq, self._applied.get(pid, 0))
        if self._deltas:
            self._prune()
        return [v for _, _, chunk in results for v in chunk]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
