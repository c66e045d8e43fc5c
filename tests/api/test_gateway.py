"""The ministry gateway end to end: submit over HTTP, receive over HTTP and over AMQP, status back."""

from __future__ import annotations

import asyncio
import base64
from urllib.parse import quote


from hub.edxml.builder import build_edoc
from hub.edxml.parser import parse_xml
from tests.apienv import api_for
from tests.conftest import G22, H41, H44, attachment, make_edoc
from tests.hubenv import drain


async def _inbox(api, who, n, timeout=20.0):
    got = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(got) < n:
        assert loop.time() < deadline, f"only {len(got)} of {n} arrived for {who}: {got}"
        status, body = await api.call("GET", "/api/v1/inbox", who)
        assert status == 200, body
        got += body["packages"]
        if len(got) < n:
            await asyncio.sleep(0.2)
    return got


async def test_gateway_submit_receive_status(env):
    async with env.running(), api_for(env) as api:
        g = await env.adapter(G22, start=False)  # only to sign with G22's key
        h44 = await env.adapter(H44)  # H44 receives over AMQP
        doc = make_edoc(G22, (H41, H44))
        data = g.sign(build_edoc(doc, [attachment()]))
        status, body = await api.call("POST", "/api/v1/documents", "g22", data=data,
                                      headers={"Content-Type": "application/xml"})
        assert status == 202, body
        assert body["document_id"] == doc.document_id
        # H41 receives over HTTP, urgent first, then acknowledges
        [pkg] = await _inbox(api, "h41", 1)
        assert pkg["document_id"] == doc.document_id and pkg["kind"] == "edoc" and pkg["sender"] == G22
        assert parse_xml(base64.b64decode(pkg["package"])) is not None
        status, body = await api.call("POST", "/api/v1/inbox/ack", "h41", json={"ids": [pkg["id"]]})
        assert status == 200 and body["acknowledged"] == [pkg["id"]]
        # ids no lease can have (NUL, a lone surrogate, too long: PostgreSQL could not even compare
        # the first two) and one acknowledged already: each unknown, none a server error
        odd = ["lease\x00id", "\ud800", "x" * 5000, pkg["id"]]
        status, body = await api.call("POST", "/api/v1/inbox/ack", "h41", json={"ids": odd})
        assert status == 207 and body == {"acknowledged": [], "unknown": odd}, body
        status, body = await api.call("GET", "/api/v1/inbox", "h41")
        assert body["packages"] == []  # handed over once
        # H44 receives the same document over AMQP
        [r] = await drain(h44, 1)
        assert r.document_id == doc.document_id
        # H41 answers 01 then 03 through the gateway (the gateway signs: it holds H41's key)
        keys = env.settings.data_dir / "gateway-keys"
        keys.mkdir(parents=True, exist_ok=True)
        env.pki.write(env.pki.ids[H41], keys)
        path = "/api/v1/documents/" + quote(doc.document_id, safe="")
        for code in ("01", "03"):
            status, body = await api.call("POST", path + "/status", "h41", json={"code": code, "reason": "ok"})
            assert status == 202, body
        g_in = await env.adapter(G22)
        got = await drain(g_in, 2)
        assert [x.package().status_code for x in got] == ["01", "03"]
        # the sender sees each recipient's history
        for _ in range(50):
            status, body = await api.call("GET", path, "g22")
            h41_hist = [r for r in body["recipients"] if r["code"] == H41][0]["history"]
            if len(h41_hist) == 2:
                break
            await asyncio.sleep(0.1)
        assert status == 200
        assert [h["code"] for h in h41_hist] == ["01", "03"]
        assert base64.b64decode(body["package"]) == data  # the exact signed bytes
        # someone who neither sent nor received it does not see it
        status, body = await api.call("GET", path, "h44")
        assert status == 200  # H44 received it
        env2 = await api.call("GET", "/api/v1/documents/" + quote("000.00.00.G22,2026/01/01,1/X", safe=""), "h41")
        assert env2[0] == 404


