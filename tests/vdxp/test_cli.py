"""`hub vdxp add|list|revoke` end to end (a subprocess, the embedded SQLite default)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from tests.conftest import H41

HUB = [sys.executable, "-m", "hub.cli"]


def test_vdxp_systems_cli(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATA_DIR"] = str(tmp_path / "data")

    def run(*args, rc=0):
        p = subprocess.run([*HUB, *args], capture_output=True, text=True, env=env, timeout=120)
        assert p.returncode == rc, f"rc={p.returncode}\nstdout={p.stdout}\nstderr={p.stderr}"
        return p

    p = run("vdxp", "add", "vxp.h41", "--agency", H41, rc=2)
    assert "not registered" in p.stderr and "Traceback" not in p.stderr
    run("agency", "add", H41, "--name", "UBND tỉnh Nghệ An")
    p = run("vdxp", "add", "vxp.h41", "--agency", H41)
    secret = p.stdout.splitlines()[2]
    assert len(secret) >= 40 and " " not in secret
    assert "service.endpoint=" in p.stdout
    p = run("vdxp", "add", "vxp.h41", "--agency", H41, rc=2)  # exit 2 for a conflict, as every command
    assert "state.conflict" in p.stderr
    run("vdxp", "add", "vxp.other", "--agency", H41, "--secret", "short", rc=2)
    p = run("vdxp", "add", "vxp.given", "--agency", H41, "--secret", "a-secret-the-client-already-has")
    assert "a-secret-the-client-already-has" not in p.stdout  # never echoed
    run("vdxp", "add", "bad id!", "--agency", H41, rc=2)
    p = run("vdxp", "list")
    assert "vxp.h41" in p.stdout and "active" in p.stdout and secret not in p.stdout
    rows = json.loads(run("vdxp", "list", "--json").stdout)
    assert {r["id"] for r in rows} == {"vxp.h41", "vxp.given"} and all("secret" not in str(r) for r in rows)
    # encrypted at rest: neither secret is in the database file; the key file is the owner's alone
    db = (tmp_path / "data" / "hub.db").read_bytes() + b"".join(
        f.read_bytes() for f in (tmp_path / "data").glob("hub.db-*"))
    assert secret.encode() not in db and b"a-secret-the-client-already-has" not in db
    key = tmp_path / "data" / "vdxp.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    run("vdxp", "revoke", "vxp.h41")
    assert "revoked" in run("vdxp", "list").stdout
    run("vdxp", "revoke", "vxp.h41", rc=2)
