"""Large packages in the pipeline: bodies by reference in, deliveries by reference out.

RabbitMQ refuses a message over its ``max_message_size`` (128 MB by default) and every copy of
a large body costs the hub its size in memory. So a package over ``HUB_BY_REFERENCE_BYTES``:

- arrives either in its message (adapters over AMQP, up to the broker's limit) or by reference
  (``x-hub-blob-sha256``/``x-hub-blob-size`` from the hub's own user: the HTTP gateway stored
  it); :func:`resolve_intake` reads the referenced bytes into one buffer before the checks;
- is stored once as a blob (``hub.store.blobs``), its ``packages`` row holding no bytes
  (:func:`store_packages`): asyncpg would otherwise copy it into its write buffer;
- goes to each recipient by reference: the delivered copy (the relayed copy with the hub's
  TraceHeader, streamed from the original bytes: ``hub.edxml.large.Relayed``) is stored as a
  blob, the message carries its reference and the recipients are granted it
  (:class:`ByReference`); they fetch it with ``GET /api/v1/blobs/{sha256}``.

Small packages take none of these paths.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub import constants as C
from hub.edxml.large import Relayed
from hub.store import blobs
from hub.store.blobs import BlobRef

log = logging.getLogger("hub.large")
M_MMAP_THRESHOLD = -3  # glibc malloc.h
MMAP_THRESHOLD = 64 * 1024


def return_large_buffers_to_the_os() -> bool:
    """Make glibc serve every allocation over 64 KB with its own mapping, unmapped when freed.

    Large packages move through the hub in 1 MB chunks (blob rows, upload reads). glibc's
    dynamic threshold would soon serve those from the heap, which it seldom gives back: measured
    on a 200 MB package, the hub's peak RSS was 414 MB with the default and 339 MB with a fixed
    threshold (64 KB; 391 MB with 256 KB). A fixed threshold stops the adjustment. No-op off glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False


async def resolve_intake(engine: AsyncEngine, batch: Iterable[Any]) -> None:
    """Give each by-reference intake message (empty body, a blob reference from the hub's own
    user) its bytes. A missing blob leaves the body empty: the checks refuse it (parse.not_xml)."""
    for m in batch:
        msg = m.message
        ref = BlobRef.of(msg.headers)
        if ref is None or msg.body:
            continue
        try:
            data = await blobs.read(engine, ref.sha256)
        except (blobs.BlobMissing, blobs.BlobCorrupt) as e:
            log.warning("intake message refers to blob %s, which cannot be read: %s", ref.sha256[:16], e)
            continue
        m.message = replace(msg, body=data)


def body_size(body: bytes | bytearray | Relayed) -> int:
    return body.size() if isinstance(body, Relayed) else len(body)


@dataclass
class _Pending:
    ref: BlobRef
    pieces: Callable[[], Iterable[bytes | memoryview]]
    grantees: set[str] = field(default_factory=set)


@dataclass
class ByReference:
    """The blobs one batch stores for its outgoing messages (in its transaction)."""

    threshold: int
    pending: dict[str, _Pending] = field(default_factory=dict)

    def outgoing(self, body: bytes | bytearray | Relayed, source: bytes | bytearray | None, headers: dict,
                 routing_key: str) -> tuple[bytes, dict]:
        """The body and headers to publish: small bodies as they are (a small Relayed expanded),
        large ones as an empty body with the blob reference."""
        size = body_size(body)
        if size <= self.threshold:
            return (body.expand(source) if isinstance(body, Relayed) else bytes(body)), headers
        if isinstance(body, Relayed):
            assert source is not None, "a relayed copy needs the original bytes"
            pieces = lambda body=body, source=source: body.pieces(source)  # noqa: E731
        else:
            pieces = lambda body=body: [memoryview(body)]  # noqa: E731
        h = hashlib.sha256()
        for piece in pieces():
            h.update(piece)
        ref = BlobRef(h.hexdigest(), size)
        p = self.pending.setdefault(ref.sha256, _Pending(ref, pieces))
        for who in (headers.get(C.H_RECIPIENT), routing_key.split(".")[0] if routing_key else None):
            if who:
                p.grantees.add(who)
        return b"", {**headers, **ref.headers()}

    async def flush(self, conn: AsyncConnection) -> None:
        for p in self.pending.values():
            await blobs.put_pieces(conn, p.pieces(), p.ref.sha256, p.ref.size)
            await blobs.grant(conn, p.ref.sha256, p.grantees)
        self.pending.clear()


async def store_packages(conn: AsyncConnection, rows: Iterable[dict], threshold: int) -> None:
    """``packages`` rows of large packages: the bytes go to a blob of the same SHA-256, the row
    keeps the size and no bytes (``hub audit verify`` checks the blob instead)."""
    for row in rows:
        data = row["data"]
        if len(data) > threshold:
            await blobs.put_pieces(conn, [memoryview(data)], row["sha256"], len(data))
            row["data"] = b""
