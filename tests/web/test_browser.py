"""The console in a real browser (headless Chromium over the DevTools protocol), on real RabbitMQ
and PostgreSQL: signed in through the form as an admin and as an auditor, every page in
Vietnamese with Vietnam times, a document past its due date on the Quá hạn page under its
recipient, an inbox without consumer flagged on the queues page, the audit search finding a
document by part of its number and exporting CSV, a dead letter replayed with the page's buttons,
and no page scrolling sideways at 390 px. Screenshots of every page at both widths go to
``$HUB_SCREENSHOTS`` when set (``docs/screenshots`` in the README), else to the test's tmp dir."""

from __future__ import annotations

import os
import re
import struct
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import sqlalchemy as sa

from hub import constants as C
from hub.audit.sealer import seal
from hub.edxml.builder import build_edoc
from hub.store.tables import documents, records
from tests.apienv import api_for
from tests.conftest import G22, H41, H44, make_edoc
from tests.hubenv import drain
from tests.web.cdp import Chromium
from tests.web.dash import until
from tests.web.test_pages import _pending

VN = ZoneInfo("Asia/Ho_Chi_Minh")
VN_TIME = re.compile(r"\b\d\d/\d\d/20\d\d \d\d:\d\d\b")
ISO_OR_UTC = re.compile(r"\b20\d\d-\d\d-\d\d[ T]\d\d:\d\d|\bUTC\b(?!\+7)")
PAGES = ("overview", "overdue", "report", "queues", "dead-letters", "audit", "agencies", "documents", "document",
         "dead-letter")


# WCAG 2 contrast of every visible text element against the first opaque background behind it
LOW_CONTRAST = """(() => {
  const parse = c => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(',').map(Number); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const behind = el => { for (let e = el; e; e = e.parentElement) { const s = getComputedStyle(e);
      if (s.backgroundImage !== 'none') return null; const c = parse(s.backgroundColor); if (c && c.a > 0.5) return c; }
    return {r: 255, g: 255, b: 255, a: 1}; };
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('svg') || !el.getClientRects().length) continue;
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const fg = parse(getComputedStyle(el).color), bg = behind(el); if (!fg || !bg) continue;
    const [a, b] = [lum(fg), lum(bg)]; const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) bad.push(`${el.tagName}.${el.className} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  return bad; })()"""


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


