"""Evidence bundles: exported from a log the real pipeline wrote, verified with no database and
no network, and every kind of tampering with any file of the zip detected and named."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import socket
import sys
import warnings
import zipfile
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from hub.audit import checkpoint as cp
from hub.audit.bundle import export_bundle, verify_bundle
from hub.audit.entry import canonical_entry, entry_leaf
from hub.audit.merkle import leaf_hash
from hub.audit.query import NotFound, trail
from hub.audit.sealer import seal
from hub.edxml.builder import build_edoc
from hub.pki import devpki
from hub.pki.identity import Identity
from hub.registry.store import load_trust
from hub.store.engine import make_engine
from hub.audit.records import append_rows, record_row
from hub.store.tables import checkpoints, records
from tests.conftest import G22, H41, HUB, make_edoc
from tests.hubenv import _make_env, _teardown, drain, letter_with_statuses


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def rezip(files: dict[str, bytes], extra: list[tuple[str, bytes]] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, body in files.items():
            z.writestr(name, body)
        with warnings.catch_warnings():  # a duplicate name is the point of some tests
            warnings.simplefilter("ignore", UserWarning)
            for name, body in extra:
                z.writestr(name, body)
    return buf.getvalue()


def changed(files: dict[str, bytes], name: str, body: bytes) -> bytes:
    return rezip({**files, name: body})


def fails(data: bytes, **kw) -> list[str]:
    ok, lines = verify_bundle(data, **kw)
    bad = [line for line in lines if line.startswith("FAIL")]
    assert not ok and bad, lines
    return bad


@pytest.fixture
def offline(monkeypatch):
    """No network while verifying: any socket is an error."""

    def refuse(*a, **kw):
        raise AssertionError("verify_bundle tried to open a network connection")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


async def send_and_answer(env, refusals: bool = False):
    """G22 sends to H41 and H44; H41 answers 01 then 03. Returns the DocumentId (and, with
    ``refusals``, those of a package refused for authority and one refused for its signature)."""
    async with env.running():
        doc, refused, ads = await letter_with_statuses(env, refused=refusals)
        if not refusals:
            return doc.document_id
        g = ads[G22]
        broken = make_edoc(G22, (H41,))
        await g.publish(g.sign(build_edoc(broken, [])).replace(broken.subject.encode(), b"sua doi"))
        await drain(g, 1)
    return doc.document_id, refused.document_id, broken.document_id


async def test_end_to_end_send_status_seal_export_verify_offline(env):
    """The whole story on real RabbitMQ + PostgreSQL and on the embedded defaults."""
    doc_id = await send_and_answer(env)
    engine = make_engine(env.settings.database_url)
    hub = Identity.load(HUB, env.settings.key_file, env.settings.cert_file)
    try:
        await seal(engine, hub)
        data = await export_bundle(engine, doc_id, hub.cert, await load_trust(engine), identity=hub,
                                   exported_by="auditor:test")
        t = await trail(engine, doc_id)
    finally:
        await engine.dispose()
    files = unzip(data)
    assert set(files) >= {"package.edxml", "entries.jsonl", "proofs.json", "checkpoint.txt", "hub.pem", "received_at",
                          "README.txt", "manifest.json", "manifest.sig"}
    assert any(n.startswith("trust/") for n in files)
    entries = [json.loads(line) for line in files["entries.jsonl"].decode().splitlines()]
    assert [e["seq"] for e in entries] == [e["seq"] for e in t["entries"]]
    assert [e["event"] for e in entries].count("status.recorded") == 2
    assert hashlib.sha256(files["package.edxml"]).hexdigest() == t["document"]["sha256"]
    proofs = json.loads(files["proofs.json"])
    assert proofs["not_yet_sealed"] == [] and len(proofs["proofs"]) == len(entries)

    # offline: no database (nothing but the bytes), no network, roots of trust pinned
    ok, lines = _verify_offline(data, env.pki.ids[HUB].cert, env.pki.ca_cert)
    assert ok, "\n".join(lines)
    assert any("package.edxml: XML-DSig" in line for line in lines)
    assert any("inclusion proofs" in line for line in lines)


def _verify_offline(data, hub_cert, ca):
    def refuse(*a, **kw):
        raise AssertionError("verify_bundle tried to open a network connection")

    with pytest.MonkeyPatch.context() as m:
        m.setattr(socket, "socket", refuse)
        m.setattr(socket, "create_connection", refuse)
        return verify_bundle(data, hub_cert=hub_cert, trust_anchors=[ca])


# --- on SQLite and PostgreSQL, entries from the real pipeline ----------------------------------

@pytest.fixture
async def world(db_url, tmp_path, pki):
    env = await _make_env("embedded", db_url, tmp_path, pki)
    try:
        doc_id, refused, broken = await send_and_answer(env, refusals=True)
    finally:
        await _teardown(env)
    engine = make_engine(db_url)
    hub = Identity(HUB, pki.ids[HUB].key, pki.ids[HUB].cert)
    await seal(engine, hub)
    yield engine, hub, doc_id, refused, broken
    await engine.dispose()


async def bundle_of(engine, hub, doc_id, sign=True, **kw) -> bytes:
    return await export_bundle(engine, doc_id, hub.cert, await load_trust(engine), identity=hub if sign else None, **kw)


async def test_round_trip_and_every_tampering_named(world, pki, offline):
    engine, hub, doc_id, _, _ = world
    data = await bundle_of(engine, hub, doc_id)
    ok, lines = verify_bundle(data)
    assert ok, "\n".join(lines)
    assert any(line.startswith("NOTE  hub.pem:") and "compare" in line for line in lines)
    assert verify_bundle(data, hub_cert=hub.cert, trust_anchors=[pki.ca_cert])[0]
    files = unzip(data)
    entries = files["entries.jsonl"].decode().splitlines()

    # the package: one byte changed
    pkg = files["package.edxml"].replace("Hà Nội".encode(), "Hà Nam".encode(), 1)
    assert pkg != files["package.edxml"]
    bad = fails(changed(files, "package.edxml", pkg))
    assert any("package.edxml" in b and "SHA-256" in b for b in bad)

    # an entry field (and, separately, the field with its canonical text and leaf recomputed)
    e = json.loads(entries[1])
    e2 = {**e, "actor": "someone else"}
    bad = fails(changed(files, "entries.jsonl", "\n".join([entries[0], json.dumps(e2, ensure_ascii=False), *entries[2:]]).encode() + b"\n"))
    assert any("entries.jsonl" in b and f"entry {e['seq']}" in b and "canonical" in b for b in bad)
    at = datetime.strptime(e["at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    canon = canonical_entry(e["seq"], at, e["event"], "someone else", e["document_id"], e["sender"], e["sha256"],
                            e["reason"], e["message"], e["details"])
    e3 = {**e2, "canonical": canon.decode(), "leaf_hash": leaf_hash(canon).hex()}
    bad = fails(changed(files, "entries.jsonl", "\n".join([entries[0], json.dumps(e3, ensure_ascii=False), *entries[2:]]).encode() + b"\n"))
    assert any("proofs.json" in b and f"entry {e['seq']}" in b and "does not lead to the checkpoint root" in b for b in bad)

    # a proof hash
    proofs = json.loads(files["proofs.json"])
    first = proofs["proofs"][0]
    first["path"][0] = ("00" if first["path"][0][:2] != "00" else "11") + first["path"][0][2:]
    bad = fails(changed(files, "proofs.json", json.dumps(proofs).encode()))
    assert any("proofs.json" in b and f"entry {first['seq']}" in b for b in bad)

    # the checkpoint: its size, its root, its time
    text = files["checkpoint.txt"].decode()
    lines4 = text.split("\n")
    lines4[3] = "time 2020-01-01T00:00:00.000000Z"
    bad = fails(changed(files, "checkpoint.txt", "\n".join(lines4).encode()))
    assert any(b.startswith("FAIL  checkpoint.txt") and "signature does not verify" in b for b in bad)

    # hub.pem swapped for another certificate (even one with a valid signature of its own)
    other_cert, other_key = devpki.issue(pki.ca_cert, pki.ca_key, "another hub")
    bad = fails(changed(files, "hub.pem", devpki.cert_pem(other_cert)))
    assert any("checkpoint.txt" in b and "key id" in b for b in bad)
    assert any("manifest.sig" in b for b in bad)
    # ... and a checkpoint re-signed by that other key: still caught when the hub certificate is pinned
    c = cp.Checkpoint.from_text(text)
    forged = cp.sign(other_key, origin=c.origin, size=c.size, root=c.root, at=c.at, key_id=cp.key_id_for(other_cert))
    swapped = changed({**files, "hub.pem": devpki.cert_pem(other_cert)}, "checkpoint.txt", forged.to_text().encode())
    bad = fails(swapped, hub_cert=hub.cert)
    assert any(b.startswith("FAIL  hub.pem") and "pinned" in b for b in bad)

    # the trust anchor swapped: the package signature no longer chains
    trust_name = next(n for n in files if n.startswith("trust/"))
    other_ca, _ = devpki.make_ca("another root")
    bad = fails(changed(files, trust_name, devpki.cert_pem(other_ca)))
    assert any(b.startswith("FAIL  package.edxml") and "trust.untrusted" in b for b in bad)
    assert any(trust_name in b for b in bad)  # and the signed manifest names the file

    # received_at moved
    bad = fails(changed(files, "received_at", b"2020-01-01T00:00:00.000000Z\n"))
    assert any(b.startswith("FAIL  received_at") for b in bad)

    # the README (covered by the signed manifest), the manifest itself, an added file, a duplicate
    bad = fails(changed(files, "README.txt", files["README.txt"] + b"\nall fine, trust me\n"))
    assert any(b.startswith("FAIL  README.txt") for b in bad)
    manifest = json.loads(files["manifest.json"])
    bad = fails(changed(files, "manifest.json", json.dumps({**manifest, "decision": "refused"}).encode()))
    assert any("manifest.sig" in b for b in bad)
    bad = fails(rezip(files, [("notes.txt", b"x")]))
    assert any("notes.txt" in b for b in bad)
    bad = fails(rezip(files, [("package.edxml", files["package.edxml"])]))
    assert any("several files named package.edxml" in b for b in bad)
    for name in ("package.edxml", "entries.jsonl", "hub.pem"):
        bad = fails(rezip({k: v for k, v in files.items() if k != name}))
        assert any(name in b and "missing" in b for b in bad)
    assert fails(b"PK\x03\x04 not a zip")[0].startswith("FAIL  the bundle is not a readable zip")
    # malformed rather than tampered: reported, never accepted
    p = json.loads(files["proofs.json"])
    bad = fails(changed(files, "proofs.json", json.dumps({**p, "not_yet_sealed": 5}).encode()))
    assert any("not_yet_sealed" in b for b in bad)
    bad = fails(changed(files, "proofs.json", json.dumps({**p, "proofs": [{"seq": 1, "path": 7}]}).encode()))
    assert any(b.startswith("FAIL  proofs.json") for b in bad)
    e4 = {**json.loads(entries[0]), "details": "not an object"}
    bad = fails(changed(files, "entries.jsonl", (json.dumps(e4) + "\n" + "\n".join(entries[1:]) + "\n").encode()))
    assert any(b.startswith("FAIL  entries.jsonl") for b in bad)


async def test_entries_not_yet_sealed_are_explicit(world, offline):
    engine, hub, doc_id, _, _ = world
    async with engine.begin() as c:  # an entry about the document after the latest checkpoint
        await append_rows(c, [record_row("audit.exported", actor="auditor:x", document_id=doc_id, sender=G22,
                                         details={"what": "bundle"})])
    data = await bundle_of(engine, hub, doc_id)
    proofs = json.loads(unzip(data)["proofs.json"])
    assert len(proofs["not_yet_sealed"]) == 1
    bad = fails(data)
    assert any("NOT YET SEALED" in b and str(proofs["not_yet_sealed"][0]) in b for b in bad)
    ok, lines = verify_bundle(data, allow_unsealed=True)
    assert ok and any(line.startswith("NOTE") and "NOT YET SEALED" in line for line in lines)
    # claiming a sealed entry is "not yet sealed" (to dodge its proof) does not work
    files = unzip(data)
    p = json.loads(files["proofs.json"])
    dodged = p["proofs"].pop(0)
    p["not_yet_sealed"].append(dodged["seq"])
    bad = fails(changed(files, "proofs.json", json.dumps(p).encode()), allow_unsealed=True)
    assert any(f"entry {dodged['seq']}" in b for b in bad)
    # after sealing, everything is proven
    await seal(engine, hub)
    ok, lines = verify_bundle(await bundle_of(engine, hub, doc_id))
    assert ok, lines


async def checkpoint_sizes(engine) -> list[int]:
    async with engine.connect() as c:
        return list((await c.execute(sa.select(checkpoints.c.size).order_by(checkpoints.c.size))).scalars())


async def test_a_checkpoint_is_signed_only_when_the_latest_does_not_cover_the_document(world, pki, offline):
    engine, hub, doc_id, refused, _ = world
    before = await checkpoint_sizes(engine)
    async with engine.begin() as c:  # written after the latest checkpoint, about another document
        await append_rows(c, [record_row("audit.exported", actor="auditor:x", document_id=refused, sender=G22,
                                         details={"what": "bundle"})])
    # the latest checkpoint covers every entry of doc_id: reused, nothing signed
    data = await bundle_of(engine, hub, doc_id, seal=True)
    assert await checkpoint_sizes(engine) == before
    proofs = json.loads(unzip(data)["proofs.json"])
    assert proofs["checkpoint_size"] == before[-1] and proofs["not_yet_sealed"] == []
    ok, lines = verify_bundle(data, hub_cert=hub.cert, trust_anchors=[pki.ca_cert])
    assert ok, "\n".join(lines)
    # an entry about the document newer than the latest checkpoint: one checkpoint, over the whole log
    async with engine.begin() as c:
        await append_rows(c, [record_row("audit.exported", actor="auditor:x", document_id=doc_id, sender=G22,
                                         details={"what": "bundle"})])
        seq = (await c.execute(sa.select(sa.func.max(records.c.seq)))).scalar()
    data = await bundle_of(engine, hub, doc_id, seal=True)
    after = await checkpoint_sizes(engine)
    assert after[:-1] == before and after[-1] == seq > before[-1]
    proofs = json.loads(unzip(data)["proofs.json"])
    assert proofs["checkpoint_size"] == seq and proofs["not_yet_sealed"] == []
    assert seq in [p["seq"] for p in proofs["proofs"]]
    assert verify_bundle(data, hub_cert=hub.cert)[0]
    # nothing new: the next export signs nothing either
    assert verify_bundle(await bundle_of(engine, hub, doc_id, seal=True))[0]
    assert await checkpoint_sizes(engine) == after


async def test_a_checkpoint_of_an_earlier_hub_key_is_not_reused(world, pki, offline):
    engine, hub, doc_id, refused, _ = world
    cert, key = devpki.issue(pki.ca_cert, pki.ca_key, "the hub, renewed")
    renewed = Identity(HUB, key, cert)
    async with engine.begin() as c:
        await append_rows(c, [record_row("audit.exported", actor="auditor:x", document_id=refused, sender=G22,
                                         details={"what": "bundle"})])
    before = await checkpoint_sizes(engine)
    data = await bundle_of(engine, renewed, doc_id, seal=True)
    assert len(await checkpoint_sizes(engine)) == len(before) + 1
    ok, lines = verify_bundle(data, hub_cert=cert)
    assert ok, "\n".join(lines)


def test_a_large_package_is_stored_and_the_rest_deflated():
    import os

    from hub.audit import bundle

    big = b"<edXMLEnvelope>" + base64_of(os.urandom(bundle.STORE_ABOVE)) + b"</edXMLEnvelope>"
    files = {"package.edxml": big, "entries.jsonl": b'{"seq":1}\n' * 500, "hub.pem": b"-----BEGIN"}
    data = bundle.zip_files(files, datetime(2026, 11, 27, 8, 30, tzinfo=timezone.utc))
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        kinds = {i.filename: i.compress_type for i in z.infolist()}
        assert {i.filename: z.read(i) for i in z.infolist()} == files
        assert [i.filename for i in z.infolist()] == ["package.edxml", "entries.jsonl", "hub.pem"]
    assert kinds == {"package.edxml": zipfile.ZIP_STORED, "entries.jsonl": zipfile.ZIP_DEFLATED,
                     "hub.pem": zipfile.ZIP_DEFLATED}


async def test_a_bundle_with_stored_members_verifies(world, monkeypatch, offline):
    from hub.audit import bundle

    engine, hub, doc_id, _, _ = world
    monkeypatch.setattr(bundle, "STORE_ABOVE", 0)  # every file stored, as a large package is
    data = await bundle_of(engine, hub, doc_id)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
    ok, lines = verify_bundle(data, hub_cert=hub.cert)
    assert ok, "\n".join(lines)


def base64_of(data: bytes) -> bytes:
    import base64

    return base64.b64encode(data)


async def test_refused_documents_and_unsigned_bundles(world, offline):
    engine, hub, _, refused, broken = world
    ok, lines = verify_bundle(await bundle_of(engine, hub, refused, sign=False))
    assert ok, lines  # a refused package is still evidence: its bytes, its refusal, proven
    assert any("manifest.sig: absent" in line for line in lines)
    assert any(line.startswith("OK    package.edxml: XML-DSig") for line in lines)  # refused for authority, not signature
    data = await bundle_of(engine, hub, broken)
    ok, lines = verify_bundle(data)
    assert ok, lines
    assert any(line.startswith("NOTE  package.edxml") and "signature.digest_mismatch" in line for line in lines)
    assert json.loads(unzip(data)["manifest.json"])["decision"] == "refused"
    with pytest.raises(NotFound):
        await bundle_of(engine, hub, "000.00.00.G22,2026/11/27,0/NOTHING")


async def test_same_bytes_refused_then_accepted(tmp_path, pki):
    """A package refused (its recipient was not registered yet) and later accepted unchanged:
    the bundle checks the certificates at the time it was accepted."""
    env = await _make_env("embedded", f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", tmp_path, pki)
    try:
        async with env.running():
            g = await env.adapter(G22)
            doc = make_edoc(G22, ("000.00.00.H45",))
            data = g.sign(build_edoc(doc, []))
            await g.publish(data)
            [answer] = await drain(g, 1)
            assert answer.headers["x-hub-reason"] == "authority.recipient_unknown"
            await env.register("000.00.00.H45", "Tỉnh H45")
            accepted = sa.select(records.c.seq).where(records.c.event == "package.accepted",
                                                      records.c.document_id == doc.document_id)
            for _ in range(40):  # the workers reload the registry within a few seconds
                await g.publish(data)  # (the same refusal again is not handed to G22 twice)
                await asyncio.sleep(0.5)
                if await env.scalar(accepted):
                    break
            assert len(await env.scalar(accepted)) == 1
    finally:
        await _teardown(env)
    engine = make_engine(env.settings.database_url)
    hub = Identity(HUB, pki.ids[HUB].key, pki.ids[HUB].cert)
    try:
        await seal(engine, hub)
        bundle = await bundle_of(engine, hub, doc.document_id)
    finally:
        await engine.dispose()
    entries = [json.loads(x) for x in unzip(bundle)["entries.jsonl"].decode().splitlines()]
    assert [e["event"] for e in entries][0] == "package.refused" and "package.accepted" in [e["event"] for e in entries]
    ok, lines = verify_bundle(bundle)
    assert ok, lines


async def test_certificates_are_checked_at_receipt_not_today(world, monkeypatch, pki):
    """A bundle verified in 2100 (the signing certificate long expired) still verifies: the
    chain is checked at received_at; and moving received_at outside the validity fails."""
    engine, hub, doc_id, _, _ = world
    data = await bundle_of(engine, hub, doc_id)
    import hub.edxml.signature as signature_module
    import hub.pki.chain as chain_module

    class Future(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2100, 1, 1, tzinfo=tz or timezone.utc)

    monkeypatch.setattr(signature_module, "datetime", Future)
    monkeypatch.setattr(chain_module, "datetime", Future)
    ok, lines = verify_bundle(data)
    assert ok, lines
    files = unzip(data)
    received = datetime.strptime(files["received_at"].decode().strip(), "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(received.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)) < timedelta(minutes=10)
    not_after = pki.ids[G22].cert.not_valid_after_utc
    late = (not_after + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
    bad = fails(changed(files, "received_at", late))
    assert any("received_at" in b for b in bad)


async def test_a_log_changed_since_its_checkpoint_is_not_exported(world):
    """The exporter refuses to certify a damaged log (and says to run `hub audit verify`)."""
    from hub.errors import ConflictError
    from tests.audit.test_log_db import tamper

    engine, hub, doc_id, _, _ = world
    first, second = [e["seq"] for e in (await trail(engine, doc_id))["entries"][:2]]
    async with engine.connect() as c:
        row = (await c.execute(sa.select(records).where(records.c.seq == second))).mappings().one()
        actor = (await c.execute(sa.select(records.c.actor).where(records.c.seq == first))).scalar()
    # a field changed, its stored leaf hash left as it was
    await tamper(engine, f"UPDATE records SET actor = 'x' WHERE seq = {first}")
    with pytest.raises(ConflictError) as err:
        await bundle_of(engine, hub, doc_id)
    assert f"entry {first} does not match its stored leaf hash" in str(err.value)
    await tamper(engine, f"UPDATE records SET actor = '{actor}' WHERE seq = {first}")
    await bundle_of(engine, hub, doc_id)  # as it was: fine again
    # a field changed with its leaf hash recomputed: the signed checkpoint no longer agrees
    leaf = entry_leaf(second, row["at"], row["event"], "x", row["document_id"], row["sender"], row["sha256"],
                      row["reason"], row["message"], row["details"]).hex()
    await tamper(engine, f"UPDATE records SET actor = 'x', leaf_hash = '{leaf}' WHERE seq = {second}")
    with pytest.raises(ConflictError) as err:
        await bundle_of(engine, hub, doc_id)
    assert "no longer hashes to checkpoint" in str(err.value)
    # entries deleted. The proofs come from O(log n) stored subtree hashes (hub.audit.nodes),
    # not from every leaf: another document's bundle needs only the leaves beside its own.
    from hub.audit import merkle
    from hub.audit.query import get_checkpoint
    from hub.audit.verify import verify_log

    other = [e["seq"] for e in (await trail(engine, world[3]))["entries"]]
    async with engine.connect() as c:
        size = (await get_checkpoint(c))["size"]
    needed = {ix + 1 for s in other if s <= size
              for lv, ix in merkle.nodes_needed(merkle.inclusion_ranges(s - 1, size)) if lv == 0} - set(other)
    unneeded = next(s for s in range(1, size + 1) if s not in needed and s not in other and s != second)
    await tamper(engine, f"DELETE FROM records WHERE seq = {unneeded}")
    ok, lines = verify_bundle(await bundle_of(engine, hub, world[3]))  # still proven in the signed log
    assert ok, "\n".join(lines)
    rep = await verify_log(engine, hub.cert)  # the whole log's check names what is gone
    assert rep.first_bad_entry == min(unneeded, second) and f"entry {unneeded} is missing" in "\n".join(rep.problems)
    gone = min(needed)
    await tamper(engine, f"DELETE FROM records WHERE seq = {gone}")
    with pytest.raises(ConflictError) as err:
        await bundle_of(engine, hub, world[3])  # a leaf its proofs need
    assert f"entry {gone} is missing" in str(err.value)


async def test_the_readme_steps_work_by_hand(world, tmp_path):
    """The README's own commands (Python for the proofs, openssl for the signatures, xmlsec1
    for the package) verify an exported bundle: an auditor needs none of the hub's code."""
    import subprocess

    engine, hub, doc_id, _, _ = world
    with zipfile.ZipFile(io.BytesIO(await bundle_of(engine, hub, doc_id))) as z:
        z.extractall(tmp_path / "b")
    b = tmp_path / "b"
    readme_text = (b / "README.txt").read_text(encoding="utf-8")
    start = readme_text.index("python3 - <<'PY'")
    code = "\n".join(line[5:] for line in readme_text[start:readme_text.index("     PY\n", start)].splitlines()[1:])
    out = subprocess.run([sys.executable, "-c", code], cwd=b, capture_output=True, text=True, timeout=60)
    results = out.stdout.split()
    assert out.returncode == 0 and results and results[1::2] == ["True"] * (len(results) // 2), out
    trust = next((b / "trust").glob("*.pem"))
    received = (b / "received_at").read_text().strip().replace("T", " ")[:19]
    script = f"""set -e
head -n 4 checkpoint.txt > body.bin
tail -n 1 checkpoint.txt | awk '{{print $3}}' | base64 -d | tail -c +5 > sig.bin
openssl x509 -in hub.pem -pubkey -noout > hub.pub
openssl dgst -sha256 -verify hub.pub -signature sig.bin body.bin
base64 -d manifest.sig | tail -c +5 > manifest.bin
openssl dgst -sha256 -verify hub.pub -signature manifest.bin manifest.json
xmlsec1 --verify --enabled-key-data x509 --enabled-reference-uris empty --trusted-pem {trust} \
   --verification-gmt-time "{received}" package.edxml
"""
    out = subprocess.run(["bash", "-c", script], cwd=b, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.count("Verified OK") == 2, out
    # and a changed checkpoint fails the same commands
    (b / "checkpoint.txt").write_text((b / "checkpoint.txt").read_text().replace("\ntime 20", "\ntime 19", 1))
    out = subprocess.run(["bash", "-c", script], cwd=b, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "Verification failure" in out.stdout + out.stderr


def test_readme_explains_the_manual_checks():
    from hub.audit.bundle import readme

    text = readme("000.00.00.G22,2026/11/27,1/VPCP", 42, ["trust/ab.pem"])
    for needle in ("SHA-256(0x00 || canonical)", "RFC 9162", "SHA-256(0x01 || left || right)", "openssl dgst",
                   "xmlsec1 --verify", "--verification-gmt-time", "checkpoint.txt", "1..42", "not prove"):
        assert needle in text, needle



async def test_the_bundle_is_built_off_the_event_loop(world, monkeypatch):
    """Hashing, the package's signature check and the zip run in a thread, not on the loop
    that serves the workers and the API."""
    import threading

    from hub.audit import bundle

    engine, hub, doc_id, _, _ = world
    seen = []
    real = bundle._build

    def recording(*a, **kw):
        seen.append(threading.get_ident())
        return real(*a, **kw)

    monkeypatch.setattr(bundle, "_build", recording)
    data = await bundle_of(engine, hub, doc_id)
    assert verify_bundle(data)[0]
    assert seen and threading.get_ident() not in seen


async def test_an_export_that_seals_reads_the_document_once(world, pki, offline, monkeypatch):
    """The entries read before sealing are the ones proven after it: the checkpoint is signed
    over them, not followed by a second read of everything (issue 15: the slow bundles were
    the ones that sealed)."""
    from hub.audit import bundle as bundle_module

    engine, hub, doc_id, _, _ = world
    async with engine.begin() as c:  # newer than the latest checkpoint: this export has to seal
        await append_rows(c, [record_row("audit.exported", actor="auditor:x", document_id=doc_id, sender=G22,
                                         details={"what": "bundle"})])
        seq = (await c.execute(sa.select(sa.func.max(records.c.seq)))).scalar()
    reads = []
    real = bundle_module.document_entries

    async def counted(*a, **kw):
        reads.append(a[1])
        return await real(*a, **kw)

    monkeypatch.setattr(bundle_module, "document_entries", counted)
    data = await bundle_of(engine, hub, doc_id, seal=True)
    assert reads == [doc_id]
    assert (await checkpoint_sizes(engine))[-1] == seq
    proofs = json.loads(unzip(data)["proofs.json"])
    assert proofs["checkpoint_size"] == seq and proofs["not_yet_sealed"] == []
    assert seq in [p["seq"] for p in proofs["proofs"]]
    ok, lines = verify_bundle(data, hub_cert=hub.cert, trust_anchors=[pki.ca_cert])
    assert ok, "\n".join(lines)


@pytest.mark.postgres
async def test_an_export_waits_for_a_running_sealer_on_its_lock(pg_url, pki):
    """seal(wait=...) waits for the sealer holding the lock to commit (no polling), then signs
    what that one left; when it does not commit in time, None (no error)."""
    from hub.audit.sealer import SEAL_LOCK
    from hub.store.engine import migrate

    engine = make_engine(pg_url)
    await migrate(engine)
    hub = Identity(HUB, pki.ids[HUB].key, pki.ids[HUB].cert)
    try:
        async with engine.begin() as c:
            await append_rows(c, [record_row("audit.exported", actor="auditor:x", document_id="X", sender=G22)])
        async with engine.connect() as holder:
            await holder.execute(sa.text(f"SELECT pg_advisory_xact_lock({SEAL_LOCK})"))
            assert await seal(engine, hub, wait=0.2) is None  # still held: gives up, no exception
            waiting = asyncio.ensure_future(seal(engine, hub, wait=30))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # waiting on the lock, not returning "another sealer runs"
            await holder.rollback()  # the other sealer ends
            signed = await waiting
        assert signed is not None and signed.verify(hub.cert)
        assert await checkpoint_sizes(engine) == [signed.size]
    finally:
        await engine.dispose()
