"""Signed checkpoints: RSA and EC, any changed field fails, strict text round trip."""

from __future__ import annotations

import base64
import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from hub.audit.checkpoint import Checkpoint, key_id_for, sign
from hub.audit.merkle import EMPTY_ROOT, leaf_hash, root
from hub.errors import UsageError
from hub.pki import devpki

ORIGIN = "hub.example.gov.vn/audit"
AT = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=timezone.utc)
ROOT = root([leaf_hash(bytes([i])) for i in range(10)])


@pytest.fixture(scope="module", params=["rsa", "ec"])
def signer(request):
    """(private key, certificate) of the hub, RSA-2048 or P-256."""
    cert, key = devpki.make_ca(f"audit test {request.param}", key=devpki.new_key(request.param))
    return key, cert


@pytest.fixture(scope="module")
def stranger():
    cert, key = devpki.make_ca("someone else", key=devpki.new_key("ec"))
    return key, cert


def _sign(signer, **changes):
    key, cert = signer
    fields = dict(origin=ORIGIN, size=10, root=ROOT, at=AT, key_id=key_id_for(cert))
    fields.update(changes)
    return sign(key, **fields)


def test_signed_message_is_the_checkpoint_body():
    cp = dataclasses.replace(_unsigned(), signature=b"sig")
    assert cp.signed_message() == (
        f"{ORIGIN}\n10\n{base64.b64encode(ROOT).decode()}\ntime 2024-05-01T12:00:00.250000Z\n".encode()
    )


def _unsigned():
    return Checkpoint(origin=ORIGIN, size=10, root=ROOT, at=AT, signature=b"x", key_id="0123abcd")


def test_sign_and_verify(signer):
    key, cert = signer
    cp = _sign(signer)
    assert (cp.origin, cp.size, cp.root, cp.at, cp.key_id) == (ORIGIN, 10, ROOT, AT, key_id_for(cert))
    assert cp.verify(key.public_key())
    assert cp.verify(cert)
    assert len(cp.key_id) == 8 and cert.fingerprint(hashes.SHA256()).hex().startswith(cp.key_id)