async def test_gateway_refuses_at_once_with_reason(env):
    async with env.running(), api_for(env) as api:
        g = await env.adapter(G22, start=False)
        data = g.sign(build_edoc(make_edoc(G22, (H41,)), []))
        # a package from another agency than the caller
        status, body = await api.call("POST", "/api/v1/documents", "h41", data=data)
        assert status == 403 and body["reason"] == "authority.impersonation", body
        status, body = await api.call("POST", "/api/v1/documents", "g22", data=data.replace(b"VPCP", b"VPCX", 1))
        assert status == 422 and body["reason"] == "signature.digest_mismatch" and body["message"]
        status, body = await api.call("POST", "/api/v1/documents", "g22", data=b"<not xml")
        assert status == 400 and body["reason"] == "parse.not_xml"
        status, body = await api.call("POST", "/api/v1/documents", "g22", data=b"")
        assert status == 400


async def test_maintenance_refuses_with_503_and_resumes(env):
    async with env.running(), api_for(env) as api:
        g = await env.adapter(G22, start=False)
        data = g.sign(build_edoc(make_edoc(G22, (H41,)), []))
        status, body = await api.call("POST", "/api/v1/admin/maintenance", "admin", json={"action": "stop"})
        assert status == 200, body
        status, body = await api.call("POST", "/api/v1/documents", "g22", data=data)
        assert status == 503 and body["reason"] == "hub.maintenance"
        status, body = await api.call("POST", "/api/v1/admin/maintenance", "admin", json={"action": "resume"})
        assert status == 200
        status, body = await api.call("POST", "/api/v1/documents", "g22", data=data)
        assert status == 202, body
        [pkg] = await _inbox(api, "h41", 1)
        assert pkg["sender"] == G22


async def test_gateway_refusal_is_recorded_once_and_answered_once(real_env):
    """On RabbitMQ + PostgreSQL: the gateway takes the broker's path, so each refusal is one
    ``package.refused`` entry (the worker's) and one status 02 in the sender's inbox, and the HTTP
    caller gets the worker's reason at once; an accepted package is recorded when 202 comes back."""
    import sqlalchemy as sa

    from hub.store.tables import documents, records
    from tests.hubenv import quiet

    env = real_env
    async with env.running(), api_for(env) as api:
        g = await env.adapter(G22)  # G22's system: where the hub answers its refusals
        xml = {"Content-Type": "application/xml"}
        good = make_edoc(G22, (H41,))
        good_data = g.sign(build_edoc(good, []))
        status, body = await api.call("POST", "/api/v1/documents", "g22", data=good_data, headers=xml)
        assert status == 202 and body["status"] == "recorded" and body["recipients"] == [{"code": H41, "system": H41}]
        assert await env.scalar(sa.select(documents.c.id).where(documents.c.document_id == good.document_id))
        status, body = await api.call("POST", "/api/v1/documents", "g22", data=good_data, headers=xml)
        assert status == 202 and body["status"] == "duplicate", body
        refused = {
            "authority.not_competent": (403, g.sign(build_edoc(make_edoc(G22, (H44,), doc_type="9"), []))),
            "signature.digest_mismatch": (422, g.sign(build_edoc(make_edoc(G22, (H41,)), [])).replace(
                b"VPCP", b"VPCX", 1)),
            "state.duplicate_conflict": (409, g.sign(build_edoc(make_edoc(
                G22, (H41,), number=int(good.code.number), subject="khác"), []))),
        }
        for reason, (code, data) in refused.items():
            status, body = await api.call("POST", "/api/v1/documents", "g22", data=data, headers=xml)
            assert status == code and body["reason"] == reason and body["message"], (reason, status, body)
        answers = await drain(g, len(refused))
        assert await quiet(g) == []  # one refusal package each, no more
        assert sorted(a.package().status_code for a in answers) == ["02"] * len(refused)
        for reason in refused:
            assert sum(reason in a.package().description for a in answers) == 1, reason
        rows = await env.scalar(sa.select(records.c.reason, records.c.sha256).where(records.c.event == "package.refused"))
        assert sorted(r.reason for r in rows) == sorted(refused)  # once each
        from hub.pipeline.refusal import sha256_hex

        assert {r.sha256 for r in rows} == {sha256_hex(d) for _, d in refused.values()}


