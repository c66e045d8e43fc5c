"""Interoperability with an independent XML-DSig implementation: xmlsec1 (libxmlsec1, OpenSSL).

Both directions, through the real ``hub`` command:

* a package signed by ``hub sign`` verifies with ``xmlsec1 --verify`` against the CA, and a
  tampered copy does not;
* a package signed by ``xmlsec1 --sign`` from a template is accepted by ``hub check`` end to
  end (trust anchor, pinned sender, registered recipient), and an RSA-SHA1 one is refused
  with ``signature.weak_algorithm``.

Nothing here skips: without xmlsec1 (Debian package ``xmlsec1``) the tests fail and say so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from lxml import etree

from hub.constants import DSIG_NS
from hub.edxml.builder import build_edoc
from hub.edxml.model import header_of
from hub.pki import devpki
from hub.pki.certs import fingerprint
from tests.conftest import G22, H41, attachment, make_edoc

ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
_DS = "{" + DSIG_NS + "}"


# --- the two programs -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def xmlsec1() -> str:
    path = shutil.which("xmlsec1") or ("/usr/bin/xmlsec1" if Path("/usr/bin/xmlsec1").is_file() else None)
    if path is None:
        pytest.fail("xmlsec1 is not installed: these interop tests need it (Debian/Ubuntu: apt-get install xmlsec1)")
    return path


def _hub_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m hub.cli``."""
    script = Path(sys.executable).with_name("hub")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "hub.cli"]


def hub(data_dir: Path, *args: str | Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATA_DIR"] = str(data_dir)
    return subprocess.run([*_hub_command(), *map(str, args)], env=env, capture_output=True, text=True, timeout=60)


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=60)


def xmlsec_verify(xmlsec1: str, ca: Path, package: Path) -> subprocess.CompletedProcess:
    return run(xmlsec1, "--verify", "--trusted-pem", ca, "--enabled-key-data", "x509",
               "--enabled-reference-uris", "empty", package)


def xmlsec_sign(xmlsec1: str, key: Path, cert: Path, template: Path, out: Path) -> None:
    r = run(xmlsec1, "--sign", "--privkey-pem", f"{key},{cert}", "--enabled-reference-uris", "empty",
            "--output", out, template)
    assert r.returncode == 0, f"xmlsec1 --sign failed ({r.returncode}): {r.stderr}"


def signature_template(unsigned: bytes, sig_alg: str = RSA_SHA256, digest_alg: str = SHA256) -> bytes:
    """An empty enveloped ds:Signature, last child of edXMLHeader, for xmlsec1 to fill in."""
    root = etree.fromstring(unsigned)
    sig = etree.SubElement(header_of(root), _DS + "Signature", nsmap={"ds": DSIG_NS})

    def sub(parent, tag, **attrs):
        return etree.SubElement(parent, _DS + tag, attrs)

    si = sub(sig, "SignedInfo")
    sub(si, "CanonicalizationMethod", Algorithm=EXC_C14N)
    sub(si, "SignatureMethod", Algorithm=sig_alg)
    ref = sub(si, "Reference", URI="")
    transforms = sub(ref, "Transforms")
    sub(transforms, "Transform", Algorithm=ENVELOPED)
    sub(transforms, "Transform", Algorithm=EXC_C14N)
    sub(ref, "DigestMethod", Algorithm=digest_alg)
    sub(ref, "DigestValue")
    sub(sig, "SignatureValue")
    sub(sub(sub(sig, "KeyInfo"), "X509Data"), "X509Certificate")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# --- key material ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keys(pki, tmp_path_factory):
    """PEM files of the session PKI: CA, G22 (RSA and ECDSA), H41, and an untrusted CA."""
    d = tmp_path_factory.mktemp("interop-pki")
    ca = d / "ca.pem"
    ca.write_bytes(devpki.cert_pem(pki.ca_cert))
    other_ca = d / "other-ca.pem"
    other_ca.write_bytes(devpki.cert_pem(pki.other_ca[0]))
    ec = pki.issue(G22, key=devpki.new_key("ec"))
    ec_dir = d / "ec"
    ec_dir.mkdir()
    return {
        "ca": ca,
        "other_ca": other_ca,
        "rsa": pki.write(pki.ids[G22], d),
        "ec": pki.write(ec, ec_dir),
        "recipient": pki.write(pki.ids[H41], d),
    }


@pytest.fixture(scope="module")
def hub_dir(keys, tmp_path_factory) -> Path:
    """A hub data dir set up through the CLI: the CA trusted, G22 (both certs) and H41 registered."""
    d = tmp_path_factory.mktemp("hub-data")
    steps = [
        ("trust", "add", keys["ca"]),
        ("agency", "add", G22, "--name", "Văn phòng Chính phủ", "--cert", keys["rsa"][1], "--cert", keys["ec"][1]),
        ("agency", "add", H41, "--name", "UBND tỉnh Nghệ An", "--cert", keys["recipient"][1]),
    ]
    for step in steps:
        r = hub(d, *step)
        assert r.returncode == 0, f"hub {' '.join(map(str, step))} failed ({r.returncode}): {r.stdout}{r.stderr}"
    return d


@pytest.fixture
def unsigned(tmp_path) -> Path:
    p = tmp_path / "unsigned.edxml"
    p.write_bytes(build_edoc(make_edoc(G22, (H41,)), [attachment()]))
    return p


# --- (a) hub signs, xmlsec1 verifies ----------------------------------------------------------

