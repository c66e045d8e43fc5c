"""The adapter SDK: what every ministry adapter (CLI, HTTP gateway, folder drop, webhook) uses.

An adapter connects to the backbone as its agency's own user, signs and publishes packages
to ``edxml.submit`` with publisher confirms, and hands over what arrives in its inbox —
urgent first, each DocumentId once however often RabbitMQ redelivers.

Its broker URL (``hub.backbone.connect``) may name several RabbitMQ nodes separated by commas;
the connection moves to a surviving node when its node is lost.

A package over the hub's ``HUB_BY_REFERENCE_BYTES`` arrives as a reference (empty body, its
SHA-256 and size in headers): give the adapter a ``fetch`` (:func:`http_fetch`: the hub's
``GET /api/v1/blobs/{sha256}`` with the agency's API token) and :meth:`Adapter.receive` hands it
over with its bytes, checked against the reference; without one, :attr:`Received.blob` says
where they are. A package over RabbitMQ's message limit (128 MB by default) cannot be
published; give the adapter a ``submit`` (:func:`http_submit`: ``POST /api/v1/documents``,
streamed) and :meth:`Adapter.publish` hands such a package to the hub's HTTP gateway instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from hub import constants as C
from hub.backbone.base import Backbone, Incoming, inbox_queue
from hub.backbone.blobref import BlobRef
from hub.edxml.builder import AttachmentFile, build_edoc, build_status, now_local
from hub.edxml.model import Edoc, Organization, ResponseFor, StatusPackage, read_package
from hub.edxml.parser import parse_xml
from hub.errors import HubError, TransientError, UsageError
from hub.pki.identity import Identity

Fetch = Callable[[BlobRef], Awaitable[bytes | bytearray]]
BROKER_MAX_MESSAGE = 128 * 1024 * 1024  # RabbitMQ's default max_message_size


def http_fetch(base_url: str, token: str, *, timeout: float = 600.0) -> Fetch:
    """Fetch packages delivered by reference from the hub's HTTP API (the agency's own token);
    read into one buffer of the announced size and checked against the SHA-256."""
    import aiohttp

    async def fetch(ref: BlobRef) -> bytearray:
        url = f"{base_url.rstrip('/')}/api/v1/blobs/{ref.sha256}"
        buf = bytearray(ref.size)
        at = 0
        h = hashlib.sha256()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s:
                async with s.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
                    if r.status != 200:
                        raise UsageError(f"GET {url} answered {r.status}: {(await r.text())[:300]}")
                    async for chunk in r.content.iter_chunked(1 << 20):
                        if at + len(chunk) > ref.size:
                            raise TransientError(f"{url} sent more than the {ref.size:,} bytes announced",
                                                 code="backbone.unavailable")
                        buf[at:at + len(chunk)] = chunk
                        h.update(chunk)
                        at += len(chunk)
        except aiohttp.ClientError as e:
            raise TransientError(f"cannot fetch {url}: {e}", code="backbone.unavailable") from e
        if at != ref.size or h.hexdigest() != ref.sha256:
            raise TransientError(f"{url} sent {at:,} bytes that do not hash to the reference",
                                 code="backbone.unavailable")
        return buf

    return fetch


Submit = Callable[[bytes | bytearray], Awaitable[dict]]
UPLOAD_CHUNK = 1 << 20


def http_submit(base_url: str, token: str, *, timeout: float = 3600.0) -> Submit:
    """Hand packages to the hub's HTTP gateway (``POST /api/v1/documents``, the agency's own token),
    the way past the broker's message limit: the body is streamed in 1 MB pieces with its
    Content-Length (the gateway reads it into one buffer of that length and passes it on by
    reference). Returns the gateway's answer (202: recorded, duplicate or queued); a refusal
    raises :class:`hub.errors.HubError` with the hub's reason code and message."""
    import aiohttp

    async def submit(data: bytes | bytearray) -> dict:
        url = f"{base_url.rstrip('/')}/api/v1/documents"
        view = memoryview(data)

        async def pieces():
            for at in range(0, len(view), UPLOAD_CHUNK):
                yield bytes(view[at:at + UPLOAD_CHUNK])

        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s:
                async with s.post(url, data=pieces(), headers={
                        "Authorization": f"Bearer {token}", "Content-Type": "application/xml",
                        "Content-Length": str(len(data))}) as r:
                    body = await r.json() if r.content_type == "application/json" else {
                        "message": (await r.text())[:300]}
                    status = r.status
        except aiohttp.ClientError as e:
            raise TransientError(f"cannot reach the hub's gateway at {url}: {e}", code="backbone.unavailable") from e
        if status == 202:
            return body
        if status in (401, 403) and str(body.get("reason", "")).startswith("auth."):
            raise UsageError(f"POST {url} answered {status}: {body.get('message', '')} (check HUB_API_TOKEN)")
        if status == 503:
            raise TransientError(f"POST {url} answered 503: {body.get('message', '')}", code="backbone.unavailable")
        raise HubError(f"the hub's gateway refused it ({status}): {body.get('message') or ''}",
                       code=body.get("reason") or "hub.error", element=body.get("element"))

    return submit


