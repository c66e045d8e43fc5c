"""Run the CPU-bound stateless checks off the event loop.

``processes=0`` checks inline (tests, tiny deployments); otherwise a process pool whose
workers hold the current registry/trust snapshot. A new snapshot version restarts the pool
(registry changes are rare; the snapshot of 100,000 agencies is shipped once per process).
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

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hub.pipeline.checks import CheckContext, Verdict, check_package
from hub.pipeline.connection import Connection
from hub.pki.chain import TrustStore

_CTX: CheckContext | None = None
# Packages from this size are checked in a thread of the hub's own process: their check holds
# no tree of their attachments (hub.edxml.large), and pickling one to a check process and its
# relayed copy back would cost two more copies of it.
LARGE_INLINE = 4 * 1024 * 1024


def _portable(ctx: CheckContext) -> bytes:
    trust = (
        [c.public_bytes(serialization.Encoding.DER) for c in ctx.trust.anchors],
        [c.public_bytes(serialization.Encoding.DER) for c in ctx.trust.crls],
    )
    return pickle.dumps((ctx.registry.agencies, ctx.registry.version, trust, ctx.max_bytes, ctx.allow_sha1,
                         ctx.relay_id))


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


def _init_worker(blob: bytes, parent: int | None = None) -> None:
    global _CTX
    if parent is not None:
        _die_with_parent(parent)
    from hub.context import schema_validator
    from hub.registry.model import Registry

    agencies, version, (anchors, crls), max_bytes, allow_sha1, relay_id = pickle.loads(blob)
    trust = TrustStore(
        anchors=tuple(x509.load_der_x509_certificate(d) for d in anchors),
        crls=tuple(x509.load_der_x509_crl(d) for d in crls),
    )
    _CTX = CheckContext(Registry(agencies, version=version), trust, schema_validator(), max_bytes, allow_sha1,
                        relay_id)


def _check_one(data: bytes, who: str | Connection | None, ctx: CheckContext, at: datetime | None) -> Verdict:
    """``who``: the broker user that published ``data`` or, from other entry points, its Connection."""
    if isinstance(who, Connection):
        return check_package(data, ctx, connection=who, at=at)
    return check_package(data, ctx, adapter_user=who, at=at)


def _check_chunk(items: list[tuple[bytes, str | Connection | None]], at: datetime | None) -> list[Verdict]:
    assert _CTX is not None
    return [_check_one(data, who, _CTX, at) for data, who in items]


def _ready() -> None:
    """A no-op task that makes the executor start a check process."""


class CheckRunner:
    def __init__(self, processes: int = 1):
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._ctx: CheckContext | None = None

    @property
    def context(self) -> CheckContext:
        assert self._ctx is not None, "set_context() first"
        return self._ctx

    def set_context(self, ctx: CheckContext) -> None:
        self._ctx = ctx
        if self.processes > 0:
            old = self._pool
            self._pool = ProcessPoolExecutor(self.processes, initializer=_init_worker,
                                             initargs=(_portable(ctx), os.getpid()))
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
        results = await asyncio.gather(*(loop.run_in_executor(self._pool, _check_chunk, c, at) for c in chunks))
        return [v for chunk in results for v in chunk]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
