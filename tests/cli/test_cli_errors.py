"""No command misleads: each failure is one line saying what to do, with a consistent exit code
(2 for usage errors and what does not exist), and never a Python traceback."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hub.edxml.builder import build_edoc
from tests.conftest import AMQP_URL, G22, H41, attachment, make_edoc

HUB = [sys.executable, "-m", "hub.cli"]
H44 = "000.00.00.H44"


class Run:
    def __init__(self, tmp_path):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        self.env["HUB_DATA_DIR"] = str(tmp_path / "data")
        self.cwd = tmp_path
        self.pki = tmp_path / "data" / "pki"

    def __call__(self, *args, rc: int = 0, env: dict | None = None) -> subprocess.CompletedProcess:
        p = subprocess.run([*HUB, *map(str, args)], capture_output=True, text=True, cwd=self.cwd, timeout=120,
                           env={**self.env, **(env or {})})
        assert "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
        assert p.returncode == rc, f"hub {' '.join(map(str, args))}: rc={p.returncode}\n{p.stdout}\n{p.stderr}"
        return p

    def fails(self, *args, rc: int = 2, says: str, env: dict | None = None, after_logs: bool = False) -> str:
        """The command fails with exit ``rc`` and one error line on stderr containing ``says``; with
        ``after_logs`` (`hub serve` once it started) it is the last line, after notes and logs."""
        p = self(*args, rc=rc, env=env)
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("hub: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], p.stderr
        if not after_logs:
            assert len(lines) == 1, p.stderr
        assert says in errors[0], errors[0]
        return errors[0]


@pytest.fixture
def run(tmp_path) -> Run:
    return Run(tmp_path)


@pytest.fixture(scope="module")
def world_template(tmp_path_factory) -> Path:
    """The world's data directory, made once per module by the commands themselves."""
    run = Run(tmp_path_factory.mktemp("world"))
    run("pki", "init", "--agency", f"{G22}=Văn phòng Chính phủ", f"{H41}=UBND tỉnh Nghệ An")
    run("trust", "add", run.pki / "ca.pem")
    run("agency", "add", G22, "--name", "Văn phòng Chính phủ", "--cert", run.pki / f"{G22}.pem")
    run("agency", "add", H41, "--name", "UBND tỉnh Nghệ An", "--cert", run.pki / f"{H41}.pem", "--accepts", "1,2")
    return run.cwd / "data"


@pytest.fixture
def world(run, world_template) -> Run:
    """A dev PKI, its root trusted, G22 and H41 registered: a copy of ``world_template``."""
    shutil.copytree(world_template, run.cwd / "data")
    return run


# --- files, times, settings -----------------------------------------------------------------

def test_trust_crl_add_missing_file(run):
    run.fails("trust", "crl", "add", "national-ca.crl", says="cannot read CRL national-ca.crl: No such file")


def test_trust_add_and_agency_import_missing_files(run):
    run.fails("trust", "add", "nope.pem", says="cannot read certificate nope.pem")
    run.fails("agency", "import", "directory.csv", says="cannot read directory CSV directory.csv")


def test_check_bad_at(world, tmp_path):
    doc = tmp_path / "d.edxml"
    doc.write_bytes(b"<x/>")
    world.fails("check", "--at", "yesterday", doc, says="--at 'yesterday' is not an ISO 8601 time")
    world("check", "--at", "2026-11-27T09:00:00Z", doc, rc=1)  # a good time: the package is then judged


def test_bad_setting_value(run):
    run.fails("agency", "list", env={"HUB_PREFETCH": "lots"}, says="HUB_PREFETCH='lots' is not a whole number")


# --- database -------------------------------------------------------------------------------

def test_bad_database_url(run):
    line = run.fails("agency", "list", env={"HUB_DATABASE_URL": "mysql+nothing://db/hub"},
                     says="HUB_DATABASE_URL=mysql+nothing://db/hub is not a database URL")
    assert "postgresql://" in line


def test_database_server_not_there(run):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = run.fails("agency", "list", env={"HUB_DATABASE_URL": f"postgresql://hub:s3cret@127.0.0.1:{port}/hub"},
                     says="cannot use the database")
    assert "s3cret" not in line and "HUB_DATABASE_URL" in line