@pytest.fixture(params=["rsa", "ec"])
def hub_signed(request, keys, unsigned, tmp_path) -> Path:
    key, cert = keys[request.param]
    out = tmp_path / f"signed-{request.param}.edxml"
    r = hub(tmp_path / "data", "sign", unsigned, "--key", key, "--cert", cert, "-o", out)
    assert r.returncode == 0, f"hub sign failed ({r.returncode}): {r.stdout}{r.stderr}"
    assert out.read_bytes().count(b"Signature xmlns:ds=") == 1
    return out


def test_hub_signed_verifies_with_xmlsec1(xmlsec1, keys, hub_signed):
    r = xmlsec_verify(xmlsec1, keys["ca"], hub_signed)
    assert r.returncode == 0, f"xmlsec1 rejected a hub-signed package ({r.returncode}): {r.stderr}"
    assert "OK" in r.stderr and "SignedInfo References (ok/all): 1/1" in r.stderr, r.stderr


def test_hub_signed_needs_the_right_ca_for_xmlsec1(xmlsec1, keys, hub_signed):
    # Control: xmlsec1 really validates the chain (another CA does not make it pass).
    r = xmlsec_verify(xmlsec1, keys["other_ca"], hub_signed)
    assert r.returncode != 0, f"xmlsec1 accepted the package against an unrelated CA: {r.stderr}"


@pytest.mark.parametrize("where", ["subject", "attachment", "recipient"])
def test_tampered_hub_signed_fails_with_xmlsec1(xmlsec1, keys, hub_signed, tmp_path, where):
    data = hub_signed.read_bytes()
    old, new = {
        "subject": ("kết nối, liên thông".encode(), "kết nối, liên thông KHẨN".encode()),
        "attachment": (b"JVBERi0xLjQgZWR4bWwgdGVzdC", b"JVBERi0xLjQgZWR4bWwgdGVzdS"),  # "...test" -> "...tesu"
        "recipient": (H41.encode(), b"000.00.00.H44"),
    }[where]
    assert old in data, where
    tampered = tmp_path / "tampered.edxml"
    tampered.write_bytes(data.replace(old, new, 1))
    r = xmlsec_verify(xmlsec1, keys["ca"], tampered)
    assert r.returncode != 0, f"xmlsec1 accepted a package tampered in its {where}: {r.stderr}"
    # It failed for the right reason: the reference digest, not a parse or key problem.
    assert "data and digest do not match" in r.stderr and "SignedInfo References (ok/all): 0/1" in r.stderr, r.stderr


# --- (b) xmlsec1 signs, hub check accepts -----------------------------------------------------

@pytest.mark.parametrize("kind, sig_alg", [("rsa", RSA_SHA256), ("ec", ECDSA_SHA256)], ids=["rsa-sha256", "ecdsa-sha256"])
def test_xmlsec1_signed_is_accepted_by_hub_check(xmlsec1, keys, hub_dir, unsigned, tmp_path, pki, kind, sig_alg):
    template = tmp_path / "template.edxml"
    template.write_bytes(signature_template(unsigned.read_bytes(), sig_alg, SHA256))
    out = tmp_path / "out.edxml"
    key, cert = keys[kind]
    xmlsec_sign(xmlsec1, key, cert, template, out)
    signed = out.read_bytes()
    assert b"<ds:X509Certificate>MII" in signed and b"<ds:DigestValue></ds:DigestValue>" not in signed

    r = hub(hub_dir, "check", out)
    assert r.returncode == 0, f"hub check refused an xmlsec1-signed package: {r.stdout}{r.stderr}"
    assert r.stdout.splitlines() == [f"ACCEPT {out}"], r.stdout

    # What was accepted was read from the signed content and tied to the pinned G22 certificate.
    r = hub(hub_dir, "check", "--json", out)
    verdict = json.loads(r.stdout)
    assert verdict["accepted"] and verdict["sender"] == G22, verdict
    assert verdict["recipients"] == [{"code": H41, "system": H41}], verdict
    assert verdict["signer_fingerprint"] == fingerprint(x509.load_pem_x509_certificate(cert.read_bytes()))


def test_xmlsec1_signed_then_tampered_is_refused_by_hub_check(xmlsec1, keys, hub_dir, unsigned, tmp_path):
    template = tmp_path / "template.edxml"
    template.write_bytes(signature_template(unsigned.read_bytes()))
    out = tmp_path / "out.edxml"
    xmlsec_sign(xmlsec1, *keys["rsa"], template, out)
    tampered = tmp_path / "tampered.edxml"
    tampered.write_bytes(out.read_bytes().replace("kết nối".encode(), "ngắt kết nối".encode(), 1))
    r = hub(hub_dir, "check", out, tampered)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"ACCEPT {out}", lines
    assert lines[1].startswith(f"REFUSE {tampered} signature.digest_mismatch:"), lines


def test_xmlsec1_rsa_sha1_is_refused_by_hub_check(xmlsec1, keys, hub_dir, unsigned, tmp_path):
    template = tmp_path / "template-sha1.edxml"
    template.write_bytes(signature_template(unsigned.read_bytes(), RSA_SHA1, SHA1))
    out = tmp_path / "out-sha1.edxml"
    xmlsec_sign(xmlsec1, *keys["rsa"], template, out)
    # Control: the package itself is correctly signed (xmlsec1 verifies it), so the refusal is the policy.
    v = xmlsec_verify(xmlsec1, keys["ca"], out)
    assert v.returncode == 0, v.stderr

    r = hub(hub_dir, "check", out)
    assert r.returncode == 1, r.stdout + r.stderr
    [line] = r.stdout.splitlines()
    assert line.startswith(f"REFUSE {out} signature.weak_algorithm:"), line
