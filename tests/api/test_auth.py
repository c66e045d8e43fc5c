"""Who may call: malformed tokens are refused before the database, and a retired agency's
token or TLS client certificate opens nothing (issue 8, items 10 and 11)."""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import quote

import aiohttp
import pytest

from hub.api.app import ApiState, create_app, start_site
from hub.api.users import add_user
from hub.edxml.builder import build_edoc
from hub.pki import devpki
from hub.registry.store import add_agency, retire_agency
from hub.store.engine import make_engine
from tests.apienv import api_for, free_port
from tests.conftest import G22, H41, H44, make_edoc
from tests.hubenv import drain


async def _raw_get(base: str, path: str, authorization: bytes) -> tuple[int, bytes]:
    """A request with header bytes no HTTP client library would send (not UTF-8, controls)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
                     b"Authorization: " + authorization + b"\r\nConnection: close\r\n\r\n")
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


MALFORMED = [
    b"Bearer hub_\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4_" + b"\xc3" * 43,  # not UTF-8
    b"Bearer hub_0123456789ab_\xe9\xe9\xe9",  # Latin-1 secret
    "Bearer hub_0123456789ab_ệệệ".encode(),  # UTF-8 but not a token alphabet
    b"Bearer hub_\x01\x02_x",  # control characters
    b"Bearer hub_" + b"a" * 5000 + b"_" + b"b" * 5000,  # too long
    b"Bearer hub_0123456789ab_" + b"A" * 43 + b"\x00",
]


async def test_malformed_bearer_tokens_are_401_not_500(env):
    async with env.running(), api_for(env) as api:
        for auth in MALFORMED:
            for path in ("/api/v1/inbox", "/api/v1/admin/users", "/healthz"):
                status, body = await _raw_get(api.base, path, auth)
                assert status in (400, 401), (auth[:40], path, status, body[:300])
                assert b"Traceback" not in body and b"hub.internal" not in body, body
                if status == 401:
                    assert b'"auth.invalid"' in body, body


async def test_a_retired_agencys_token_opens_nothing(env):
    async with env.running(), api_for(env) as api:
        g = await env.adapter(G22, start=False)
        h41 = await env.adapter(H41)
        doc = make_edoc(G22, (H41,))
        data = g.sign(build_edoc(doc, []))
        xml = {"Content-Type": "application/xml"}
        status, body = await api.call("POST", "/api/v1/documents", "g22", data=data, headers=xml)
        assert status == 202, body
        await drain(h41, 1)
        path = "/api/v1/documents/" + quote(doc.document_id, safe="")
        assert (await api.call("GET", path, "g22"))[0] == 200
        assert (await api.call("GET", "/api/v1/inbox", "g22"))[0] == 200

        engine = make_engine(env.settings.database_url)
        try:
            await retire_agency(engine, G22, actor="test")
        finally:
            await engine.dispose()
        again = g.sign(build_edoc(make_edoc(G22, (H41,)), []))
        for method, p, kw in (("GET", "/api/v1/inbox", {}), ("POST", "/api/v1/inbox/ack", {"json": {"ids": ["x"]}}),
                              ("POST", "/api/v1/documents", {"data": again, "headers": xml}),
                              ("GET", path, {}), ("POST", path + "/status", {"json": {"code": "01"}})):
            status, body = await api.call(method, p, "g22", **kw)
            assert status == 401 and body["reason"] == "auth.invalid", (method, p, status, body)
            assert "retired" in body["message"]
        # other agencies are unaffected
        assert (await api.call("GET", "/api/v1/inbox", "h41"))[0] == 200


async def test_a_retired_agencys_tls_certificate_opens_nothing(env, tmp_path):
    pki = env.pki
    server_cert, server_key = devpki.issue(pki.ca_cert, pki.ca_key, "127.0.0.1")
    client_cert, client_key = devpki.issue(pki.ca_cert, pki.ca_key, f"{H44} TLS client")
    for name, data in {"server.pem": devpki.cert_pem(server_cert), "server.key": devpki.key_pem(server_key),
                       "client.pem": devpki.cert_pem(client_cert), "client.key": devpki.key_pem(client_key),
                       "ca.pem": devpki.cert_pem(pki.ca_cert)}.items():
        (tmp_path / name).write_bytes(data)
    engine = make_engine(env.settings.database_url)
    await add_agency(engine, H44, certs=[client_cert])
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
            async def get(path: str) -> tuple[int, dict]:
                ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
                ctx.check_hostname = False
                ctx.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
                async with aiohttp.ClientSession() as s, s.get(f"https://127.0.0.1:{port}{path}", ssl=ctx) as r:
                    return r.status, await r.json()

            assert (await get("/api/v1/inbox"))[0] == 200
            engine = make_engine(env.settings.database_url)
            try:
                await retire_agency(engine, H44, actor="test")
            finally:
                await engine.dispose()
            # at once: not after some cache expires
            status, body = await get("/api/v1/inbox")
            assert status == 401 and body["reason"] == "auth.invalid" and "retired" in body["message"], body
        finally:
            await runner.cleanup()


@pytest.mark.parametrize("token", ["hub_", "hub__", "hub_x_", "nothub_0123456789ab_" + "A" * 43])
async def test_token_shape_is_checked_before_the_database(token, tmp_path):
    """Pure: a malformed token never reaches the database (the engine here points nowhere)."""
    from hub.api.users import authenticate

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'none.db'}")
    try:
        assert await authenticate(engine, token) is None
        assert await authenticate(engine, "hub_0123456789ab_" + "\udcff" * 43) is None
    finally:
        await engine.dispose()


async def test_a_well_formed_token_still_works(db_url):
    from hub.api.users import authenticate
    from hub.store.engine import migrate

    engine = make_engine(db_url)
    try:
        await migrate(engine)
        await add_agency(engine, G22, name="VPCP")
        token = await add_user(engine, "sys", "agency", G22, actor="test")
        p = await authenticate(engine, token)
        assert p is not None and p.agency == G22 and p.role == "agency"
        assert await authenticate(engine, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    finally:
        await engine.dispose()