class SeenStore:
    """Message ids already handed over. A file (SQLite) makes it survive restarts."""

    def __init__(self, path: str | Path | None = None):
        self._mem: set[str] = set()
        self._db = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path))
            self._db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at REAL)")
            self._db.commit()

    def __contains__(self, key: str) -> bool:
        if key in self._mem:
            return True
        if self._db is not None:
            return self._db.execute("SELECT 1 FROM seen WHERE id=?", (key,)).fetchone() is not None
        return False

    def add(self, key: str) -> None:
        self._mem.add(key)
        if self._db is not None:
            self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (key, time.time()))
            self._db.commit()


@dataclass
class Received:
    """One package handed over to the ministry. Call :meth:`done` once it is safely stored."""

    body: bytes
    headers: dict
    urgent: bool
    _incoming: Incoming
    _adapter: "Adapter"

    @property
    def kind(self) -> str:
        return self.headers.get(C.H_KIND, "")

    @property
    def document_id(self) -> str:
        return self.headers.get(C.H_DOCUMENT_ID, "")

    @property
    def sender(self) -> str:
        return self.headers.get(C.H_SENDER, "")

    @property
    def blob(self) -> BlobRef | None:
        """Where the bytes are when the package came by reference (``body`` is then empty unless the
        adapter has a ``fetch``, which filled it)."""
        return BlobRef.of(self.headers)

    @property
    def key(self) -> str:
        return self._incoming.message.message_id or f"{self.kind}:{self.sender}:{self.document_id}"

    def package(self):
        return read_package(parse_xml(self.body))

    def verify(self, trust, relay_ids: set[str] | frozenset[str]):
        """Verify the sender's signature as the recipient must: drop the hub's trailing hop
        record(s) (not covered by the sender's signature), then verify the signed bytes."""
        from hub.edxml.signature import verify_package
        from hub.edxml.trace import strip_relay_trace

        root = parse_xml(self.body)
        strip_relay_trace(root, relay_ids)
        return verify_package(root, trust)

    async def done(self) -> None:
        self._adapter.seen.add(self.key)
        await self._incoming.ack()


