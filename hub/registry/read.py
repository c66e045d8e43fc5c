"""Reading the registry and the trust store from the database, whole or item by item.

A full load (:func:`load_registry`, :func:`load_trust`) and the change feed
(:mod:`hub.registry.feed`, which re-reads only the items the change log names) build their
snapshots with the same functions here, so that a snapshot brought up to date by deltas is
the one a full load of the same version gives, field by field.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.errors import UsageError
from hub.pki.chain import TrustStore
from hub.registry.changes import VERSION_KEY
from hub.registry.model import Agency, Registry
from hub.store.tables import agencies, agency_certs, crls, settings_kv, trust_anchors

CHUNK = 5000  # codes per IN (...) when re-reading many agencies

# A trust item: (when it was added, its fingerprint) -> the parsed certificate or CRL. Sorted by
# that key, they make the TrustStore's tuples in the same order whichever way they were read.
TrustItems = dict[tuple[datetime, str], object]


async def registry_version(conn: AsyncConnection) -> int:
    v = (await conn.execute(sa.select(settings_kv.c.value).where(settings_kv.c.key == VERSION_KEY))).scalar()
    return int(v or 0)


def parse_accepts(value: str | None) -> frozenset[str] | None:
    if value is None or value.strip() in ("", "*", "all"):
        return None
    items = frozenset(x.strip() for x in value.split(",") if x.strip())
    for t in items:
        if not t.isdigit() or len(t) > 3:
            raise UsageError(f"document type {t!r} in --accepts is not a DocumentType/Type code (1-3 digits)")
    return items


async def read_agencies(conn: AsyncConnection, only: Collection[str] | None = None) -> dict[str, Agency]:
    """Every agency (``only=None``) or those of ``only`` that are registered, with their pins."""
    if only is not None:
        codes = sorted(only)
        result: dict[str, Agency] = {}
        for i in range(0, len(codes), CHUNK):
            result.update(await _read_agencies(conn, codes[i:i + CHUNK]))
        return result
    return await _read_agencies(conn, None)


async def _read_agencies(conn: AsyncConnection, only: list[str] | None) -> dict[str, Agency]:
    q = sa.select(agencies)
    cq = sa.select(agency_certs.c.code, agency_certs.c.fingerprint).where(agency_certs.c.retired_at.is_(None))
    if only is not None:
        q = q.where(agencies.c.code.in_(only))
        cq = cq.where(agency_certs.c.code.in_(only))
    pins: dict[str, set[str]] = {}
    for code, fp in (await conn.execute(cq)).all():
        pins.setdefault(code, set()).add(fp)
    result = {}
    for r in (await conn.execute(q)).mappings():
        result[r["code"]] = Agency(
            code=r["code"], name=r["name"], active=r["active"], connected=r["connected"],
            served_by=r["served_by"], accepts=parse_accepts(r["accepts"]),
            fingerprints=frozenset(pins.get(r["code"], ())), amqp_user=r["amqp_user"],
            profile=r["profile"],
        )
    return result


async def load_registry(engine: AsyncEngine, only: list[str] | None = None) -> Registry:
    """Read the whole registry (or some codes) into an immutable snapshot."""
    async with engine.connect() as conn:
        version = await registry_version(conn)
        return Registry(await read_agencies(conn, only or None), version=version)


async def read_trust_items(conn: AsyncConnection, anchors_fps: Collection[str] | None = None,
                           crl_fps: Collection[str] | None = None) -> tuple[TrustItems, TrustItems]:
    """Trust anchors and CRLs: all of them (``None``) or those with the given fingerprints."""
    out = []
    for table, fps, load in ((trust_anchors, anchors_fps, x509.load_pem_x509_certificate),
                             (crls, crl_fps, x509.load_pem_x509_crl)):
        q = sa.select(table.c.added_at, table.c.fingerprint, table.c.pem)
        if fps is not None:
            if not fps:
                out.append({})
                continue
            q = q.where(table.c.fingerprint.in_(sorted(fps)))
        out.append({(at, fp): load(pem.encode()) for at, fp, pem in (await conn.execute(q)).all()})
    return out[0], out[1]


def trust_store(anchors: TrustItems, crl_items: TrustItems) -> TrustStore:
    return TrustStore(anchors=tuple(anchors[k] for k in sorted(anchors)),
                      crls=tuple(crl_items[k] for k in sorted(crl_items)))


async def load_trust(engine: AsyncEngine) -> TrustStore:
    async with engine.connect() as conn:
        return trust_store(*await read_trust_items(conn))