async def shoot(browser: Chromium, path: Path, width: int, height: int) -> bytes:
    """The top ``height`` CSS pixels of the page at ``width`` (small files for the README)."""
    await browser.page("Emulation.setDeviceMetricsOverride",
                       {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    import base64

    shot = await browser.page("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})
    data = base64.b64decode(shot["data"])
    path.write_bytes(data)
    return data


async def _traffic(env, api, today):
    """Documents with due dates (one late and open, one late but done, one due tomorrow, one to
    an agency whose adapter is not running), refusals, a dead letter."""
    g = await env.adapter(G22)
    h41 = await env.adapter(H41)
    late = replace(make_edoc(G22, (H41,), number=987654, subject="V/v báo cáo tình hình giải ngân vốn đầu tư công"),
                   due_date=today - timedelta(days=5))
    done = replace(make_edoc(G22, (H41,), doc_type="2"), due_date=today - timedelta(days=3))
    soon = replace(make_edoc(G22, (H41,), priority=2), due_date=today + timedelta(days=1))
    to_h44 = make_edoc(G22, (H44,))  # H44's adapter never connects: its inbox has no consumer
    for doc in (late, done, soon, to_h44):
        await g.send_document(doc, [])
    await g.publish(g.sign(build_edoc(make_edoc(G22, ("000.00.00.H99",)), [])))  # authority.recipient_unknown
    tampered = g.sign(build_edoc(make_edoc(G22, (H41,)), [])).replace(b"VPCP", b"VPCX", 1)
    await g.publish(tampered)  # signature.digest_mismatch
    await drain(h41, 3)
    await drain(g, 2)  # the hub's status 02 answers
    await h41.send_status(G22, late.document_id, "01", "Đã nhận")
    await drain(g, 1)
    for code in ("03", "04", "05", "06"):
        await h41.send_status(G22, done.document_id, code, "Đã xử lý xong" if code == "06" else "")
        await drain(g, 1)
    await env.hub.backbone.publish(C.EXCHANGE_DEAD, "", g.sign(build_edoc(make_edoc(G22, (H41,)), [])), user_id=env.hub.backbone.user, headers={
        C.H_REASON: "transient.unavailable", C.H_MESSAGE: "the database was down while recording it",
        C.H_ORIGINAL_USER: env.user_of(G22)})
    await until(lambda: _pending(env, 1))
    assert await seal(env.hub.engine, env.hub.identity) is not None
    return late, done, soon, h41


async def _sign_in(browser: Chromium, base: str, token: str) -> None:
    await browser.goto(base + "/admin/login")
    assert await browser.eval("document.documentElement.lang") == "vi"
    assert await browser.eval("document.title") == "Đăng nhập · Trục liên thông edXML"
    await browser.eval_and_wait_load(
        f"document.querySelector('#token').value = {token!r}; "
        "document.querySelector('button[type=submit]').click(); true")
    assert await browser.eval("location.pathname") == "/admin"


async def _vietnamese_page(browser: Chromium) -> str:
    """The page's text; it is Vietnamese, refreshes itself or says when it was made, shows Vietnam times."""
    assert await browser.eval("document.documentElement.lang") == "vi"
    assert not await browser.eval("!!document.querySelector('.flash.error:not([data-alarms])')"), await browser.eval(
        "document.querySelector('.flash.error:not([data-alarms])').innerText")
    text = await browser.eval("document.body.innerText")
    assert "Cập nhật lúc" in text and "giờ Việt Nam" in text, text[:300]
    assert not ISO_OR_UTC.search(text), ISO_OR_UTC.search(text)
    # the skip link comes first and leads to the content
    assert await browser.eval("document.querySelector('a').getAttribute('href')") == "#main"
    return text


@pytest.mark.parametrize("env", ["rabbitmq"], indirect=True)
async def test_console_in_chromium(env, tmp_path):
    shots = Path(os.environ.get("HUB_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    today = datetime.now(VN).date()
    async with env.running(), api_for(env) as api:
        late, done, soon, h41 = await _traffic(env, api, today)
        [(received_at,)] = await env.scalar(sa.select(documents.c.received_at)
                                            .where(documents.c.document_id == late.document_id))
        received_vn = received_at.replace(tzinfo=received_at.tzinfo or timezone.utc).astimezone(VN)
        urls = {
            "overview": "/admin", "overdue": "/admin/overdue", "report": "/admin/report",
            "queues": "/admin/queues", "dead-letters": "/admin/dead-letters",
            "audit": "/admin/audit?number=87654", "agencies": "/admin/agencies?q=nghe%20an",
            "documents": "/admin/documents", "document": "/admin/documents/" + quote(late.document_id, safe=""),
        }
        async with Chromium(tmp_path / "chromium") as browser:
            await browser.goto(api.base + "/admin/login")
            await shoot(browser, shots / "login-desktop.png", 1280, 700)
            await _sign_in(browser, api.base, api.tokens["admin"])

            # overview: Vietnamese, counters from the database, charts, refreshes itself
            text = await _vietnamese_page(browser)
            assert await browser.eval("document.title") == "Tổng quan · Trục liên thông edXML"
            assert await browser.eval("document.querySelector('meta[http-equiv=refresh]').content") == "15"
            assert await browser.eval("document.querySelector('[data-counter=accepted]').textContent") == "9"  # 4 documents, 5 statuses
            assert await browser.eval("document.querySelector('[data-counter=refused]').textContent") == "2"
            assert await browser.eval("document.querySelectorAll('[data-chart=reasons] svg g').length") == 2
            assert await browser.eval("document.querySelector('[data-dead-pending]').textContent") == "1"
            for window in ("1h", "24h", "7d"):  # throughput from the audit log: accepted, refused
                cells = await browser.eval(f"[...document.querySelectorAll('[data-window=\"{window}\"] td')]"
                                           ".map(td => td.textContent)")
                assert cells[1:3] == ["9", "2"], (window, cells)
            auth = await browser.eval(f"[...document.querySelectorAll('[data-authentication] tr')]"
                                      f".find(r => r.innerText.includes('{G22}')).innerText")
            assert auth.split("\t")[1:] == ["4", "0", "0"]  # 4 signed documents, none SHA-1, none by connection
            assert "Văn phòng Chính phủ" in text and "Chưa niêm phong" in text and "Tổng quan" in text
            assert await browser.eval("getComputedStyle(document.querySelector('.nav')).backgroundColor") == \
                "rgb(13, 59, 102)"

            # Quá hạn: the late document's copy for its recipient, days late, waiting time; the answered one absent
            await browser.goto(api.base + urls["overdue"])
            text = await _vietnamese_page(browser)
            assert await browser.eval("document.querySelector('h1').textContent") == "Quá hạn"
            row = f"tr[data-doc='{late.document_id}'][data-recipient='{H41}']"
            assert await browser.eval(f"document.querySelector(\"{row}\").dataset.late") == "5"
            cells = await browser.eval(f"document.querySelector(\"{row}\").innerText")
            assert "quá hạn 5 ngày" in cells and (today - timedelta(days=5)).strftime("%d/%m/%Y") in cells
            assert "01 · đã đến" in cells and "987654/VPCP-TTĐT" in cells
            assert await browser.eval(f"!!document.querySelector(\"[data-doc='{soon.document_id}']\")")
            assert not await browser.eval(f"!!document.querySelector(\"[data-doc='{done.document_id}']\")")
            assert await browser.eval(f"document.querySelector(\"[data-group='{H41}'] [data-overdue-count]\")"
                                      ".dataset.overdueCount") == "1"
            assert "UBND tỉnh Nghệ An" in text
            # the sender filter by a name typed without accents keeps it; another sender's filter drops it
            await browser.goto(api.base + "/admin/overdue?sender=van+phong+chinh+phu&priority=0")
            assert await browser.eval(f"!!document.querySelector(\"[data-doc='{late.document_id}']\")")
            await browser.goto(api.base + f"/admin/overdue?sender={H41}")
            assert not await browser.eval(f"!!document.querySelector(\"[data-doc='{late.document_id}']\")")

            # the report for this month (the default period): H41 received 3, answered one after its
            # due date, two still open of which one overdue
            await browser.goto(api.base + urls["report"])
            await _vietnamese_page(browser)
            cell = f"document.querySelector(\"tr[data-agency='{H41}'] [data-k=%s]\").textContent"
            got = {k: await browser.eval(cell % k) for k in ("received", "on_time", "late", "still_open", "open_overdue")}
            assert got == {"received": "3", "on_time": "0", "late": "1", "still_open": "2", "open_overdue": "1"}, got

            # queues: H44's inbox has no consumer (alarm); H41's adapter is connected
            async def queues_seen():
                await browser.goto(api.base + urls["queues"])
                h41_consumers = await browser.eval(f"document.querySelector(\"tr[data-queue='inbox.{H41}'] "
                                                   "[data-consumers]\").dataset.consumers")
                return h41_consumers not in ("", "0")

            await until(queues_seen, timeout=30, every=1)
            await _vietnamese_page(browser)
            assert await browser.eval(f"document.querySelector(\"tr[data-queue='inbox.{H44}']\").dataset.level") == \
                "alarm"
            flagged = await browser.eval(f"document.querySelector(\"tr[data-queue='inbox.{H44}']\").innerText")
            assert "Báo động" in flagged and "không có bên nhận" in flagged and "Tỉnh H44" in flagged
            assert await browser.eval(f"document.querySelector(\"tr[data-queue='inbox.{H41}']\").dataset.level") != \
                "alarm"

            # keyboard: the first Tab shows the skip link, with a visible focus ring
            await browser.goto(api.base + "/admin")
            for kind in ("keyDown", "keyUp"):
                await browser.page("Input.dispatchKeyEvent", {"type": kind, "key": "Tab", "code": "Tab",
                                                              "windowsVirtualKeyCode": 9})
            assert await browser.eval("document.activeElement.getAttribute('href')") == "#main"
            assert await browser.eval("document.activeElement.getBoundingClientRect().top") >= 0
            assert await browser.eval("getComputedStyle(document.activeElement).outlineStyle") == "solid"

            # desktop screenshots of every page (before the dead letter is replayed); text contrast >= 4.5:1
            [dead] = await _pending(env, 1)
            urls["dead-letter"] = f"/admin/dead-letters/{dead['id']}"
            for name in PAGES:
                await browser.goto(api.base + urls[name])
                await _vietnamese_page(browser)
                assert await browser.eval(LOW_CONTRAST) == [], name
                if name == "overview":  # the check can fail: light grey text on white is caught
                    await browser.eval("document.querySelector('main').insertAdjacentHTML('beforeend', "
                                       "'<p id=probe style=\"color:#999\">thử</p>'); true")
                    assert len(await browser.eval(LOW_CONTRAST)) == 1
                    await browser.goto(api.base + urls[name])
                png = await shoot(browser, shots / f"{name}-desktop.png", 1280, 1000)
                assert png_size(png) == (1280, 1000)

            # a dead letter: its payload and reason, then replayed with the list's checkbox and button
            await browser.goto(api.base + urls["dead-letter"])
            assert "transient.unavailable" in await browser.eval("document.querySelector('[data-reason]').innerText")
            assert "edXMLEnvelope" in await browser.eval("document.querySelector('[data-payload]').textContent")
            await browser.goto(api.base + "/admin/dead-letters?select=all")
            assert await browser.eval("document.querySelectorAll('input[type=checkbox]:checked').length") == 1
            await browser.eval_and_wait_load("document.querySelector('button[value=replay]').click(); true")
            assert "Đã gửi lại 1" in await browser.eval("document.querySelector('.flash').innerText")
            await drain(h41, 1)

            # at 390 px (a phone) no page scrolls sideways; tables scroll inside themselves
            for name in PAGES:
                await browser.page("Emulation.setDeviceMetricsOverride",
                                   {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
                await browser.goto(api.base + urls[name])
                width = await browser.eval("document.documentElement.scrollWidth")
                assert width <= 390, (name, width)
                await shoot(browser, shots / f"{name}-phone.png", 390, 1100)

            # sign out; the auditor signs in on the same browser
            await browser.page("Emulation.setDeviceMetricsOverride",
                               {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})
            await browser.goto(api.base + "/admin")
            await browser.eval_and_wait_load("document.querySelector('form[action=\"/admin/logout\"] button').click(); true")
            assert await browser.eval("location.pathname") == "/admin/login"
            await _sign_in(browser, api.base, api.tokens["auditor"])
            assert await browser.eval("document.querySelector('.nav .role').textContent") == "kiểm toán"

            # audit search by part of the number, through the form
            await browser.goto(api.base + "/admin/audit")
            await browser.eval_and_wait_load(
                "document.querySelector('input[name=number]').value = '87654'; "
                "document.querySelector('form[role=search] button[type=submit]').click(); true")
            text = await _vietnamese_page(browser)
            assert late.document_id in text and "package.accepted" in text
            times = VN_TIME.findall(text)
            assert received_vn.strftime("%d/%m/%Y %H:%M") in times, (received_vn, times[:5])
            csv_href = await browser.eval("document.querySelector('[data-export=csv]').getAttribute('href')")
            bundle_href = await browser.eval("document.querySelector('[data-bundle]').getAttribute('href')")
            # and with a partial DocumentId in another case
            await browser.goto(api.base + "/admin/audit?document=" + quote(late.document_id.split(",")[2][:8].lower()))
            assert late.document_id in await browser.eval("document.body.innerText")
            # the auditor reads dead letters but has no buttons
            await browser.goto(api.base + "/admin/dead-letters?state=all")
            assert not await browser.eval("!!document.querySelector('button[value=replay]')")

            # the CSV and the evidence bundle, downloaded with the auditor's session cookie
            cookies = (await browser.page("Network.getCookies", {"urls": [api.base + "/admin"]}))["cookies"]
            jar = {c["name"]: c["value"] for c in cookies}
            assert "hub_session" in jar
            async with aiohttp.ClientSession(cookies=jar) as s:
                async with s.get(api.base + csv_href) as r:
                    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
                    body = (await r.read()).decode("utf-8-sig")
                async with s.get(api.base + bundle_href) as r:
                    assert r.status == 200 and r.headers["Content-Type"] == "application/zip"
                    assert (await r.read())[:2] == b"PK"
            lines = body.splitlines()
            assert lines[0].split(";")[:3] == ["STT", "Thời gian", "Sự kiện"]
            assert any(late.document_id in line and received_vn.strftime("%d/%m/%Y %H:%M") in line for line in lines)

            # nothing was blocked or failed in the pages (CSP violations are logged as errors)
            problems = [e for e in browser.log if e.get("entry", {}).get("level") == "error" or "exceptionDetails" in e]
            assert problems == [], problems
        exported = await env.scalar(sa.select(records.c.details).where(records.c.event == "audit.exported"))
        assert {d["what"] for (d,) in exported} == {"csv", "bundle"}