def test_rsa_signatures_are_pkcs1v15_and_ec_are_ecdsa(signer):
    key, _ = signer
    cp = _sign(signer)
    if isinstance(key, rsa.RSAPrivateKey):
        key.public_key().verify(cp.signature, cp.signed_message(), padding.PKCS1v15(), hashes.SHA256())
        assert cp == _sign(signer)  # deterministic
    else:
        key.public_key().verify(cp.signature, cp.signed_message(), ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize(("name", "value"), [
    ("origin", "hub.example.gov.vn/audit2"),
    ("size", 11),
    ("root", EMPTY_ROOT),
    ("at", AT + timedelta(microseconds=1)),
    ("signature", None),  # replaced below by a one-bit change
    ("key_id", "00000000"),
])
def test_any_changed_field_fails(signer, name, value):
    key, cert = signer
    cp = _sign(signer)
    if name == "signature":
        value = cp.signature[:-1] + bytes([cp.signature[-1] ^ 1])
    changed = dataclasses.replace(cp, **{name: value})
    assert not changed.verify(cert)
    if name != "key_id":  # the key id is a hint outside the signature; only the certificate pins it
        assert not changed.verify(key.public_key())


def test_wrong_key_fails(signer, stranger):
    cp = _sign(signer)
    assert not cp.verify(stranger[0].public_key())
    assert not cp.verify(stranger[1])
    forged = _sign(stranger, key_id=cp.key_id)  # claims the hub's key id
    assert not forged.verify(signer[1])
    assert not cp.verify(ed25519.Ed25519PrivateKey.generate().public_key())
    assert not cp.verify("not a key")


def test_text_round_trip(signer):
    _, cert = signer
    cp = _sign(signer)
    text = cp.to_text()
    body, sig = text.split("\n\n")
    assert body.split("\n") == [ORIGIN, "10", base64.b64encode(ROOT).decode(), "time 2024-05-01T12:00:00.250000Z"]
    assert sig.startswith(f"\u2014 {ORIGIN} ") and sig.endswith("\n") and sig.count("\n") == 1
    blob = base64.b64decode(sig.split(" ")[2])
    assert blob[:4].hex() == cp.key_id and blob[4:] == cp.signature
    back = Checkpoint.from_text(text)
    assert back == cp and back.verify(cert)
    assert Checkpoint.from_text(text.encode()) == cp
    assert back.to_text() == text


def test_tampered_text_parses_but_does_not_verify(signer):
    _, cert = signer
    text = _sign(signer).to_text()
    assert not Checkpoint.from_text(text.replace("\n10\n", "\n11\n", 1)).verify(cert)
    assert not Checkpoint.from_text(text.replace(".250000Z", ".250001Z", 1)).verify(cert)


def _good_text():
    return _unsigned().to_text()


@pytest.mark.parametrize("mangle", [
    lambda t: t.replace("\n\n", "\n", 1),  # no blank line
    lambda t: t.rstrip("\n"),  # no final newline
    lambda t: t.replace("\n", "\r\n"),  # CRLF
    lambda t: t + t.split("\n\n")[1],  # two signature lines
    lambda t: t.replace("\n10\n", "\n010\n", 1),  # leading zero
    lambda t: t.replace("\n10\n", "\n+10\n", 1),
    lambda t: t.replace("\n10\n", "\n-1\n", 1),
    lambda t: t.replace("time ", "time  ", 1),
    lambda t: t.replace("time ", "", 1),
    lambda t: t.replace(".250000Z", ".25Z", 1),
    lambda t: t.replace(".250000Z", ".250000+00:00", 1),
    lambda t: t.replace("\u2014 hub.example.gov.vn/audit ", "\u2014 other ", 1),  # signature names another key
    lambda t: t.replace("\u2014 ", "-- ", 1),
    lambda t: t.replace(base64.b64encode(ROOT).decode(), base64.b64encode(ROOT[:31]).decode(), 1),
    lambda t: t.replace(base64.b64encode(ROOT).decode(), ROOT.hex(), 1),
    lambda t: t.replace("\n\u2014", "\nextra line\n\n\u2014", 1),
    lambda t: t[:-1] + " \n",  # trailing space after the signature
    lambda t: t.replace(t.split(" ")[-1], "AAAA\n"),  # key id without signature
    lambda t: "",
])
def test_from_text_is_strict(mangle):
    text = _good_text()
    assert Checkpoint.from_text(text) == _unsigned()
    with pytest.raises(UsageError):
        Checkpoint.from_text(mangle(text))


def test_non_canonical_base64_is_refused():
    text = _good_text()
    line = text.split("\n")[2]
    # the root is 32 bytes: base64 ends in one '=' and the last character carries 2 spare bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = line[-2]
    twin = alphabet[alphabet.index(last) ^ 1]  # same decoded bytes, different spare bit
    assert base64.b64decode(line[:-2] + twin + "=") == ROOT
    with pytest.raises(UsageError):
        Checkpoint.from_text(text.replace(line, line[:-2] + twin + "=", 1))


def test_time_is_normalised_to_utc():
    naive = Checkpoint(origin=ORIGIN, size=10, root=ROOT, at=AT.replace(tzinfo=None), signature=b"x", key_id="0123abcd")
    local = dataclasses.replace(naive, at=AT.astimezone(timezone(timedelta(hours=7))))
    assert naive == local == _unsigned()
    assert naive.at.tzinfo is timezone.utc


@pytest.mark.parametrize("changes", [
    {"origin": ""},
    {"origin": "hub example"},
    {"origin": "hub+audit"},
    {"origin": "hub\naudit"},
    {"size": -1},
    {"size": True},
    {"size": 0},  # with a non-empty root
    {"root": ROOT[:31]},
    {"root": ROOT.hex()},
    {"key_id": "0123ABCD"},
    {"key_id": "0123abc"},
    {"signature": b""},
    {"at": "2024-05-01T12:00:00Z"},
])
def test_malformed_checkpoints_are_refused(changes):
    with pytest.raises(UsageError):
        dataclasses.replace(_unsigned(), **changes)


def test_empty_tree_checkpoint(signer):
    cp = _sign(signer, size=0, root=EMPTY_ROOT)
    assert Checkpoint.from_text(cp.to_text()).verify(signer[1])


def test_sign_refuses_weak_or_unsupported_keys():
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(UsageError):
        sign(weak, origin=ORIGIN, size=10, root=ROOT, at=AT, key_id="0123abcd")
    with pytest.raises(UsageError):
        sign(ed25519.Ed25519PrivateKey.generate(), origin=ORIGIN, size=10, root=ROOT, at=AT, key_id="0123abcd")
    strong = Checkpoint(origin=ORIGIN, size=10, root=ROOT, at=AT, signature=b"x" * 128, key_id="0123abcd")
    assert not strong.verify(weak.public_key())


def test_sign_validates_before_signing(signer):
    with pytest.raises(UsageError):
        _sign(signer, origin="has space")
    with pytest.raises(UsageError):
        _sign(signer, key_id="nothex!!")
