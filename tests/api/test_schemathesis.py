"""The OpenAPI document against the real server.

- the document lists exactly the app's routes (read from the aiohttp router);
- schemathesis, against a live ``hub serve`` prepared with the CLI, finds no server error (5xx)
  and no response that contradicts the document (status code, content type, body schema) —
  first with an agency token, then with an admin token; on real RabbitMQ + PostgreSQL (a fresh
  virtual host and database) and on the embedded defaults. Each run is bounded by MAX_EXAMPLES.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from hub.api.app import ApiState, create_app
from hub.api.openapi import document
from hub.api.routes import endpoints
from hub.settings import Settings
from hub.backbone.management import Management
from tests.apienv import free_port
from tests.conftest import AMQP_URL, G22, H41, HUB, PG_ADMIN_URL, _pg_create, _pg_drop, _run_in_thread, make_edoc
from tests.hubenv import MGMT

BIN = Path(sys.executable).parent
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
# Per operation and phase. About 1,600 requests a run, most of them from the coverage phase (which
# -n does not bound); measured on this 2-core machine with 7 other test suites running (load 10):
# 30-45 s on the embedded defaults, 65-85 s on RabbitMQ + PostgreSQL, of which ~40 s answering.
MAX_EXAMPLES = 8
RUN_TIMEOUT = 240  # seconds: a run that has not finished by then fails
pytestmark = pytest.mark.timeout(RUN_TIMEOUT + 60)


def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """(method, path) of every API route. Left out: aiohttp's HEAD twin of each GET, and the HTML
    dashboard (hub.web: browser pages with a login session, not part of the JSON API).
    The VDXP protocol under /vdxp (hub.vdxp) is not this API: it authenticates and answers in its own
    envelope, and is tested and fuzzed in tests/vdxp."""
    settings = Settings.from_env({"HUB_DATA_DIR": str(tmp_path)})
    app = create_app(ApiState(settings, engine=None, backbone=None, identity=None))  # routes only, never started
    return {(r.method, r.resource.canonical) for r in app.router.routes()
            if r.method != "HEAD" and not getattr(r.handler, "__module__", "").startswith(("hub.web", "hub.vdxp"))}


def test_document_lists_exactly_the_routes(tmp_path):
    DOCUMENT = document(endpoints())
    documented = {(method.upper(), path) for path, ops in DOCUMENT["paths"].items() for method in ops}
    assert documented == app_routes(tmp_path)
    assert DOCUMENT["openapi"] == "3.0.3"
    for path, ops in DOCUMENT["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert "401" in codes and not any(c.startswith("5") and c != "503" for c in codes), (method, path)
            if op.get("security") != []:
                assert "403" in codes, (method, path)
            if "requestBody" in op:
                assert "413" in codes, (method, path)
    json.dumps(DOCUMENT)  # serializable as is


# --- a live server --------------------------------------------------------------------------------

def _hub(env: dict, *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "hub.cli", *args], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"hub {' '.join(args)}: {r.stdout}{r.stderr}"
    return r.stdout


def _http(method: str, url: str, token: str | None = None, data: bytes | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if data is not None:  # urllib would say form-urlencoded; a package is XML (415 otherwise)
        headers["Content-Type"] = "application/xml"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


async def _seed_dead_letters(settings, package: bytes) -> None:
    """Two dead letters as the keeper stores them (nothing outside the process reaches its broker)."""
    from hub import constants as C
    from hub.backbone.base import Message
    from hub.pipeline.deadletters import DeadLetterKeeper
    from hub.store.engine import make_engine

    class Held:
        def __init__(self, body: bytes, headers: dict):
            self.message = Message(body=body, headers=headers, routing_key="", exchange=C.EXCHANGE_DEAD, user_id="hub",
                                   message_id=None, priority=0, redelivered=False, timestamp=None)

        async def ack(self) -> None:
            pass

    engine = make_engine(settings.database_url)
    try:
        keeper = DeadLetterKeeper(engine, None)
        await keeper.keep(Held(package, {C.H_REASON: "transient.unavailable", C.H_ORIGINAL_USER: G22}))
        await keeper.keep(Held(b"<not xml", {C.H_REASON: "parse.not_xml"}))
    finally:
        await engine.dispose()


async def _vhost(name: str, present: bool) -> None:
    async with Management(MGMT, "guest", "guest") as m:
        if present:
            await m.put_vhost(name)
            await m.set_permissions(name, "guest", configure=".*", write=".*", read=".*")
        else:
            await m.delete_vhost(name)


@pytest.fixture(scope="module", params=[pytest.param("rabbitmq", marks=[pytest.mark.rabbitmq, pytest.mark.postgres]),
                                        "embedded"])
def services(request):
    """The HUB_* variables of the broker and database ``hub serve`` uses: a fresh virtual host on the
    real RabbitMQ and a fresh PostgreSQL database (both removed after), or none (the embedded defaults)."""
    if request.param == "embedded":
        yield {}
        return
    vhost, db = f"hubtest-{uuid.uuid4().hex[:10]}", f"hub_test_{uuid.uuid4().hex[:10]}"
    _run_in_thread(_vhost(vhost, True))
    _run_in_thread(_pg_create(db))
    try:
        yield {"HUB_AMQP_URL": AMQP_URL.rstrip("/") + "/" + quote(vhost, safe=""),
               "HUB_DATABASE_URL": PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + db}
    finally:
        _run_in_thread(_pg_drop(db))
        _run_in_thread(_vhost(vhost, False))


@pytest.fixture(scope="module")
def served(tmp_path_factory, services):
    """``hub serve`` prepared with the CLI, on ``services``; tokens of an admin and of G22."""
    from hub.edxml.builder import build_edoc
    from hub.edxml.signature import sign_package
    from hub.pki import devpki

    tmp = tmp_path_factory.mktemp("served")
    pki = tmp / "pki"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(HUB_DATA_DIR=str(tmp / "data"), HUB_KEY_FILE=str(pki / f"{HUB}.key"),
               HUB_CERT_FILE=str(pki / f"{HUB}.pem"), **services)
    _hub(env, "pki", "init", str(pki), "--agency", f"{G22}=VPCP", "--agency", f"{H41}=Nghệ An")
    _hub(env, "trust", "add", str(pki / "ca.pem"))
    _hub(env, "agency", "add", G22, "--name", "Văn phòng Chính phủ", "--cert", str(pki / f"{G22}.pem"))
    _hub(env, "agency", "add", H41, "--name", "UBND tỉnh Nghệ An", "--cert", str(pki / f"{H41}.pem"))
    _hub(env, "agency", "add", HUB, "--name", "hub", "--cert", str(pki / f"{HUB}.pem"), "--no-system",
         "--accepts", "0")
    tokens = {who: _hub(env, "user", "add", who, *args).strip().splitlines()[-1]
              for who, args in (("ops", ("--role", "admin")), ("vpcp", ("--role", "agency", "--agency", G22)))}
    key, cert = devpki.load_key(pki / f"{G22}.key"), devpki.load_cert(pki / f"{G22}.pem")
    doc = make_edoc(G22, (H41,))
    package = sign_package(build_edoc(doc, []), key, cert)
    asyncio.run(_seed_dead_letters(Settings.from_env(env), sign_package(build_edoc(make_edoc(G22, (H41,)), []),
                                                                       key, cert)))

    port = free_port()
    log = (tmp / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "serve", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp / "serve.log").read_text()
            try:
                if _http("GET", base + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "hub serve did not come up"
            time.sleep(0.2)
        # a document G22 sent, so GET /api/v1/documents/{id} has something to find
        status, body = _http("POST", base + "/api/v1/documents", tokens["vpcp"], package)
        assert status == 202, body
        path = f"{base}/api/v1/documents/{quote(doc.document_id, safe='')}"
        while _http("GET", path, tokens["vpcp"])[0] != 200:
            assert time.monotonic() < deadline + 30, "the document was not recorded"
            time.sleep(0.2)
        config = tmp / "schemathesis.toml"
        config.write_text(
            # known identifiers, used in 70 % of the generated cases for these parameters
            "[dictionaries.documents]\n"  # percent-encoded: schemathesis sends no raw "/" in a path parameter
            f"values = [{json.dumps(quote(doc.document_id, safe=''))}]\n"
            "[dictionaries.dead]\nvalues = [1, 2]\n"
            f"[dictionaries.codes]\nvalues = [\"{G22}\", \"{H41}\", \"{HUB}\"]\n"
            "[[operations]]\ninclude-path-regex = '^/api/v1/documents/\\{id\\}'\n"
            "parameters = { \"path.id\" = { dictionary = \"documents\", probability = 0.7 } }\n"
            "[[operations]]\ninclude-path = \"/api/v1/admin/dead-letters/{id}\"\n"
            "parameters = { \"path.id\" = { dictionary = \"dead\", probability = 0.7 } }\n"
            "[[operations]]\ninclude-path-regex = '^/api/v1/admin/agencies/\\{code\\}'\n"
            "parameters = { \"path.code\" = { dictionary = \"codes\", probability = 0.7 } }\n",
            encoding="utf-8")
        yield {"base": base, "tokens": tokens, "log": tmp / "serve.log", "config": config, "dir": tmp}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def _schemathesis(served, token: str, *extra: str) -> None:
    cmd = [str(BIN / "st"), "--config-file", str(served["config"]), "run", served["base"] + "/api/v1/openapi.json",
           "-H", f"Authorization: Bearer {token}", "-c", CHECKS, "-n", str(MAX_EXAMPLES),
           "--no-color", "--generation-database", "none", "--request-timeout", "20",
           "--report", "har", "--report-dir", str(served["dir"] / "reports"),
           # POST /api/v1/documents takes application/xml as a plain string: schemathesis drops the
           # strings it cannot put in XML, and its generation health check sometimes calls that "too
           # much filtering". A check of the generator, not of the API.
           "--suppress-health-check", "filter_too_much", *extra]
    r = subprocess.run(cmd, cwd=served["dir"], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-20000:]
    assert "passed" in out
    log = served["log"].read_text()  # (aiohttp itself logs the probes' malformed requests: not ours)
    assert "unhandled error" not in log, log[-5000:]


# The agency run goes first: the admin run changes the hub (the stateful phase follows the
# links it infers: it revokes the users GET /api/v1/admin/users lists, retires agencies, sets
# maintenance), which would leave the agency's token revoked and its agency retired.

def test_schemathesis_as_agency(served):
    _schemathesis(served, served["tokens"]["vpcp"])


def test_schemathesis_as_admin(served):
    # POST /api/v1/admin/maintenance may stop the hub; the gateway then answers 503, which the
    # document lists. The admin cannot revoke its own token (409), so it stays valid. /readyz is
    # left to the agency run: a stopped hub consumes nothing and so is rightly not ready (503),
    # which schemathesis counts as a server error whatever the document says.
    _schemathesis(served, served["tokens"]["ops"], "--exclude-path", "/readyz")