@pytest.mark.postgres
def test_database_missing(run):
    name = f"hub_missing_{uuid.uuid4().hex[:8]}"
    run.fails("agency", "list", env={"HUB_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}"},
              says=f"database {name} does not exist on 127.0.0.1:5432: create it")


# --- serve ----------------------------------------------------------------------------------

def test_serve_busy_port(world):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        world.fails("serve", "--port", port, says=f"cannot listen on 127.0.0.1:{port}: the address is in use")
        world.fails("serve", env={"HUB_HTTP_PORT": str(port)}, says=f"cannot listen on 127.0.0.1:{port}")


def test_serve_without_its_key(run):
    run.fails("serve", "--port", 0, says="make a development one with `hub pki init`", after_logs=True)


@pytest.mark.rabbitmq
def test_unknown_vhost(world):
    vhost = f"no-such-vhost-{uuid.uuid4().hex[:8]}"
    url = AMQP_URL.rstrip("/") + "/" + vhost
    world.fails("serve", "--port", 0, env={"HUB_AMQP_URL": url},
                says=f"refused virtual host {vhost} for user guest", after_logs=True)
    line = world.fails("agency", "add", H44, "--name", "Quảng Nam", env={"HUB_AMQP_URL": url}, says=vhost)
    assert "HUB_AMQP_URL" in line
    line = world.fails("inbox", H41, env={"HUB_ADAPTER_AMQP_URL": AMQP_URL.replace("guest:guest", "x:y").rstrip("/")
                                          + "/" + vhost}, says="refused")
    assert "HUB_ADAPTER_AMQP_URL" in line


# --- adapters: never the hub's connection ---------------------------------------------------

def test_send_and_inbox_need_the_adapters_own_url(world, tmp_path):
    doc = tmp_path / "letter.edxml"
    doc.write_bytes(build_edoc(make_edoc(G22, (H41,)), []))
    hub_url = {"HUB_AMQP_URL": AMQP_URL}
    for args in (("send", doc, "--as", G22), ("inbox", H41), ("status", f"{G22},2026/11/27,1/VPCP", "--code", "01",
                                                                 "--as", H41)):
        world.fails(*args, says="an adapter connects as its agency's own RabbitMQ user", env=hub_url)
        world.fails(*args, says="uses the hub's own RabbitMQ user guest",
                    env={**hub_url, "HUB_ADAPTER_AMQP_URL": AMQP_URL})


# --- sign -----------------------------------------------------------------------------------

def test_sign_checks_the_key_is_the_certificates(world, tmp_path):
    doc = tmp_path / "d.edxml"
    doc.write_bytes(build_edoc(make_edoc(G22, (H41,)), [attachment()]))
    out = tmp_path / "signed.edxml"
    world.fails("sign", doc, "--key", world.pki / f"{H41}.key", "--cert", world.pki / f"{G22}.pem", "-o", out,
                says=f"the key {world.pki / f'{H41}.key'} does not belong to the certificate")
    assert not out.exists()
    world.fails("sign", doc, "--key", world.pki / "nope.key", "--cert", world.pki / f"{G22}.pem", "-o", out,
                says="signing key not found")
    world.fails("sign", doc, "--key", world.pki / f"{G22}.pem", "--cert", world.pki / f"{G22}.pem", "-o", out,
                says="is not a PEM private key")
    bad = tmp_path / "bad.edxml"
    bad.write_bytes(b"not xml at all")
    world.fails("sign", bad, "--key", world.pki / f"{G22}.key", "--cert", world.pki / f"{G22}.pem", "-o", out,
                says=f"cannot sign {bad}: parse.not_xml")
    world("sign", doc, "--key", world.pki / f"{G22}.key", "--cert", world.pki / f"{G22}.pem", "-o", out)


# --- status ---------------------------------------------------------------------------------

