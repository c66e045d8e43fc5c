"""`hub pki init`, `trust add`, `agency add|list|show|import|retire`, `sign`, `check` end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from hub.edxml.builder import build_edoc
from tests.conftest import DATA, G22, H41, attachment, make_edoc

HUB = [sys.executable, "-m", "hub.cli"]


def _runner(tmp_path):
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path / "data")}
    env.pop("HUB_DATABASE_URL", None)
    env.pop("HUB_AMQP_URL", None)

    def _run(*args, check_rc: int | None = 0):
        p = subprocess.run([*HUB, *map(str, args)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        if check_rc is not None:
            assert p.returncode == check_rc, f"rc={p.returncode}\nstdout={p.stdout}\nstderr={p.stderr}"
        return p

    return _run


@pytest.fixture
def run(tmp_path):
    return _runner(tmp_path)


@pytest.fixture(scope="module")
def world_template(tmp_path_factory):
    """The world made once per module by the commands themselves: its PKI and data directory."""
    root = tmp_path_factory.mktemp("world")
    run, pki = _runner(root), root / "pki"
    out = run("pki", "init", pki, "--agency", f"{G22}=Văn phòng Chính phủ", "--agency", f"{H41}=UBND tỉnh Nghệ An")
    assert "DEVELOPMENT" in out.stdout
    run("trust", "add", pki / "ca.pem")
    run("agency", "add", G22, "--name", "Văn phòng Chính phủ", "--cert", pki / f"{G22}.pem")
    run("agency", "add", H41, "--name", "UBND tỉnh Nghệ An", "--cert", pki / f"{H41}.pem", "--accepts", "1,2")
    return root


@pytest.fixture
def world(run, world_template, tmp_path):
    """A dev PKI, its root trusted, G22 and H41 registered (a copy of ``world_template``)."""
    for d in ("pki", "data"):
        shutil.copytree(world_template / d, tmp_path / d, symlinks=True)
    return tmp_path / "pki"


def test_pki_init_writes_keys_private_and_marked(world):
    assert (world / "README.txt").read_text().startswith("DEVELOPMENT ONLY")
    assert oct((world / f"{G22}.key").stat().st_mode & 0o777) == "0o600"
    assert (world / "000.00.99.G22.pem").exists()  # the hub's own identity


def test_sign_then_check_accepts(run, world, tmp_path):
    raw = tmp_path / "doc.edxml"
    raw.write_bytes(build_edoc(make_edoc(G22, (H41,)), [attachment()]))
    run("sign", raw, "--key", world / f"{G22}.key", "--cert", world / f"{G22}.pem", "-o", tmp_path / "signed.edxml")
    p = run("check", tmp_path / "signed.edxml")
    assert p.stdout.strip() == f"ACCEPT {tmp_path / 'signed.edxml'}"


def test_check_refuses_with_reason_and_exit_1(run, world, tmp_path):
    good, bad = tmp_path / "good.edxml", tmp_path / "bad.edxml"
    good.write_bytes(build_edoc(make_edoc(G22, (H41,)), [attachment()]))
    run("sign", good, "--key", world / f"{G22}.key", "--cert", world / f"{G22}.pem", "-o", good)
    # H41 only accepts types 1 and 2
    bad.write_bytes(build_edoc(make_edoc(G22, (H41,), doc_type="7"), [attachment()]))
    run("sign", bad, "--key", world / f"{G22}.key", "--cert", world / f"{G22}.pem", "-o", bad)
    p = run("check", good, bad, check_rc=1)
    lines = p.stdout.strip().splitlines()
    assert lines[0] == f"ACCEPT {good}"
    assert lines[1].startswith(f"REFUSE {bad} authority.not_competent: ")
    p = run("check", "--json", bad, check_rc=1)
    d = json.loads(p.stdout)
    assert d["accepted"] is False and d["reason"] == "authority.not_competent" and d["element"]


def test_check_impersonation_and_unsigned(run, world, tmp_path):
    doc = tmp_path / "x.edxml"
    doc.write_bytes(build_edoc(make_edoc(G22, (H41,)), [attachment()]))
    p = run("check", doc, check_rc=1)
    assert "signature.missing" in p.stdout
    run("sign", doc, "--key", world / f"{H41}.key", "--cert", world / f"{H41}.pem", "-o", doc)
    p = run("check", doc, check_rc=1)
    assert "trust.not_pinned" in p.stdout


def test_check_the_real_sample_names_the_recipient_code(run, world):
    sample = DATA / "edoc_new.edxml"
    p = run("check", sample, check_rc=1)
    assert "schema." in p.stdout and "To/OrganId" in p.stdout and "28.22.H17" in p.stdout


def test_usage_errors_exit_2(run, world):
    p = run("agency", "add", "28.22.H17", "--name", "x", check_rc=2)
    assert "malformed" in p.stderr and "NNN.NN.NN.Xnn" in p.stderr
    run("check", check_rc=2)  # no files
    p = run("check", "/nonexistent.edxml", check_rc=2)
    assert "cannot read" in p.stderr


def test_agency_show_list_and_rotation(run, world, tmp_path):
    p = run("agency", "show", H41)
    assert "UBND tỉnh Nghệ An" in p.stdout and "accepts   1,2" in p.stdout and "days to expiry" in p.stdout
    # rotation: pin a second certificate, retire the first
    run("pki", "init", tmp_path / "pki2", "--agency", H41)
    run("agency", "add", H41, "--cert", tmp_path / "pki2" / f"{H41}.pem")
    d = json.loads(run("agency", "show", H41, "--json").stdout)
    assert len(d["certificates"]) == 2
    old = d["certificates"][0]["fingerprint"]
    run("agency", "retire", H41, "--cert", old)
    d = json.loads(run("agency", "show", H41, "--json").stdout)
    assert [c["retired_at"] is not None for c in d["certificates"]] == [True, False]
    p = run("agency", "list")
    assert G22 in p.stdout and H41 in p.stdout and "(2 of 2 shown)" in p.stdout


def test_agency_import_with_line_errors_and_served_routing(run, world, tmp_path):
    csv = tmp_path / "dir.csv"
    csv.write_text(
        "code,name,served_by\n"
        "000.00.24.H41,Sở Nội vụ Nghệ An,\n"
        "bad-code,Hỏng,\n"
        "000.46.24.H41,Phòng Văn thư,000.00.00.H41\n"
        "000.00.25.H41,Sở X,000.00.00.H99\n",
        encoding="utf-8",
    )
    p = run("agency", "import", csv, check_rc=1)  # some lines had errors
    assert "line 3: malformed agency code 'bad-code'" in p.stdout
    assert "H99" in p.stdout
    assert "imported 3 new" in p.stdout
    # a package to an imported, served agency is accepted and routed to H41's system
    doc = tmp_path / "d.edxml"
    doc.write_bytes(build_edoc(make_edoc(G22, ("000.46.24.H41", "000.00.24.H41")), [attachment()]))
    run("sign", doc, "--key", world / f"{G22}.key", "--cert", world / f"{G22}.pem", "-o", doc)
    d = json.loads(run("check", "--json", doc).stdout)
    assert [r["system"] for r in d["recipients"]] == [H41, H41]


def test_sdk_profile_check_says_only_over_the_own_connection(run, world, tmp_path):
    """`hub agency add --profile sdk`; `hub check` accepts an unsigned package of such an agency
    and says it is accepted only from the agency's own connection; strict stays strict."""
    doc = tmp_path / "unsigned.edxml"
    doc.write_bytes(build_edoc(make_edoc(G22, (H41,)), [attachment()]))
    assert "signature.missing" in run("check", doc, check_rc=1).stdout  # G22 is strict by default
    p = run("agency", "add", G22, "--profile", "sdk")
    assert "signature profile sdk" in p.stdout
    assert "profile   sdk" in run("agency", "show", G22).stdout
    p = run("check", doc)
    assert p.stdout.strip() == f"ACCEPT {doc} (not signed: accepted only from {G22}'s own connection)"
    d = json.loads(run("check", "--json", doc).stdout)
    assert d["accepted"] is True and d["authenticated_by"] == "connection"
    run("sign", doc, "--key", world / f"{G22}.key", "--cert", world / f"{G22}.pem", "-o", tmp_path / "s.edxml")
    assert json.loads(run("check", "--json", tmp_path / "s.edxml").stdout)["authenticated_by"] == "signature"
    run("agency", "add", G22, "--profile", "strict")
    assert "signature.missing" in run("check", doc, check_rc=1).stdout
    p = run("agency", "add", G22, "--profile", "lenient", check_rc=2)
    assert "lenient" in p.stderr


def test_import_sets_profiles(run, world, tmp_path):
    csv = tmp_path / "dir.csv"
    csv.write_text("code,name,connected,profile\n000.00.00.H70,Bảy mươi,true,sdk\n000.00.00.H71,Bảy mốt,true,\n"
                   "000.00.00.H72,Bảy hai,true,weak\n", encoding="utf-8")
    p = run("agency", "import", csv, check_rc=None)
    assert "weak" in p.stdout + p.stderr
    assert json.loads(run("agency", "show", "000.00.00.H70", "--json").stdout)["profile"] == "sdk"
    assert json.loads(run("agency", "show", "000.00.00.H71", "--json").stdout)["profile"] == "strict"
    # a CSV without the column keeps each agency's profile
    csv.write_text("code,name\n000.00.00.H70,Bảy mươi (mới)\n", encoding="utf-8")
    run("agency", "import", csv, check_rc=None)
    assert json.loads(run("agency", "show", "000.00.00.H70", "--json").stdout)["profile"] == "sdk"
