"""Refusals in the protocol's envelope (status FAIL, ErrorCode = reason code, ErrorDesc), never
HTML or an empty OK; and the traps of the real SDK (Expect: 100-continue, a reused client,
the capture replayed verbatim)."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import sqlalchemy as sa

from hub.registry.store import add_agency
from hub.store.engine import make_engine
from hub.store.tables import records, vdxp_systems
from hub.vdxp.systems import revoke_system
from tests.conftest import G22, H41, H44
from tests.vdxp.client import unpadded_hex
from tests.vdxp.test_wire import CAPTURE_HASH, CAPTURE_SIGN_HEADER
from tests.vdxp.vdxpenv import A, B, listed, vdxp_for


def fail(answer: dict, code: str) -> None:
    assert answer["status"] == "FAIL" and answer["ErrorCode"] == code and answer["ErrorDesc"], answer


async def test_authentication_refusals(env):
    async with env.running(), vdxp_for(env) as v:
        status, body = await v.client(A, "wrong-secret-wrong-secret").raw("getReceivedEdocList",
                                                                          {"messagetype": "edoc"})
        assert status == 401
        fail(json.loads(body), "vdxp.bad_signature")
        fail(await v.client("vxp.nobody", "x" * 32).received(), "vdxp.unknown_system")
        # revoked: refused at once, with the same secret that worked a moment ago
        assert (await v.client(B).received())["status"] == "OK"
        engine = make_engine(env.settings.database_url)
        try:
            await revoke_system(engine, B, actor="test")
        finally:
            await engine.dispose()
        fail(await v.client(B).received(), "vdxp.unknown_system")
        # no headers at all; an unknown operation; a changed parameter under a valid signature
        async with v.session.post(v.endpoint + "/getReceivedEdocList") as r:
            fail(json.loads(await r.read()), "vdxp.auth_missing")
        fail(await v.client(A).call("getEverything"), "http.not_found")
        a = v.client(A)
        headers = [(k, "status" if k == "XroadVnpt-messagetype" else val)
                   for k, val in a.signed_headers("getReceivedEdocList", {"messagetype": "edoc"})]
        fail(json.loads((await a.raw("getReceivedEdocList", headers=headers))[1]), "vdxp.header_mismatch")
        # the secret is nowhere in clear in the database
        rows = await env.scalar(sa.select(vdxp_systems.c.secret_enc))
        assert rows and all(v.secrets[A].encode() not in bytes(r[0]) for r in rows)


async def test_package_refusals_and_replay(env):
    async with env.running(), vdxp_for(env) as v:
        a, b = v.client(A), v.client(B)
        doc, data = v.edoc(G22, (H41,))
        # a tampered body: the signed hash-file is of the original file
        headers = a.signed_headers("sendEdoc", {"from": G22, "servicetype": "eDoc", "messagetype": "edoc"}, data)
        tampered = data[:400] + bytes([data[400] ^ 1]) + data[401:]
        status, body = await a.raw("sendEdoc", headers=headers, body=tampered + b"\r\n")
        answer = json.loads(body)
        fail(answer, "vdxp.hash_file")
        assert answer["DocId"] == "" and body.isascii()
        # sent once; the same request again (a retry, or a replay) gets the same DocId and is not sent twice
        first = await a.send_edoc(data, G22)
        assert first["status"] == "OK"
        status, body = await a.raw("sendEdoc", headers=headers, body=data + b"\r\n")
        again = json.loads(body)
        assert again["status"] == "OK" and again["DocId"] == first["DocId"] and "not sent again" in again["ErrorDesc"]
        [item] = await listed(b, 1)
        await asyncio.sleep(0.5)
        assert len((await b.received())["data"]) == 1
        # other bytes under the same DocumentId
        _, other = v.edoc(G22, (H41,), number=int(doc.code.number), subject="khác")
        fail(await a.send_edoc(other, G22), "state.duplicate_conflict")
        # a package whose From the system does not serve; a `from` header it may not claim
        _, h44_doc = v.edoc(H44, (H41,))
        fail(await a.send_edoc(h44_doc, H44), "authority.impersonation")
        fail(await a.send_edoc(h44_doc, G22), "authority.impersonation")
        _, g22_doc = v.edoc(G22, (H41,))
        fail(await a.send_edoc(g22_doc, H44), "authority.impersonation")
        # a docId of another system: as unknown as a made-up one, whatever the operation
        fail(await a.get_edoc(item["docId"]), "vdxp.unknown_document")
        fail(await a.update_status(item["docId"], "done"), "vdxp.unknown_document")
        status, body = await a.raw("downloadEdoc", {"filePath": "/x", "docId": item["docId"]})
        assert status == 404 and body == b""  # an error body would be saved as the document
        fail(await b.call("updateStatus", {"docId": item["docId"]}), "vdxp.bad_request")  # no status
        fail(await b.call("getReceivedEdocList", {"messagetype": "fax"}), "vdxp.bad_request")
        assert (await b.get_edoc(item["docId"]))["status"] == "OK"  # B's own is still there
        # the refusals are in the audit log (the workers' one entry each), attributed to the system
        rows = await env.scalar(sa.select(records.c.reason, records.c.details).where(
            records.c.event == "package.refused"))
        assert {"state.duplicate_conflict", "authority.impersonation"} <= {
            r.reason for r in rows if (r.details or {}).get("via") == "vdxp" and r.details.get("via_user") == A}


async def test_later_refusal_is_a_status_02_in_the_senders_list(env):
    async with env.running(), vdxp_for(env) as v:
        a, b = v.client(A), v.client(B)
        doc, data = v.edoc(G22, (H41,))
        assert (await a.send_edoc(data, G22))["status"] == "OK"
        await listed(b, 1)
        # 03, then 01: a backward move only the workers can see (they hold the document's state)
        assert (await b.send_edoc(v.status(H41, G22, doc.document_id, "03"), H41, messagetype="status"))["status"] == "OK"
        await listed(a, 1, "status")  # recorded and delivered to A
        # sendEdoc waits for the workers' decision: refused at once, and the status 02 in B's list too
        answer = await b.send_edoc(v.status(H41, G22, doc.document_id, "01"), H41, messagetype="status")
        fail(answer, "state.invalid_transition")
        [refusal] = await listed(b, 1, "status")
        assert refusal["from"] == env.settings.hub_organ_id
        import base64

        from hub.edxml.model import read_package
        from hub.edxml.parser import parse_xml

        st = read_package(parse_xml(base64.b64decode((await b.get_edoc(refusal["docId"]))["data"])))
        assert st.status_code == "02" and "state.invalid_transition" in st.description


async def test_expect_100_continue_and_the_capture_verbatim(env):
    async with env.running(), vdxp_for(env) as v:
        engine = make_engine(env.settings.database_url)
        try:
            await add_agency(engine, "000.00.00.T99", name="Test agency", connected=True)
        finally:
            await engine.dispose()
        await v.add("000.00.00.T99", "000.00.00.T99", "local-test-secret")
        url = urlsplit(v.endpoint)
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            # the request of PROTOCOL.md section 10, byte for byte, as a shape-B call (body {})
            head = ("POST /vdxp/getAgenciesList HTTP/1.1\r\n"
                    f"Host: {url.netloc}\r\n"
                    "XroadVnpt-systemid: 000.00.00.T99\r\n"
                    "XroadVnpt-timestamp: 30112026T065447+0413\r\n"
                    "Content-Type: application/json\r\n"
                    "XroadVnpt-Content-Type: application/json\r\n"
                    "XroadVnpt-sign-header-key: systemid;timestamp;Content-Type\r\n"
                    f"XroadVnpt-sign-header: {CAPTURE_SIGN_HEADER}\r\n"
                    f"XroadVnpt-hash-header: {CAPTURE_HASH}\r\n"
                    "User-Agent: JAVASDKAgent/1.0.0 XRoad/VPCP\r\n"
                    "XroadVnpt-version: 3.0.201608\r\n"
                    "Content-Length: 2\r\nExpect: 100-continue\r\nConnection: Keep-Alive\r\n"
                    "Accept-Encoding: gzip,deflate\r\n\r\n")
            writer.write(head.encode())
            await writer.drain()
            # no body byte is sent before the interim answer, so it comes before the body as the SDK needs
            # (the SDK sends its body after 3 s anyway); the timeout only bounds the wait
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20.0)
            assert interim.startswith(b"HTTP/1.1 100 Continue")
            writer.write(b"{}")
            await writer.drain()
            response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20.0)
            assert response.startswith(b"HTTP/1.1 200")
            length = int([ln for ln in response.split(b"\r\n") if ln.lower().startswith(b"content-length")][0]
                         .split(b":")[1])
            answer = json.loads(await reader.readexactly(length))
        finally:
            writer.close()
        assert answer["status"] == "OK" and answer["ErrorCode"] == "0"
        codes = {a["code"]: a for a in answer["data"]}
        assert codes[G22]["name"] and set(codes[G22]) == {"id", "pid", "code", "name", "mail", "oldCode"}
        assert all(isinstance(x, str) for a in answer["data"] for x in a.values())


async def test_a_reused_client_carries_keys_over_and_still_works(env):
    async with env.running(), vdxp_for(env) as v:
        a, b = v.client(A, reuse=True), v.client(B, reuse=True)
        timestamp = b.timestamp
        doc, data = v.edoc(G22, (H41,))
        assert (await a.send_edoc(data, G22))["status"] == "OK"
        [item] = await listed(b, 1)  # carries nothing yet
        assert (await b.get_edoc(item["docId"]))["status"] == "OK"
        # updateStatus now also carries filePath; then a list call carries docId, status, filePath
        assert (await b.update_status(item["docId"], "done"))["status"] == "OK"
        assert (await b.received())["data"] == []
        keys = dict(b.signed_headers("getSentEdocList", {"servicetype": "eDoc", "messagetype": "edoc"}))
        assert keys["XroadVnpt-sign-header-key"].split(";") == [
            "systemid", "servicetype", "messagetype", "docId", "filePath", "timestamp", "Content-Type", "status"]
        assert (await b.call("getSentEdocList", {"servicetype": "eDoc", "messagetype": "edoc"}))["data"] == []
        # A's sendEdoc carried hash-file and from into this sent list: still its own rows
        report = await a.call("getSentEdocList", {"servicetype": "eDoc", "messagetype": "edoc"})
        assert [r["toCode"] for r in report["data"]] == [H41]
        assert b.timestamp == timestamp  # fixed for the client's lifetime; never refused as stale
        assert unpadded_hex(data)  # (the reused map kept A's hash-file; the server ignored it off sendEdoc)
