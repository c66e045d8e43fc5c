"""The blob store (large packages by reference) on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from hub.store import blobs
from hub.store.blobs import BlobRef
from hub.store.tables import blob_chunks
from hub.store.tables import blobs as blobs_table


def _bytes(n: int) -> bytes:
    return bytes((i * 31 + i // 997) % 256 for i in range(n))


async def test_put_read_chunks_roundtrip(migrated_engine, monkeypatch):
    monkeypatch.setattr(blobs, "CHUNK", 1000)
    monkeypatch.setattr(blobs, "ROWS_PER_INSERT", 3)
    data = _bytes(10_500)
    async with migrated_engine.begin() as conn:
        ref = await blobs.put(conn, data)
        assert await blobs.put(conn, data) == ref  # content-addressed: stored once
    assert ref == BlobRef(hashlib.sha256(data).hexdigest(), len(data))
    assert bytes(await blobs.read(migrated_engine, ref.sha256)) == data
    got = [c async for c in blobs.chunks(migrated_engine, ref.sha256)]
    assert [len(c) for c in got] == [1000] * 10 + [500] and b"".join(got) == data
    async with migrated_engine.connect() as conn:
        assert await blobs.rehash(conn, ref.sha256) == (ref.sha256, len(data))
        assert await blobs.size_of(conn, ref.sha256) == len(data)


async def test_pieces_of_any_size_and_a_wrong_name_stores_nothing(migrated_engine, monkeypatch):
    monkeypatch.setattr(blobs, "CHUNK", 64)
    data = _bytes(1000)
    pieces = [memoryview(data)[:7], memoryview(data)[7:500], data[500:]]
    async with migrated_engine.begin() as conn:
        await blobs.put_pieces(conn, pieces, hashlib.sha256(data).hexdigest(), len(data))
    assert bytes(await blobs.read(migrated_engine, hashlib.sha256(data).hexdigest())) == data
    with pytest.raises(blobs.BlobCorrupt):
        async with migrated_engine.begin() as conn:
            await blobs.put_pieces(conn, [b"other bytes"], "0" * 64, 11)
    async with migrated_engine.connect() as conn:
        assert not await blobs.exists(conn, "0" * 64)
        assert (await conn.execute(sa.select(sa.func.count()).select_from(blob_chunks)
                                   .where(blob_chunks.c.sha256 == "0" * 64))).scalar() == 0


async def test_a_changed_chunk_is_found(migrated_engine):
    data = _bytes(5000)
    async with migrated_engine.begin() as conn:
        ref = await blobs.put(conn, data)
        await conn.execute(blob_chunks.update().where(blob_chunks.c.sha256 == ref.sha256).values(data=b"x" * 5000))
    with pytest.raises(blobs.BlobCorrupt):
        await blobs.read(migrated_engine, ref.sha256)
    with pytest.raises(blobs.BlobMissing):
        await blobs.read(migrated_engine, "f" * 64)
    async with migrated_engine.connect() as conn:
        assert (await blobs.rehash(conn, ref.sha256))[0] != ref.sha256
        assert (await conn.execute(sa.select(blobs_table.c.size))).scalar() == 5000


async def test_grants(migrated_engine):
    async with migrated_engine.begin() as conn:
        await blobs.grant(conn, "a" * 64, ["000.00.00.H41", "000.00.00.H41", "000.00.00.G22"])
        await blobs.grant(conn, "a" * 64, ["000.00.00.H41"])
    async with migrated_engine.connect() as conn:
        assert await blobs.granted(conn, "a" * 64, "000.00.00.H41")
        assert not await blobs.granted(conn, "a" * 64, "000.00.00.H44")


def test_reference_headers_are_read_strictly():
    ref = BlobRef("ab" * 32, 5)
    assert BlobRef.of(ref.headers()) == ref
    assert BlobRef.of({}) is None
    assert BlobRef.of({blobs.H_BLOB_SHA256: "ab" * 32, blobs.H_BLOB_SIZE: True}) is None
    assert BlobRef.of({blobs.H_BLOB_SHA256: "short", blobs.H_BLOB_SIZE: 5}) is None
