"""The VDXP protocol end to end with our own SDK-faithful client, on RabbitMQ + PostgreSQL and
on the embedded defaults: send, list, fetch byte for byte, done, status back, fail and retry."""

from __future__ import annotations

import asyncio
import base64

import sqlalchemy as sa
from lxml import etree

from hub.edxml.parser import parse_xml
from hub.edxml.signature import verify_package
from hub.edxml.trace import strip_relay_trace
from hub.pipeline.deadletters import settle_dead
from hub.store.tables import dead_letters, records
from tests.conftest import G22, H41, HUB
from tests.vdxp.vdxpenv import A, B, listed, vdxp_for


def canonical(data: bytes) -> bytes:
    return etree.tostring(parse_xml(data), xml_declaration=True, encoding="UTF-8")


async def test_send_list_fetch_done_status_back(env):
    async with env.running(), vdxp_for(env) as v:
        a, b = v.client(A), v.client(B)
        doc, data = v.edoc(G22, (H41,))
        sent = await a.send_edoc(data, G22)
        assert sent["status"] == "OK" and sent["ErrorCode"] == "0" and sent["DocId"], sent
        [item] = await listed(b, 1)
        assert item["from"] == G22 and item["to"] == H41 and item["messageType"] == "edoc"
        assert item["serviceType"] == "eDoc" and item["status"] == "initial" and item["created_time"]
        assert (await b.call("countReceiveEdoc", {"servicetype": "eDoc", "messagetype": "edoc"}))["count"] == 1
        # fetched byte for byte: getEdoc == downloadEdoc; the sender's signed bytes under the hub's hop record
        got = await b.get_edoc(item["docId"])
        assert got["status"] == "OK", got
        fetched = base64.b64decode(got["data"])
        status, downloaded = await b.raw("downloadEdoc", {"filePath": "/tmp/x", "docId": item["docId"]})
        assert status == 200 and downloaded == fetched
        root = parse_xml(fetched)
        assert strip_relay_trace(root, {HUB}) == 1
        assert etree.tostring(root, xml_declaration=True, encoding="UTF-8") == canonical(data)
        verify_package(root, env.pki.trust())
        # done: it leaves the list (and stays gone)
        assert (await b.update_status(item["docId"], "done"))["status"] == "OK"
        assert (await b.received())["data"] == []
        assert (await b.update_status(item["docId"], "done"))["status"] == "OK"  # idempotent
        # B answers 03 with messagetype=status; A receives exactly those bytes
        st = v.status(H41, G22, doc.document_id, "03", "Đã tiếp nhận")
        sent_st = await b.send_edoc(st, H41, messagetype="status")
        assert sent_st["status"] == "OK", sent_st
        [st_item] = await listed(a, 1, "status")
        assert st_item["from"] == H41 and st_item["messageType"] == "status"
        assert base64.b64decode((await a.get_edoc(st_item["docId"]))["data"]) == st
        assert (await a.call("countReceiveStatus", {"servicetype": "eDoc", "messagetype": "status"}))["count"] == 1
        assert (await a.update_status(st_item["docId"], "done", key="docid"))["status"] == "OK"  # Bkav spelling
        assert (await a.received("status"))["data"] == []
        # A's delivery report: B's id for it and B's latest status
        report = await a.call("getSentEdocList", {"servicetype": "eDoc", "messagetype": "edoc"})
        [row] = report["data"]
        assert row["senderDocId"] == sent["DocId"] and row["toCode"] == H41 and row["fromCode"] == G22
        assert row["receiverDocId"] == item["docId"] and row["receiveStatus"] == "03"
        assert row["sendStatus"] == "accepted" and row["receivedTime"]
        # in the audit log: the package as received (same SHA-256 as the sent file), each hand-over
        # attributed to the VDXP system that acknowledged it
        import hashlib

        rows = await env.scalar(sa.select(records.c.event).where(records.c.sha256 == hashlib.sha256(data).hexdigest()))
        assert {"package.received", "package.accepted"} <= {r[0] for r in rows}
        rows = await env.scalar(sa.select(records.c.event, records.c.actor).where(records.c.actor.like("vdxp:%")))
        assert {("vdxp.handed_over", f"vdxp:{B}"), ("vdxp.handed_over", f"vdxp:{A}")} <= set(rows)


async def test_fail_brings_it_back_then_dead_letters_then_replay(env):
    async with env.running(), vdxp_for(env) as v:
        a, b = v.client(A), v.client(B)
        _, data = v.edoc(G22, (H41,))
        assert (await a.send_edoc(data, G22))["status"] == "OK"
        [item] = await listed(b, 1)
        doc_id = item["docId"]
        max_failures = env.settings.vdxp_max_failures
        for n in range(1, max_failures):
            assert (await b.get_edoc(doc_id))["status"] == "OK"
            assert (await b.update_status(doc_id, "fail"))["status"] == "OK"
            [again] = (await b.received())["data"]
            assert again["docId"] == doc_id and again["status"] == "fail"  # back in the list
            # a replayed `fail` without a fetch in between counts nothing
            assert (await b.update_status(doc_id, "fail"))["status"] == "OK"
        dead = await env.scalar(sa.select(dead_letters.c.id).where(dead_letters.c.reason == "vdxp.delivery_failed"))
        assert dead == []
        assert (await b.get_edoc(doc_id))["status"] == "OK"
        assert (await b.update_status(doc_id, "fail"))["status"] == "OK"  # the Nth counted failure
        assert (await b.received())["data"] == []  # with an admin now
        [(dead_id,)] = await env.scalar(sa.select(dead_letters.c.id).where(
            dead_letters.c.reason == "vdxp.delivery_failed"))
        ctx = await v.session.get(v.endpoint.replace("/vdxp", "/healthz"))  # the API is alive
        assert ctx.status == 200
        from hub.registry.store import load_registry

        registry = await load_registry(env.hub.engine)
        result = await settle_dead(env.hub.engine, env.hub.backbone, registry, [dead_id], "replay", "admin:test")
        assert result["done"] == [dead_id]
        [back] = await listed(b, 1)
        assert back["docId"] == doc_id and back["status"] == "initial"


async def test_database_down_is_a_fail_not_an_empty_inbox(env, monkeypatch):
    """If the list cannot be kept, the answer is FAIL vdxp.unavailable and the package waits in
    the broker (put back, not held), to be listed once the database answers again."""
    from hub.vdxp import mailbox

    async with env.running(), vdxp_for(env) as v:
        a, b = v.client(A), v.client(B)
        _, data = v.edoc(G22, (H41,))
        assert (await a.send_edoc(data, G22))["status"] == "OK"
        real_keep = mailbox._keep

        async def broken(*args, **kw):
            raise OSError("database unreachable")

        monkeypatch.setattr(mailbox, "_keep", broken)
        for _ in range(100):  # until the worker has delivered it to the inbox queue
            answer = await b.received()
            if answer["status"] == "FAIL":
                break
            assert answer["data"] == []
            await asyncio.sleep(0.1)
        assert answer["ErrorCode"] == "vdxp.unavailable" and "not an empty inbox" in answer["ErrorDesc"], answer
        monkeypatch.setattr(mailbox, "_keep", real_keep)
        [item] = await listed(b, 1)
        assert item["from"] == G22