def test_status_checks_the_documentid_and_reason(world):
    adapter = {"HUB_ADAPTER_AMQP_URL": "amqp://someone:pw@127.0.0.1:1/"}  # never reached
    world.fails("status", "28.22.H17,2026/11/27,1/X", "--code", "01", "--as", H41, env=adapter,
                says="DocumentId '28.22.H17,2026/11/27,1/X' is malformed")
    world.fails("status", f"{G22},2026/13/27,1/X", "--code", "01", "--as", H41, env=adapter,
                says="has no valid date")
    uuid_id = "6f1c2a3e-1d2b-4c5d-9e8f-0a1b2c3d4e5f"  # relayed traffic: a DocumentId that names no sender
    world.fails("status", uuid_id, "--code", "01", "--as", H41, env=adapter, says="give the original sender with --to")
    world.fails("status", uuid_id, "--code", "01", "--as", H41, "--to", "G22", env=adapter, says="--to code 'G22'")
    world.fails("status", " x", "--code", "01", "--as", H41, env=adapter, says="surrounding whitespace")
    world.fails("status", f"{G22},2026/11/27,1/X", "--code", "02", "--as", H41, env=adapter,
                says="status 02 (refused) needs --reason")
    world.fails("status", f"{G22},2026/11/27,1/X", "--code", "02", "--reason", " ", "--as", H41, env=adapter,
                says="needs --reason")


# --- users ----------------------------------------------------------------------------------

def test_user_names_unique_and_revoke_by_id(run):
    token = run("user", "add", "alice", "--role", "admin").stdout.strip().splitlines()[-1]
    uid = token.split("_")[1]
    run.fails("user", "add", "alice", "--role", "auditor", says=f"a user named 'alice' already exists (id {uid})")
    run.fails("user", "revoke", "alice", says=f"no user with id 'alice' ('alice' is the name of user {uid})")
    listed = run("user", "list").stdout
    assert uid in listed and "active" in listed  # revoking by name did nothing
    run("user", "revoke", uid)
    run.fails("user", "revoke", uid, says=f"user {uid} is already revoked")
    run.fails("user", "revoke", "000000000000", says="no user with id '000000000000'")
    run("user", "add", "alice", "--role", "auditor")  # the name is free again


# --- agencies -------------------------------------------------------------------------------

def test_agency_add_warns_without_name_or_certificate(world):
    p = world("agency", "add", H44)
    assert f"hub: warning: {H44} has no name" in p.stderr
    assert f"hub: warning: {H44} has no pinned certificate" in p.stderr and "trust.not_pinned" in p.stderr
    assert "None" not in p.stdout and '""' in p.stdout
    p = world("agency", "add", H44, "--name", "UBND tỉnh Quảng Nam", "--cert", world.pki / f"{G22}.pem", rc=2)
    assert "already pinned to 000.00.00.G22" in p.stderr


def test_agency_served_by_needs_a_system(world):
    world("agency", "add", "000.00.24.H41", "--name", "Sở Nội vụ", "--no-system")
    world.fails("agency", "add", "000.46.24.H41", "--name", "Phòng", "--served-by", "000.00.24.H41",
                says="--served-by 000.00.24.H41 has no own system")
    world.fails("agency", "add", "000.46.24.H41", "--served-by", "000.00.00.H99", says="is not registered")
    world("agency", "add", "000.46.24.H41", "--name", "Phòng", "--served-by", H41)
    shown = world("agency", "show", "000.00.24.H41").stdout
    assert "served by 000.00.00.H41" in shown and "None" not in shown
    world("agency", "add", "000.00.00.H77", "--name", "nowhere", "--no-system")
    assert "served by nobody" in world("agency", "show", "000.00.00.H77").stdout


def test_agency_not_found_and_malformed_exit_2(world):
    world.fails("agency", "show", H44, says=f"agency {H44} is not registered")
    world.fails("agency", "retire", H44, says=f"agency {H44} is not registered")
    world.fails("agency", "show", "28.22.H17", says="is malformed: expected NNN.NN.NN.Xnn")


