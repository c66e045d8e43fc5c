"""Large packages end to end on real RabbitMQ + PostgreSQL: accepted, delivered by reference,
the recipient gets the exact delivered bytes and the sender's signature still verifies.
(Memory is measured by benchmarks/large.py and `hub bench`, never asserted here.)"""

from __future__ import annotations

import asyncio
import io
import hashlib

import pytest
import sqlalchemy as sa

from adapters.sdk import http_fetch
from benchmarks.large import large_edoc, make_large_package
from hub import constants as C
from hub.audit.verify import verify_log
from hub.edxml.parser import parse_xml
from hub.edxml.signature import verify_package
from hub.edxml.trace import strip_relay_trace
from hub.errors import UsageError
from hub.store.engine import make_engine
from hub.store.tables import blobs, documents, packages
from tests.apienv import api_for
from tests.conftest import G22, H41, HUB

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


async def _fetch_from_inbox(api, who: str, timeout: float = 60.0) -> tuple[dict, bytes]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status, body = await api.call("GET", "/api/v1/inbox", who)
        assert status == 200, body
        if body["packages"]:
            entry = body["packages"][0]
            break
        assert loop.time() < deadline, "nothing arrived"
        await asyncio.sleep(0.3)
    assert entry["blob"] is not None and entry["package"] == "", "expected a delivery by reference"
    async with api.session.get(api.base + entry["blob"]["href"], headers=api.headers(who)) as r:
        assert r.status == 200, await r.text()
        data = await r.read()
    status, acked = await api.call("POST", "/api/v1/inbox/ack", who, json={"ids": [entry["id"]]})
    assert status == 200, acked
    return entry, data


def _as_recipient(env, data: bytes, original: bytes):
    """What the recipient checks: the hub only appended its hop; the sender's signature verifies."""
    root = parse_xml(data, max_bytes=len(data))
    assert strip_relay_trace(root, {HUB}) == 1
    v = verify_package(root, env.pki.trust())
    assert v.certificate == env.pki.ids[G22].cert
    stripped = parse_xml(original, max_bytes=len(original))
    assert root.findtext(f".//{{{C.EDXML_NS}}}ContentTransferEncoded") == \
        stripped.findtext(f".//{{{C.EDXML_NS}}}ContentTransferEncoded")


async def test_amqp_package_over_the_threshold_is_delivered_by_reference(real_env):
    """In over AMQP (under the broker's limit), out by reference; the HTTP API hands the bytes over."""
    env = real_env
    env.settings = env.settings.replace(by_reference_bytes=64 * 1024)
    data = make_large_package(400_000, env.pki.ids[G22].key, env.pki.ids[G22].cert, edoc=large_edoc(G22, H41, 11))
    async with env.running() as hub:
        async with api_for(env) as api:
            g = await env.adapter(G22)
            await g.publish(data)
            entry, got = await _fetch_from_inbox(api, "h41")
            assert hub.workers[0].stats.accepted == 1
    assert entry["document_id"] == parse_xml(data).findtext(f".//{{{C.EDXML_NS}}}DocumentId")
    assert hashlib.sha256(got).hexdigest() == entry["sha256"] == entry["blob"]["sha256"]
    assert len(got) == entry["blob"]["size"]
    _as_recipient(env, got, data)
    sha = hashlib.sha256(data).hexdigest()
    rows = await env.scalar(sa.select(packages.c.size, sa.func.length(packages.c.data)).where(packages.c.sha256 == sha))
    assert rows == [(len(data), 0)]  # the bytes are a blob of the same name
    assert {r[0] for r in await env.scalar(sa.select(blobs.c.sha256))} == {sha, entry["sha256"]}


