"""Issue 11 end to end, on real RabbitMQ + PostgreSQL (and the embedded defaults): agencies on
the national SDK (profile ``sdk``) send unsigned SDK-form packages over their own connection;
the same bytes from another system are impersonation; a ``strict`` agency's unsigned package is
refused; revocations, updates and recalls end in the right states."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from lxml import etree

from hub.edxml.builder import build_edoc, build_status
from hub.edxml.model import Business, Organization, Receiver, ReplacementInfo, ResponseFor, StatusPackage
from hub.edxml.parser import parse_xml
from hub.edxml.sdk_signature import inspect_signature
from hub.registry.store import add_agency
from hub.store.engine import make_engine
from hub.store.tables import deliveries, documents, records, status_history
from tests.conftest import G22, H41, H44, make_edoc
from tests.hubenv import drain, quiet
from tests.pipeline.test_authentication import skeleton
from tests.pipeline.test_e2e import _refused

REAL = Path(__file__).parent.parent / "data" / "edxml" / "real"
SDK_DOC_ID = "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"  # what the SDK's sample statuses answer


async def set_profile(env, code: str, profile: str) -> None:
    engine = make_engine(env.settings.database_url)
    try:
        await add_agency(engine, code, profile=profile)
    finally:
        await engine.dispose()


def sdk_edoc(to=(H41,)) -> bytes:
    """An edoc as the SDK writes it: its element order (the builder's), the Signature skeleton."""
    doc = replace(make_edoc(G22, to), document_id=SDK_DOC_ID)
    root = skeleton(build_edoc(doc, []))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def sdk_status(code: str, when: datetime, description: str) -> bytes:
    """A status as the SDK writes it: MessageHeader container, no signature."""
    return build_status(StatusPackage(
        sender=Organization(H41, organ_name="UBND Tỉnh Nghệ An"),
        response_for=ResponseFor(G22, SDK_DOC_ID, code="7816/VPCP-TTĐT"),
        status_code=code, description=description, timestamp=when))


async def rows(env, query):
    return await env.scalar(query)


async def test_sdk_agency_unsigned_edoc_and_statuses_over_its_own_connection(env):
    for code in (G22, H41):
        await set_profile(env, code, "sdk")
    async with env.running():
        g, h41, h44 = await env.adapter(G22), await env.adapter(H41), await env.adapter(H44)
        edoc = sdk_edoc()
        assert inspect_signature(parse_xml(edoc)).skeleton  # the SDK's placeholder Signature only
        await g.publish(edoc)
        [got] = await drain(h41, 1)
        assert got.kind == "edoc" and got.document_id == SDK_DOC_ID
        # the delivered copy is the sender's bytes plus the hub's TraceHeader, read by name
        assert got.package().sender.organ_id == G22
        # statuses 01, 03, 05, 05, 06: the SDK's own sample files where they exist, built otherwise
        t0 = datetime(2026, 11, 30, 9, 0, 0)
        sent = [(REAL / "sdk_status_inbox_01.edxml").read_bytes(),
                (REAL / "sdk_status_acceptance_03.edxml").read_bytes(),
                sdk_status("05", t0, "Đang xử lý: bước 1"),
                sdk_status("05", t0 + timedelta(seconds=1), "Đang xử lý: bước 2"),
                (REAL / "sdk_status_finish_06.edxml").read_bytes()]
        for data in sent:
            assert b"Signature" not in data and b"<edXML:Status>" not in data  # unsigned, MessageHeader form
            await h41.publish(data)
            [st] = await drain(g, 1)
            assert st.kind == "status" and st.body == data  # relayed as the sender wrote it
        # the same bytes from another system: impersonation, answered to the system that sent them
        await h44.publish(edoc)
        [answer] = await drain(h44, 1)
        _refused(answer, "authority.impersonation", env)
        await g.publish(sent[0])  # H41's status published by G22's connection
        [answer] = await drain(g, 1)
        _refused(answer, "authority.impersonation", env)
        assert await quiet(h41) == []
    doc = await rows(env, sa.select(documents.c.id, documents.c.authenticated_by).where(
        documents.c.document_id == SDK_DOC_ID, documents.c.kind == "edoc"))
    assert [d[1] for d in doc] == ["connection"]
    [(status,)] = await rows(env, sa.select(deliveries.c.status).where(deliveries.c.document == doc[0][0]))
    assert status == "06"
    hist = await rows(env, sa.select(status_history.c.status_code).order_by(status_history.c.id))
    assert [h[0] for h in hist] == ["01", "03", "05", "05", "06"]
    auth = await rows(env, sa.select(documents.c.kind, documents.c.authenticated_by))
    assert sorted(auth) == sorted([("edoc", "connection")] + [("status", "connection")] * 5)
    received = await rows(env, sa.select(records.c.details).where(records.c.event == "package.received"))
    assert {d["authenticated_by"] for (d,) in received} == {"connection"}


async def test_strict_agency_unsigned_package_is_refused(env):
    await set_profile(env, H41, "sdk")  # the recipient's profile does not matter
    async with env.running():
        h44, h41 = await env.adapter(H44), await env.adapter(H41)
        await h44.publish(build_edoc(make_edoc(H44, (H41,)), []))
        [answer] = await drain(h44, 1)
        _refused(answer, "signature.missing", env)
        assert await quiet(h41) == []


async def _send_and_receive(g, doc, *recipients):
    await g.send_document(doc, [])
    return [await drain(r, 1) for r in recipients]


async def test_revocation_update_and_recalls_end_in_the_right_states(env):
    async with env.running():
        g, h41, h44 = await env.adapter(G22), await env.adapter(H41), await env.adapter(H44)
        # --- a revocation: linked, answered 15 by the recipient
        first = make_edoc(G22, (H41,))
        await _send_and_receive(g, first, h41)
        revocation = replace(make_edoc(G22, (H41,)), business=Business(
            document_id=first.document_id, doc_type=1, reason="Thu hồi văn bản điện tử"))
        [[rev]] = await _send_and_receive(g, revocation, h41)
        assert rev.package().business.doc_type == 1
        await h41.send_status(G22, revocation.document_id, "15", "Đồng ý thu hồi")
        [agree] = await drain(g, 1)
        assert agree.package().status_code == "15"
        await h41.send_status(G22, revocation.document_id, "03", "vẫn xử lý")  # closed after agreeing
        [answer] = await drain(h41, 1)
        _refused(answer, "state.invalid_transition", env)
        # a revocation of a document the sender never sent is refused
        await g.send_document(replace(make_edoc(G22, (H41,)), business=Business(
            document_id="000.00.00.G22,2026/01/01,1/KHONG-CO", doc_type=1)), [])
        [answer] = await drain(g, 1)
        _refused(answer, "state.unknown_document", env)
        # --- an update that adds H44 and removes nobody: delivered to H41 (To) and to H44 (added)
        second = make_edoc(G22, (H41,))
        await _send_and_receive(g, second, h41)
        update = replace(make_edoc(G22, (H41,)), business=Business(
            document_id=second.document_id, doc_type=2, reason="Cập nhật",
            receivers=(Receiver(H44, 1),)))
        [[u41], [u44]] = await _send_and_receive(g, update, h41, h44)
        assert u41.document_id == u44.document_id == update.document_id
        await h44.send_status(G22, update.document_id, "16", "Không đồng ý cập nhật")
        [refuse] = await drain(g, 1)
        assert refuse.package().status_code == "16"
        # an answer naming the earlier document answers the update acting on it
        await h41.send_status(G22, second.document_id, "15", "Đồng ý cập nhật")
        [agree] = await drain(g, 1)
        assert agree.package().status_code == "15"
        # --- a replacement naming what it replaces only in ReplacementInfoList
        fourth = make_edoc(G22, (H41,))
        await _send_and_receive(g, fourth, h41)
        replacement = replace(make_edoc(G22, (H41,)), business=Business(doc_type=3, replacements=(
            ReplacementInfo(fourth.document_id, (H41,)),)))
        await _send_and_receive(g, replacement, h41)
        # --- a recall answered 15, another answered 16 (back to the state before the recall)
        third = make_edoc(G22, (H41, H44))
        await _send_and_receive(g, third, h41, h44)
        await h41.send_status(G22, third.document_id, "04", "Phân công")
        await h44.send_status(G22, third.document_id, "03", "Vào sổ")
        await drain(g, 2)
        for recipient, adapter in ((H41, h41), (H44, h44)):
            # the SDK's form: From = the original sender, ResponseFor/OrganId = the recalled recipient
            await g.send_status(recipient, third.document_id, "13", "Thu hồi")
            [recall] = await drain(adapter, 1)
            assert recall.package().status_code == "13"
        await h41.send_status(G22, third.document_id, "15", "Đồng ý")
        await h44.send_status(G22, third.document_id, "16", "Không đồng ý")
        await drain(g, 2)
        await h44.send_status(G22, third.document_id, "05", "Tiếp tục xử lý")  # handling goes on
        await drain(g, 1)

    async def state(doc_id: str) -> dict:
        q = (sa.select(deliveries.c.recipient, deliveries.c.status)
             .join(documents, documents.c.id == deliveries.c.document).where(documents.c.document_id == doc_id))
        return dict(await rows(env, q))

    assert await state(revocation.document_id) == {H41: "15"}
    assert await state(update.document_id) == {H41: "15", H44: "16"}
    assert await state(second.document_id) == {H41: None}  # the answer went to the update
    assert await state(third.document_id) == {H41: "15", H44: "05"}
    links = await rows(env, sa.select(documents.c.document_id, documents.c.business_type, documents.c.refers_to))
    by_id = {d: (b, r) for d, b, r in links}
    ids = dict(await rows(env, sa.select(documents.c.document_id, documents.c.id)))
    assert by_id[revocation.document_id] == (1, ids[first.document_id])
    assert by_id[update.document_id] == (2, ids[second.document_id])
    assert by_id[replacement.document_id] == (3, ids[fourth.document_id])
    # the earlier documents' timelines say what happened to them, and by which package
    events = await rows(env, sa.select(records.c.event, records.c.document_id, records.c.details).where(
        records.c.event.in_(["document.revoked", "document.updated", "document.replaced"])))
    assert {(e, d, det["by"]) for e, d, det in events} == {
        ("document.revoked", first.document_id, revocation.document_id),
        ("document.updated", second.document_id, update.document_id),
        ("document.replaced", fourth.document_id, replacement.document_id)}
    [upd] = [det for e, _, det in events if e == "document.updated"]
    assert upd["added"] == [H44] and upd["removed"] == []
    # the recall history of H44's copy: 03, 13, 16, 05
    q = (sa.select(status_history.c.status_code).join(deliveries, deliveries.c.id == status_history.c.delivery)
         .join(documents, documents.c.id == deliveries.c.document)
         .where(documents.c.document_id == third.document_id, deliveries.c.recipient == H44)
         .order_by(status_history.c.id))
    assert [c for (c,) in await rows(env, q)] == ["03", "13", "16", "05"]
    # a recall's entry names the document's original sender, whatever ResponseFor/OrganId says
    recalls = await rows(env, sa.select(records.c.details).where(
        records.c.event == "status.recorded", records.c.document_id == third.document_id))
    assert {d["original_sender"] for (d,) in recalls} == {G22}


async def test_each_way_of_authentication_is_reported(env):
    """The document view says how a package was authenticated; the admin API and the CLI count,
    per agency, the packages that came in each way."""
    import json
    import os
    import subprocess
    import sys
    from urllib.parse import quote

    from tests.apienv import api_for

    await set_profile(env, G22, "sdk")
    async with env.running():
        g, h41 = await env.adapter(G22), await env.adapter(H41)
        unsigned = make_edoc(G22, (H41,))
        await g.publish(build_edoc(unsigned, []))
        signed = make_edoc(G22, (H41,))
        await g.send_document(signed, [])
        await drain(h41, 2)
        async with api_for(env) as api:
            status, rep = await api.call("GET", "/api/v1/admin/auth-report?since=2000-01-01", "auditor")
            assert status == 200, rep
            [row] = rep["agencies"]
            assert row["code"] == G22 and row["profile"] == "sdk"
            assert (row["signature"], row["signature-sha1"], row["connection"], row["total"]) == (1, 0, 1, 2)
            status, rep = await api.call("GET", "/api/v1/admin/auth-report?until=2000-01-01", "admin")
            assert status == 200 and rep["agencies"] == [] and rep["totals"]["total"] == 0
            status, _ = await api.call("GET", "/api/v1/admin/auth-report?agency=nope", "admin")
            assert status == 400
            for doc, way in ((unsigned, "connection"), (signed, "signature")):
                status, view = await api.call("GET", f"/api/v1/documents/{quote(doc.document_id, safe='')}", "g22")
                assert status == 200 and view["authenticated_by"] == way, view
            status, trail = await api.call(
                "GET", f"/api/v1/audit/documents/{quote(unsigned.document_id, safe='')}/trail", "auditor")
            assert status == 200 and trail["document"]["authenticated_by"] == "connection", trail
            # through the HTTP gateway: the caller's token is the authenticated connection
            via_http = make_edoc(G22, (H41,))
            xml = {"Content-Type": "application/xml"}
            status, body = await api.call("POST", "/api/v1/documents", "h41", data=build_edoc(via_http, []),
                                          headers=xml)
            assert status == 403 and body["reason"] == "authority.impersonation", body
            status, body = await api.call("POST", "/api/v1/documents", "g22", data=build_edoc(via_http, []),
                                          headers=xml)
            assert status == 202, body
            [r] = await drain(h41, 1)
            assert r.document_id == via_http.document_id
            status, metrics = await api.call("GET", "/metrics")
            assert status == 200
            assert 'hub_packages_authenticated_total{authenticated_by="connection"} 2.0' in metrics, metrics
            assert 'hub_packages_authenticated_total{authenticated_by="signature"} 1.0' in metrics
    cli_env = {**os.environ, "HUB_DATABASE_URL": env.settings.database_url,
               "HUB_DATA_DIR": str(env.settings.data_dir)}
    cli_env.pop("HUB_AMQP_URL", None)
    p = subprocess.run([sys.executable, "-m", "hub.cli", "agency", "auth-report", "--json"], capture_output=True,
                       text=True, env=cli_env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["totals"] == {"signature": 1, "signature-sha1": 0, "connection": 2, "total": 3}
    p = subprocess.run([sys.executable, "-m", "hub.cli", "agency", "auth-report", "--agency", G22],
                       capture_output=True, text=True, env=cli_env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert G22 in p.stdout and "CONNECTION" in p.stdout


async def test_evidence_bundle_of_a_package_authenticated_by_its_connection(env):
    """The bundle of an unsigned sdk package verifies offline, saying what authenticated it."""
    from hub.audit.bundle import export_bundle, verify_bundle
    from hub.audit.sealer import seal
    from hub.pki.identity import Identity
    from hub.registry.store import load_trust
    from tests.conftest import HUB

    await set_profile(env, G22, "sdk")
    async with env.running():
        g, h41 = await env.adapter(G22), await env.adapter(H41)
        doc = make_edoc(G22, (H41,))
        await g.publish(build_edoc(doc, []))
        await drain(h41, 1)
    engine = make_engine(env.settings.database_url)
    hub = Identity.load(HUB, env.settings.key_file, env.settings.cert_file)
    try:
        await seal(engine, hub)
        data = await export_bundle(engine, doc.document_id, hub.cert, await load_trust(engine), identity=hub)
    finally:
        await engine.dispose()
    ok, lines = verify_bundle(data, hub_cert=env.pki.ids[HUB].cert, trust_anchors=[env.pki.ca_cert])
    assert ok, "\n".join(lines)
    assert any("accepted as authenticated by its sender's own connection" in line for line in lines), lines


async def test_the_document_page_says_how_and_by_which_package(env):
    """The dashboard's document page: how each package was authenticated, and the earlier
    document's page names the package that revoked it (and links to it)."""
    from urllib.parse import quote

    from tests.apienv import api_for
    from tests.web.dash import Dash

    await set_profile(env, G22, "sdk")
    async with env.running(), api_for(env) as api:
        g, h41 = await env.adapter(G22), await env.adapter(H41)
        first = make_edoc(G22, (H41,))
        await g.publish(build_edoc(first, []))  # unsigned, over G22's own connection
        await drain(h41, 1)
        revocation = replace(make_edoc(G22, (H41,)), business=Business(document_id=first.document_id, doc_type=1))
        await g.send_document(revocation, [])  # signed
        await drain(h41, 1)
        async with Dash(api.base) as dash:
            await dash.admin(api.tokens["auditor"])
            status, text, _ = await dash.get("/admin/documents/" + quote(first.document_id, safe=""))
            assert status == 200, text
            assert 'data-authenticated-by="connection"' in text and "<code>connection</code>" in text
            assert 'data-acted-on-by="revoked"' in text and quote(revocation.document_id, safe="") in text
            assert "Revoked by" in text  # the test console session is in English
            assert "document.revoked" in text
            status, text, _ = await dash.get("/admin/documents/" + quote(revocation.document_id, safe=""))
            assert status == 200 and 'data-authenticated-by="signature"' in text
            assert 'data-acts-on="revocation"' in text
        status, view = await api.call("GET", f"/api/v1/documents/{quote(first.document_id, safe='')}", "g22")
        assert [x["document_id"] for x in view["acted_on_by"]] == [revocation.document_id]
        assert view["acted_on_by"][0]["action"] == "revoked"
