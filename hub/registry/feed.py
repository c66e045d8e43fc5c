"""One instance's registry and trust store, kept up to date from the change log.

Before, every instance re-read the whole directory after any change (111,000 codes: 12–16 s at
national size). A :class:`RegistryFeed` loads everything once; after that, when
``registry_version`` moved from v to w, it reads the change log's rows v+1..w
(:mod:`hub.registry.changes`) and re-reads only the agencies and trust items they name, in the
same database snapshot (REPEATABLE READ on PostgreSQL) as the version it then holds. It loads
everything again when the log no longer holds every version after v (pruned, or written by a
hub without the log), on a ``reload`` row (a bulk import), or when the changes name more
agencies than half the registry. The result equals a full load of version w field by field
(``tests/registry/test_feed.py`` compares them after random changes through the real writers).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.pki.chain import TrustStore
from hub.registry import changes
from hub.registry.model import Registry
from hub.registry.read import TrustItems, read_agencies, read_trust_items, registry_version, trust_store

log = logging.getLogger("hub.registry")

PRUNE_EVERY = 600.0  # seconds between an instance's prunings of the change log


@dataclass(frozen=True)
class Loaded:
    """The registry and trust of one version, and how they were read."""

    registry: Registry
    trust: TrustStore
    version: int
    how: str  # "full" (everything read) | "delta" (the items the log names re-read)


class RegistryFeed:
    """The registry and trust store of one instance (its workers and its API share one)."""

    def __init__(self, *, deltas: bool = True, keep_hours: float | None = None, prune_every: float = PRUNE_EVERY):
        self.deltas = deltas  # False: a full load at every change (what the hub did before the log)
        self.keep_hours = keep_hours  # prune the log's rows older than this (None: never, from here)
        self.prune_every = prune_every
        self.current: Loaded | None = None
        self.loads = {"full": 0, "delta": 0}
        self._anchors: TrustItems = {}
        self._crls: TrustItems = {}
        self._lock = asyncio.Lock()
        self._pruned = time.monotonic()  # the first pruning waits one period: starting is busy enough

    async def refresh(self, engine: AsyncEngine) -> Loaded:
        """The registry and trust as the database has them now; the same object when unchanged."""
        async with self._lock:
            async with engine.connect() as conn:
                if conn.dialect.name == "postgresql":  # the version, the log and the rows: one snapshot
                    await conn.execution_options(isolation_level="REPEATABLE READ")
                version = await registry_version(conn)
                cur = self.current
                if cur is not None and version == cur.version:
                    return cur
                loaded = None
                if cur is not None and self.deltas and version > cur.version:
                    loaded = await self._delta(conn, cur, version)
                if loaded is None:
                    loaded = await self._full(conn, version)
            self.current = loaded
            self.loads[loaded.how] += 1
        await self._maybe_prune(engine)
        return loaded

    async def _full(self, conn: AsyncConnection, version: int) -> Loaded:
        agencies = await read_agencies(conn)
        self._anchors, self._crls = await read_trust_items(conn)
        return Loaded(Registry(agencies, version=version), trust_store(self._anchors, self._crls), version, "full")

    async def _delta(self, conn: AsyncConnection, cur: Loaded, version: int) -> Loaded | None:
        """``cur`` brought to ``version`` from the log, or None when only a full load can."""
        rows = await changes.since(conn, cur.version, version)
        if {v for v, _, _ in rows} != set(range(cur.version + 1, version + 1)):
            log.info("registry change log lacks versions after %d: loading everything", cur.version)
            return None
        items: dict[str, set[str]] = {kind: set() for kind in changes.KINDS}
        for _, kind, item in rows:
            items[kind].add(item)
        codes = items[changes.AGENCY]
        if items[changes.RELOAD] or len(codes) * 2 > len(cur.registry.agencies) + 64:
            return None
        before = cur.registry.agencies
        fresh = await read_agencies(conn, codes) if codes else {}
        upserts = tuple(a for code, a in sorted(fresh.items()) if before.get(code) != a)
        removed = tuple(sorted(code for code in codes if code not in fresh and code in before))
        registry = cur.registry.changed(upserts, removed, version)
        trust = cur.trust
        if items[changes.ANCHOR] or items[changes.CRL]:
            anchors, crl_items = await read_trust_items(conn, items[changes.ANCHOR], items[changes.CRL])
            self._anchors = _merged(self._anchors, items[changes.ANCHOR], anchors)
            self._crls = _merged(self._crls, items[changes.CRL], crl_items)
            trust = trust_store(self._anchors, self._crls)
        return Loaded(registry, trust, version, "delta")

    async def _maybe_prune(self, engine: AsyncEngine) -> None:
        if self.keep_hours is None or time.monotonic() - self._pruned < self.prune_every:
            return
        self._pruned = time.monotonic()
        try:
            n = await changes.prune(engine, self.keep_hours)
        except Exception as e:  # noqa: BLE001 - the next period tries again; nothing depends on it now
            log.warning("could not prune the registry change log: %s", str(e).splitlines()[0][:200] if str(e) else e)
            return
        if n:
            log.info("registry change log: %d row(s) older than %g h pruned", n, self.keep_hours)


def _merged(old: TrustItems, named: set[str], fresh: TrustItems) -> TrustItems:
    """``old`` with the items of fingerprints ``named`` replaced by those read now (``fresh``)."""
    return {**{k: v for k, v in old.items() if k[1] not in named}, **fresh}
