"""The admin API end to end, on real RabbitMQ + PostgreSQL and on the embedded defaults:
agencies, trust, queues, dead letters, users, maintenance — each change recorded with its actor."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization

from hub import constants as C
from hub.api import admin
from hub.edxml.builder import build_edoc
from hub.pki import devpki
from hub.settings import Settings
from hub.store.tables import records
from tests.apienv import api_for
from tests.conftest import G22, H41, H44, HUB, make_edoc
from tests.hubenv import drain, until

ACTOR = "admin:admin"
H50, H51, H60, H61, H62 = "000.00.00.H50", "000.00.00.H51", "000.00.00.H60", "000.00.00.H61", "000.00.00.H62"


async def _events(env, prefix: str) -> list[tuple[str, str]]:
    """The records of the API's admin calls (the fixtures' own setup is recorded as actor "admin"/"test")."""
    rows = await env.scalar(sa.select(records.c.event, records.c.actor).where(
        records.c.event.like(prefix + "%"), records.c.actor == ACTOR).order_by(records.c.seq))
    return [(e, a) for e, a in rows]


def _pem(cert) -> str:
    return devpki.cert_pem(cert).decode()


# --- agencies -----------------------------------------------------------------------------------

async def test_agencies_crud_import_and_expiry(env, pki):
    async with env.running(), api_for(env) as api:
        status, body = await api.call("GET", "/api/v1/admin/agencies", "auditor")
        assert status == 200, body
        assert body["total"] == 4 and [a["code"] for a in body["agencies"]] == sorted([G22, H41, H44, HUB])
        g22 = next(a for a in body["agencies"] if a["code"] == G22)
        [cert] = g22["certificates"]
        expected = (pki.ids[G22].cert.not_valid_after_utc - datetime.now(timezone.utc)).days
        assert cert["fingerprint"] == pki.ids[G22].fp and cert["days_to_expiry"] == expected and not cert["retired"]
        assert g22["connected"] and g22["active"] and g22["accepts"] is None
        h44 = next(a for a in body["agencies"] if a["code"] == H44)
        assert h44["accepts"] == ["1", "2"]
        status, body = await api.call("GET", "/api/v1/admin/agencies?search=H4&limit=1", "admin")
        assert body["total"] == 2 and [a["code"] for a in body["agencies"]] == [H41]
        status, body = await api.call("GET", "/api/v1/admin/agencies?search=H4&limit=1&offset=1", "admin")
        assert [a["code"] for a in body["agencies"]] == [H44]
        status, body = await api.call("GET", "/api/v1/admin/agencies?connected=false", "admin")
        assert [a["code"] for a in body["agencies"]] == [HUB]
        status, body = await api.call("GET", "/api/v1/admin/agencies?connected=true", "admin")
        assert body["total"] == 3
        for bad in ("limit=0", "limit=x", "offset=-1", "connected=maybe"):
            status, body = await api.call("GET", "/api/v1/admin/agencies?" + bad, "admin")
            assert status == 400 and body["element"] == bad.split("=")[0], body

        # add with a certificate, then the same code again
        one, two = pki.issue(H50, days=30), pki.issue(H50)
        status, body = await api.call("POST", "/api/v1/admin/agencies", "admin", json={
            "code": H50, "name": "Tỉnh H50", "certificates": [_pem(one.cert)], "accepts": ["1", "2"]})
        assert status == 201, body
        assert body["code"] == H50 and body["connected"] and body["accepts"] == ["1", "2"]
        [c] = body["certificates"]
        assert c["fingerprint"] == one.fp and c["days_to_expiry"] in (28, 29)  # issued yesterday for 30 days
        status, body = await api.call("POST", "/api/v1/admin/agencies", "admin", json={"code": H50})
        assert status == 409 and body["reason"] == "state.conflict"
        for payload, element in (({"code": "G22"}, "code"), ({"name": "x"}, "code"),
                                 ({"code": H51, "accepts": ["x"]}, "accepts[0]"),
                                 ({"code": H51, "certificates": ["not a pem"]}, "certificates[0]"),
                                 ({"code": H51, "served_by": "000.00.00.H99"}, "served_by"),
                                 ({"code": H51, "connected": "yes"}, "connected"),
                                 ({"code": H51, "colour": "red"}, "colour")):
            status, body = await api.call("POST", "/api/v1/admin/agencies", "admin", json=payload)
            assert status == 400 and body["element"] == element and body["message"], (payload, body)
        status, body = await api.call("POST", "/api/v1/admin/agencies", "admin", data=b"{not json")
        assert status == 400 and body["reason"] == "usage.invalid"

        status, body = await api.call("GET", f"/api/v1/admin/agencies/{H50}", "auditor")
        assert status == 200 and body["name"] == "Tỉnh H50"
        assert (await api.call("GET", "/api/v1/admin/agencies/000.00.00.H99", "admin"))[0] == 404
        status, body = await api.call("GET", "/api/v1/admin/agencies/nonsense", "admin")
        assert status == 400 and body["reason"] == "usage.agency_code"

        # edit: rename, every type, pin a second certificate and retire the first
        status, body = await api.call("PATCH", f"/api/v1/admin/agencies/{H50}", "admin", json={
            "name": "Tỉnh H50 mới", "accepts": None, "add_certificates": [_pem(two.cert)],
            "retire_certificates": [one.fp]})
        assert status == 200, body
        assert body["name"] == "Tỉnh H50 mới" and body["accepts"] is None
        assert {c["fingerprint"]: c["retired"] for c in body["certificates"]} == {one.fp: True, two.fp: False}
        status, body = await api.call("PATCH", f"/api/v1/admin/agencies/{H50}", "admin",
                                      json={"retire_certificates": ["ab" * 32]})
        assert status == 400 and body["element"] == "retire_certificates[0]"
        status, body = await api.call("PATCH", f"/api/v1/admin/agencies/{H50}", "admin", json={"served_by": H50})
        assert status == 400 and body["element"] == "served_by"
        assert (await api.call("PATCH", "/api/v1/admin/agencies/000.00.00.H99", "admin", json={"name": "x"}))[0] == 404
        assert (await api.call("PATCH", f"/api/v1/admin/agencies/{H50}", "admin", json={}))[0] == 400

        # retire; a retired agency changes only when reactivated
        status, body = await api.call("POST", f"/api/v1/admin/agencies/{H50}/retire", "admin")
        assert status == 200 and body["active"] is False
        assert (await api.call("POST", "/api/v1/admin/agencies/000.00.00.H99/retire", "admin"))[0] == 404
        status, body = await api.call("PATCH", f"/api/v1/admin/agencies/{H50}", "admin", json={"name": "y"})
        assert status == 409
        status, body = await api.call("PATCH", f"/api/v1/admin/agencies/{H50}", "admin", json={"active": True})
        assert status == 200 and body["active"] is True

        # import: good lines upserted, bad lines reported with their line numbers
        csv = ("code,name,served_by,accepts\n"
               f"{H60},Sáu mươi,,1\n"  # line 2
               "bad-code,Hỏng,,\n"  # 3
               "\n"  # 4 (blank: ignored)
               f"{H61},Sáu mốt,{H60},x\n"  # 5 bad accepts
               f"{H62},Sáu hai,000.00.00.H98,\n"  # 6 served_by unknown: imported without it
               f"{H41},Nghệ An (đổi tên),,,extra\n"  # 7 too many fields
               f"{G22},Văn phòng Chính phủ (CSV),,\n")  # 8 update
        status, body = await api.call("POST", "/api/v1/admin/agencies/import", "admin", data=csv.encode(),
                                      headers={"Content-Type": "text/csv"})
        assert status == 200, body
        assert body["added"] == 2 and body["updated"] == 1
        lines = {e["line"] for e in body["errors"]}
        assert lines == {0, 3, 5, 7}, body["errors"]
        assert any("H98" in e["message"] for e in body["errors"] if e["line"] == 0)
        status, body = await api.call("GET", f"/api/v1/admin/agencies/{G22}", "admin")
        assert body["name"] == "Văn phòng Chính phủ (CSV)"
        status, body = await api.call("POST", "/api/v1/admin/agencies/import", "admin", data=b"name\nx\n")
        assert status == 400 and "code" in body["message"]
        status, body = await api.call("POST", "/api/v1/admin/agencies/import", "admin", data=b"\xff\xfe")
        assert status == 400

        assert await _events(env, "agency.") == [(e, ACTOR) for e in (
            "agency.added", "agency.updated", "agency.cert_retired", "agency.retired", "agency.updated",
            "agency.imported")]


# --- trust ----------------------------------------------------------------------------------------

async def test_agency_signature_profile(env):
    """The admin API sets and shows the signature profile (issue 11); default strict."""
    async with env.running(), api_for(env) as api:
        status, body = await api.call("GET", f"/api/v1/admin/agencies/{G22}", "auditor")
        assert status == 200 and body["profile"] == "strict", body
        status, body = await api.call("POST", "/api/v1/admin/agencies", "admin",
                                      json={"code": "000.00.00.H77", "name": "H77", "profile": "sdk"})
        assert status == 201 and body["profile"] == "sdk", body
        status, body = await api.call("PATCH", f"/api/v1/admin/agencies/{G22}", "admin", json={"profile": "SDK"})
        assert status == 200 and body["profile"] == "sdk", body
        status, body = await api.call("PATCH", f"/api/v1/admin/agencies/{G22}", "admin", json={"profile": "loose"})
        assert status == 400 and body["element"] == "profile", body
        status, body = await api.call("POST", "/api/v1/admin/agencies/import", "admin",
                                      data="code,name,profile\n000.00.00.H78,H78,sdk\n".encode(),
                                      headers={"Content-Type": "text/csv"})
        assert status == 200 and body["added"] == 1, body
        status, body = await api.call("GET", "/api/v1/admin/agencies/000.00.00.H78", "admin")
        assert body["profile"] == "sdk"
    rows = await env.scalar(sa.select(records.c.details).where(records.c.event == "agency.updated"))
    assert any(d.get("profile") == "sdk" for (d,) in rows)


async def test_trust_anchor_and_crl(env, pki):
    async with env.running(), api_for(env) as api:
        status, body = await api.call("GET", "/api/v1/admin/trust", "auditor")
        assert status == 200 and len(body["anchors"]) == 1 and body["crls"] == []
        ca, ca_key = devpki.make_ca("second root", days=100)
        status, body = await api.call("POST", "/api/v1/admin/trust/anchors", "admin", data=devpki.cert_pem(ca))
        assert status == 201, body
        [added] = body["added"]
        status, body = await api.call("GET", "/api/v1/admin/trust", "admin")
        anchor = next(a for a in body["anchors"] if a["fingerprint"] == added["fingerprint"])
        assert anchor["days_to_expiry"] in (98, 99) and "second root" in anchor["subject"]
        # not a CA, not PEM
        status, body = await api.call("POST", "/api/v1/admin/trust/anchors", "admin",
                                      data=devpki.cert_pem(pki.ids[G22].cert))
        assert status == 400 and "CA" in body["message"]
        assert (await api.call("POST", "/api/v1/admin/trust/anchors", "admin", data=b"hello"))[0] == 400
        # CRLs: PEM and DER from trusted CAs; one from an untrusted CA is refused
        crl = devpki.make_crl(ca, ca_key)
        status, body = await api.call("POST", "/api/v1/admin/trust/crls", "admin",
                                      data=crl.public_bytes(serialization.Encoding.PEM))
        assert status == 201 and body["revoked"] == 0, body
        crl2 = devpki.make_crl(pki.ca_cert, pki.ca_key, [(pki.ids[H44].cert.serial_number, datetime.now(timezone.utc))])
        status, body = await api.call("POST", "/api/v1/admin/trust/crls", "admin",
                                      data=crl2.public_bytes(serialization.Encoding.DER),
                                      headers={"Content-Type": "application/pkix-crl"})
        assert status == 201 and body["revoked"] == 1, body
        untrusted = devpki.make_crl(*pki.other_ca).public_bytes(serialization.Encoding.PEM)
        status, body = await api.call("POST", "/api/v1/admin/trust/crls", "admin", data=untrusted)
        assert status == 400 and "trusted" in body["message"]
        assert (await api.call("POST", "/api/v1/admin/trust/crls", "admin", data=b"\x30\x03junk"))[0] == 400
        status, body = await api.call("GET", "/api/v1/admin/trust", "auditor")
        assert len(body["anchors"]) == 2 and len(body["crls"]) == 2
        assert await _events(env, "trust.") == [("trust.anchor_added", ACTOR), ("trust.crl_added", ACTOR),
                                                ("trust.crl_added", ACTOR)]


# --- queues ---------------------------------------------------------------------------------------

async def test_queues_show_intake_dead_and_inboxes(env, pki):
    async with env.running() as hub, api_for(env) as api:
        g = await env.adapter(G22, start=False)
        await g.publish(g.sign(build_edoc(make_edoc(G22, (H41,)), [])))  # nobody consumes H41's inbox
        status, body = await api.call("POST", "/api/v1/admin/agencies", "admin",
                                      json={"code": H50, "certificates": [_pem(pki.issue(H50).cert)]})
        assert status == 201, body

        async def inbox_has_one():
            status, body = await api.call("GET", "/api/v1/admin/queues", "auditor")
            assert status == 200, body
            q = {x["name"]: x for x in body["queues"]}
            return body if q["inbox." + H41]["depth"] == 1 else None

        body = await until(inbox_has_one, timeout=20, every=0.5)  # the management API refreshes every 5 s
        q = {x["name"]: x for x in body["queues"]}
        names = {C.QUEUE_INTAKE, C.QUEUE_DEAD} | {f"inbox.{c}{u}" for c in (G22, H41, H44, H50)
                                                  for u in ("", ".urgent")}
        assert set(q) == names
        assert all(x["exists"] for x in q.values()), q  # H50's inbox was declared when it was added
        assert q[C.QUEUE_INTAKE]["consumers"] >= 1 and q[C.QUEUE_DEAD]["consumers"] >= 1
        if env.kind == "rabbitmq":
            assert body["source"] == "management"
            assert isinstance(q["inbox." + H41]["publish_rate"], float)
            assert isinstance(q[C.QUEUE_INTAKE]["deliver_rate"], float)
            # quorum queues give no head-message timestamp in RabbitMQ 3.10
            assert "oldest_message_age_seconds" in q[C.QUEUE_INTAKE]
            # when the management API is not reachable: passive declares, rates null
            off = env.settings.replace(management_url="http://127.0.0.1:9")
            assert await admin._from_management(off, [C.QUEUE_INTAKE]) is None
            passive = {x["name"]: x for x in await admin._passive(hub.backbone, sorted(names | {"inbox.nope"}))}
            assert passive["inbox." + H41]["depth"] == 1 and passive["inbox." + H41]["publish_rate"] is None
            assert passive["inbox.nope"]["exists"] is False and passive["inbox.nope"]["depth"] is None
        else:
            assert body["source"] == "passive"
            assert all(x["publish_rate"] is None and x["deliver_rate"] is None for x in q.values())
        assert (await api.call("GET", "/api/v1/admin/queues", "g22"))[0] == 403


def test_management_target_from_settings(tmp_path):
    s = Settings.from_env({"HUB_DATA_DIR": str(tmp_path)}, amqp_url="amqp://hub%40x:p%2Fw@mq.example:5672/hub%2Fprod")
    assert admin.management_target(s) == ("http://mq.example:15672", "hub@x", "p/w", "hub/prod")
    s = s.replace(amqp_url="amqp://u:p@mq/", management_url="https://ops:secret@mgmt.example:443/rabbit/")
    assert admin.management_target(s) == ("https://mgmt.example:443/rabbit", "ops", "secret", "/")
    assert admin.management_target(s.replace(amqp_url=None)) is None


# --- dead letters -----------------------------------------------------------------------------

async def test_dead_letters_inspect_replay_discard(env):
    async with env.running() as hub, api_for(env) as api:
        h41 = await env.adapter(H41)
        g = await env.adapter(G22, start=False)
        doc = make_edoc(G22, (H41,))
        data = g.sign(build_edoc(doc, []))
        await hub.backbone.publish(C.EXCHANGE_DEAD, "", data, user_id=hub.backbone.user, headers={
            C.H_REASON: "transient.unavailable", C.H_MESSAGE: "the database was down",
            C.H_ORIGINAL_USER: env.user_of(G22)})
        await hub.backbone.publish(C.EXCHANGE_DEAD, "", b"<not xml", user_id=hub.backbone.user, headers={C.H_REASON: "parse.not_xml"})

        async def two_pending():
            status, body = await api.call("GET", "/api/v1/admin/dead-letters", "auditor")
            assert status == 200, body
            return body if body["total"] == 2 else None

        body = await until(two_pending, timeout=15)
        by_reason = {d["reason"]: d for d in body["dead_letters"]}
        good, bad = by_reason["transient.unavailable"], by_reason["parse.not_xml"]
        assert good["state"] == "pending" and good["original_user"] == env.user_of(G22) and good["size"] == len(data)

        status, body = await api.call("GET", f"/api/v1/admin/dead-letters/{good['id']}", "auditor")
        assert status == 200, body
        assert base64.b64decode(body["package"]) == data and body["message"] == "the database was down"
        parsed = body["parsed"]
        assert parsed["ok"] and parsed["kind"] == "edoc" and parsed["document_id"] == doc.document_id
        assert parsed["from"] == G22 and parsed["to"] == [H41] and parsed["type"] == "1"
        assert parsed["subject"] == doc.subject
        status, body = await api.call("GET", f"/api/v1/admin/dead-letters/{bad['id']}", "admin")
        assert body["parsed"] == {"ok": False, "reason": "parse.not_xml", "message": body["parsed"]["message"]}
        assert (await api.call("GET", "/api/v1/admin/dead-letters/999999", "admin"))[0] == 404
        assert (await api.call("GET", "/api/v1/admin/dead-letters/abc", "admin"))[0] == 400

        # replay: back to intake as G22's adapter; H41 receives it
        status, body = await api.call("POST", "/api/v1/admin/dead-letters/replay", "admin",
                                      json={"ids": [good["id"], 999999]})
        assert status == 200, body
        assert body["done"] == [good["id"]] and body["skipped"] == [{"id": 999999, "state": "not found"}]
        [r] = await drain(h41, 1)
        assert r.document_id == doc.document_id and r.sender == G22
        # discard the other; settled letters are skipped the next time
        status, body = await api.call("POST", "/api/v1/admin/dead-letters/discard", "admin", json={"ids": [bad["id"]]})
        assert status == 200 and body["done"] == [bad["id"]]
        status, body = await api.call("POST", "/api/v1/admin/dead-letters/replay", "admin",
                                      json={"ids": [good["id"], bad["id"]]})
        assert body["done"] == [] and {s["state"] for s in body["skipped"]} == {"replayed", "discarded"}
        for payload in ({}, {"ids": []}, {"ids": ["1"]}, {"ids": [True]}, {"ids": 1}):
            status, body = await api.call("POST", "/api/v1/admin/dead-letters/discard", "admin", json=payload)
            assert status == 400 and body["element"].startswith("ids"), (payload, body)
        status, body = await api.call("GET", "/api/v1/admin/dead-letters?state=discarded", "admin")
        assert [d["id"] for d in body["dead_letters"]] == [bad["id"]] and body["dead_letters"][0]["settled_by"] == ACTOR
        status, body = await api.call("GET", "/api/v1/admin/dead-letters?state=all", "admin")
        assert body["total"] == 2
        assert (await api.call("GET", "/api/v1/admin/dead-letters?state=lost", "admin"))[0] == 400
        assert await _events(env, "deadletter.") == [("deadletter.replayed", ACTOR), ("deadletter.discarded", ACTOR)]


# --- users ----------------------------------------------------------------------------------------

async def test_users_add_and_revoke(env):
    async with env.running(), api_for(env) as api:
        status, body = await api.call("POST", "/api/v1/admin/users", "admin",
                                      json={"name": "nghe-an-system", "role": "agency", "agency": H41})
        assert status == 201, body
        uid, token = body["id"], body["token"]
        assert token.startswith(f"hub_{uid}_")
        api.tokens["new"] = token
        assert (await api.call("GET", "/api/v1/inbox", "new"))[0] == 200
        status, body = await api.call("GET", "/api/v1/admin/users", "auditor")
        mine = next(u for u in body["users"] if u["id"] == uid)
        assert mine["active"] and mine["agency"] == H41 and mine["created_by"] == ACTOR and "token" not in mine
        status, body = await api.call("POST", f"/api/v1/admin/users/{uid}/revoke", "admin")
        assert status == 200 and body["active"] is False and body["revoked_at"]
        status, body = await api.call("GET", "/api/v1/inbox", "new")
        assert status == 401 and body["reason"] == "auth.invalid"
        assert (await api.call("POST", f"/api/v1/admin/users/{uid}/revoke", "admin"))[0] == 409
        assert (await api.call("POST", "/api/v1/admin/users/nobody/revoke", "admin"))[0] == 404
        for payload, element in (({"name": "x", "role": "root"}, "role"),
                                 ({"name": "x", "role": "agency"}, "agency"),
                                 ({"name": "x", "role": "agency", "agency": "000.00.00.H99"}, "agency"),
                                 ({"name": "x", "role": "admin", "agency": G22}, "agency"),
                                 ({"name": " ", "role": "admin"}, "name"),
                                 ({"name": "x" * 101, "role": "admin"}, "name"),
                                 ({"role": "admin"}, "name")):
            status, body = await api.call("POST", "/api/v1/admin/users", "admin", json=payload)
            assert status == 400 and body["element"] == element, (payload, body)
        assert (await api.call("POST", "/api/v1/admin/users", "auditor", json={"name": "a", "role": "admin"}))[0] == 403
        assert await _events(env, "user.") == [("user.added", ACTOR), ("user.revoked", ACTOR)]


# --- maintenance ----------------------------------------------------------------------------------

async def test_maintenance_stop_drain_resume(env):
    async with env.running() as hub, api_for(env) as api:
        h41 = await env.adapter(H41)
        g = await env.adapter(G22, start=False)
        status, body = await api.call("GET", "/api/v1/admin/maintenance", "auditor")
        assert status == 200 and body["state"] == "running" and body["drained"] is True, body

        status, body = await api.call("POST", "/api/v1/admin/maintenance", "admin", json={"action": "stop"})
        assert status == 200 and body["state"] == "stopped"
        await until(lambda: _no_consumer(hub), timeout=15)  # the workers stop consuming hub.intake within ~2 s
        doc = make_edoc(G22, (H41,))
        data = g.sign(build_edoc(doc, []))
        status, body = await api.call("POST", "/api/v1/documents", "g22", data=data)
        assert status == 503 and body["reason"] == "hub.maintenance"
        await g.publish(data)  # over AMQP it queues up in hub.intake

        async def queued():
            body = (await api.call("GET", "/api/v1/admin/maintenance", "admin"))[1]
            return body if body["intake_depth"] == 1 else None

        body = await until(queued, timeout=15)
        assert body["drained"] is False and body["state"] == "stopped"

        # drain: the gateway still refuses, the workers finish what is queued
        status, body = await api.call("POST", "/api/v1/admin/maintenance", "admin", json={"action": "drain"})
        assert status == 200 and body["state"] == "draining"
        assert (await api.call("POST", "/api/v1/documents", "g22", data=data))[0] == 503
        [r] = await drain(h41, 1)
        assert r.document_id == doc.document_id

        async def drained():
            body = (await api.call("GET", "/api/v1/admin/maintenance", "admin"))[1]
            return body if body["drained"] else None

        body = await until(drained, timeout=15)
        assert body == {"state": "draining", "intake_depth": 0, "outbox_backlog": 0, "in_flight": 0, "drained": True}

        status, body = await api.call("POST", "/api/v1/admin/maintenance", "admin", json={"action": "resume"})
        assert status == 200 and body["state"] == "running"
        data2 = g.sign(build_edoc(make_edoc(G22, (H41,)), []))
        assert (await api.call("POST", "/api/v1/documents", "g22", data=data2))[0] == 202
        await drain(h41, 1)
        for payload in ({"action": "pause"}, {}, {"action": "stop", "now": True}):
            status, body = await api.call("POST", "/api/v1/admin/maintenance", "admin", json=payload)
            assert status == 400 and body["element"] in ("action", "now"), body
        assert (await api.call("POST", "/api/v1/admin/maintenance", "auditor", json={"action": "stop"}))[0] == 403
        assert await _events(env, "maintenance.") == [("maintenance.stop", ACTOR), ("maintenance.drain", ACTOR),
                                                     ("maintenance.resume", ACTOR)]


async def _no_consumer(hub) -> bool:
    return await hub.backbone.consumers(C.QUEUE_INTAKE) == 0
