"""Hole 2 of issue 8: adapter-set headers are untrusted input, and a failure that belongs to one
message refuses that message alone, never its batch."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from hub import constants as C
from hub.edxml.builder import build_edoc
from hub.pipeline.intake import trusted_headers
from hub.store.tables import dead_letters, records
from tests.conftest import G22, H41, H44, make_edoc
from tests.hubenv import drain

# every value RabbitMQ carries (a NaN double makes RabbitMQ close the publisher's connection)
POISON = [datetime(2026, 11, 30, tzinfo=timezone.utc), b"\x00\xff bytes", Decimal("17329500.5"), "yesterday",
          True, [1, 2], {"a": 1}, -(2**63), 1e300, -5, "1e300", "-5", "NaN"]


def test_only_the_hub_user_may_set_x_hub_headers():
    forged = {C.H_GATEWAY_AGENCY: G22, C.H_REASON: "forged", C.H_ORIGINAL_USER: G22, C.H_REPLAYED_BY: "admin",
              "X-Hub-Reason": "case", C.H_SUBMITTED_AT: 1732950000.25, "x-custom": "kept"}
    assert trusted_headers(forged, from_hub=False) == {C.H_SUBMITTED_AT: 1732950000.25, "x-custom": "kept"}
    assert trusted_headers(forged, from_hub=True) == forged
    for value in [*POISON, float("nan"), float("inf")]:
        assert C.H_SUBMITTED_AT not in trusted_headers({C.H_SUBMITTED_AT: value}, from_hub=True), value
    assert trusted_headers({C.H_SUBMITTED_AT: 1732950000}, from_hub=False) == {C.H_SUBMITTED_AT: 1732950000.0}


def test_a_decimal_string_counts_as_the_submit_time():
    """pamqp sends floats as float32, so publishers (`hub bench`) send repr(time.time()) as text."""
    for text, seconds in [("1732950000.123456", 1732950000.123456), ("1732950000", 1732950000.0), ("0.5", 0.5)]:
        assert trusted_headers({C.H_SUBMITTED_AT: text}, from_hub=False) == {C.H_SUBMITTED_AT: seconds}
    for text in ["", " 1732950000", "1732950000 ", "-5", "+5", "1e9", "1e300", "nan", "inf", "Infinity",
                 "1_732_950_000", "0x10", "1.", ".5", "99999999999999", "1732950000.5.5", "١٧٣٢٩٥٠٠٠٠"]:
        assert C.H_SUBMITTED_AT not in trusted_headers({C.H_SUBMITTED_AT: text}, from_hub=True), text


async def _dead(env) -> int:
    rows = await env.scalar(sa.select(sa.func.count()).select_from(dead_letters))
    return rows[0][0] + await env.hub.backbone.depth(C.QUEUE_DEAD)


async def test_a_poisoned_header_flood_holds_back_no_one(env):
    """H44 publishes packages whose x-hub-* headers are AMQP timestamps, bytes, decimals, forged
    gateway agencies and reasons, interleaved with G22's: every package of both is delivered,
    none carries a forged header on, none is dead-lettered."""
    async with env.running():
        g, h41, h44 = await env.adapter(G22), await env.adapter(H41), await env.adapter(H44)
        sent = []
        for value in POISON:
            doc = make_edoc(H44, (H41,))
            data = h44.sign(build_edoc(doc, []))
            await h44.backbone.publish(C.EXCHANGE_SUBMIT, "", data, user_id=h44.backbone.user, headers={
                C.H_SUBMITTED_AT: value, C.H_GATEWAY_AGENCY: G22, C.H_REASON: "forged.reason",
                C.H_ORIGINAL_USER: G22, C.H_REPLAYED_BY: "nobody"})
            other = make_edoc(G22, (H41,))
            await g.send_document(other, [])
            sent += [doc.document_id, other.document_id]
        got = await drain(h41, len(sent), timeout=60)
        assert sorted(r.document_id for r in got) == sorted(sent)
        for r in got:
            assert {C.H_GATEWAY_AGENCY, C.H_REASON, C.H_ORIGINAL_USER, C.H_REPLAYED_BY}.isdisjoint(r.headers)
            sub = r.headers.get(C.H_SUBMITTED_AT)
            assert sub is None or type(sub) is float, (r.document_id, sub)
        assert await _dead(env) == 0


@pytest.mark.rabbitmq
@pytest.mark.postgres
async def test_a_package_the_store_cannot_take_is_refused_alone(real_env):
    """A valid package with a DocumentId longer than the store's column fails its transaction on
    PostgreSQL; its batch companions are delivered, it alone is refused (hub.unrecordable),
    answered with a status 02 and audited."""
    env = real_env
    async with env.running():
        g, h41 = await env.adapter(G22), await env.adapter(H41)
        base = make_edoc(G22, (H41,))
        long_doc = dataclasses.replace(base, document_id=base.document_id + "-" + "x" * 300)
        good = [make_edoc(G22, (H41,)) for _ in range(20)]
        datas = [g.sign(build_edoc(d, [])) for d in [*good[:10], long_doc, *good[10:]]]
        await asyncio.gather(*(g.publish(d) for d in datas))  # one batch, as far as timing goes
        got = await drain(h41, len(good), timeout=60)
        assert sorted(r.document_id for r in got) == sorted(d.document_id for d in good)
        answer = (await drain(g, 1, timeout=30))[0]
        assert answer.kind == "status" and answer.headers[C.H_REASON] == "hub.unrecordable"
        refused = await env.scalar(sa.select(records.c.reason, records.c.sender).where(
            records.c.event == "package.refused"))
        assert refused == [("hub.unrecordable", G22)]
        assert await _dead(env) == 0
