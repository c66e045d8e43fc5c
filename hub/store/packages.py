"""A stored package's bytes, wherever they are: the one way to read them back.

A small package's bytes are in its ``packages`` row. A large one (over
``HUB_BY_REFERENCE_BYTES``, or a delivered copy that went by reference) is a blob of the same
SHA-256 (``hub.store.blobs``): its ``packages`` row, when there is one, keeps the size and no
bytes. Every reader (document and package downloads, dead letters, the VDXP mailbox, evidence
bundles, replays) goes through :func:`locate` and then :func:`chunks` (streamed, for answers
that may be large) or :func:`read` (one buffer, for what must parse the whole package).

:func:`keep` is the writing side for a message taken off a queue (an inbox, ``hub.dead``): its
body, or, for a message that travelled by reference, a row naming the blob.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.backbone.blobref import BlobRef
from hub.store import blobs
from hub.store.blobs import BlobCorrupt, BlobMissing  # noqa: F401 - re-exported for readers
from hub.store.engine import dialect_insert
from hub.store.tables import packages


@dataclass(frozen=True)
class Stored:
    """Where a package's bytes are: ``inline`` (its row's bytes) or, when None, the blob ``sha256``."""

    sha256: str
    size: int
    inline: bytes | None

    @property
    def by_reference(self) -> bool:
        return self.inline is None

    def ref(self) -> BlobRef:
        return BlobRef(self.sha256, self.size)


async def locate(conn: AsyncConnection, sha256: str | None) -> Stored | None:
    """The package ``sha256``: its row's bytes, or the blob holding them; None when neither exists."""
    if not sha256:
        return None
    row = (await conn.execute(sa.select(packages.c.size, packages.c.data).where(packages.c.sha256 == sha256))).first()
    if row is not None and (row.data or not row.size):
        return Stored(sha256, row.size, bytes(row.data or b""))
    size = await blobs.size_of(conn, sha256)  # a large package (row without bytes) or a delivered copy (no row)
    if size is None:
        return None
    return Stored(sha256, size, None)


async def chunks(engine: AsyncEngine, stored: Stored) -> AsyncIterator[bytes]:
    """The bytes piece by piece (a blob one chunk per query, checked against its name)."""
    if stored.inline is not None:
        if stored.inline:
            yield stored.inline
        return
    async for data in blobs.chunks(engine, stored.sha256):
        yield data


async def read(engine: AsyncEngine, stored: Stored) -> bytes | bytearray:
    """All the bytes in one buffer (a blob read once into a buffer of its size)."""
    if stored.inline is not None:
        return stored.inline
    return await blobs.read(engine, stored.sha256)


async def head(engine: AsyncEngine, stored: Stored, limit: int) -> bytes:
    """At most the first ``limit`` bytes (reads only the chunks it needs)."""
    if stored.inline is not None:
        return stored.inline[:limit]
    out = bytearray()
    pieces = blobs.chunks(engine, stored.sha256)
    try:
        async for data in pieces:
            out += data[:limit - len(out)]
            if len(out) >= limit:
                break
    finally:
        await pieces.aclose()
    return bytes(out)


def name_of(body: bytes, headers: dict | None) -> str:
    """The SHA-256 :func:`keep` stores a message's package under."""
    ref = BlobRef.of(headers) if not body else None
    return ref.sha256 if ref is not None else hashlib.sha256(body).hexdigest()


async def keep(conn: AsyncConnection, body: bytes, headers: dict | None, now: datetime, *,
               by_reference: bool = True) -> Stored:
    """Store a message's package (inside the caller's transaction): its body, or for an empty
    body with a blob reference (``by_reference``: only where the hub itself published it) a row
    naming the blob (an empty body without one is kept as the empty package it is)."""
    ref = BlobRef.of(headers) if by_reference and not body else None
    if ref is not None and await blobs.size_of(conn, ref.sha256) == ref.size:
        await conn.execute(dialect_insert(conn, packages).on_conflict_do_nothing().values(
            sha256=ref.sha256, size=ref.size, data=b"", stored_at=now))
        return Stored(ref.sha256, ref.size, None)
    sha = hashlib.sha256(body).hexdigest()
    await conn.execute(dialect_insert(conn, packages).on_conflict_do_nothing().values(
        sha256=sha, size=len(body), data=body, stored_at=now))
    return Stored(sha, len(body), bytes(body))
