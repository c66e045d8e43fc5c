"""Large packages over HTTP: uploads read in one buffer, deliveries by reference fetched in chunks.

GET /api/v1/blobs/{sha256}   the bytes of a package delivered by reference (``x-hub-blob-sha256``)

A package over ``HUB_BY_REFERENCE_BYTES`` reaches its recipients' inboxes as a reference (the
inbox entry's ``blob``); its bytes are streamed from the database chunk by chunk, so neither
the hub nor the message broker holds them whole. Only the agencies the hub delivered the copy
to may fetch it; any other caller gets 404, as for a blob that does not exist.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from hub.api.endpoint import Endpoints, Reply
from hub.api.errors import error
from hub.api.models import Path
from hub.api.state import STATE, principal
from hub.store import blobs

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


class BlobPath(Path):
    sha256: str = Field(max_length=128, description="the blob's SHA-256 (the inbox entry's blob.sha256)",
                        examples=["0" * 64])


@api.endpoint("GET", "/api/v1/blobs/{sha256}", "The bytes of a package delivered by reference",
              roles=("agency",), path_model=BlobPath, errors=(404,),
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
