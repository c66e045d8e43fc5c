"""The registry change log (table ``registry_changes``): what each registry or trust change touched.

Every writer of agencies, pinned certificates, trust anchors or CRLs (``hub.registry.store``:
the CLI, the admin API, the VDXP directory and ``hub demo`` all go through it) calls
:func:`record` in its own transaction: it bumps ``registry_version`` and writes one row per
item under the new version (``agency`` + code, ``anchor``/``crl`` + SHA-256), or one ``reload``
row for a bulk import. The version row is locked from the bump to the commit, so versions are
given in commit order and every committed version up to the one an instance reads has its rows.
An instance at version v reads the rows after v and re-reads only those items
(:mod:`hub.registry.feed`); rows older than ``HUB_REGISTRY_LOG_HOURS`` are pruned
(:func:`prune`), and an instance older than the log loads everything again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.audit.records import utcnow
from hub.store.engine import dialect_insert
from hub.store.tables import registry_changes, settings_kv

VERSION_KEY = "registry_version"
AGENCY, ANCHOR, CRL, RELOAD = "agency", "anchor", "crl", "reload"
KINDS = (AGENCY, ANCHOR, CRL, RELOAD)
IMPORT_LOGGED_MAX = 10_000  # an import of more codes logs one `reload` row instead of its codes


async def record(conn: AsyncConnection, changes: Iterable[tuple[str, str, str]]) -> int:
    """Bump ``registry_version`` and log ``changes`` ((kind, item, op), e.g. ``("agency", code,
    "retire")``) under the new version, in ``conn``'s transaction; return the new version.
    A change naming nothing is logged as a ``reload`` (every instance loads everything)."""
    stmt = dialect_insert(conn, settings_kv).values(key=VERSION_KEY, value="1")
    stmt = stmt.on_conflict_do_update(
        index_elements=["key"], set_={"value": sa.cast(sa.cast(settings_kv.c.value, sa.Integer) + 1, sa.Text)}
    ).returning(settings_kv.c.value)
    version = int((await conn.execute(stmt)).scalar_one())
    now = utcnow()
    rows = {(k, i, o) for k, i, o in changes} or {(RELOAD, "", RELOAD)}
    for kind, _, _ in rows:
        if kind not in KINDS:
            raise ValueError(f"registry change kind {kind!r} is not one of {KINDS}")
    await conn.execute(registry_changes.insert(), [
        {"version": version, "kind": k, "item": i, "op": o, "at": now} for k, i, o in sorted(rows)])
    return version


async def since(conn: AsyncConnection, version: int, upto: int) -> list[tuple[int, str, str]]:
    """(version, kind, item) of the changes after ``version`` up to ``upto``, in version order."""
    q = (sa.select(registry_changes.c.version, registry_changes.c.kind, registry_changes.c.item)
         .where(registry_changes.c.version > version, registry_changes.c.version <= upto)
         .order_by(registry_changes.c.version, registry_changes.c.id))
    return [tuple(r) for r in (await conn.execute(q)).all()]


async def prune(engine: AsyncEngine, keep_hours: float) -> int:
    """Delete the rows of every version up to the newest one older than ``keep_hours`` (whole
    versions, oldest first: what is left is an unbroken run of versions). Returns rows deleted."""
    cutoff = utcnow() - timedelta(hours=keep_hours)
    async with engine.begin() as conn:
        last_old = (await conn.execute(
            sa.select(sa.func.max(registry_changes.c.version)).where(registry_changes.c.at < cutoff))).scalar()
        if last_old is None:
            return 0
        res = await conn.execute(registry_changes.delete().where(registry_changes.c.version <= last_old))
        return res.rowcount or 0
