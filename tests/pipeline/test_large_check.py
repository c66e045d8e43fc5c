"""Large packages checked with their base64 runs lifted out (hub.edxml.large): the lean path
accepts exactly what the ordinary path accepts, and every refusal is the ordinary path's."""

from __future__ import annotations

import base64
import hashlib

import pytest
from lxml import etree

from hub.edxml import large
from hub.edxml.builder import AttachmentFile, build_edoc
from hub.edxml.model import EDXML_NS
from hub.edxml.parser import parse_xml
from hub.edxml.schema import SchemaValidator
from hub.edxml.signature import sign_package
from hub.pipeline.checks import CheckContext, check_package, relay_copy
from tests.conftest import G22, HUB, make_edoc, registry_for

E = "{" + EDXML_NS + "}"
CTE = f"{E}AttachmentEncoded/{E}Attachment/{E}ContentTransferEncoded"


@pytest.fixture
def ctx(pki):
    return CheckContext(registry=registry_for(pki), trust=pki.trust(), validator=SchemaValidator())


@pytest.fixture
def small_runs(monkeypatch):
    """Lift runs from 4 KB in packages of any size, so the tests need no megabytes."""
    monkeypatch.setattr(large, "LEAN_FROM", 0)
    monkeypatch.setattr(large, "MIN_RUN", 4096)