async def test_large_package_over_http_in_and_out_by_reference(real_env):
    """~24 MB through the gateway: stored as a blob, the intake message carries only its reference,
    checked in a thread of the hub (not pickled to a check process), delivered by reference."""
    env = real_env
    env.settings = env.settings.replace(by_reference_bytes=8 * 1024 * 1024, check_processes=1,
                                        max_package_bytes=64 * 1024 * 1024)
    data = make_large_package(24 * 1024 * 1024, env.pki.ids[G22].key, env.pki.ids[G22].cert,
                              edoc=large_edoc(G22, H41, 12))
    async with env.running():
        async with api_for(env) as api:
            status, body = await api.call("POST", "/api/v1/documents", "g22", data=io.BytesIO(data),
                                          headers={"Content-Type": "application/xml"})
            assert status == 202, body
            assert body["sha256"] == hashlib.sha256(data).hexdigest()
            entry, got = await _fetch_from_inbox(api, "h41")
            status, other = await api.call("GET", entry["blob"]["href"], "g22")
            assert status == 404  # only the recipients it was delivered to may fetch it
    assert hashlib.sha256(got).hexdigest() == entry["blob"]["sha256"]
    _as_recipient(env, got, data)
    docs = await env.scalar(sa.select(documents.c.sha256).where(documents.c.sender == G22))
    assert docs == [(hashlib.sha256(data).hexdigest(),)]
    engine = make_engine(env.settings.database_url)
    try:
        report = await verify_log(engine, env.pki.ids[HUB].cert)
    finally:
        await engine.dispose()
    assert report.ok, report.problems


async def test_tampered_blob_is_found_by_audit_verify(real_env):
    env = real_env
    env.settings = env.settings.replace(by_reference_bytes=64 * 1024)
    data = make_large_package(300_000, env.pki.ids[G22].key, env.pki.ids[G22].cert, edoc=large_edoc(G22, H41, 13))
    async with env.running():
        async with api_for(env) as api:
            await (await env.adapter(G22)).publish(data)
            await _fetch_from_inbox(api, "h41")
    engine = make_engine(env.settings.database_url)
    try:
        async with engine.begin() as conn:
            from hub.store.tables import blob_chunks

            sha = hashlib.sha256(data).hexdigest()
            await conn.execute(blob_chunks.update().where(blob_chunks.c.sha256 == sha, blob_chunks.c.n == 0)
                               .values(data=sa.func.overlay(blob_chunks.c.data, sa.literal(b"X"), 200)))
        report = await verify_log(engine, env.pki.ids[HUB].cert)
    finally:
        await engine.dispose()
    assert not report.ok and report.first_bad_package == sha


async def test_amqp_recipient_fetches_by_reference_with_the_sdk(real_env):
    """An AMQP adapter with http_fetch gets the bytes in Received.body; without one it sees the reference."""
    env = real_env
    env.settings = env.settings.replace(by_reference_bytes=64 * 1024)
    data = make_large_package(300_000, env.pki.ids[G22].key, env.pki.ids[G22].cert, edoc=large_edoc(G22, H41, 14))
    async with env.running():
        async with api_for(env) as api:
            h41 = await env.adapter(H41)
            await (await env.adapter(G22)).publish(data)
            r = await h41.receive(timeout=30)
            assert r is not None and r.body == b"" and r.blob is not None  # no fetch configured
            await r._incoming.reject(requeue=True)
            h41.fetch = http_fetch(api.base, api.tokens["h41"])
            r = await h41.receive(timeout=30)
            assert r is not None and r.blob is not None
            assert hashlib.sha256(r.body).hexdigest() == r.blob.sha256 and len(r.body) == r.blob.size
            v = r.verify(env.pki.trust(), {HUB})
            assert v.certificate == env.pki.ids[G22].cert
            await r.done()
            h41.fetch = http_fetch(api.base, api.tokens["h44"])  # not a recipient: 404, nothing handed over
            await (await env.adapter(G22)).publish(make_large_package(
                300_000, env.pki.ids[G22].key, env.pki.ids[G22].cert, edoc=large_edoc(G22, H41, 15)))
            with pytest.raises(UsageError, match="404"):
                await h41.receive(timeout=30)


async def test_adapter_refuses_a_package_over_the_brokers_message_limit():
    """Over RabbitMQ's max_message_size the broker would close the channel: the SDK says where to send it."""
    from adapters.sdk import Adapter

    ad = Adapter(None, G22)  # never reaches the backbone
    ad.max_message = 1000
    with pytest.raises(UsageError, match="POST /api/v1/documents"):
        await ad.publish(b"x" * 1001)
