"""Content-addressed blobs in the database: the bytes of packages too large for a message.

A blob is stored in :data:`CHUNK`-byte rows of ``blob_chunks`` and then one ``blobs`` row (its
commit marker: a blob without one is incomplete and never read). Its name is the SHA-256 of
its bytes, so storing the same bytes twice stores them once and a reader checks what it got.
Every query moves one chunk, so memory stays bounded however large the blob.

The reference a message carries instead of the bytes (:class:`BlobRef`) is two headers:
``x-hub-blob-sha256`` and ``x-hub-blob-size``; only the hub's own broker user can publish
them (``hub.pipeline.intake``), so an adapter cannot point the hub at someone else's bytes.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.backbone.blobref import H_BLOB_SHA256, H_BLOB_SIZE, BlobRef  # noqa: F401 - re-exported
from hub.store.engine import dialect_insert
from hub.store.tables import blob_chunks, blob_grants, blobs

CHUNK = 1024 * 1024
ROWS_PER_INSERT = 2  # chunks per round trip when storing (2 MB in flight at most, and its copy in the driver)
UPLOAD_PREFIX = "upload:"  # chunks of an upload still arriving (never a SHA-256: no reader finds them)


class BlobMissing(LookupError):
    """No complete blob with this SHA-256."""


class BlobCorrupt(ValueError):
    """A blob's stored bytes do not hash to its name."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def size_of(conn: AsyncConnection, sha256: str) -> int | None:
    """The size of the complete blob ``sha256``, or None."""
    return (await conn.execute(sa.select(blobs.c.size).where(blobs.c.sha256 == sha256))).scalar()


async def exists(conn: AsyncConnection, sha256: str) -> bool:
    return await size_of(conn, sha256) is not None


BLOB_LOCK = 7310030  # pg_advisory_xact_lock(BLOB_LOCK, <the name's first 32 bits>): one writer per blob name


async def _claim(conn: AsyncConnection, sha256: str) -> None:
    """Until the caller's transaction ends, the only writer naming a blob ``sha256``: two uploads of
    the same bytes at once would otherwise both find no blob and both rename their chunks to that
    name (the second failing on the key). On PostgreSQL a transaction-scoped advisory lock on the
    name; the second writer waits for the first to commit, then finds its blob. SQLite has one
    writer at a time already."""
    if conn.dialect.name == "postgresql":  # the two-key form: its own space, apart from the one-key locks
        key = int.from_bytes(bytes.fromhex(sha256[:8]), "big", signed=True)
        await conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({BLOB_LOCK}, :k)"), {"k": key})


class _Writer:
    """Cuts consecutive pieces of bytes into :data:`CHUNK`-byte ``blob_chunks`` rows under ``name``,
    hashing them on the way; at most :data:`ROWS_PER_INSERT` chunks (and one partial) held at once."""

    def __init__(self, conn: AsyncConnection, name: str):
        self.conn, self.name = conn, name
        self.hash = hashlib.sha256()
        self.buf = bytearray()
        self.rows: list[dict] = []
        self.n = self.total = 0

    async def write(self, piece: bytes | bytearray | memoryview) -> None:
        view = memoryview(piece)
        self.hash.update(view)
        self.total += len(view)
        while len(view):
            take = CHUNK - len(self.buf)
            self.buf += view[:take]
            view = view[take:]
            if len(self.buf) == CHUNK:
                await self._row(bytes(self.buf))
                self.buf.clear()

    async def _row(self, data: bytes | None, last: bool = False) -> None:
        if data is not None:
            self.rows.append({"sha256": self.name, "n": self.n, "data": data})
            self.n += 1
        if self.rows and (last or len(self.rows) == ROWS_PER_INSERT):
            await self.conn.execute(blob_chunks.insert(), self.rows)
            self.rows.clear()

    async def close(self) -> str:
        """Write what is left; the SHA-256 of everything written."""
        await self._row(bytes(self.buf) if self.buf or self.n == 0 else None, last=True)
        self.buf.clear()
        return self.hash.hexdigest()

    async def commit_marker(self, sha256: str) -> BlobRef:
        await self.conn.execute(dialect_insert(self.conn, blobs).on_conflict_do_nothing().values(
            sha256=sha256, size=self.total, chunks=self.n, stored_at=_now()))
        return BlobRef(sha256, self.total)


async def put_pieces(conn: AsyncConnection, pieces: Iterable[bytes | memoryview], sha256: str, size: int) -> BlobRef:
    """Store a blob whose SHA-256 and size the caller computed (inside the caller's transaction).

    ``pieces`` are consecutive parts of the bytes, of any sizes (memoryviews are not copied
    beyond one chunk); the hash is checked as they go and a mismatch stores nothing."""
    ref = BlobRef(sha256, size)
    await _claim(conn, sha256)
    if await exists(conn, sha256):
        return ref
    await conn.execute(blob_chunks.delete().where(blob_chunks.c.sha256 == sha256))  # an earlier, unfinished try
    w = _Writer(conn, sha256)
    for piece in pieces:
        await w.write(piece)
    got = await w.close()
    if got != sha256 or w.total != size:
        raise BlobCorrupt(f"the bytes given for blob {sha256[:16]}… hash to {got[:16]}… ({w.total} bytes)")
    return await w.commit_marker(sha256)


