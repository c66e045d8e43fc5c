"""Packages stored by reference are read back whole everywhere (issue 14): the document API and
its package download, the console, evidence bundles (exported and verified by the CLI), the
VDXP mailbox (getEdoc, downloadEdoc), dead letters (view, download, replay). On RabbitMQ +
PostgreSQL and on the embedded defaults, with ``HUB_BY_REFERENCE_BYTES`` lowered so that
ordinary small packages take the by-reference path (``hub.store.packages``)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import sys
import zipfile
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from lxml import etree

from hub.audit.bundle import verify_bundle
from hub.audit.verify import verify_log
from hub.edxml.builder import build_edoc
from hub.edxml.parser import parse_xml
from hub.edxml.signature import sign_package, verify_package
from hub.edxml.trace import strip_relay_trace
from hub.pki import devpki
from hub.store.engine import make_engine
from hub.store.tables import blobs, dead_letters, packages, vdxp_inbox
from tests.apienv import api_for
from tests.conftest import G22, H41, HUB, attachment, make_edoc
from tests.vdxp.vdxpenv import A, B, listed, vdxp_for
from tests.web.dash import Dash

THRESHOLD = 2048  # every package of these tests (about 10 kB) goes by reference


def letter(env, sender: str = G22, to=(H41,)) -> tuple[object, bytes]:
    doc = make_edoc(sender, to)
    ident = env.pki.ids[sender]
    data = sign_package(build_edoc(doc, [attachment(6000)]), ident.key, ident.cert)
    assert len(data) > THRESHOLD
    return doc, data


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def until(fn, timeout: float = 30.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await fn()
        if got:
            return got
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def get_bytes(api, path: str, who: str) -> tuple[int, bytes]:
    async with api.session.get(api.base + path, headers=api.headers(who)) as r:
        return r.status, await r.read()


async def stored_as_blob(env, digest: str) -> None:
    """The precondition of every test here: the package's row holds no bytes, a blob does."""
    rows = await env.scalar(sa.select(sa.func.length(packages.c.data)).where(packages.c.sha256 == digest))
    assert rows in ([(0,)], []), rows
    assert await env.scalar(sa.select(blobs.c.sha256).where(blobs.c.sha256 == digest)) == [(digest,)]


def cli_env(env, tmp_path) -> dict:
    cli = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    cli.update(HUB_DATA_DIR=str(tmp_path / "cli"), HUB_DATABASE_URL=env.settings.database_url, HUB_ORGAN_ID=HUB,
               HUB_KEY_FILE=str(env.settings.key_file), HUB_CERT_FILE=str(env.settings.cert_file))
    return cli