class Adapter:
    """One agency's connection to the hub."""

    def __init__(self, backbone: Backbone, code: str, identity: Identity | None = None,
                 seen: SeenStore | None = None, fetch: Fetch | None = None, submit: Submit | None = None):
        self.backbone = backbone
        self.fetch = fetch  # for packages delivered by reference
        self.submit = submit  # for packages over the broker's message limit (http_submit)
        self.max_message = BROKER_MAX_MESSAGE  # RabbitMQ would close the channel on a larger one
        self.code = code
        self.identity = identity
        self.seen = seen or SeenStore()
        self._urgent: asyncio.Queue[Incoming] = asyncio.Queue()
        self._normal: asyncio.Queue[Incoming] = asyncio.Queue()
        self._arrived = asyncio.Event()
        self._consumers = []
        self.duplicates_skipped = 0  # redelivered copies of packages already handed over

    # --- sending --------------------------------------------------------------------------

    def sign(self, data: bytes) -> bytes:
        if self.identity is None:
            raise ValueError(f"no signing key configured for {self.code}")
        return self.identity.sign(data)

    async def publish(self, data: bytes) -> dict | None:
        """Publish an already signed package; returns once RabbitMQ confirmed it. One over the
        broker's message limit goes to the HTTP gateway when the adapter has a ``submit``
        (:func:`http_submit`), which answers with the hub's decision (returned); else refused."""
        if len(data) > self.max_message and self.submit is not None:
            return await self.submit(data)
        if len(data) > self.max_message:
            raise UsageError(
                f"the package is {len(data):,} bytes, over the broker's {self.max_message:,}-byte message limit; "
                "send it through the hub's HTTP gateway (POST /api/v1/documents), which stores it and passes it on "
                "by reference (`hub send` does so when HUB_API_URL and HUB_API_TOKEN are set)")
        await self.backbone.publish(C.EXCHANGE_SUBMIT, "", data, user_id=self.backbone.user,
                                    headers={C.H_SUBMITTED_AT: time.time()})
        return None

    async def send_document(self, doc: Edoc, attachments: list[AttachmentFile] = ()) -> bytes:
        data = self.sign(build_edoc(doc, attachments))
        await self.publish(data)
        return data

    async def send_status(self, original_sender: str, document_id: str, code: str, description: str = "",
                          organ_name: str = "") -> bytes:
        """``original_sender`` is ResponseFor/OrganId, where the status goes: the document's
        original sender (01-06, 15, 16) or, for a recall (13), the recipient whose copy is
        recalled (this agency's own code recalls every copy)."""
        st = StatusPackage(
            sender=Organization(self.code, organ_name=organ_name),
            response_for=ResponseFor(original_sender, document_id),
            status_code=code, description=description, timestamp=now_local(),
        )
        data = self.sign(build_status(st))
        await self.publish(data)
        return data

    # --- receiving ------------------------------------------------------------------------

    async def start(self, prefetch: int = 200) -> None:
        async def on_urgent(m: Incoming) -> None:
            await self._urgent.put(m)
            self._arrived.set()

        async def on_normal(m: Incoming) -> None:
            await self._normal.put(m)
            self._arrived.set()

        self._consumers.append(await self.backbone.consume(inbox_queue(self.code, True), on_urgent, prefetch=prefetch))
        self._consumers.append(await self.backbone.consume(inbox_queue(self.code, False), on_normal, prefetch=prefetch))

    async def receive(self, timeout: float | None = None) -> Received | None:
        """The next package, urgent first; duplicates (already handed over) are acked and skipped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for q, urgent in ((self._urgent, True), (self._normal, False)):
                if not q.empty():
                    m = q.get_nowait()
                    r = Received(m.message.body, dict(m.message.headers or {}), urgent, m, self)
                    if r.key in self.seen:
                        self.duplicates_skipped += 1
                        await m.ack()
                        continue
                    ref = r.blob
                    if ref is not None and not r.body and self.fetch is not None:
                        try:
                            r.body = await self.fetch(ref)
                        except BaseException:
                            await m.reject(requeue=True)  # not handed over: it comes again
                            raise
                    return r
            if self._urgent.empty() and self._normal.empty():
                self._arrived.clear()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except asyncio.TimeoutError:
                    return None

    async def stop(self) -> None:
        for c in self._consumers:
            await c.cancel()
        self._consumers.clear()