class TooLarge(ValueError):
    """A streamed blob went over the size it was allowed."""


async def put_stream(conn: AsyncConnection, stream: AsyncIterable[bytes | bytearray | memoryview], *,
                     limit: int) -> BlobRef:
    """Store bytes as they arrive (an upload), inside the caller's transaction; their reference.

    The name (SHA-256) is known only at the end, so the chunks are written under a provisional
    name no reader looks up (readers need a ``blobs`` row), hashed on the way, and renamed at the
    end; bytes already stored under that name are kept and the new chunks dropped. Nothing is
    held but the chunks of one insert. Over ``limit`` bytes: :class:`TooLarge`. Whatever stops
    the stream half way (a client gone, the limit) rolls back with the caller's transaction, so
    a half-written upload is never visible as a blob."""
    w = _Writer(conn, UPLOAD_PREFIX + uuid.uuid4().hex)
    async for piece in stream:
        if w.total + len(piece) > limit:
            raise TooLarge(f"the upload is over {limit} bytes")
        await w.write(piece)
    sha256 = await w.close()
    await _claim(conn, sha256)
    if await exists(conn, sha256):
        await conn.execute(blob_chunks.delete().where(blob_chunks.c.sha256 == w.name))
        return BlobRef(sha256, w.total)
    await conn.execute(blob_chunks.delete().where(blob_chunks.c.sha256 == sha256))  # an earlier, unfinished try
    await conn.execute(blob_chunks.update().where(blob_chunks.c.sha256 == w.name).values(sha256=sha256))
    return await w.commit_marker(sha256)


async def put(conn: AsyncConnection, data: bytes | memoryview) -> BlobRef:
    """Store ``data`` (inside the caller's transaction); returns its reference."""
    return await put_pieces(conn, [data], hashlib.sha256(data).hexdigest(), len(data))


async def chunks(engine: AsyncEngine, sha256: str) -> AsyncIterator[bytes]:
    """The blob's bytes chunk by chunk (one query each), checked against its name at the end."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(blobs.c.chunks, blobs.c.size).where(blobs.c.sha256 == sha256))).first()
    if row is None:
        raise BlobMissing(f"no blob {sha256}")
    h = hashlib.sha256()
    for first in range(0, row.chunks, 16):
        async with engine.connect() as conn:  # a few chunks per connection: never held long by a slow reader
            for n in range(first, min(first + 16, row.chunks)):
                data = (await conn.execute(sa.select(blob_chunks.c.data).where(
                    blob_chunks.c.sha256 == sha256, blob_chunks.c.n == n))).scalar()
                if data is None:
                    raise BlobCorrupt(f"blob {sha256[:16]}… lacks chunk {n}")
                h.update(data)
                yield data
    if h.hexdigest() != sha256:
        raise BlobCorrupt(f"blob {sha256[:16]}… does not hash to its name")


async def read(engine: AsyncEngine, sha256: str) -> bytearray:
    """The whole blob in one preallocated buffer (one copy of it in memory, never two)."""
    async with engine.connect() as conn:
        size = (await conn.execute(sa.select(blobs.c.size).where(blobs.c.sha256 == sha256))).scalar()
    if size is None:
        raise BlobMissing(f"no blob {sha256}")
    buf = bytearray(size)
    at = 0
    async for data in chunks(engine, sha256):
        if at + len(data) > size:
            raise BlobCorrupt(f"blob {sha256[:16]}… is longer than its size")
        buf[at:at + len(data)] = data
        at += len(data)
    if at != size:
        raise BlobCorrupt(f"blob {sha256[:16]}… is shorter than its size")
    return buf


async def grant(conn: AsyncConnection, sha256: str, agencies: Iterable[str]) -> None:
    rows = [{"sha256": sha256, "agency": a} for a in sorted(set(agencies))]
    if rows:
        await conn.execute(dialect_insert(conn, blob_grants).on_conflict_do_nothing(), rows)


async def granted(conn: AsyncConnection, sha256: str, agency: str) -> bool:
    return (await conn.execute(sa.select(blob_grants.c.agency).where(
        blob_grants.c.sha256 == sha256, blob_grants.c.agency == agency))).first() is not None


async def rehash(conn: AsyncConnection, sha256: str) -> tuple[str, int] | None:
    """(SHA-256, size) of a complete blob's stored chunks, read one at a time; None when there is no such blob."""
    count = (await conn.execute(sa.select(blobs.c.chunks).where(blobs.c.sha256 == sha256))).scalar()
    if count is None:
        return None
    h = hashlib.sha256()
    size = 0
    for n in range(count):
        data = (await conn.execute(sa.select(blob_chunks.c.data).where(
            blob_chunks.c.sha256 == sha256, blob_chunks.c.n == n))).scalar() or b""
        h.update(data)
        size += len(data)
    return h.hexdigest(), size