async def test_the_decision_reaches_a_gateway_whose_process_runs_no_worker(real_env, monkeypatch):
    """Several hub instances share one intake: the worker that decides may run in another process.
    With no in-process wake-up, the gateway learns the decision from the database alone."""
    from hub.pipeline import submit

    woken = []
    monkeypatch.setattr(submit, "wake", woken.append)  # as if the deciding worker ran elsewhere
    env = real_env
    async with env.running(), api_for(env) as api:
        g = await env.adapter(G22, start=False)
        xml = {"Content-Type": "application/xml"}
        status, body = await api.call("POST", "/api/v1/documents", "g22",
                                      data=g.sign(build_edoc(make_edoc(G22, (H41,)), [])), headers=xml)
        assert status == 202 and body["status"] == "recorded", body
        status, body = await api.call("POST", "/api/v1/documents", "g22",
                                      data=g.sign(build_edoc(make_edoc(G22, (H44,), doc_type="9"), [])), headers=xml)
        assert status == 403 and body["reason"] == "authority.not_competent", body
        assert sum(len(d) for d in woken) == 2  # the workers decided both (and would have woken a waiter here)


async def test_a_large_upload_is_streamed_to_a_blob_and_a_cut_one_leaves_nothing(env, monkeypatch):
    """Over HUB_BY_REFERENCE_BYTES the gateway writes the upload to the blob store as it arrives
    (chunked, without a Content-Length here); an upload cut half way stores nothing."""
    import hashlib
    from urllib.parse import urlsplit

    import sqlalchemy as sa

    from benchmarks.large import large_edoc, make_large_package
    from hub.store import blobs
    from hub.store.tables import blob_chunks
    from hub.store.tables import blobs as blobs_table

    monkeypatch.setattr(blobs, "CHUNK", 16 * 1024)  # rows reach the database while the upload arrives
    monkeypatch.setattr(blobs, "ROWS_PER_INSERT", 2)
    streamed: list[int] = []  # the pieces put_stream was handed, by size
    put_stream = blobs.put_stream

    async def spy(conn, stream, **kw):
        async def counted():
            async for piece in stream:
                streamed.append(len(piece))
                yield piece
        return await put_stream(conn, counted(), **kw)

    monkeypatch.setattr(blobs, "put_stream", spy)
    env.settings = env.settings.replace(by_reference_bytes=64 * 1024)
    data = make_large_package(300_000, env.pki.ids[G22].key, env.pki.ids[G22].cert, edoc=large_edoc(G22, H41, 21))
    sha = hashlib.sha256(data).hexdigest()
    async with env.running(), api_for(env) as api:
        url = urlsplit(api.base)
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(f"POST /api/v1/documents HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/xml\r\n"
                     f"Authorization: Bearer {api.tokens['g22']}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                     + data[:len(data) // 2])
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.close()  # the client goes away half way
        await asyncio.sleep(0.2)
        streamed.clear()

        async def chunked():
            for at in range(0, len(data), 10_000):
                yield data[at:at + 10_000]

        status, body = await api.call("POST", "/api/v1/documents", "g22", data=chunked(),
                                      headers={"Content-Type": "application/xml"})
        assert status == 202 and body["status"] == "recorded" and body["sha256"] == sha, body
        assert sum(streamed) == len(data)  # the upload went to the blob store through put_stream
        [pkg] = await _inbox(api, "h41", 1)
        async with api.session.get(api.base + pkg["blob"]["href"], headers=api.headers("h41")) as r:
            assert r.status == 200
            got = await r.read()
        assert hashlib.sha256(got).hexdigest() == pkg["blob"]["sha256"] != sha  # the delivered copy, by reference
    rows = await env.scalar(sa.select(blobs_table.c.sha256, blobs_table.c.chunks))
    assert sorted(rows) == sorted([(sha, -(-len(data) // (16 * 1024))), (pkg["blob"]["sha256"], -(-len(got) // (16 * 1024)))])
    provisional = await env.scalar(sa.select(sa.func.count()).select_from(blob_chunks).where(
        blob_chunks.c.sha256.like(blobs.UPLOAD_PREFIX + "%")))
    assert provisional == [(0,)]
