"""`hub check --explain`'s stage-by-stage outcome (hub/pipeline/explain.py)."""

from __future__ import annotations

import pytest

from hub.edxml.schema import SchemaValidator
from hub.pipeline.checks import CheckContext, check_package
from hub.pipeline.explain import NOT_REACHED, OK, REFUSED, STAGES, explain_stages
from tests.conftest import G22, H41, attachment, make_edoc, registry_for


@pytest.fixture
def ctx(pki):
    return CheckContext(registry=registry_for(pki), trust=pki.trust(), validator=SchemaValidator())


def _outcomes(stages):
    return [(s.stage, s.outcome) for s in stages]


def test_accepted_package_every_stage_ok_with_details(ctx, signed):
    data = signed(make_edoc(G22, (H41,)), attachments=[attachment(100)])
    verdict = check_package(data, ctx)
    assert verdict.accepted and verdict.signature_form == "xmldsig"
    stages = explain_stages(data, verdict, ctx.validator)
    assert _outcomes(stages) == [(s, OK) for s in STAGES]
    by = {s.stage: s.detail for s in stages}
    assert by["schema"] == "valid (edoc)" and by["signature"].startswith("XML-DSig signature (rsa-sha256, sha256)")
    assert G22 in by["trust"] and by["authority"] == f"recipients: {H41}"


def test_refused_at_authority(ctx, signed):
    data = signed(make_edoc(G22, ("000.00.00.H99",)), attachments=[attachment(100)])
    verdict = check_package(data, ctx)
    stages = explain_stages(data, verdict, ctx.validator)
    assert _outcomes(stages)[-1] == ("authority", REFUSED)
    assert "authority.recipient_unknown" in stages[-1].detail


def test_refused_at_schema_lists_every_error(ctx):
    from hub.edxml.builder import build_edoc

    data = build_edoc(make_edoc(G22, (H41,))).replace(H41.encode(), b"28.22.H17").replace(b">1<", b">x<", 1)
    verdict = check_package(data, ctx)
    stages = explain_stages(data, verdict, ctx.validator)
    assert _outcomes(stages) == [("parse", OK), ("schema", REFUSED)] + [(s, NOT_REACHED) for s in STAGES[2:]]
    assert stages[1].errors and any("28.22.H17" in e for e in stages[1].errors)
    assert "schema." in stages[1].detail
    text = "\n".join(line for s in stages for line in s.lines())
    assert "schema:    refused" in text and "28.22.H17" in text


def test_unsigned_says_what_signature_was_found(ctx):
    from hub.edxml.builder import build_edoc

    data = build_edoc(make_edoc(G22, (H41,)), [attachment(100)])
    verdict = check_package(data, ctx)
    stages = explain_stages(data, verdict, ctx.validator)
    sig = stages[2]
    assert (sig.stage, sig.outcome) == ("signature", REFUSED)
    assert "signature.missing" in sig.detail and "[found: no signature]" in sig.detail
    assert sig.as_dict()["outcome"] == "refused" and "errors" not in sig.as_dict()


def test_unparseable(ctx):
    verdict = check_package(b"not xml", ctx)
    stages = explain_stages(b"not xml", verdict, ctx.validator)
    assert _outcomes(stages) == [("parse", REFUSED)] + [(s, NOT_REACHED) for s in STAGES[1:]]


def test_verdicts_with_their_signature_cross_processes(ctx, signed):
    import pickle

    verdict = check_package(signed(make_edoc(G22, (H41,)), attachments=[attachment(100)]), ctx)
    assert pickle.loads(pickle.dumps(verdict)).signature == verdict.signature
