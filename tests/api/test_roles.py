"""The role matrix: every route of the app × every kind of caller → the expected status.

Who may call a route is read from its handler's declaration (``Endpoint.roles`` in
``hub.api.routes.endpoints()``): a caller without credentials gets 401 on a guarded route, a
caller whose role is not declared 403, the others the row's success status. The table below
only says how to call each route (a concrete path, a body) and its success status, plus the few
answers that depend on the resource rather than the role (another agency's document: 404). The
test first checks that the table lists exactly the app's routes, so a new endpoint without a row
fails here. Callers:

- ``none``: no credentials; ``revoked``: a revoked token (of agency G22)
- ``g22``: an agency acting on its own resources; ``h41``: another agency (for agency-scoped
  resources, a document only G22 and H44 exchanged)
- ``admin``, ``auditor``

Runs on real RabbitMQ + PostgreSQL and on the embedded broker + SQLite (``env``): the rules are
the API's, but what a route answers also depends on the broker and the database behind it.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from hub.api.app import ApiState, create_app
from hub.api.routes import endpoints
from hub.api.users import add_user
from hub.edxml.builder import build_edoc
from hub.pki import devpki
from hub.registry.store import add_agency
from hub.store.engine import make_engine
from hub.store.tables import dead_letters
from tests.apienv import api_for
from tests.conftest import G22, H41, H44, make_edoc
from tests.hubenv import _make_env, _teardown

WHO = ("none", "revoked", "g22", "h41", "admin", "auditor")
ROLE_OF = dict(g22="agency", h41="agency", admin="admin", auditor="auditor")
DECLARED = {(e.method, e.template): e.roles for e in endpoints()}


@dataclass
class Row:
    method: str
    template: str  # as the router names it
    path: str  # concrete, formatted with the fixture's ids
    ok: int = 200  # the answer to a caller the handler declares
    kw: dict = field(default_factory=dict)
    scoped: dict[str, int] = field(default_factory=dict)  # answers that depend on whose resource it is

    @property
    def expect(self) -> dict[str, int]:
        """From the handler's declared roles: 401 without (valid) credentials, 403 for a role it does not
        name; a bad token is refused even on a public route."""
        roles = DECLARED[(self.method, self.template)]
        out = {"revoked": 401, "none": self.ok if roles is None else 401}
        for who, role in ROLE_OF.items():
            out[who] = self.ok if roles is None or role in roles else 403
        return {**out, **self.scoped}


H50, H51, H52, H60 = "000.00.00.H50", "000.00.00.H51", "000.00.00.H52", "000.00.00.H60"


def table(pem_ca: str, pem_crl: bytes) -> list[Row]:
    xml = {"Content-Type": "application/xml"}
    return [
        # operations (public)
        Row("GET", "/healthz", "/healthz"),
        Row("GET", "/readyz", "/readyz"),
        Row("GET", "/metrics", "/metrics"),
        Row("GET", "/api/v1/openapi.json", "/api/v1/openapi.json"),
        # gateway (agencies)
        Row("POST", "/api/v1/documents", "/api/v1/documents", 202,
            {"data": "{package}", "headers": xml}, scoped=dict(h41=403)),  # h41 may not send G22's package
        Row("GET", "/api/v1/inbox", "/api/v1/inbox"),
        Row("POST", "/api/v1/inbox/ack", "/api/v1/inbox/ack", kw={"json": {"ids": []}}),
        Row("GET", "/api/v1/blobs/{sha256}", "/api/v1/blobs/" + "0" * 64, 404),  # granted to no one
        Row("GET", "/api/v1/documents/{id}", "/api/v1/documents/{doc}", scoped=dict(h41=404)),
        Row("GET", "/api/v1/packages/{sha256}", "/api/v1/packages/{doc_sha}", scoped=dict(h41=404)),  # G22 received it
        Row("POST", "/api/v1/documents/{id}/status", "/api/v1/documents/{doc}/status", 202,
            {"json": {"code": "01"}}, scoped=dict(h41=404)),
        # admin: agencies
        Row("GET", "/api/v1/admin/agencies", "/api/v1/admin/agencies?search=H4"),
        Row("POST", "/api/v1/admin/agencies", "/api/v1/admin/agencies", 201,
            {"json": {"code": H50, "name": "Năm mươi", "accepts": ["1"]}}),
        Row("GET", "/api/v1/admin/auth-report", "/api/v1/admin/auth-report?since=2026-01-01"),
        Row("POST", "/api/v1/admin/agencies/import", "/api/v1/admin/agencies/import", 200,
            {"data": f"code,name\n{H60},Sáu mươi\n".encode(), "headers": {"Content-Type": "text/csv"}}),
        Row("GET", "/api/v1/admin/agencies/{code}", f"/api/v1/admin/agencies/{G22}"),
        Row("PATCH", "/api/v1/admin/agencies/{code}", f"/api/v1/admin/agencies/{H51}", 200,
            {"json": {"name": "Năm mốt"}}),
        Row("POST", "/api/v1/admin/agencies/{code}/retire", f"/api/v1/admin/agencies/{H52}/retire", 200),
        # admin: trust
        Row("GET", "/api/v1/admin/trust", "/api/v1/admin/trust"),
        Row("POST", "/api/v1/admin/trust/anchors", "/api/v1/admin/trust/anchors", 201,
            {"data": pem_ca.encode(), "headers": {"Content-Type": "application/x-pem-file"}}),
        Row("POST", "/api/v1/admin/trust/crls", "/api/v1/admin/trust/crls", 201,
            {"data": pem_crl, "headers": {"Content-Type": "application/x-pem-file"}}),
        # admin: queues, dead letters
        Row("GET", "/api/v1/admin/queues", "/api/v1/admin/queues"),
        # admin: deadline follow-up
        Row("GET", "/api/v1/admin/followup/overdue", "/api/v1/admin/followup/overdue?days=7"),
        Row("GET", "/api/v1/admin/followup/report", "/api/v1/admin/followup/report?from=2026-10-01&to=2026-10-31"),
        Row("GET", "/api/v1/admin/dead-letters", "/api/v1/admin/dead-letters?state=all"),
        Row("GET", "/api/v1/admin/dead-letters/{id}", "/api/v1/admin/dead-letters/{dead}"),
        Row("POST", "/api/v1/admin/dead-letters/replay", "/api/v1/admin/dead-letters/replay", 200,
            {"json": {"ids": [999999]}}),
        Row("POST", "/api/v1/admin/dead-letters/discard", "/api/v1/admin/dead-letters/discard", 200,
            {"json": {"ids": ["{dead}"]}}),
        # audit log (auditors and admins)
        Row("GET", "/api/v1/audit/entries", "/api/v1/audit/entries?event=agency.*"),
        Row("GET", "/api/v1/audit/documents/{id}/trail", "/api/v1/audit/documents/{doc}/trail"),
        Row("GET", "/api/v1/audit/documents/{id}/bundle", "/api/v1/audit/documents/{doc}/bundle"),
        Row("GET", "/api/v1/audit/checkpoints", "/api/v1/audit/checkpoints"),
        Row("GET", "/api/v1/audit/consistency", "/api/v1/audit/consistency?old={checkpoint}&new={checkpoint}"),
        # admin: users, maintenance
        Row("GET", "/api/v1/admin/users", "/api/v1/admin/users"),
        Row("POST", "/api/v1/admin/users", "/api/v1/admin/users", 201,
            {"json": {"name": "second auditor", "role": "auditor"}}),
        Row("POST", "/api/v1/admin/users/{id}/revoke", "/api/v1/admin/users/{user}/revoke", 200),
        Row("GET", "/api/v1/admin/vdxp/systems", "/api/v1/admin/vdxp/systems"),
        Row("POST", "/api/v1/admin/vdxp/systems", "/api/v1/admin/vdxp/systems", 201,
            {"json": {"id": "vxp.role.test", "agency": G22}}),
        Row("POST", "/api/v1/admin/vdxp/systems/{id}/revoke", "/api/v1/admin/vdxp/systems/vxp.to.revoke/revoke", 200),
        Row("GET", "/api/v1/admin/maintenance", "/api/v1/admin/maintenance"),
        Row("POST", "/api/v1/admin/maintenance", "/api/v1/admin/maintenance", 200,
            {"json": {"action": "resume"}}),
    ]


@pytest.fixture
async def embedded_env(tmp_path, pki):
    e = await _make_env("embedded", f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", tmp_path, pki)
    yield e
    await _teardown(e)


def app_routes(hub) -> set[tuple[str, str]]:
    """(method, path template) of every API route. Left out: the HEAD twin aiohttp adds to each GET,
    and the HTML dashboard (hub.web: browser pages with their own login session, tested with it).
    The VDXP protocol under /vdxp (hub.vdxp) is not this API: it authenticates and answers in its own
    envelope, and is tested and fuzzed in tests/vdxp."""
    app = create_app(ApiState(hub.settings, hub.engine, hub.backbone, hub.identity, hub=hub))
    return {(r.method, r.resource.canonical) for r in app.router.routes()
            if r.method != "HEAD" and not getattr(r.handler, "__module__", "").startswith(("hub.web", "hub.vdxp"))}


async def call(api, method: str, path: str, who: str | None, **kw) -> tuple[int, object]:
    """Like ``Api.call``, but a body that is neither JSON nor text (a zip) comes back as bytes."""
    headers = {**api.headers(who), **kw.pop("headers", {})}
    async with api.session.request(method, api.base + path, headers=headers, **kw) as r:
        if "json" in r.headers.get("Content-Type", ""):
            return r.status, await r.json()
        return r.status, await r.read()


def _fill(value, ids: dict):
    if isinstance(value, str):
        if value == "{package}":
            return ids["package"]
        if value == "{dead}":
            return ids["dead"]
        return value.format(**ids) if "{" in value else value
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


async def test_every_route_every_role(env, pki):
    extra_ca, _ = devpki.make_ca("role test extra root")
    rows = table(devpki.cert_pem(extra_ca).decode(), _crl_pem(pki))
    async with env.running() as hub, api_for(env) as api:
        assert {(r.method, r.template) for r in rows} == app_routes(hub), "every route needs a row (and no more)"

        # fixtures: a document only H44 and G22 exchanged (H44 -> G22), the gateway holding G22's key
        keys = env.settings.data_dir / "gateway-keys"
        keys.mkdir(parents=True, exist_ok=True)
        pki.write(pki.ids[G22], keys)
        h44 = await env.adapter(H44, start=False)
        doc = make_edoc(H44, (G22,))
        sent = h44.sign(build_edoc(doc, []))
        status, body = await api.call("POST", "/api/v1/documents", "h44", data=sent)
        assert status == 202, body
        doc_path = "/api/v1/documents/" + quote(doc.document_id, safe="")
        for _ in range(100):
            if (await api.call("GET", doc_path, "g22"))[0] == 200:
                break
            await asyncio.sleep(0.1)
        g22 = await env.adapter(G22, start=False)
        package = g22.sign(build_edoc(make_edoc(G22, (H41,)), []))
        # a dead letter, a user to revoke, agencies to change and retire
        await hub.backbone.publish("hub.dead", "", b"not a package", headers={"x-hub-reason": "parse.not_xml"})
        dead = None
        for _ in range(100):
            found = await env.scalar(sa.select(dead_letters.c.id))
            if found:
                dead = found[0][0]
                break
            await asyncio.sleep(0.05)
        assert dead is not None, "the keeper did not store the dead letter"
        engine = make_engine(env.settings.database_url)
        try:
            user = (await add_user(engine, "to revoke", "auditor", actor="test")).split("_")[1]
            await add_agency(engine, H51, name="H51", connected=False)
            await add_agency(engine, H52, name="H52", connected=False)
            from hub.vdxp.keys import SecretBox
            from hub.vdxp.systems import add_system

            await add_system(engine, SecretBox.load(env.settings.vdxp_key, create=True), "vxp.to.revoke", G22)
        finally:
            await engine.dispose()
        # a signed checkpoint (an evidence bundle seals the log through its entries)
        assert (await call(api, "GET", f"/api/v1/audit/documents/{quote(doc.document_id, safe='')}/bundle",
                           "auditor"))[0] == 200
        status, body = await api.call("GET", "/api/v1/audit/checkpoints", "auditor")
        assert status == 200 and body["checkpoints"], body
        ids = {"doc": quote(doc.document_id, safe=""), "doc_sha": hashlib.sha256(sent).hexdigest(), "dead": dead,
               "user": user, "package": package,
               "checkpoint": body["checkpoints"][0]["size"]}

        failures = []
        for row in rows:
            for who in WHO:
                kw = _fill(row.kw, ids)
                status, body = await call(api, row.method, _fill(row.path, ids), None if who == "none" else who, **kw)
                if status != row.expect[who]:
                    failures.append(f"{row.method} {row.template} as {who}: {status} (expected {row.expect[who]}) "
                                    f"{str(body)[:200]}")
                elif status >= 400:
                    assert isinstance(body, dict) and body["reason"] and body["message"], (row.template, who, body)
        assert failures == []


def _crl_pem(pki) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return devpki.make_crl(pki.ca_cert, pki.ca_key).public_bytes(serialization.Encoding.PEM)


async def test_size_limit_and_errors_are_json(embedded_env):
    """Bodies over the limit are 413, unknown paths 404, wrong methods 405: always {"reason", "message"}."""
    env = embedded_env
    env.settings = env.settings.replace(max_package_bytes=100_000)  # the app takes 64 KiB more than a package
    big = b"x" * 200_000
    async with env.running(), api_for(env) as api:
        for method, path, who, kw in (
                ("POST", "/api/v1/admin/agencies", "admin", {"data": b'{"code": "' + big + b'"}',
                                                            "headers": {"Content-Type": "application/json"}}),
                ("POST", "/api/v1/admin/agencies/import", "admin", {"data": b"code,name\n" + big}),
                ("POST", "/api/v1/admin/trust/anchors", "admin", {"data": big}),
                ("POST", "/api/v1/admin/maintenance", "admin", {"data": big}),
                ("POST", "/api/v1/documents", "g22", {"data": big})):
            status, body = await call(api, method, path, who, **kw)
            assert status == 413 and body["reason"] in ("http.too_large", "parse.too_large"), (path, status, body)
        status, body = await call(api, "GET", "/api/v1/admin/nothing-here", "admin")
        assert status == 404 and body["reason"] == "http.not_found" and body["message"]
        status, body = await call(api, "DELETE", "/api/v1/admin/users", "admin")
        assert status == 405 and body["reason"] == "http.method_not_allowed"
        status, body = await call(api, "POST", "/api/v1/admin/users", "admin", data=b"\xff\xfe not json")
        assert status == 400 and body == {"reason": "usage.invalid",
                                          "message": "the request body must be a JSON object"}


def test_declared_roles_follow_the_policy():
    """The declarations the matrix reads, held to the README's rule: admin and audit reads are for
    admins and auditors, every admin write for admins only, the gateway for agencies (auditors and
    admins may read a document), operations endpoints are public."""
    for (method, template), roles in DECLARED.items():
        where = (method, template)
        if template.startswith("/api/v1/admin/"):
            assert set(roles) == ({"admin", "auditor"} if method == "GET" else {"admin"}), where
        elif template.startswith("/api/v1/audit/"):
            assert set(roles) == {"admin", "auditor"}, where
        elif template == "/api/v1/documents/{id}" and method == "GET":
            assert set(roles) == {"agency", "admin", "auditor"}, where
        elif template == "/api/v1/packages/{sha256}":  # a document's sender and recipients, the hub's people
            assert set(roles) == {"agency", "admin", "auditor"}, where
        elif template.startswith(("/api/v1/documents", "/api/v1/inbox", "/api/v1/blobs")):
            assert roles == ("agency",), where
        else:
            assert roles is None and template in ("/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"), where