def test_csv_booleans_are_true_or_false(world, tmp_path):
    csv = tmp_path / "dir.csv"
    csv.write_text("code,name,served_by,accepts,connected\n"
                   "000.00.24.H41,Sở Nội vụ,000.00.00.H41,,false\n"
                   "000.00.25.H41,Sở Tài chính,000.00.00.H41,,yes\n"
                   "000.00.26.H41,Sở Tư pháp,000.00.00.H41,,1\n"
                   "000.00.27.H41,Sở Y tế,000.00.00.H41,,TRUE\n"
                   "000.00.28.H41,Sở Xây dựng,000.00.24.H41,,false\n", encoding="utf-8")
    p = world("agency", "import", csv, rc=1)
    assert "line 3: connected is 'yes'; write true or false" in p.stdout
    assert "line 4: connected is '1'; write true or false" in p.stdout
    assert "000.00.28.H41: served_by 000.00.24.H41 has no own system" in p.stdout
    assert "imported 3 new" in p.stdout
    rows = {r["code"]: r for r in json.loads(world("agency", "list", "--json").stdout)["agencies"]}
    assert rows["000.00.27.H41"]["connected"] is True and rows["000.00.24.H41"]["connected"] is False
    assert "000.00.25.H41" not in rows and "000.00.26.H41" not in rows


def test_json_times_are_iso_8601(world):
    d = json.loads(world("agency", "show", G22, "--json").stdout)
    for value in (d["created_at"], d["updated_at"], d["certificates"][0]["not_after"],
                  d["certificates"][0]["added_at"]):
        assert "T" in value and " " not in value and value.endswith("+00:00"), value
    listed = json.loads(world("agency", "list", "--json").stdout)
    assert all("T" in a["created_at"] for a in listed["agencies"])


def test_refusal_messages_show_no_python_reprs(world, tmp_path):
    doc = tmp_path / "d.edxml"
    doc.write_bytes(build_edoc(make_edoc(G22, (H41,), doc_type="7"), [attachment()]))
    world("sign", doc, "--key", world.pki / f"{G22}.key", "--cert", world.pki / f"{G22}.pem", "-o", doc)
    line = world("check", doc, rc=1).stdout.strip()
    assert "authority.not_competent" in line and "it accepts 1, 2" in line
    assert "[" not in line and "None" not in line


# --- pki and the hub's identity -------------------------------------------------------------

def test_pki_init_never_overwrites_without_force(run):
    run("pki", "init", "--agency", f"{G22}=Văn phòng Chính phủ")
    ca, key = (run.pki / "ca.pem").read_bytes(), (run.pki / f"{G22}.key").read_bytes()
    p = run("pki", "init", "--agency", f"{G22}=Văn phòng Chính phủ", f"{H41}=UBND tỉnh Nghệ An")
    assert "kept (already there)" in p.stdout and "--force replaces them" in p.stdout
    assert (run.pki / "ca.pem").read_bytes() == ca and (run.pki / f"{G22}.key").read_bytes() == key
    assert (run.pki / f"{H41}.key").exists()  # the new agency was added under the same CA
    run("trust", "add", run.pki / "ca.pem")
    run("trust", "crl", "add", run.pki / "ca.crl")
    run("pki", "init", "--force")
    assert (run.pki / "ca.pem").read_bytes() != ca
    (run.pki / "ca.key").unlink()
    run.fails("pki", "init", says="ca.pem exists but")
    (run.pki / "ca.pem").unlink()
    run.fails("pki", "init", says="holds keys (000.00.00.G22, 000.00.00.H41, 000.00.99.G22) but no CA")
    run.fails("pki", "init", "--agency", "28.22.H17", says="is malformed")


def test_agency_add_hub_registers_the_hubs_identity(run):
    run.fails("agency", "add-hub", says="for the hub 000.00.99.G22 not found")
    run("pki", "init")
    p = run("agency", "add-hub")
    assert "registered the hub's identity 000.00.99.G22" in p.stdout
    d = json.loads(run("agency", "show", "000.00.99.G22", "--json").stdout)
    assert d["connected"] is False and d["accepts"] == "0" and len(d["certificates"]) == 1


