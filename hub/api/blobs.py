"""Large packages over HTTP: uploads streamed to the blob store, deliveries by reference fetched in chunks.

GET /api/v1/blobs/{sha256}     the bytes of a package delivered by reference (``x-hub-blob-sha256``)
GET /api/v1/packages/{sha256}  the bytes of a stored package (as received), small or large


A package over ``HUB_BY_REFERENCE_BYTES`` reaches its recipients' inboxes as a reference (the
inbox entry's ``blob``); its bytes are streamed from the database chunk by chunk, so neither
the hub nor the message broker holds them whole. Only the agencies the hub delivered the copy
to may fetch it; any other caller gets 404, as for a blob that does not exist.

An upload over ``HUB_BY_REFERENCE_BYTES`` goes the other way (:func:`receive_package`): written to
the blob store as it arrives, hashed on the way, never held whole (its intake message carries
the reference).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import sqlalchemy as sa
from aiohttp import web

from hub.api.endpoint import Endpoints, Reply
from hub.api.errors import error
from hub.api.models import BlobPath, PackagePath
from hub.api.state import STATE, principal
from hub.store import blobs
from hub.store import packages as stored_packages
from hub.store.blobs import BlobRef
from hub.store.packages import Stored
from hub.store.tables import deliveries, documents

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
    return stream(state.engine, Stored(sha, size, None))


def package_fields(stored: Stored | None) -> dict:
    """A JSON answer's ``package`` (base64 of a small package) or, for one stored by reference,
    an empty ``package`` and a ``blob`` link to stream it from (never 200 MB of base64 in JSON)."""
    if stored is None or not stored.by_reference:
        return {"package": base64.b64encode(stored.inline if stored else b"").decode("ascii")}
    return {"package": "", "blob": {"sha256": stored.sha256, "size": stored.size,
                                    "href": f"/api/v1/packages/{stored.sha256}"}}


def stream(engine, stored: Stored, content_type: str = "application/xml",
           filename: str | None = None) -> web.Response:
    """A stored package as the response body, chunk by chunk (a blob is never read whole). The
    body is written after the handler returns, so a slow reader of a large package is not cut
    off by the request time limit (``hub.api.errors.REQUEST_TIMEOUT``)."""
    headers = {"Content-Type": content_type, "Content-Length": str(stored.size), "X-Content-SHA256": stored.sha256}
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return web.Response(body=stored_packages.chunks(engine, stored), headers=headers)


async def may_read(conn, sha: str, role: str, agency: str | None) -> bool:
    """Auditors and admins read any stored package; an agency those of documents it sent or received."""
    if role in ("auditor", "admin"):
        return True
    if agency is None:
        return False
    mine = sa.select(documents.c.id).where(documents.c.sha256 == sha, sa.or_(
        documents.c.sender == agency,
        sa.exists().where(deliveries.c.document == documents.c.id,
                          sa.or_(deliveries.c.recipient == agency, deliveries.c.system == agency))))
    return (await conn.execute(mine.limit(1))).first() is not None


@api.endpoint("GET", "/api/v1/packages/{sha256}", "The bytes of a stored package, as the hub received it",
              roles=("agency", "auditor", "admin"), path_model=PackagePath, errors=(400, 404),
              response=Reply({"type": "string", "format": "binary"}, "The package as received", "application/xml"),
              description="Streamed, however large (a package over HUB_BY_REFERENCE_BYTES comes from its blob); "
                          "the SHA-256 of the body is the one in the path. An agency reads the packages of the "
                          "documents it sent or received; auditors and admins any stored package.")
async def package(request: web.Request, path: PackagePath) -> web.StreamResponse:
    state = request.app[STATE]
    sha = path.sha256.lower()
    p = principal(request)
    async with state.engine.connect() as conn:
        stored = await stored_packages.locate(conn, sha) if await may_read(conn, sha, p.role, p.agency) else None
    if stored is None:
        return error(404, "http.not_found", f"no stored package {sha[:16]}… that {p.agency or p.role} may read")
    return stream(state.engine, stored)
