"""The dashboard in a real browser (headless Chromium over the DevTools protocol): sign in through
the form, read the overview's charts from the DOM, replay a dead letter with the form's buttons,
and keep screenshots (the overview also at /tmp/hub-admin-overview.png for people to look at)."""

from __future__ import annotations

import shutil
import struct
from urllib.parse import quote

import pytest

from hub import constants as C
from hub.audit.sealer import seal
from hub.edxml.builder import build_edoc
from tests.apienv import api_for
from tests.conftest import G22, H41, H44, make_edoc
from tests.hubenv import drain
from tests.web.cdp import Chromium
from tests.web.dash import until
from tests.web.test_pages import _pending

KEEP = "/tmp/hub-admin-overview.png"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


async def _traffic(env, api) -> list:
    """Accepted documents and statuses, refusals of several kinds, two dead letters."""
    g = await env.adapter(G22)
    h41 = await env.adapter(H41)
    h44 = await env.adapter(H44)
    docs = [make_edoc(G22, (H41, H44) if i % 2 else (H41,), priority=1 if i == 3 else 0) for i in range(6)]
    for doc in docs:
        await g.send_document(doc, [])
    await g.publish(g.sign(build_edoc(make_edoc(G22, ("000.00.00.H99",)), [])))  # authority.recipient_unknown
    await g.publish(g.sign(build_edoc(make_edoc(G22, ("000.00.00.H98",)), [])))
    await g.publish(g.sign(build_edoc(make_edoc(G22, (H44,), doc_type="3"), [])))  # authority.not_competent
    tampered = g.sign(build_edoc(make_edoc(G22, (H41,)), [])).replace(b"VPCP", b"VPCX", 1)
    await g.publish(tampered)  # signature.digest_mismatch
    status, _ = await api.call("POST", "/api/v1/documents", "g22", data=b"<not xml")  # refused at the gateway
    assert status == 400
    await drain(h41, 6)
    await drain(h44, 3)
    await drain(g, 4)  # the hub's four status 02 answers
    for doc in docs[:4]:
        await h41.send_status(G22, doc.document_id, "01", "Đã nhận")
    await h41.send_status(G22, docs[0].document_id, "03", "Đã vào sổ, chuyển lãnh đạo xử lý")
    await drain(g, 5)
    good = g.sign(build_edoc(make_edoc(G22, (H41,)), []))
    await env.hub.backbone.publish(C.EXCHANGE_DEAD, "", good, headers={
        C.H_REASON: "transient.unavailable", C.H_MESSAGE: "the database was down while recording it",
        C.H_ORIGINAL_USER: env.user_of(G22)})
    await env.hub.backbone.publish(C.EXCHANGE_DEAD, "", b"<not xml", headers={
        C.H_REASON: "parse.not_xml", C.H_MESSAGE: "the bytes are not well-formed XML (line 1)"})
    await until(lambda: _pending(env, 2))
    assert await seal(env.hub.engine, env.hub.identity) is not None  # what the sealer does every 10 s
    return docs


@pytest.mark.parametrize("env", ["embedded"], indirect=True)
async def test_dashboard_in_chromium(env, tmp_path):
    async with env.running(), api_for(env) as api:
        docs = await _traffic(env, api)
        h41 = env.adapters[1]
        async with Chromium(tmp_path / "chromium") as browser:
            # the sign-in form, filled and submitted as a person would
            await browser.goto(api.base + "/admin/login")
            assert await browser.eval("document.title") == "Sign in · edXML Hub"
            login_png = await browser.screenshot(tmp_path / "login.png", min_height=800)
            assert png_size(login_png)[0] == 1280
            token = api.tokens["admin"]
            await browser.eval_and_wait_load(
                f"document.querySelector('#token').value = {token!r}; "
                "document.querySelector('button[type=submit]').click(); true")
            assert await browser.eval("location.pathname") == "/admin"

            # the overview: counters, two SVG charts with bars, inline CSS applied under the CSP
            assert await browser.eval("document.title") == "Overview · edXML Hub"
            assert await browser.eval("document.querySelectorAll('svg').length") >= 2
            assert await browser.eval("document.querySelector('[data-counter=accepted]').textContent") == "11"
            assert await browser.eval("document.querySelector('[data-counter=refused]').textContent") == "4"
            assert await browser.eval(
                "document.querySelectorAll('[data-chart=per-minute] svg rect[fill=\"#2f855a\"]').length") >= 1
            assert await browser.eval("document.querySelectorAll('[data-chart=reasons] svg g').length") == 4
            assert await browser.eval(
                "document.querySelector('[data-chart=per-minute] svg').getBoundingClientRect().width") > 900
            assert await browser.eval("getComputedStyle(document.querySelector('.nav')).backgroundColor") == \
                "rgb(13, 59, 102)"
            text = await browser.eval("document.body.innerText")
            assert "Văn phòng Chính phủ" in text and "Not yet sealed" in text
            png = await browser.screenshot(tmp_path / "overview.png")
            width, height = png_size(png)
            assert width == 1280 and height >= 900 and len(png) > 40_000, (width, height, len(png))
            shutil.copyfile(tmp_path / "overview.png", KEEP)

            # agencies, and a document's timeline
            await browser.goto(api.base + "/admin/agencies")
            assert await browser.eval("document.querySelectorAll('tbody tr').length") == 4
            await browser.screenshot(tmp_path / "agencies.png")
            await browser.goto(api.base + "/admin/documents/" + quote(docs[0].document_id, safe=""))
            text = await browser.eval("document.body.innerText")
            assert "03 · accepted and registered" in text and "Đã vào sổ" in text
            await browser.screenshot(tmp_path / "document.png")

            # a dead letter replayed with the page's checkbox and button (no JavaScript in the page)
            await browser.goto(api.base + "/admin/dead-letters")
            rows = await browser.eval("[...document.querySelectorAll('tr[data-dead]')].map(r => r.innerText)")
            assert len(rows) == 2
            await browser.screenshot(tmp_path / "dead-letters.png")
            await browser.eval_and_wait_load(
                "[...document.querySelectorAll('tr[data-dead]')].find(r => r.innerText.includes('transient'))"
                ".querySelector('input[type=checkbox]').click();"
                "document.querySelector('button[value=replay]').click(); true")
            assert await browser.eval("location.pathname") == "/admin/dead-letters"
            assert "1 replayed" in await browser.eval("document.querySelector('.flash').innerText")
            assert await browser.eval("document.querySelectorAll('tr[data-dead]').length") == 1
            await drain(h41, 1)

            # nothing was blocked or failed in the page (CSP violations are logged as errors)
            problems = [e for e in browser.log if e.get("entry", {}).get("level") == "error" or "exceptionDetails" in e]
            assert problems == [], problems
        for name in ("agencies", "document", "dead-letters", "login"):
            shutil.copyfile(tmp_path / f"{name}.png", f"/tmp/hub-admin-{name}.png")