async def hub_cli(cli: dict, *args) -> tuple[int, str]:
    p = await asyncio.create_subprocess_exec(sys.executable, "-m", "hub.cli", *map(str, args), env=cli,
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(p.communicate(), 120)
    return p.returncode, out.decode()


async def test_documents_console_and_bundles_read_a_package_stored_by_reference(env, tmp_path):
    env.settings = env.settings.replace(by_reference_bytes=THRESHOLD)
    doc, data = letter(env)
    path = f"/api/v1/documents/{quote(doc.document_id, safe='')}"
    async with env.running(), api_for(env) as api:
        g = await env.adapter(G22)
        await g.publish(data)

        async def recorded():
            status, body = await api.call("GET", path, "g22")
            return body if status == 200 else None

        body = await until(recorded)
        await stored_as_blob(env, sha(data))
        # the document view names the package's bytes instead of carrying them
        assert body["sha256"] == sha(data) and body["package"] == ""
        assert body["blob"] == {"sha256": sha(data), "size": len(data), "href": f"/api/v1/packages/{sha(data)}"}
        for who in ("g22", "h41", "admin", "auditor"):  # the sender, the recipient, the hub's people
            status, got = await get_bytes(api, body["blob"]["href"], who)
            assert status == 200 and got == data, who
        assert (await get_bytes(api, body["blob"]["href"], "h44"))[0] == 404  # neither sent nor received it
        verify_package(parse_xml(got), env.pki.trust())

        # the console: the document page links the package, which downloads whole
        async with Dash(api.base) as dash:
            await dash.admin(api.tokens["admin"])
            status, page, _ = await dash.get(f"/admin/documents/{quote(doc.document_id, safe='')}")
            assert status == 200 and f'href="/admin/packages/{sha(data)}"' in page
            async with dash.session.get(api.base + f"/admin/packages/{sha(data)}") as r:
                assert r.status == 200 and await r.read() == data
            assert (await dash.get("/admin/packages/" + "0" * 64))[0] == 404

        # the auditors' API bundle carries the bytes and verifies offline
        status, zipped = await get_bytes(api, f"/api/v1/audit/documents/{quote(doc.document_id, safe='')}/bundle",
                                         "auditor")
        assert status == 200
        with zipfile.ZipFile(io.BytesIO(zipped)) as z:
            assert z.read("package.edxml") == data
        ok, lines = verify_bundle(zipped, hub_cert=env.pki.ids[HUB].cert, trust_anchors=[env.pki.ca_cert])
        assert ok, "\n".join(lines)
        assert any("package.edxml: XML-DSig" in line for line in lines)

    # `hub audit export` and `hub audit verify-bundle`, as an auditor runs them; `hub audit verify`
    cli = cli_env(env, tmp_path)
    bundle = tmp_path / "bundle.zip"
    rc, out = await hub_cli(cli, "audit", "export", doc.document_id, "-o", bundle)
    assert rc == 0, out
    with zipfile.ZipFile(bundle) as z:
        assert z.read("package.edxml") == data
    pinned = tmp_path / "pinned"
    pinned.mkdir()
    (pinned / "hub.pem").write_bytes(devpki.cert_pem(env.pki.ids[HUB].cert))
    (pinned / "ca.pem").write_bytes(devpki.cert_pem(env.pki.ca_cert))
    rc, out = await hub_cli(cli, "audit", "verify-bundle", bundle, "--hub-cert", pinned / "hub.pem",
                            "--trust", pinned / "ca.pem")
    assert rc == 0 and "RESULT: OK" in out and "OK    package.edxml: XML-DSig" in out, out
    engine = make_engine(env.settings.database_url)
    try:
        report = await verify_log(engine, env.pki.ids[HUB].cert)
    finally:
        await engine.dispose()
    assert report.ok, report.problems


def canonical(data: bytes) -> bytes:
    return etree.tostring(parse_xml(data), xml_declaration=True, encoding="UTF-8")


async def test_vdxp_fetch_dead_letter_and_replay_of_a_copy_delivered_by_reference(env):
    env.settings = env.settings.replace(by_reference_bytes=THRESHOLD)
    _, data = letter(env)
    async with env.running(), vdxp_for(env) as v, api_for(env) as api:
        a, b = v.client(A), v.client(B)
        assert (await a.send_edoc(data, G22))["status"] == "OK"
        [item] = await listed(b, 1)
        got = await b.get_edoc(item["docId"])
        assert got["status"] == "OK", got
        fetched = base64.b64decode(got["data"], validate=True)
        status, downloaded = await b.raw("downloadEdoc", {"filePath": "/tmp/x", "docId": item["docId"]})
        assert status == 200 and downloaded == fetched
        # the delivered copy: the sender's bytes and the hub's hop; the signature verifies
        root = parse_xml(fetched)
        assert strip_relay_trace(root, {HUB}) == 1
        assert etree.tostring(root, xml_declaration=True, encoding="UTF-8") == canonical(data)
        verify_package(root, env.pki.trust())
        [(listed_sha,)] = await env.scalar(sa.select(vdxp_inbox.c.sha256).where(vdxp_inbox.c.id == item["docId"]))
        assert listed_sha == sha(fetched)  # the blob of the copy, not the empty body of its message
        await stored_as_blob(env, listed_sha)

        # the receiver gives up: a dead letter naming the copy; admins see and download it whole
        for _ in range(env.settings.vdxp_max_failures):
            assert (await b.get_edoc(item["docId"]))["status"] == "OK"
            assert (await b.update_status(item["docId"], "fail"))["status"] == "OK"
        [(dead_id,)] = await env.scalar(sa.select(dead_letters.c.id).where(
            dead_letters.c.reason == "vdxp.delivery_failed"))
        status, dead = await api.call("GET", f"/api/v1/admin/dead-letters/{dead_id}", "admin")
        assert status == 200, dead
        assert dead["package"] == "" and dead["blob"]["sha256"] == listed_sha and dead["blob"]["size"] == len(fetched)
        assert dead["parsed"]["ok"] and dead["parsed"]["from"] == G22 and dead["parsed"]["to"] == [H41]
        assert await get_bytes(api, dead["blob"]["href"], "admin") == (200, fetched)
        async with Dash(api.base) as dash:
            await dash.admin(api.tokens["admin"])
            status, page, _ = await dash.get(f"/admin/dead-letters/{dead_id}")
            assert status == 200 and f'href="/admin/packages/{listed_sha}"' in page
            assert "edXMLHeader" in page  # the preview: the package's first bytes

        # replay: back in B's list by reference, the same bytes once more
        status, result = await api.call("POST", "/api/v1/admin/dead-letters/replay", "admin", json={"ids": [dead_id]})
        assert status == 200 and result["done"] == [dead_id], result
        [back] = await listed(b, 1)
        assert back["docId"] == item["docId"]
        again = await b.get_edoc(back["docId"])
        assert base64.b64decode(again["data"]) == fetched


async def test_a_large_dead_letter_from_intake_is_kept_viewed_and_replayed_by_reference(env):
    """The gateway hands a large upload over by reference; the worker cannot parse it and
    dead-letters it by reference; the keeper keeps the blob (not an empty body) and a replay
    sends it to intake by reference again."""
    env.settings = env.settings.replace(by_reference_bytes=THRESHOLD)
    junk = b"<not-edxml>" + os.urandom(3000).hex().encode() + b"</not-edxml"
    async with env.running(), api_for(env) as api:
        status, body = await api.call("POST", "/api/v1/documents", "g22", data=junk,
                                      headers={"Content-Type": "application/xml"})
        assert status == 400 and body["reason"] == "parse.not_xml", body

        async def kept(n: int = 1):
            rows = await env.scalar(sa.select(dead_letters.c.id, dead_letters.c.sha256, dead_letters.c.size)
                                    .where(dead_letters.c.reason == "parse.not_xml").order_by(dead_letters.c.id))
            return rows if len(rows) >= n else None

        [(dead_id, digest, size)] = await until(kept)
        assert (digest, size) == (sha(junk), len(junk))
        await stored_as_blob(env, digest)
        status, dead = await api.call("GET", f"/api/v1/admin/dead-letters/{dead_id}", "admin")
        assert status == 200 and dead["package"] == "" and dead["blob"]["size"] == len(junk), dead
        assert dead["parsed"]["ok"] is False and dead["parsed"]["reason"] == "parse.not_xml"
        assert await get_bytes(api, dead["blob"]["href"], "admin") == (200, junk)
        status, result = await api.call("POST", "/api/v1/admin/dead-letters/replay", "admin", json={"ids": [dead_id]})
        assert status == 200 and result["done"] == [dead_id], result
        rows = await until(lambda: kept(2))
        assert [(r[1], r[2]) for r in rows] == [(sha(junk), len(junk))] * 2  # refused again: the same bytes
