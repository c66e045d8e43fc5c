"""Several hub instances behind a plain load balancer: two real `hub serve` processes on one
RabbitMQ vhost and one PostgreSQL database, each request of a conversation sent to the other
instance. Nothing a request needs lives in one process:

- console: the sign-in form of A posted to B, the session used on both, a form A rendered posted
  (CSRF) to B, signing out on B ends the session on A;
- HTTP gateway: a package fetched (leased) on A is acknowledged on B, and is gone on both;
- VDXP: the list read on A, the document fetched and `updateStatus done` on B, gone on both;
- registry and trust: an agency added through A's admin API; B accepts a package to it within
  HUB_REGISTRY_POLL_SECONDS (polled with a timeout, no wall-clock assert) and it is delivered;
  a pinned certificate retired through A is refused by B within the poll too.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from html import unescape

import aiohttp
import pytest

from hub.api.users import add_user
from hub.edxml.builder import build_edoc
from hub.edxml.signature import sign_package
from hub.pki import devpki
from hub.store.engine import make_engine
from hub.vdxp.keys import SecretBox
from hub.vdxp.systems import add_system
from tests.conftest import G22, H41, H44, HUB, _pg_create, _pg_drop, _run_in_thread, attachment, make_edoc
from tests.faults.hubproc import HubProcess, free_port
from tests.hubenv import _make_env, _teardown, until
from tests.vdxp.client import VdxpClient
from tests.web.dash import CSRF, Dash

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

POLL_SECONDS = 1  # HUB_REGISTRY_POLL_SECONDS of both instances
NEW = "000.00.00.H46"  # the agency registered through instance A
SYSTEM = "vxp.instances.h41"  # H41's VDXP system


class ServeOnPort(HubProcess):
    """`hub serve` on a port the test knows."""

    port: int = 0

    def start(self) -> subprocess.Popen:
        self.port = free_port()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "serve", "--port", str(self.port)], env=self.env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.groups.append(self.proc.pid)
        return self.proc

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None and self.proc.poll() is None, f"the hub exited: {self.log()[-3000:]}"
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, f"not ready after {timeout:.0f} s: {self.log()[-3000:]}"
            time.sleep(0.3)


@dataclass
class Pair:
    env: object
    a: ServeOnPort
    b: ServeOnPort
    tokens: dict[str, str] = field(default_factory=dict)
    vdxp_secret: str = ""

    def sign(self, doc) -> bytes:
        ident = self.env.pki.ids[doc.sender.organ_id]
        return sign_package(build_edoc(doc, [attachment()]), ident.key, ident.cert)


def _run(coro):
    """Run ``coro`` in a loop of its own (module-scoped setup happens outside the tests' loops)."""
    box = {}

    async def keep():
        box["value"] = await coro

    _run_in_thread(keep())
    return box.get("value")


@pytest.fixture(scope="module")
def pair(tmp_path_factory, pki):
    """Two `hub serve` (A and B) sharing a fresh RabbitMQ vhost and PostgreSQL database and a data folder
    (the hub's key, the VDXP key); users admin, g22 and h41; H41's VDXP system."""
    tmp = tmp_path_factory.mktemp("instances")
    name = f"hub_test_{uuid.uuid4().hex[:10]}"
    _run_in_thread(_pg_create(name))
    from tests.conftest import PG_ADMIN_URL

    db = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    env = _run(_make_env("rabbitmq", db, tmp, pki))
    pair = None
    try:
        async def users() -> tuple[dict, str]:
            engine = make_engine(db)
            try:
                tokens = {who: await add_user(engine, who, role, agency, actor="test")
                          for who, role, agency in (("admin", "admin", None), ("g22", "agency", G22),
                                                    ("h41", "agency", H41))}
                secret = await add_system(engine, SecretBox.load(env.settings.vdxp_key, create=True), SYSTEM, H41,
                                          None, actor="test")
                return tokens, secret
            finally:
                await engine.dispose()

        tokens, secret = _run(users())
        s = env.settings
        hub_env = {"HUB_DATA_DIR": str(s.data_dir), "HUB_DATABASE_URL": s.database_url, "HUB_AMQP_URL": s.amqp_url,
                   "HUB_ORGAN_ID": HUB, "HUB_KEY_FILE": str(s.key_file), "HUB_CERT_FILE": str(s.cert_file),
                   "HUB_REGISTRY_POLL_SECONDS": str(POLL_SECONDS), "HUB_SEAL_SECONDS": "1"}
        pair = Pair(env, ServeOnPort(hub_env, tmp / "a.log", check_processes=0),
                    ServeOnPort(hub_env, tmp / "b.log", check_processes=0), tokens, secret)
        pair.a.start()
        pair.b.start()
        pair.a.wait_ready()
        pair.b.wait_ready()
        yield pair
    finally:
        if pair is not None:
            pair.a.cleanup()
            pair.b.cleanup()
        _run(_teardown(env))
        _run_in_thread(_pg_drop(name))


async def _call(session, base: str, method: str, path: str, token: str, **kw) -> tuple[int, object]:
    async with session.request(method, base + path, headers={"Authorization": f"Bearer {token}",
                                                             **kw.pop("headers", {})}, **kw) as r:
        return r.status, (await r.json() if "json" in r.headers.get("Content-Type", "") else await r.text())


async def _until(probe, timeout: float = 30.0):
    return await until(probe, timeout=timeout, every=0.2)


async def _submit(session, base: str, token: str, data: bytes) -> tuple[int, object]:
    return await _call(session, base, "POST", "/api/v1/documents", token, data=data,
                       headers={"Content-Type": "application/xml"})


async def test_console_session_and_csrf_on_either_instance(pair):
    async with Dash(pair.a.base) as dash:  # one browser; the balancer sends each request elsewhere
        status, text, _ = await dash.get("/admin/login")  # the form (nonce cookie, CSRF) from A ...
        assert status == 200, text
        csrf = unescape(CSRF.search(text).group(1))
        dash.base = pair.b.base  # ... posted to B
        status, text, r = await dash.post("/admin/login", {"token": pair.tokens["admin"], "csrf": csrf,
                                                            "next": "/admin"})
        assert status == 303 and r.headers["Location"] == "/admin", (status, text)
        session_id = dash.cookie("hub_session")
        assert session_id
        for base in (pair.a.base, pair.b.base):  # the session is known to both
            dash.base = base
            status, text, _ = await dash.get("/admin")
            assert status == 200 and "admin" in text, (base, status)
        dash.base = pair.a.base
        status, _, _ = await dash.get("/admin/agencies")
        assert status == 200 and dash.csrf  # a form rendered by A ...
        dash.base = pair.b.base
        status, text, r = await dash.post("/admin/logout", {"csrf": dash.csrf})  # ... accepted by B
        assert status == 303 and r.headers["Location"] == "/admin/login?reason=signedout", (status, text)
        dash.session.cookie_jar.update_cookies({"hub_session": session_id})  # replay the old cookie on A
        dash.base = pair.a.base
        status, _, r = await dash.get("/admin")
        assert status == 303 and r.headers["Location"].startswith("/admin/login"), status  # ended everywhere
        # a made-up CSRF field is refused by both
        await dash.login(pair.tokens["admin"])
        for base in (pair.a.base, pair.b.base):
            dash.base = base
            status, _, _ = await dash.post("/admin/logout", {"csrf": "0" * 64})
            assert status == 403


async def test_gateway_lease_on_a_acknowledged_on_b(pair):
    async with aiohttp.ClientSession() as http:
        doc = make_edoc(G22, (H41,))
        status, body = await _submit(http, pair.a.base, pair.tokens["g22"], pair.sign(doc))
        assert status == 202, body

        async def leased():
            status, body = await _call(http, pair.a.base, "GET", "/api/v1/inbox", pair.tokens["h41"])
            assert status == 200, body
            return [p for p in body["packages"] if p["document_id"] == doc.document_id]

        [pkg] = await _until(leased)
        assert base64.b64decode(pkg["package"])
        status, body = await _call(http, pair.b.base, "POST", "/api/v1/inbox/ack", pair.tokens["h41"],
                                   json={"ids": [pkg["id"]]})
        assert status == 200 and body == {"acknowledged": [pkg["id"]], "unknown": []}, body
        for base in (pair.a.base, pair.b.base):  # handed over once: gone on both, the id spent
            status, body = await _call(http, base, "GET", "/api/v1/inbox", pair.tokens["h41"])
            assert status == 200 and [p for p in body["packages"] if p["document_id"] == doc.document_id] == []
            status, body = await _call(http, base, "POST", "/api/v1/inbox/ack", pair.tokens["h41"],
                                       json={"ids": [pkg["id"]]})
            assert status == 207 and body["unknown"] == [pkg["id"]]


async def test_vdxp_list_on_a_fetch_and_done_on_b(pair):
    async with aiohttp.ClientSession() as http:
        on_a = VdxpClient(http, pair.a.base + "/vdxp", SYSTEM, pair.vdxp_secret)
        on_b = VdxpClient(http, pair.b.base + "/vdxp", SYSTEM, pair.vdxp_secret)
        doc = make_edoc(G22, (H41,))
        data = pair.sign(doc)
        status, body = await _submit(http, pair.b.base, pair.tokens["g22"], data)
        assert status == 202, body

        async def listed():
            answer = await on_a.received()
            assert answer["status"] == "OK", answer
            return [i for i in answer["data"] if i["from"] == G22 and i["status"] == "initial"]

        [item] = await _until(listed)
        got = await on_b.get_edoc(item["docId"])
        assert got["status"] == "OK", got
        assert doc.document_id.encode() in base64.b64decode(got["data"])
        assert (await on_b.update_status(item["docId"], "done"))["status"] == "OK"
        for client in (on_a, on_b):
            answer = await client.received()
            assert answer["status"] == "OK" and [i for i in answer["data"] if i["docId"] == item["docId"]] == []


async def test_agency_added_on_a_is_accepted_by_b_within_the_poll(pair):
    ident = pair.env.pki.issue(NEW)
    async with aiohttp.ClientSession() as http:
        doc = make_edoc(G22, (NEW,))
        data = pair.sign(doc)
        status, body = await _submit(http, pair.b.base, pair.tokens["g22"], data)
        assert status == 403 and body["reason"].startswith("authority."), body  # B does not know it yet
        status, body = await _call(http, pair.a.base, "POST", "/api/v1/admin/agencies", pair.tokens["admin"], json={
            "code": NEW, "name": "UBND tỉnh H46", "certificates": [devpki.cert_pem(ident.cert).decode()]})
        assert status == 201, body

        async def accepted():
            status, body = await _submit(http, pair.b.base, pair.tokens["g22"], data)
            assert status in (202, 403), body
            return status == 202

        await _until(accepted, timeout=POLL_SECONDS + 30)  # the bound, plus room for a loaded machine
        engine = make_engine(pair.env.settings.database_url)
        try:
            token = await add_user(engine, "h46", "agency", NEW, actor="test")
        finally:
            await engine.dispose()

        async def delivered():  # recorded and routed by whichever instance's worker took it
            status, body = await _call(http, pair.b.base, "GET", "/api/v1/inbox", token)
            # the package was accepted by whichever worker took it; B's own API learns of the new
            # agency within the same poll bound, and until then has no inbox for it
            assert status == 200 or (status == 409 and body["reason"] == "gateway.no_inbox"), body
            return [p for p in body["packages"] if p["document_id"] == doc.document_id] if status == 200 else []

        [pkg] = await _until(delivered)
        assert pkg["sender"] == G22 and pkg["kind"] == "edoc"


async def test_certificate_retired_on_a_is_refused_by_b_within_the_poll(pair):
    """The other direction: a trust change that narrows what is accepted (a pinned certificate
    retired through A) is applied by B's immediate checks within the poll as well."""
    engine = make_engine(pair.env.settings.database_url)
    try:
        token = await add_user(engine, "h44", "agency", H44, actor="test")
    finally:
        await engine.dispose()
    async with aiohttp.ClientSession() as http:
        status, body = await _submit(http, pair.b.base, token, pair.sign(make_edoc(H44, (H41,))))
        assert status == 202, body
        status, body = await _call(http, pair.a.base, "PATCH", f"/api/v1/admin/agencies/{H44}", pair.tokens["admin"],
                                   json={"retire_certificates": [pair.env.pki.ids[H44].fp]})
        assert status == 200, body

        async def refused():
            status, body = await _submit(http, pair.b.base, token, pair.sign(make_edoc(H44, (H41,))))
            assert status in (202, 422), body
            return status == 422 and body["reason"]

        reason = await _until(refused, timeout=POLL_SECONDS + 30)
        assert reason.startswith(("signature.", "trust.")), reason
