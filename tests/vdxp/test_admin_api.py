"""VDXP systems through the admin API: the generated secret works at once, is never listed, and
a revoked system is refused on its next request."""

from __future__ import annotations

import json

import aiohttp

from tests.apienv import api_for
from tests.conftest import H41
from tests.vdxp.client import VdxpClient


async def test_admin_api_systems(env):
    async with env.running(), api_for(env) as api:
        status, body = await api.call("POST", "/api/v1/admin/vdxp/systems", "admin",
                                      json={"id": "vxp.api", "agency": H41})
        assert status == 201 and len(body["secret"]) >= 40, body
        secret = body["secret"]
        status, body = await api.call("POST", "/api/v1/admin/vdxp/systems", "admin",
                                      json={"id": "vxp.api", "agency": H41})
        assert status == 409 and body["reason"] == "state.conflict"
        status, body = await api.call("POST", "/api/v1/admin/vdxp/systems", "admin",
                                      json={"id": "vxp.x", "agency": "000.00.00.H99"})
        assert status == 400 and body["reason"] == "usage.not_found"
        status, body = await api.call("GET", "/api/v1/admin/vdxp/systems", "auditor")
        assert status == 200 and [s["id"] for s in body["systems"]] == ["vxp.api"] and secret not in str(body)
        async with aiohttp.ClientSession() as session:
            client = VdxpClient(session, api.base + "/vdxp", "vxp.api", secret)
            assert (await client.received())["status"] == "OK"
            status, body = await api.call("POST", "/api/v1/admin/vdxp/systems/vxp.api/revoke", "admin")
            assert status == 200 and body["active"] is False
            answer = await client.received()
            assert answer["status"] == "FAIL" and answer["ErrorCode"] == "vdxp.unknown_system"
        status, body = await api.call("POST", "/api/v1/admin/vdxp/systems/vxp.api/revoke", "admin")
        assert status == 409
        status, body = await api.call("POST", "/api/v1/admin/vdxp/systems/vxp.none/revoke", "admin")
        assert status == 404


async def test_console_lists_systems_without_secrets(env):
    from tests.web.dash import Dash

    async with env.running(), api_for(env) as api:
        status, body = await api.call("POST", "/api/v1/admin/vdxp/systems", "admin",
                                      json={"id": "vxp.<b>dash</b>", "agency": H41})
        assert status == 400  # ids are plain; nothing to escape can get in
        status, body = await api.call("POST", "/api/v1/admin/vdxp/systems", "admin", json={"id": "vxp.dash", "agency": H41})
        secret = body["secret"]
        for lang, title in (("en", "VDXP systems"), (None, "Hệ thống VDXP")):  # None: the default, Vietnamese
            async with Dash(api.base, lang=lang) as dash:
                await dash.admin(api.tokens["auditor"])
                status, text, _ = await dash.get("/admin/vdxp")
                assert status == 200 and 'data-system="vxp.dash"' in text and H41 in text and "Nghệ An" in text
                assert title in text and 'href="/admin/vdxp"' in text  # in the navigation
                assert secret not in text


async def test_secrets_never_in_logs_metrics_or_errors(env, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    async with env.running(), api_for(env) as api:
        status, body = await api.call("POST", "/api/v1/admin/vdxp/systems", "admin", json={"id": "vxp.log", "agency": H41})
        secret = body["secret"]
        async with aiohttp.ClientSession() as session:
            good = VdxpClient(session, api.base + "/vdxp", "vxp.log", secret)
            bad = VdxpClient(session, api.base + "/vdxp", "vxp.log", secret[::-1])
            texts = [json.dumps(await good.received()), json.dumps(await bad.received()),
                     json.dumps(await good.call("getEdoc", {"docId": "nope"}))]
            async with session.get(api.base + "/metrics") as r:
                texts.append(await r.text())
        status, body = await api.call("GET", "/api/v1/admin/vdxp/systems", "admin")
        texts.append(json.dumps(body))
        status, body = await api.call("GET", "/api/v1/audit/entries?event=vdxp.*", "auditor")
        texts.append(json.dumps(body))
    assert "vdxp.bad_signature" in texts[1]
    metrics = texts[3]
    assert 'hub_vdxp_requests_total{operation="getReceivedEdocList",outcome="vdxp.bad_signature"} 1.0' in metrics
    assert 'hub_vdxp_requests_total{operation="getReceivedEdocList",outcome="OK"} 1.0' in metrics
    assert 'hub_vdxp_requests_total{operation="getEdoc",outcome="vdxp.unknown_document"} 1.0' in metrics
    assert all(secret not in t for t in texts) and secret not in caplog.text
