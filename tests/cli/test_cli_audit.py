"""`hub audit search|trail|verify|export|verify-bundle|checkpoint|consistency` as an auditor runs
them, against a log the real pipeline wrote (SQLite and PostgreSQL), with their exit codes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
import zipfile

import pytest
import sqlalchemy as sa

from hub.pki import devpki
from hub.store.engine import make_engine
from hub.audit.entry import entry_leaf
from hub.store.tables import checkpoints, records
from tests.conftest import G22, H41, H44, HUB
from tests.hubenv import _make_env, _teardown, letter_with_statuses

HUB_CMD = [sys.executable, "-m", "hub.cli"]


async def run(env: dict, *args, rc: int = 0, timeout: float = 90) -> tuple[str, str]:
    p = await asyncio.create_subprocess_exec(*HUB_CMD, *map(str, args), env=env, stdout=asyncio.subprocess.PIPE,
                                             stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(p.communicate(), timeout)
    assert p.returncode == rc, f"hub {' '.join(map(str, args))}: rc={p.returncode}\n{out.decode()}\n{err.decode()}"
    return out.decode(), err.decode()


@pytest.fixture
async def audited(db_url, tmp_path, pki):
    """The hub ran: G22 sent a document to H41 and H44, H41 answered 01 then 03, and a package
    to H44 was refused. Returns (environment for the CLI, DocumentId, database URL)."""
    env = await _make_env("embedded", db_url, tmp_path, pki)
    try:
        async with env.running():
            doc, _, _ = await letter_with_statuses(env)
    finally:
        await _teardown(env)
    cli = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    cli.update(HUB_DATA_DIR=str(tmp_path / "cli"), HUB_DATABASE_URL=db_url, HUB_ORGAN_ID=HUB,
               HUB_KEY_FILE=str(env.settings.key_file), HUB_CERT_FILE=str(env.settings.cert_file))
    return cli, doc.document_id, db_url


async def count_checkpoints(db_url: str) -> int:
    e = make_engine(db_url)
    try:
        async with e.connect() as c:
            return (await c.execute(sa.select(sa.func.count()).select_from(checkpoints))).scalar()
    finally:
        await e.dispose()


@pytest.mark.timeout(300)  # some 25 `hub` processes one after another: a bound for a hang, not a speed test
async def test_audit_cli(audited, tmp_path, pki):
    cli, doc_id, db_url = audited

    # checkpoint: none yet (unless the hub's sealer already signed one), then --seal signs one now
    if await count_checkpoints(db_url) == 0:
        _, err = await run(cli, "audit", "checkpoint", rc=2)  # nothing signed yet: not found
        assert "no checkpoint" in err and "--seal" in err
    out, _ = await run(cli, "audit", "checkpoint", "--seal")
    lines = out.split("\n")
    assert lines[0] == f"{HUB}/audit" and lines[1].isdigit() and lines[3].startswith("time ")
    assert lines[5].startswith(f"\u2014 {HUB}/audit ")
    first_size = int(lines[1])

    # search: a human table, JSON, CSV to a file; filters; exit 1 when a filter matches nothing
    out, _ = await run(cli, "audit", "search", "--document-id", doc_id)
    assert "package.accepted" in out and "accepted for 000.00.00.H41, 000.00.00.H44" in out
    assert "reported status 03" in out and "(6 of 6 shown, newest first)" in out
    out, _ = await run(cli, "audit", "search", "--sender", G22, "--event", "package.refused", "--json")
    page = json.loads(out)
    assert page["total"] == 1 and page["entries"][0]["reason"] == "authority.not_competent"
    out, _ = await run(cli, "audit", "search", "--recipient", H44, "--event", "edoc.delivered", "--type", "1", "--json")
    assert [e["details"]["recipient"] for e in json.loads(out)["entries"]] == [H44]
    _, err = await run(cli, "audit", "search", "--document-id", doc_id, "--csv", "-o", tmp_path / "e.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "e.csv").read_text(encoding="utf-8"))))
    assert len(rows) == 6 and "wrote 6 of 6" in err
    await run(cli, "audit", "search", "--reason", "nothing.like.this", rc=1)
    await run(cli, "audit", "search", "--since", "not a time", rc=2)
    out, _ = await run(cli, "audit", "search", "--event", "audit.exported", "--json")
    exported = json.loads(out)["entries"]
    assert len(exported) == 1 and exported[0]["actor"].startswith("cli:")  # the CSV export is logged

    # trail: steps with the time between them; each recipient's delivery and statuses
    out, _ = await run(cli, "audit", "trail", doc_id)
    assert f"document {doc_id}" in out and "decision  accepted" in out
    assert "received from 000.00.00.G22" in out and "delivered to 000.00.00.H44" in out
    assert "01 arrived" in out and "03 accepted and registered" in out and "bước 03" in out
    assert "+0." in out and "recipients" in out
    t = json.loads((await run(cli, "audit", "trail", doc_id, "--json"))[0])
    assert [h["code"] for r in t["recipients"] if r["code"] == H41 for h in r["history"]] == ["01", "03"]
    _, err = await run(cli, "audit", "trail", "000.00.00.G22,2026/11/27,0/NOTHING", rc=2)  # not found
    assert "knows no document" in err

    # export, then verify-bundle with no database (an unreachable URL) and pinned roots of trust
    bundle = tmp_path / "bundle.zip"
    out, _ = await run(cli, "audit", "export", doc_id, "-o", bundle)
    assert "wrote" in out and "NOT YET SEALED" not in out and "verify-bundle" in out
    pinned = tmp_path / "pinned"
    pinned.mkdir()
    (pinned / "hub.pem").write_bytes(devpki.cert_pem(pki.ids[HUB].cert))
    (pinned / "ca.pem").write_bytes(devpki.cert_pem(pki.ca_cert))
    offline = {**cli, "HUB_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing", "HUB_AMQP_URL": "amqp://127.0.0.1:1/"}
    out, _ = await run(offline, "audit", "verify-bundle", bundle, "--hub-cert", pinned / "hub.pem",
                       "--trust", pinned / "ca.pem")
    assert "RESULT: OK" in out and "OK    package.edxml: XML-DSig" in out and "(pinned)" in out
    # a changed package: exit 1 and the file named
    with zipfile.ZipFile(bundle) as z:
        files = {i.filename: z.read(i) for i in z.infolist()}
    files["package.edxml"] = files["package.edxml"].replace("Hà Nội".encode(), "Hà Nam".encode(), 1)
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as z:
        for name, body in files.items():
            z.writestr(name, body)
    out, _ = await run(offline, "audit", "verify-bundle", tampered, rc=1)
    assert "RESULT: FAILED" in out and "FAIL  package.edxml" in out
    out, _ = await run(offline, "audit", "verify-bundle", tampered, "--json", rc=1)
    assert json.loads(out)["ok"] is False

    # verify the whole log; a second checkpoint; consistency between the two
    out, _ = await run(cli, "audit", "verify")
    assert "checked" in out and "OK: every entry" in out
    out, _ = await run(cli, "audit", "checkpoint", "--seal")
    second_size = int(out.split("\n")[1])
    assert second_size > first_size  # the exports were logged, then sealed
    out, _ = await run(cli, "audit", "checkpoint", "--list", "5")
    assert f"{second_size:>12,}" in out and "latest first" in out
    out, _ = await run(cli, "audit", "consistency", first_size, second_size)
    assert f"old checkpoint: size {first_size}" in out and "signature OK" in out
    assert f"verified: checkpoint {second_size} extends checkpoint {first_size}" in out
    assert any(len(line.strip()) == 64 for line in out.splitlines())  # the proof, in hex
    rep = json.loads((await run(cli, "audit", "consistency", first_size, "latest", "--json"))[0])
    assert rep["verified"] is True and rep["new"]["size"] == second_size
    await run(cli, "audit", "consistency", first_size, "x", rc=2)
    await run(cli, "audit", "consistency", first_size + 1000, "latest", rc=2)  # old > new

    # tampering with the database: verify exits 1 and names the first problem
    from tests.audit.test_log_db import tamper

    e = make_engine(db_url)
    try:
        await tamper(e, "UPDATE records SET sender = '000.00.00.H99' WHERE seq = 3")
    finally:
        await e.dispose()
    out, _ = await run(cli, "audit", "verify", rc=1)
    assert "FIRST PROBLEM: entry 3" in out and "changed after it was written" in out
    rep = json.loads((await run(cli, "audit", "verify", "--json", rc=1))[0])
    assert rep["ok"] is False and rep["first_bad_entry"] == 3 and rep["first_bad_checkpoint"] == first_size
    # the stored leaf hashes are intact, so the old checkpoint still extends to the new one...
    await run(cli, "audit", "consistency", first_size, second_size)
    # ...until the leaf hash is recomputed to hide the change: then no proof reaches the signed roots
    e = make_engine(db_url)
    try:
        async with e.connect() as c:
            r = (await c.execute(sa.select(records).where(records.c.seq == 3))).mappings().one()
        leaf = entry_leaf(3, r["at"], r["event"], r["actor"], r["document_id"], r["sender"], r["sha256"], r["reason"],
                          r["message"], r["details"]).hex()
        await tamper(e, f"UPDATE records SET leaf_hash = '{leaf}' WHERE seq = 3")
    finally:
        await e.dispose()
    # the proof comes from the subtree hashes stored when the log was sealed (hub.audit.nodes),
    # so the two signed trees still prove consistent; a forged stored hash does not
    await run(cli, "audit", "consistency", first_size, second_size)
    from hub.audit import merkle
    from tests.audit.test_nodes import _tamper_nodes

    level, idx = next(p for r in merkle.consistency_ranges(first_size, second_size)
                      for p in merkle.perfect_parts(*r) if p[0] > 0)
    e = make_engine(db_url)
    try:
        await _tamper_nodes(e, f"UPDATE merkle_nodes SET hash = '{'ab' * 32}' WHERE level = {level} AND idx = {idx}")
    finally:
        await e.dispose()
    out, _ = await run(cli, "audit", "consistency", first_size, second_size, rc=1)
    assert "NOT VERIFIED" in out
    out, _ = await run(cli, "audit", "verify", rc=1)
    assert f"FIRST PROBLEM: checkpoint {first_size}" in out
    _, err = await run(cli, "audit", "export", doc_id, "-o", tmp_path / "again.zip", rc=1)
    assert "hub audit verify" in err


async def test_audit_verify_finds_changed_package_bytes(audited):
    """Real traffic, then one stored package's bytes changed in the database: verify exits 1 and
    names the package and the entry that names it."""
    cli, doc_id, db_url = audited
    out, _ = await run(cli, "audit", "verify")
    assert "OK:" in out and "stored package" in out
    e = make_engine(db_url)
    try:
        async with e.begin() as c:
            sha = (await c.execute(sa.select(records.c.sha256).where(
                records.c.event == "package.accepted", records.c.document_id == doc_id))).scalar_one()
            data = (await c.execute(sa.text("SELECT data FROM packages WHERE sha256 = :s"), {"s": sha})).scalar_one()
            forged = bytes(data).replace(b"VPCP", b"VPCX", 1)
            assert forged != bytes(data)
            await c.execute(sa.text("UPDATE packages SET data = :d WHERE sha256 = :s"), {"d": forged, "s": sha})
    finally:
        await e.dispose()
    out, _ = await run(cli, "audit", "verify", rc=1)
    assert f"FIRST PROBLEM: package {sha[:16]}" in out and "changed after it was stored" in out
    rep = json.loads((await run(cli, "audit", "verify", "--json", rc=1))[0])
    assert rep["ok"] is False and rep["first_bad_package"] == sha and rep["first_bad_entry"] is None
