"""The HTML admin dashboard end to end, on real RabbitMQ + PostgreSQL and on the embedded defaults."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from urllib.parse import quote
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from hub import constants as C
from hub.edxml.builder import build_edoc
from hub.errors import REASONS
from hub.pipeline.deadletters import list_dead
from hub.registry.store import add_agency, import_csv
from hub.store.engine import make_engine
from hub.store.tables import console_sessions, records
from hub.api.state import STATE
from hub.service import running_api
from hub.web.auth import CSRF_KEY, load_csrf_key
from tests.apienv import api_for, free_port
from tests.conftest import G22, H41, make_edoc
from tests.hubenv import drain
from tests.web.dash import Dash, until

VN = ZoneInfo("Asia/Ho_Chi_Minh")

H99 = "000.00.00.H99"  # not registered: a package to it is refused
HOSTILE = "<script>alert(1)</script>"


def counter(text: str, name: str) -> str:
    m = re.search(rf'data-counter="{name}">([^<]*)<', text)
    assert m, f"no counter {name}"
    return m.group(1)


async def _engine_do(env, fn):
    engine = make_engine(env.settings.database_url)
    try:
        return await fn(engine)
    finally:
        await engine.dispose()


async def test_admin_sees_counters_charts_and_a_document_timeline(env):
    async with env.running(), api_for(env) as api:
        g = await env.adapter(G22)
        h41 = await env.adapter(H41)
        doc = make_edoc(G22, (H41,))
        await g.send_document(doc, [])  # accepted
        refused = make_edoc(G22, (H99,))
        await g.publish(g.sign(build_edoc(refused, [])))  # refused by the workers: authority.recipient_unknown
        await drain(h41, 1)
        await drain(g, 1)  # the hub's status 02 for the refusal
        await h41.send_status(G22, doc.document_id, "01", "Đã nhận văn bản")
        await drain(g, 1)
        async with Dash(api.base) as dash:
            await dash.admin(api.tokens["admin"])

            async def delivered_logged():  # the worker logs deliveries just after the broker confirms them
                got = await dash.get("/admin")
                return got if int(counter(got[1], "delivered")) >= 3 else None

            status, text, r = await until(delivered_logged)
        assert status == 200
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "script-src" not in r.headers["Content-Security-Policy"]  # no script may run at all
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        assert "<script" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert counter(text, "accepted") == "2"  # the document and H41's status 01
        assert counter(text, "refused") == "1"
        assert counter(text, "dead") == "0" and counter(text, "duplicates") == "0"
        assert int(counter(text, "delivered")) >= 3
        assert len(re.findall(r"<svg\b", text)) >= 2
        # packages per minute (from the audit log) and refusals by reason with its meaning
        assert 'data-chart="per-minute"' in text and "2 accepted, 1 refused" in text
        assert 'data-chart="reasons"' in text and "authority.recipient_unknown" in text
        assert REASONS["authority.recipient_unknown"] in text
        # queues, outbox, maintenance, checkpoint, last refusals (Vietnamese names readable)
        for q in ("hub.intake", "hub.dead", f"inbox.{H41}", f"inbox.{H41}.urgent"):
            assert f">{q}<" in text, q
        assert 'data-maintenance="running"' in text and "data-outbox=" in text
        assert "Latest audit checkpoint" in text
        assert refused.document_id in text and quote(refused.document_id, safe="") in text
        assert "Văn phòng Chính phủ" in text
        assert f">{api.tokens['admin']}<" not in text and api.tokens["admin"] not in text  # never the token
        # the accepted document's timeline: recipient, status history, audit entries with deltas
        async with Dash(api.base) as dash:
            await dash.admin(api.tokens["auditor"])
            status, text, _ = await dash.get("/admin/documents/" + quote(doc.document_id, safe=""))
            assert status == 200, text
            assert "UBND tỉnh Nghệ An" in text and "01 · arrived" in text and "Đã nhận văn bản" in text
            assert "package.accepted" in text and "status.recorded" in text and "start" in text
            assert re.search(r'class="delta">\+[0-9.]+ (ms|s)<', text)
            # the lookup form redirects to the timeline
            status, _, r = await dash.get("/admin/documents?id=" + quote(doc.document_id, safe=""))
            assert status == 303 and r.headers["Location"] == "/admin/documents/" + quote(doc.document_id, safe="")
            status, text, _ = await dash.get("/admin/documents")
            assert status == 200 and doc.document_id in text
            status, text, _ = await dash.get("/admin/documents/" + quote("000.00.00.G22,2020/01/01,9/X", safe=""))
            assert status == 404 and "knows no document" in text


async def test_auditor_reads_but_cannot_act(env):
    async with env.running() as hub, api_for(env) as api:
        await hub.backbone.publish(C.EXCHANGE_DEAD, "", b"<not xml", user_id=hub.backbone.user, headers={C.H_REASON: "parse.not_xml"})
        await until(lambda: _pending(env, 1))
        async with Dash(api.base) as dash:
            await dash.admin(api.tokens["auditor"])
            for path in ("/admin", "/admin/agencies", "/admin/dead-letters", "/admin/documents"):
                status, text, _ = await dash.get(path)
                assert status == 200, (path, text)
                assert ">auditor<" in text and "Sign out" in text
            status, text, _ = await dash.get("/admin/dead-letters")
            assert "parse.not_xml" in text and "Read-only" in text
            assert 'name="action"' not in text and 'type="checkbox"' not in text and "Replay selected" not in text
            [dead_id] = [int(x) for x in re.findall(r'data-dead="(\d+)"', text)]
            status, text, _ = await dash.post("/admin/dead-letters",
                                              {"csrf": dash.csrf, "action": "replay", "id": str(dead_id)})
            assert status == 403 and "read-only" in text
            status, text, _ = await dash.post("/admin/dead-letters",
                                              {"csrf": dash.csrf, "action": "discard", "id": str(dead_id)})
            assert status == 403
        assert await _pending(env, 1)  # nothing changed


async def _pending(env, n: int):
    total, rows = await _engine_do(env, lambda e: list_dead(e))
    return rows if total == n else None


async def test_sign_in_rules_and_redirects(env):
    async with env.running(), api_for(env) as api:
        async with Dash(api.base) as dash:
            # no session: every page redirects to the sign-in form
            for path in ("/admin", "/admin/agencies?q=H4", "/admin/dead-letters", "/admin/documents/x", "/admin/nope"):
                status, _, r = await dash.get(path)
                assert status == 303 and r.headers["Location"].startswith("/admin/login"), path
            status, _, r = await dash.get("/admin/agencies?q=H4")
            assert r.headers["Location"] == "/admin/login?next=%2Fadmin%2Fagencies%3Fq%3DH4"
            status, _, r = await dash.get("/admin/documents/a%2Fb%C4%90")  # the raw path comes back after login
            assert r.headers["Location"] == "/admin/login?next=%2Fadmin%2Fdocuments%2Fa%252Fb%25C4%2590"
            status, _, r = await dash.post("/admin/dead-letters", {"action": "replay", "id": "1"})
            assert status == 303 and r.headers["Location"].startswith("/admin/login")
            status, text, _ = await dash.get("/admin/login")
            assert status == 200 and 'type="password"' in text and "Tiếng Việt" in text  # the language switch
            # agency tokens are sent to the API; unknown and revoked tokens are refused
            status, text, _ = await dash.login(api.tokens["g22"])
            assert status == 403 and "agency token" in text and "/api/v1" in text
            assert dash.cookie("hub_session") is None
            status, text, _ = await dash.login(api.tokens["revoked"])
            assert status == 401 and "unknown or revoked" in text
            status, text, _ = await dash.login("hub_nope_nope")
            assert status == 401
            assert (await dash.get("/admin"))[0] == 303
            # the login form itself needs its CSRF field (and the nonce cookie behind it)
            status, text, _ = await dash.post("/admin/login", {"token": api.tokens["admin"]})
            assert status == 403 and dash.cookie("hub_session") is None
            # an admin signs in, goes where they wanted, and gets a strict cookie
            status, text, _ = await dash.get("/admin/login?next=%2Fadmin%2Fagencies")
            csrf = re.search(r'name="csrf" value="([^"]+)"', text).group(1)
            async with dash.session.post(api.base + "/admin/login", allow_redirects=False, data={
                    "token": api.tokens["admin"], "csrf": csrf, "next": "/admin/agencies"}) as r:
                assert r.status == 303 and r.headers["Location"] == "/admin/agencies"
                cookie = [h for h in r.headers.getall("Set-Cookie") if h.startswith("hub_session=")][0]
            attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
            assert {"httponly", "path", "samesite"} <= attrs and "secure" not in attrs  # plain http here
            assert "Path=/admin" in cookie and "SameSite=Strict" in cookie
            # an open redirect is not possible through next
            async with Dash(api.base) as other:
                status, text, _ = await other.get("/admin/login")
                csrf = re.search(r'name="csrf" value="([^"]+)"', text).group(1)
                status, _, r = await other.post("/admin/login", {"token": api.tokens["admin"], "csrf": csrf,
                                                                  "next": "//evil.example/admin"})
                assert status == 303 and r.headers["Location"] == "/admin"
            status, text, _ = await dash.get("/admin/nope")
            assert status == 404 and "There is no page" in text
            # a revoked token ends its session at once
            async with Dash(api.base) as bogus:
                bogus.session.cookie_jar.update_cookies({"hub_session": api.tokens["revoked"]})
                status, _, r = await bogus.get("/admin")
                assert status == 303 and "reason=expired" in r.headers["Location"]


async def test_posts_need_the_csrf_field(env):
    async with env.running() as hub, api_for(env) as api:
        await hub.backbone.publish(C.EXCHANGE_DEAD, "", b"<not xml", user_id=hub.backbone.user, headers={C.H_REASON: "parse.not_xml"})
        [row] = await until(lambda: _pending(env, 1))
        async with Dash(api.base) as dash:
            await dash.admin(api.tokens["admin"])
            status, text, _ = await dash.get("/admin/dead-letters")
            assert 'value="replay"' in text and 'value="discard"' in text
            for form in ({"action": "discard", "id": str(row["id"])},
                         {"action": "discard", "id": str(row["id"]), "csrf": ""},
                         {"action": "discard", "id": str(row["id"]), "csrf": "0" * 64},
                         {"action": "discard", "id": str(row["id"]), "csrf": dash.csrf + "0"}):
                status, text, _ = await dash.post("/admin/dead-letters", form)
                assert status == 403 and "security token" in text, form
            assert await _pending(env, 1)
            # the auditor's CSRF token does not fit the admin's session
            async with Dash(api.base) as other:
                await other.admin(api.tokens["auditor"])
                status, text, _ = await dash.post("/admin/dead-letters", {"csrf": other.csrf, "action": "discard",
                                                                         "id": str(row["id"])})
                assert status == 403 and "security token" in text
            status, text, _ = await dash.post("/admin/logout", {})
            assert status == 403
            assert (await dash.get("/admin"))[0] == 200
            # the cookie holds a random session id, never the token; signing out ends it on the server
            session_id = dash.cookie("hub_session")
            assert session_id and api.tokens["admin"] not in session_id and not session_id.startswith("hub_")
            status, _, r = await dash.post("/admin/logout", {"csrf": dash.csrf})
            assert status == 303 and r.headers["Location"] == "/admin/login?reason=signedout"
            assert dash.cookie("hub_session") in (None, "")
            assert (await dash.get("/admin"))[0] == 303
            async with Dash(api.base) as replayed:  # the old cookie, kept by someone, no longer works
                replayed.session.cookie_jar.update_cookies({"hub_session": session_id})
                status, _, r = await replayed.get("/admin")
                assert status == 303 and "reason=expired" in r.headers["Location"]
            # expiry is kept on the server, whatever the browser does with the cookie
            async with Dash(api.base) as late:
                await late.admin(api.tokens["admin"])
                engine = make_engine(env.settings.database_url)
                try:
                    async with engine.begin() as conn:
                        await conn.execute(console_sessions.update().values(
                            expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
                finally:
                    await engine.dispose()
                status, _, r = await late.get("/admin")
                assert status == 303 and "reason=expired" in r.headers["Location"]
            status, text, _ = await dash.get("/admin/login?reason=signedout")
            assert "You are signed out" in text


async def test_the_console_starts_with_the_database_down_and_signs_in_once_it_is_back(env):
    """The API and console start after the workers already take packages: a database that goes
    down in between must not stop the hub. The console then says the database is down, and loads
    its CSRF key (shared through the database) on the first request after it is back."""
    async with env.running() as hub, api_for(env) as api:
        working = hub.engine
        hub.engine = make_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nothing_listens")
        try:
            port = free_port()
            async with running_api(hub, "127.0.0.1", port) as (app, _runner):
                assert app[CSRF_KEY].key is None
                async with Dash(f"http://127.0.0.1:{port}") as dash:
                    status, text, _ = await dash.get("/admin/login")
                    assert status == 503 and "The database is unreachable" in text, text[text.find("<main"):]
                    app[STATE].engine = working  # the database is back
                    await dash.admin(api.tokens["admin"])
                assert app[CSRF_KEY].key == await load_csrf_key(working)
        finally:
            await hub.engine.dispose()
            hub.engine = working


async def test_replay_and_discard_dead_letters_through_the_page(env):
    async with env.running() as hub, api_for(env) as api:
        h41 = await env.adapter(H41)
        g = await env.adapter(G22, start=False)
        docs = [make_edoc(G22, (H41,)) for _ in range(2)]
        for doc in docs:
            await hub.backbone.publish(C.EXCHANGE_DEAD, "", g.sign(build_edoc(doc, [])), user_id=hub.backbone.user, headers={
                C.H_REASON: "transient.unavailable", C.H_MESSAGE: "the database was down",
                C.H_ORIGINAL_USER: env.user_of(G22)})
        await hub.backbone.publish(C.EXCHANGE_DEAD, "", b"<not xml", user_id=hub.backbone.user, headers={C.H_REASON: "parse.not_xml"})
        rows = await until(lambda: _pending(env, 3))
        good = [r["id"] for r in rows if r["reason"] == "transient.unavailable"]
        bad = [r["id"] for r in rows if r["reason"] == "parse.not_xml"]
        async with Dash(api.base) as dash:
            await dash.admin(api.tokens["admin"])
            status, text, _ = await dash.get("/admin/dead-letters")
            assert status == 200 and "the database was down" in text and env.user_of(G22) in text
            assert REASONS["parse.not_xml"] in text
            for i in good + bad:
                assert f'name="id" value="{i}"' in text
            status, _, r = await dash.post("/admin/dead-letters", [
                ("csrf", dash.csrf), ("action", "replay"), ("id", str(good[0])), ("id", str(good[1]))])
            assert status == 303 and r.headers["Location"] == "/admin/dead-letters"
            status, text, _ = await dash.get("/admin/dead-letters")
            assert "2 replayed" in text
            got = await drain(h41, 2)
            assert sorted(x.document_id for x in got) == sorted(d.document_id for d in docs)
            status, text, _ = await dash.get("/admin/dead-letters")
            assert "2 replayed" not in text  # a flash message shows once
            assert re.findall(r'data-dead="(\d+)"', text) == [str(bad[0])]
            # discard, then acting on settled letters says what was skipped
            # discard asks first: the confirmation page lists the letter; only the confirmed form acts
            status, text, _ = await dash.post("/admin/dead-letters", {"csrf": dash.csrf, "action": "discard",
                                                                     "id": str(bad[0])})
            assert status == 200 and f'data-confirm="{bad[0]}"' in text and 'name="confirm" value="yes"' in text
            assert await _pending(env, 1)
            status, _, _ = await dash.post("/admin/dead-letters", {"csrf": dash.csrf, "action": "discard",
                                                                  "id": str(bad[0]), "confirm": "yes"})
            status, text, _ = await dash.get("/admin/dead-letters")
            assert "1 discarded" in text and "No dead letters here" in text
            await dash.post("/admin/dead-letters", [("csrf", dash.csrf), ("action", "replay"),
                                                    ("id", str(good[0])), ("id", "999999")])
            status, text, _ = await dash.get("/admin/dead-letters")
            assert "0 replayed" in text and f"#{good[0]} (replayed)" in text and "#999999 (not found)" in text
            await dash.post("/admin/dead-letters", {"csrf": dash.csrf, "action": "replay"})
            status, text, _ = await dash.get("/admin/dead-letters")
            assert "Select at least one" in text
            status, text, _ = await dash.get("/admin/dead-letters?state=all")
            assert "replayed by admin:admin" in text and "discarded by admin:admin" in text
        entries = await env.scalar(sa.select(records.c.event, records.c.actor)
                                   .where(records.c.event.like("deadletter.%")).order_by(records.c.seq))
        assert [tuple(e) for e in entries] == [("deadletter.replayed", "admin:admin")] * 2 + [
            ("deadletter.discarded", "admin:admin")]


async def test_agencies_search_pages_expiry_and_escaping(env, pki):
    short = pki.issue("000.00.00.H52", days=10)
    hostile_code, short_code = "000.00.00.H51", "000.00.00.H52"

    async def setup(engine):
        await add_agency(engine, hostile_code, name=HOSTILE, connected=False)
        await add_agency(engine, short_code, name="Sở Nội vụ", connected=False, served_by=H41, certs=[short.cert])
        lines = "code,name\n" + "".join(f"000.00.{i:02d}.G01,Sở Tư pháp {i}\n" for i in range(1, 61))
        await import_csv(engine, lines)

    await _engine_do(env, setup)
    async with env.running(), api_for(env) as api:
        async with Dash(api.base) as dash:
            await dash.admin(api.tokens["auditor"])
            status, text, _ = await dash.get("/admin/agencies?q=" + quote("<script>"))
            assert status == 200
            assert HOSTILE not in text and "<script" not in text
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
            assert 'value="&lt;script&gt;"' in text  # the search term is escaped too
            # the pinned certificate that expires in 10 days is red; others are not
            status, text, _ = await dash.get("/admin/agencies?q=H52")
            assert re.search(r'class="exp-bad" data-days="[0-9]"', text) and "Sở Nội vụ" in text
            assert "served by" in text and H41 in text
            status, text, _ = await dash.get("/admin/agencies?q=G22")
            assert 'class="exp-ok"' in text and 'class="exp-bad"' not in text and "own system" in text
            # 66 agencies: page 1 has 50, page 2 the rest, both link to each other
            status, text, _ = await dash.get("/admin/agencies")
            assert len(re.findall(r"<tr data-agency=", text)) == 50
            assert "of 66 agencies" in text and "Page 1 of 2" in text and 'href="/admin/agencies?page=2"' in text
            status, text, _ = await dash.get("/admin/agencies?page=2")
            assert len(re.findall(r"<tr data-agency=", text)) == 16 and "← Previous" in text
            status, text, _ = await dash.get("/admin/agencies?q=" + quote("Tư pháp") + "&page=2")
            assert "51–60 of 60 agencies" in text and "Sở Tư pháp 55" in text and "Sở Tư pháp 5<" not in text
            assert 'href="/admin/agencies?q=T%C6%B0+ph%C3%A1p&amp;page=1"' in text
            status, text, _ = await dash.get("/admin/agencies?page=abc")
            assert status == 200 and "Page 1 of 2" in text
            # a hostile DocumentId is escaped on the page that says it is unknown
            status, text, _ = await dash.get("/admin/documents/" + quote(HOSTILE, safe=""))
            assert status == 404 and HOSTILE not in text and "&lt;script&gt;" in text


async def test_a_broken_dependency_is_explained_not_dumped(env, monkeypatch):
    from hub.errors import TransientError
    from hub.web import agencies, overview

    async with env.running() as hub, api_for(env) as api:
        async with Dash(api.base) as dash:
            await dash.admin(api.tokens["admin"])

            # the broker goes away: the overview still renders the rest and says what to check
            async def broker_down(state):
                raise TransientError("connection refused (127.0.0.1:5672)", code="backbone.unavailable")

            with monkeypatch.context() as m:
                m.setattr(overview, "queue_stats", broker_down)
                status, text, _ = await dash.get("/admin")
            assert status == 200
            assert "The broker is unreachable: check RabbitMQ" in text and "connection refused (127.0.0.1:5672)" in text
            assert "Traceback" not in text and 'data-counter="accepted"' in text and 'data-chart="per-minute"' in text

            # the database goes away: a page that needs it says so, never with a stack trace
            async def db_down(*a, **kw):
                raise sa.exc.OperationalError("SELECT agencies", {}, ConnectionRefusedError("connection refused"))

            with monkeypatch.context() as m:
                m.setattr(agencies, "list_agencies", db_down)
                status, text, _ = await dash.get("/admin/agencies")
            assert status == 503 and "The database is unreachable: check" in text and "connection refused" in text
            assert "Traceback" not in text and "SELECT agencies" not in text

            # anything unexpected: an incident id for the logs, not the exception
            async def boom(*a, **kw):
                raise RuntimeError("secret internals")

            with monkeypatch.context() as m:
                m.setattr(agencies, "list_agencies", boom)
                status, text, _ = await dash.get("/admin/agencies")
            assert status == 500 and "incident" in text and "secret internals" not in text


async def test_vietnamese_by_default_english_per_session(env):
    async with env.running(), api_for(env) as api, Dash(api.base, lang=None) as dash:
        status, text, _ = await dash.get("/admin/login")
        assert '<html lang="vi">' in text and "Đăng nhập" in text and "Mã truy cập API" in text
        await dash.admin(api.tokens["admin"])
        status, text, _ = await dash.get("/admin/queues")
        assert '<html lang="vi">' in text and "<h1>Hàng đợi</h1>" in text
        assert re.search(r"Cập nhật lúc \d\d/\d\d/20\d\d \d\d:\d\d:\d\d", text)
        # the switch keeps the page, and the choice holds for the session
        status, _, r = await dash.get("/admin/lang?to=en&next=%2Fadmin%2Fqueues")
        assert status == 303 and r.headers["Location"] == "/admin/queues"
        status, text, _ = await dash.get("/admin/queues")
        assert '<html lang="en">' in text and "<h1>Queues</h1>" in text and "Updated at" in text
        status, text, _ = await dash.get("/admin/agencies")
        assert '<html lang="en">' in text and "Tiếng Việt" in text
        # never an open redirect, and an unknown language changes nothing
        status, _, r = await dash.get("/admin/lang?to=fr&next=https%3A%2F%2Fevil.example%2F")
        assert status == 303 and r.headers["Location"] == "/admin"
        status, text, _ = await dash.get("/admin")
        assert '<html lang="en">' in text
        status, _, _ = await dash.get("/admin/lang?to=vi&next=%2Fadmin")
        status, text, _ = await dash.get("/admin")
        assert '<html lang="vi">' in text and "Tổng quan" in text


async def test_overview_flags_expiring_certificates_and_stale_crls(env, pki):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from hub.registry.store import add_crl

    short = pki.issue("000.00.00.H52", days=10)
    now = datetime.now(timezone.utc)
    stale = (x509.CertificateRevocationListBuilder().issuer_name(pki.ca_cert.subject)
             .last_update(now - timedelta(days=9)).next_update(now - timedelta(days=2))
             .sign(pki.ca_key, hashes.SHA256()))

    async def setup(engine):
        await add_agency(engine, "000.00.00.H52", name="Sở Nội vụ", connected=False, served_by=H41,
                         certs=[short.cert])
        await add_crl(engine, stale)

    await _engine_do(env, setup)
    async with env.running(), api_for(env) as api, Dash(api.base, lang=None) as dash:
        await dash.admin(api.tokens["auditor"])
        status, text, _ = await dash.get("/admin")
        assert status == 200
        expiring = re.search(r"<table data-expiring>(.*?)</table>", text, re.S).group(1)
        assert "000.00.00.H52" in expiring and "Sở Nội vụ" in expiring and re.search(r"còn [89] ngày", expiring)
        assert G22 not in expiring  # the others are valid for a year
        crl_rows = re.search(r"<table data-stale-crls>(.*?)</table>", text, re.S).group(1)
        assert (now - timedelta(days=2)).astimezone(VN).strftime("%d/%m/%Y") in crl_rows
