"""Operators' view: health, readiness, metrics, JSON errors, size limits, TLS client certificates,
structured logs."""

from __future__ import annotations

import json
import logging
import ssl
from datetime import datetime, timedelta, timezone

import aiohttp

from hub.api.app import ApiState, create_app, start_site
from hub.edxml.builder import build_edoc
from hub.logs import JsonFormatter
from hub.pki import devpki
from hub.pki.identity import Identity
from hub.registry.store import add_agency
from hub.store.engine import make_engine
from tests.apienv import api_for, free_port
from tests.conftest import G22, H41, make_edoc
from tests.hubenv import drain, until


async def test_health_ready_and_metrics(env):
    async with env.running(), api_for(env) as api:
        status, body = await api.call("GET", "/healthz")
        assert status == 200 and body["status"] == "ok"
        status, body = await api.call("GET", "/readyz")
        assert status == 200, body
        assert all(c["ok"] for c in body["checks"].values()) and set(body["checks"]) == {"database", "rabbitmq", "consuming", "hub_identity"}
        g = await env.adapter(G22)
        h41 = await env.adapter(H41)
        await g.send_document(make_edoc(G22, (H41,)), [])
        await g.publish(g.sign(build_edoc(make_edoc(G22, ("000.00.00.H99",)), [])))
        await drain(h41, 1)
        await drain(g, 1)
        status, text = await api.call("GET", "/metrics")
        assert status == 200
        assert 'hub_packages_total{outcome="accepted"} 1.0' in text
        assert 'hub_refusals_total{reason="authority.recipient_unknown"} 1.0' in text
        assert "hub_check_seconds_bucket" in text and "hub_check_seconds_count 2.0" in text
        assert 'hub_queue_depth{queue="hub.intake"}' in text and 'hub_queue_depth{queue="inbox.000.00.00.H41"}' in text
        assert f'hub_certificate_days_to_expiry{{agency="{G22}"' in text

        # The outbox rows are marked sent after the broker confirmed them (a copy can reach its
        # inbox first), by the next batch's transaction or, on an idle hub, at once: the backlog
        # settles to 0 without anything else happening.
        async def settled() -> bool:
            return "hub_outbox_backlog 0.0" in (await api.call("GET", "/metrics"))[1]

        await until(settled, timeout=15)


async def test_readyz_reports_an_expired_hub_certificate(env, tmp_path):
    async with env.running() as hub:
        cert, key = devpki.issue(env.pki.ca_cert, env.pki.ca_key, "old hub", days=10,
                                 not_before=datetime.now(timezone.utc) - timedelta(days=30))
        state = ApiState(env.settings, hub.engine, hub.backbone, Identity("000.00.99.G22", key, cert), hub=hub)
        port = free_port()
        runner = await start_site(create_app(state), "127.0.0.1", port)
        try:
            async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/readyz") as r:
                body = await r.json()
        finally:
            await runner.cleanup()
    assert r.status == 503
    assert body["checks"]["hub_identity"]["ok"] is False and "not valid now" in body["checks"]["hub_identity"]["error"]
    assert body["checks"]["database"]["ok"] and body["checks"]["rabbitmq"]["ok"]


async def test_json_errors_everywhere_and_size_limit(env):
    async with env.running(), api_for(env) as api:
        status, body = await api.call("GET", "/api/v1/nowhere", "admin")
        assert status == 404 and set(body) >= {"reason", "message"}
        status, body = await api.call("GET", "/api/v1/inbox")
        assert status == 401 and body["reason"] == "auth.required"
        status, body = await api.call("GET", "/api/v1/inbox", headers={"Authorization": "Basic abc"})
        assert status == 401 and body["reason"] == "auth.invalid"
        status, body = await api.call("GET", "/api/v1/inbox", headers={"Authorization": "Bearer hub_nope_nope"})
        assert status == 401
        status, body = await api.call("POST", "/api/v1/inbox/ack", "g22", data=b"{not json")
        assert status == 400 and "JSON" in body["message"]
        import io

        too_big = io.BytesIO(b"x" * (env.settings.max_package_bytes + 70 * 1024))
        status, body = await api.call("POST", "/api/v1/documents", "g22", data=too_big)
        assert status == 413 and body["reason"] == "http.too_large"
        assert "Traceback" not in json.dumps(body)


async def test_tls_client_certificate_pinned_in_the_registry(env, tmp_path):
    """An agency system authenticates with a TLS client certificate pinned to it."""
    pki = env.pki
    server_cert, server_key = devpki.issue(pki.ca_cert, pki.ca_key, "127.0.0.1")
    client_cert, client_key = devpki.issue(pki.ca_cert, pki.ca_key, f"{G22} TLS client")
    for name, data in {"server.pem": devpki.cert_pem(server_cert), "server.key": devpki.key_pem(server_key),
                       "client.pem": devpki.cert_pem(client_cert), "client.key": devpki.key_pem(client_key),
                       "ca.pem": devpki.cert_pem(pki.ca_cert)}.items():
        (tmp_path / name).write_bytes(data)
    engine = make_engine(env.settings.database_url)
    await add_agency(engine, G22, certs=[client_cert])  # pin the TLS certificate too
    await engine.dispose()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    server_ctx.load_verify_locations(tmp_path / "ca.pem")
    server_ctx.verify_mode = ssl.CERT_OPTIONAL
    async with env.running() as hub:
        state = ApiState(env.settings, hub.engine, hub.backbone, hub.identity, hub=hub)
        port = free_port()
        runner = await start_site(create_app(state), "127.0.0.1", port, ssl_context=server_ctx)
        try:
            client_ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
            client_ctx.check_hostname = False
            async with aiohttp.ClientSession() as s:
                async with s.get(f"https://127.0.0.1:{port}/api/v1/inbox", ssl=client_ctx) as r:
                    assert r.status == 401  # no certificate, no token
            client_ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
            client_ctx.check_hostname = False
            client_ctx.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
            async with aiohttp.ClientSession() as s:  # a new session: TLS connections are pooled
                async with s.get(f"https://127.0.0.1:{port}/api/v1/inbox", ssl=client_ctx) as r:
                    assert r.status == 200, await r.text()
                    assert (await r.json())["packages"] == []
                async with s.get(f"https://127.0.0.1:{port}/api/v1/admin/users", ssl=client_ctx) as r:
                    assert r.status == 403  # an agency, not an admin
        finally:
            await runner.cleanup()


def test_json_log_lines_carry_the_document_id():
    rec = logging.LogRecord("hub.worker", logging.INFO, __file__, 1, "refused %s", ("X",), None)
    rec.document_id = "000.00.00.G22,2026/11/27,1/VPCP"
    rec.reason = "schema.invalid"
    line = json.loads(JsonFormatter().format(rec))
    assert line["document_id"] == "000.00.00.G22,2026/11/27,1/VPCP" and line["reason"] == "schema.invalid"
    assert line["level"] == "info" and line["message"] == "refused X"


async def test_nul_characters_are_refused_not_a_server_error(env):
    async with env.running(), api_for(env) as api:
        for path in ("/api/v1/documents/a%00b", "/api/v1/documents/abc?sender=a%00", "/api/v1/audit/entries?document_id=a%00"):
            status, body = await api.call("GET", path, "admin")
            assert status == 400 and body["reason"] == "http.bad_request", (path, body)