def _blob(size: int) -> bytes:
    return bytes((i * 7 + i // 251) % 256 for i in range(size))


def make(pki, size: int = 30_000, *, wrap: int | None = None, n_att: int = 1, edit=None) -> bytes:
    """A signed package with ``n_att`` attachments of ``size`` bytes; ``wrap`` breaks the base64
    into lines (as some SDKs write it); ``edit(root)`` changes the tree before signing."""
    atts = [AttachmentFile(f"a{i}.pdf", _blob(size + i), "application/pdf") for i in range(n_att)]
    root = parse_xml(build_edoc(make_edoc(), atts))
    if wrap:
        for el in root.findall(CTE):
            text = el.text
            el.text = "\n" + "\n".join(text[i:i + wrap] for i in range(0, len(text), wrap)) + "\n"
    if edit:
        edit(root)
    return sign_package(root, pki.ids[G22].key, pki.ids[G22].cert)


def ordinary(data: bytes, ctx: CheckContext, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(large, "LEAN_FROM", 1 << 62)
        return check_package(data, ctx)


@pytest.mark.parametrize("wrap,n_att,size", [(None, 1, 30_000), (76, 1, 30_001), (64, 2, 30_002)])
def test_lean_accepts_as_the_ordinary_path(pki, ctx, small_runs, monkeypatch, wrap, n_att, size):
    data = make(pki, size, wrap=wrap, n_att=n_att)
    lifted = large.lift(data)
    assert lifted is not None and len(lifted.runs) == n_att
    assert len(lifted.small) < len(data) - n_att * 30_000
    assert lifted.expand(lifted.small) == data
    v = check_package(data, ctx)
    assert v.accepted, v.message
    o = ordinary(data, ctx, monkeypatch)
    assert o.accepted
    assert (v.sha256, v.size, v.package, v.routes, v.signer_fingerprint) == \
           (o.sha256, o.size, o.package, o.routes, o.signer_fingerprint)
    assert v.sha256 == hashlib.sha256(data).hexdigest()
    if wrap is None:  # the model's size is approximate (it counts line breaks): equal to the ordinary path above
        assert [a.size for a in v.package.attachments] == [size + i for i in range(n_att)]


def test_relayed_copy_is_the_full_package_with_the_trace(pki, ctx, small_runs):
    data = make(pki, 40_000, wrap=76)
    hub_ctx = CheckContext(ctx.registry, ctx.trust, ctx.validator, relay_id=HUB)
    v = check_package(data, hub_ctx)
    assert v.accepted, v.message
    expected = relay_copy(parse_xml(data), HUB, v.relayed_at)
    relayed = v.relayed.expand(data)  # a large package's relayed copy is kept small until streamed
    assert relayed == expected and v.relayed.size() == len(expected)
    assert base64.b64decode(etree.fromstring(relayed).findtext(CTE)) == _blob(40_000)


def test_lean_path_is_taken_for_a_real_large_package(pki, ctx):
    """Default thresholds: a 6 MB package is lifted, accepted, the model reads the real size."""
    data = make(pki, 4_500_000)
    assert len(data) >= large.LEAN_FROM
    lifted = large.lift(data)
    assert lifted is not None and len(lifted.small) < 20_000
    v = check_package(data, ctx)
    assert v.accepted, v.message
    assert v.package.attachments[0].size == 4_500_000


def test_one_changed_character_in_the_run_is_the_ordinary_refusal(pki, ctx, small_runs, monkeypatch):
    data = bytearray(make(pki, 30_000))
    at = data.find(b"<edXML:ContentTransferEncoded>") + 5000
    data[at] = ord("A") if data[at] != ord("A") else ord("B")
    data = bytes(data)
    assert large.lift(data) is not None
    v = check_package(data, ctx)
    assert not v.accepted and v.reason == "signature.digest_mismatch", v.reason
    assert v.message == ordinary(data, ctx, monkeypatch).message


def test_changed_final_quantum_is_refused(pki, ctx, small_runs):
    data = make(pki, 30_001)
    end = data.find(b"</edXML:ContentTransferEncoded>")
    data = data[:end - 3] + (b"A" if data[end - 3:end - 2] != b"A" else b"B") + data[end - 2:]
    v = check_package(data, ctx)
    assert not v.accepted and v.reason.startswith(("signature.", "schema.")), v.reason


def test_not_plain_base64_takes_the_ordinary_path(pki, ctx, small_runs, monkeypatch):
    def bad(root):
        el = root.find(CTE)
        el.text = el.text[:10000] + "!" + el.text[10000:]
    data = make(pki, 30_000, edit=bad)
    assert large.lift(data) is None  # not plain base64: libxml2 judges it
    v = check_package(data, ctx)
    o = ordinary(data, ctx, monkeypatch)
    assert (v.accepted, v.reason) == (o.accepted, o.reason)


def test_padding_inside_the_run_is_not_lifted(pki, small_runs):
    def pad(root):
        el = root.find(CTE)
        el.text = el.text[:8000] + "=" + el.text[8001:]
    assert large.lift(make(pki, 30_000, edit=pad)) is None


def test_run_in_a_comment_takes_the_ordinary_path(pki, ctx, small_runs, monkeypatch):
    def comment(root):
        root.find(f"{E}edXMLEnvelope").append(etree.Comment(">" + "QUJD" * 3000 + "<"))
    data = make(pki, 1000, edit=comment)
    lifted = large.lift(data)
    assert lifted is not None
    assert not large.confirm(lifted, parse_xml(lifted.small))
    v = check_package(data, ctx)
    o = ordinary(data, ctx, monkeypatch)
    assert (v.accepted, v.reason) == (o.accepted, o.reason)


def test_run_in_another_element_takes_the_ordinary_path(pki, ctx, small_runs, monkeypatch):
    def content(root):
        root.find(f"{E}edXMLEnvelope/{E}edXMLHeader/{E}MessageHeader/{E}Content").text = "QUJD" * 3000
    data = make(pki, 1000, edit=content)
    lifted = large.lift(data)
    assert lifted is not None and not large.confirm(lifted, parse_xml(lifted.small))
    v = check_package(data, ctx)
    assert v.accepted == ordinary(data, ctx, monkeypatch).accepted


def test_doctype_still_refused(pki, ctx, small_runs):
    data = make(pki, 30_000)
    data = data.replace(b"?>", b'?><!DOCTYPE edXML [<!ENTITY x "y">]>', 1)
    v = check_package(data, ctx)
    assert not v.accepted and v.reason == "parse.doctype"


def test_token_in_the_package_is_never_chosen(pki, small_runs, monkeypatch):
    data = make(pki, 30_000).replace(b"<edXML:Content>", b"<edXML:Content>HUBLIFTFIXEDX", 1)
    answers = iter(["fixed", "ab" * 16])
    monkeypatch.setattr(large.secrets, "token_hex", lambda n: next(answers))
    lifted = large.lift(data)
    assert lifted is not None and lifted.runs[0].token == b"HUBLIFT" + b"AB" * 16 + b"X"