def test_broker_user_refuses_what_it_cannot_do(world):
    world.fails("agency", "broker-user", G22, says="set HUB_AMQP_URL")
    rabbit = {"HUB_AMQP_URL": "amqp://hub:pw@127.0.0.1:1/"}  # never reached: the checks come first
    world.fails("agency", "broker-user", H44, env=rabbit, says=f"agency {H44} is not registered")
    world("agency", "add", "000.00.24.H41", "--name", "Sở Nội vụ", "--no-system", "--cert",
          world.pki / "000.00.99.G22.pem")
    world.fails("agency", "broker-user", "000.00.24.H41", env=rabbit, says="has no own system")


# --- help -----------------------------------------------------------------------------------

ENV_OPTIONS = {  # options a HUB_* variable sets: their help names it
    ("serve", "--port"): "HUB_HTTP_PORT", ("serve", "--host"): "HUB_HTTP_HOST", ("demo", "--port"): "HUB_HTTP_PORT",
    ("send", "--amqp-url"): "HUB_ADAPTER_AMQP_URL", ("inbox", "--amqp-url"): "HUB_ADAPTER_AMQP_URL",
    ("status", "--amqp-url"): "HUB_ADAPTER_AMQP_URL", ("pki init", "dir"): "HUB_DATA_DIR",
    ("agency add-hub", "--cert"): "HUB_CERT_FILE", ("audit verify", "--cert"): "HUB_CERT_FILE",
    ("audit consistency", "--cert"): "HUB_CERT_FILE",
}


def _commands(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{prefix} {name}".strip())
            return
    yield prefix, parser


def test_every_option_has_help_with_its_default_and_variable():
    from hub.cli import build_parser

    seen = set()
    for command, parser in _commands(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = action.option_strings[-1] if action.option_strings else action.dest
            assert action.help, f"hub {command} {name} has no help"
            if action.default not in (None, False, argparse.SUPPRESS) and not isinstance(action.default, bool):
                assert f"default: {action.default}" in action.help, f"hub {command} {name}: {action.help}"
            elif action.option_strings and action.nargs != 0 and not action.required and action.choices is None:
                assert "default" in action.help or "repeatable" in action.help, f"hub {command} {name}: {action.help}"
            if (command, name) in ENV_OPTIONS:
                seen.add((command, name))
                assert ENV_OPTIONS[command, name] in action.help, f"hub {command} {name}: {action.help}"
    assert seen == set(ENV_OPTIONS)


@pytest.mark.rabbitmq
@pytest.mark.postgres
async def test_inbox_of_another_agency_is_refused(real_env, run, tmp_path):
    g22 = real_env.user_of(G22)
    url = real_env.amqp_url(g22, real_env.passwords[g22])
    async with real_env.running():  # the hub has declared every inbox
        line = run.fails("inbox", H41, "--out", tmp_path / "stolen", env={"HUB_ADAPTER_AMQP_URL": url}, rc=1,
                         says="authority.forbidden")
    assert f"inbox.{H41}" in line and g22 in line
    assert not list((tmp_path / "stolen").glob("*"))


# --- the translation itself (pure) ------------------------------------------------------------

def test_unexpected_errors_are_one_line_and_name_hub_debug():
    from hub.cli_errors import explain

    message, rc = explain(RuntimeError("boom\nsecond line"))
    assert rc == 1 and "\n" not in message
    assert message == "unexpected error (RuntimeError: boom); run again with HUB_DEBUG=1 to see where, and report it"


def test_broker_hints_name_what_to_fix():
    from hub.cli_errors import broker_hint
    from hub.errors import TransientError

    url = "amqp://000.00.00.H41:secret@rabbit.example:5673/hub"
    refused = TransientError("RabbitMQ unavailable: ACCESS_REFUSED - Login was refused", code="backbone.unavailable")
    line = broker_hint(refused, url, "HUB_ADAPTER_AMQP_URL")
    assert line == ("RabbitMQ at rabbit.example:5673 refused the login of user 000.00.00.H41: check the user and "
                    "password in HUB_ADAPTER_AMQP_URL") and "secret" not in line
    down = TransientError("RabbitMQ unavailable: [Errno 111] Connect call failed", code="backbone.unavailable")
    assert broker_hint(down, url, "HUB_AMQP_URL").startswith("cannot reach RabbitMQ at rabbit.example:5673 ")
