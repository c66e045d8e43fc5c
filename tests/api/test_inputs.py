"""What the API takes: a submitted package must say it is XML (or raw bytes); `%` and `_` in an
agency search are the characters themselves, not wildcards (issue 8, item 15)."""

from __future__ import annotations

from hub.edxml.builder import build_edoc
from hub.registry.store import add_agency, list_agencies
from hub.store.engine import make_engine, migrate
from tests.apienv import api_for
from tests.conftest import G22, H41, make_edoc
from tests.hubenv import drain

PCT, UND, PLAIN = "000.00.00.H70", "000.00.00.H71", "000.00.00.H72"


async def test_submit_requires_an_xml_or_octet_stream_content_type(env):
    async with env.running(), api_for(env) as api:
        g = await env.adapter(G22, start=False)
        h41 = await env.adapter(H41)
        for ctype in ("text/plain", "application/json", "application/x-www-form-urlencoded",
                      "multipart/form-data; boundary=x", "text/html", "image/png"):
            data = g.sign(build_edoc(make_edoc(G22, (H41,)), []))
            status, body = await api.call("POST", "/api/v1/documents", "g22", data=data,
                                          headers={"Content-Type": ctype})
            assert status == 415 and body["reason"] == "http.unsupported_media_type", (ctype, status, body)
            assert "application/xml" in body["message"]
        sent = 0
        for ctype in ("application/xml", "text/xml; charset=utf-8", "application/octet-stream",
                      "Application/XML"):
            data = g.sign(build_edoc(make_edoc(G22, (H41,)), []))
            status, body = await api.call("POST", "/api/v1/documents", "g22", data=data,
                                          headers={"Content-Type": ctype})
            assert status == 202, (ctype, status, body)
            sent += 1
        got = await drain(h41, sent)
        assert len(got) == sent


async def _agencies_with_wildcards(url: str) -> None:
    engine = make_engine(url)
    try:
        await migrate(engine)
        await add_agency(engine, PCT, name="Công ty 100% vốn nhà nước", connected=False)
        await add_agency(engine, UND, name="Ban_Quản lý dự án", connected=False)
        await add_agency(engine, PLAIN, name="Ban Quản lý khu kinh tế", connected=False)
    finally:
        await engine.dispose()


async def test_search_wildcards_are_literal_in_the_store(db_url):
    await _agencies_with_wildcards(db_url)
    engine = make_engine(db_url)
    try:
        for search, expected in (("%", [PCT]), ("100%", [PCT]), ("_", [UND]), ("ban_", [UND]),
                                 ("Ban", [UND, PLAIN]), ("\\", []), ("%_", [])):
            total, rows = await list_agencies(engine, search)
            assert [r["code"] for r in rows] == expected and total == len(expected), (search, rows)
    finally:
        await engine.dispose()


async def test_search_wildcards_are_literal_in_the_admin_api(env):
    await _agencies_with_wildcards(env.settings.database_url)
    async with env.running(), api_for(env) as api:
        for connected in ("", "&connected=false"):
            for search, expected in (("%25", [PCT]), ("_", [UND]), ("ban_", [UND]), ("BAN", [UND, PLAIN])):
                status, body = await api.call("GET", f"/api/v1/admin/agencies?search={search}{connected}", "admin")
                assert status == 200, body
                assert [a["code"] for a in body["agencies"]] == expected, (search, connected, body["agencies"])


async def test_a_request_aiohttp_cannot_read_is_answered_in_json():
    """A request line over the server's limit (8,190 bytes) or a line that is not HTTP never reaches
    the app or its middlewares; the answer is still the API's JSON error, with what to do."""
    import asyncio
    import json

    from aiohttp import web

    from hub.api.app import start_site
    from tests.apienv import free_port

    async def ok(_request):
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/x", ok)
    port = free_port()
    runner = await start_site(app, "127.0.0.1", port)

    async def raw(request: bytes) -> tuple[int, dict, dict]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        head, _, body = (await asyncio.wait_for(reader.read(), 10)).partition(b"\r\n\r\n")
        writer.close()
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        return int(lines[0].split()[1]), headers, json.loads(body)

    try:
        status, headers, body = await raw(b"GET /x?search=" + b"%F0%9F%98%80" * 1000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 400 and headers["Content-Type"].startswith("application/json"), (status, headers)
        assert body["reason"] == "http.request_too_long" and "shorten the query" in body["message"]
        status, headers, body = await raw(b"GET /x HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
        assert status == 400 and body["reason"] == "http.request_too_long"
        status, headers, body = await raw(b"\x16\x03\x01 not http at all\r\n\r\n")
        assert status == 400 and headers["Content-Type"].startswith("application/json")
        assert body["reason"] == "http.bad_request" and body["message"].startswith("the request could not be read as HTTP")
        status, headers, body = await raw(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status == 200 and body == {}
    finally:
        await runner.cleanup()
