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


async def _provisional(conn) -> int:
    return (await conn.execute(sa.select(sa.func.count()).select_from(blob_chunks).where(
        blob_chunks.c.sha256.like(blobs.UPLOAD_PREFIX + "%")))).scalar()


async def test_an_upload_is_written_in_chunks_as_it_arrives(migrated_engine, monkeypatch):
    """put_stream: rows go to the database while the stream is still arriving (under a provisional
    name no reader finds), then are renamed to the SHA-256 of what came."""
    monkeypatch.setattr(blobs, "CHUNK", 1000)
    monkeypatch.setattr(blobs, "ROWS_PER_INSERT", 2)
    data = _bytes(10_500)
    seen: list[tuple[int, int]] = []  # (chunk rows written so far, complete blobs) before each piece

    async with migrated_engine.begin() as conn:
        async def arriving():
            for at in range(0, len(data), 700):
                seen.append((await _provisional(conn),
                             (await conn.execute(sa.select(sa.func.count()).select_from(blobs_table))).scalar()))
                yield data[at:at + 700]

        ref = await blobs.put_stream(conn, arriving(), limit=len(data))
        assert await _provisional(conn) == 0
    assert ref == BlobRef(hashlib.sha256(data).hexdigest(), len(data))
    assert seen[0] == (0, 0) and seen[-1][1] == 0  # no blob before the last byte
    assert [n for n, _ in seen] == sorted(n for n, _ in seen) and seen[-1][0] == 8  # rows written 2 by 2 on the way
    assert bytes(await blobs.read(migrated_engine, ref.sha256)) == data
    async with migrated_engine.connect() as conn:
        assert await blobs.rehash(conn, ref.sha256) == (ref.sha256, len(data))


async def test_an_upload_that_fails_half_way_leaves_no_blob(migrated_engine, monkeypatch):
    monkeypatch.setattr(blobs, "CHUNK", 1000)
    data = _bytes(9000)

    async def broken():
        yield data[:5000]
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        async with migrated_engine.begin() as conn:
            await blobs.put_stream(conn, broken(), limit=len(data))
    with pytest.raises(blobs.TooLarge):
        async with migrated_engine.begin() as conn:
            await blobs.put_stream(conn, _stream(data), limit=len(data) - 1)
    async with migrated_engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(blob_chunks))).scalar() == 0
        assert (await conn.execute(sa.select(sa.func.count()).select_from(blobs_table))).scalar() == 0


async def test_the_same_upload_twice_is_stored_once(migrated_engine, monkeypatch):
    monkeypatch.setattr(blobs, "CHUNK", 1000)
    data = _bytes(4200)
    async with migrated_engine.begin() as conn:
        first = await blobs.put(conn, data)
    async with migrated_engine.begin() as conn:
        again = await blobs.put_stream(conn, _stream(data), limit=len(data))
    assert again == first
    async with migrated_engine.connect() as conn:
        assert await _provisional(conn) == 0
        assert (await conn.execute(sa.select(sa.func.count()).select_from(blob_chunks))).scalar() == 5
    assert bytes(await blobs.read(migrated_engine, first.sha256)) == data


async def _stream(data: bytes, piece: int = 333):
    for at in range(0, len(data), piece):
        yield data[at:at + piece]


@pytest.mark.postgres
async def test_two_uploads_of_the_same_bytes_at_once_both_succeed(pg_url, monkeypatch):
    """Two clients upload the same large package at the same moment (a resend racing the first
    try): both transactions stream their chunks under provisional names, then both name the blob.
    The second waits for the first's commit, finds its blob, drops its own chunks: both succeed, one
    blob, nothing provisional left (without the claim it failed on blob_chunks' key)."""
    import asyncio

    from hub.store.engine import make_engine, migrate

    monkeypatch.setattr(blobs, "CHUNK", 1000)
    data = _bytes(6500)
    engine = make_engine(pg_url)
    try:
        await migrate(engine)
        streamed = [asyncio.Event(), asyncio.Event()]

        async def upload(k: int) -> BlobRef:
            async def arriving():
                async for piece in _stream(data):
                    yield piece
                streamed[k].set()
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in streamed)), 30)  # both fully streamed

            async with engine.begin() as conn:
                return await blobs.put_stream(conn, arriving(), limit=len(data))

        a, b = await asyncio.wait_for(asyncio.gather(upload(0), upload(1)), 60)
        assert a == b == BlobRef(hashlib.sha256(data).hexdigest(), len(data))
        async with engine.connect() as conn:
            assert await _provisional(conn) == 0
            assert (await conn.execute(sa.select(sa.func.count()).select_from(blob_chunks))).scalar() == 7
            assert (await conn.execute(sa.select(sa.func.count()).select_from(blobs_table))).scalar() == 1
        assert bytes(await blobs.read(engine, a.sha256)) == data
    finally:
        await engine.dispose()
