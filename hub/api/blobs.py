"""Large packages over HTTP: uploads streamed to the blob store, deliveries by reference fetched in chunks.

GET /api/v1/blobs/{sha256}   the bytes of a package delivered by reference (``x-hub-blob-sha256``)

A package over ``HUB_BY_REFERENCE_BYTES`` reaches its recipients' inboxes as a reference (the
inbox entry's ``blob``); its bytes are streamed from the database chunk by chunk, so neither
the hub nor the message broker holds them whole. Only the agencies the hub delivered the copy
to may fetch it; any other caller gets 404, as for a blob that does not exist.

An upload over ``HUB_BY_REFERENCE_BYTES`` goes the other way (:func:`receive_package`): written to
the blob store as it arrives, hashed on the way, never held whole (its intake message carries
the reference).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from hub.api.endpoint import Endpoints, Reply
from hub.api.errors import error
from hub.api.models import BlobPath
from hub.api.state import STATE, principal
from hub.store import blobs
from hub.store.blobs import BlobRef

api = Endpoints("gateway")
UPLOAD_CHUNK = 1024 * 1024


async def read_package_body(request: web.Request, limit: int) -> bytes | bytearray:
    """The request body. One of a declared length over a megabyte is read straight into a buffer of
    that length (aiohttp's ``read()`` would hold it twice: its bytearray and the bytes made of it)."""
    size = request.content_length
    if size is None or size <= UPLOAD_CHUNK:
        return await request.read()
    if size > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
    buf = bytearray(size)
    at = 0
    async for chunk in request.content.iter_chunked(UPLOAD_CHUNK):
        if at + len(chunk) > size:
            raise web.HTTPBadRequest(text="the body is longer than its Content-Length")
        buf[at:at + len(chunk)] = chunk
        at += len(chunk)
    if at != size:
        raise web.HTTPBadRequest(text="the body is shorter than its Content-Length")
    return buf


async def receive_package(request: web.Request, limit: int, threshold: int) -> bytes | bytearray | BlobRef:
    """The request body: its bytes when it is at most ``threshold`` long, else the reference of the
    blob it was streamed into (in :data:`UPLOAD_CHUNK` reads, inside one transaction: a client
    that goes away half way leaves nothing). A body without a Content-Length is read up to the
    threshold and streamed on from there if it is longer. Over ``limit``: 413."""
    size = request.content_length
    if size is not None and size > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
    if size is not None and size <= threshold:
        return await read_package_body(request, limit)
    head = bytearray()
    if size is None:  # chunked: in memory while it stays small
        async for chunk in request.content.iter_chunked(UPLOAD_CHUNK):
            head += chunk
            if len(head) > threshold:
                break
        else:
            return head

    async def body() -> AsyncIterator[bytes]:
        if head:
            yield bytes(head)
            head.clear()
        async for chunk in request.content.iter_chunked(UPLOAD_CHUNK):
            yield chunk

    try:
        async with request.app[STATE].engine.begin() as conn:
            ref = await blobs.put_stream(conn, body(), limit=limit)
            if size is not None and ref.size != size:  # raised inside: nothing of it is kept
                raise web.HTTPBadRequest(text="the body is not as long as its Content-Length")
    except blobs.TooLarge:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size or limit + 1) from None
    return ref


@api.endpoint("GET", "/api/v1/blobs/{sha256}", "The bytes of a package delivered by reference",
              roles=("agency",), path_model=BlobPath, errors=(400, 404),
              response=Reply({"type": "string", "format": "binary"}, "The package as delivered", "application/xml"),
              description="Streamed; the SHA-256 of the body is the one in the path.")
async def blob(request: web.Request, path: BlobPath) -> web.StreamResponse:
    state = request.app[STATE]
    sha = path.sha256.lower()
    agency = principal(request).agency
    async with state.engine.connect() as conn:
        allowed = len(sha) == 64 and agency is not None and await blobs.granted(conn, sha, agency)
        size = await blobs.size_of(conn, sha) if allowed else None
    if size is None:
        return error(404, "http.not_found", f"no package {sha[:16]}… delivered to {agency or 'this caller'} by reference")
    resp = web.StreamResponse(headers={"Content-Type": "application/xml", "Content-Length": str(size),
                                       "X-Content-SHA256": sha})
    await resp.prepare(request)
    async for chunk in blobs.chunks(state.engine, sha):
        await resp.write(chunk)
    await resp.write_eof()
    return resp
