"""The dead-letter keeper (issue 8, items 3, 7 and 9): it believes a dead letter only as far as
the broker proves it, records what RabbitMQ dead-lettered when it takes it in, and pauses
(one line, no tracebacks, no spinning) while the database is unavailable."""

from __future__ import annotations

import asyncio
import hashlib
import logging

import sqlalchemy as sa

from hub import constants as C
from hub.backbone.base import Message
from hub.backbone.factory import connect
from hub.edxml.builder import build_edoc
from hub.pipeline.deadletters import backoff_delay, provenance
from hub.store.tables import dead_letters, records
from tests.apienv import api_for
from tests.conftest import G22, H41, H44, PG_ADMIN_URL, make_edoc
from tests.hubenv import drain, until

HUB_USER = "hub"


def _msg(user_id, headers, routing_key="") -> Message:
    return Message(body=b"<x/>", headers=headers, routing_key=routing_key, exchange=C.EXCHANGE_DEAD, user_id=user_id,
                   message_id=None, priority=0, redelivered=False, timestamp=None)


# --- pure: what is believed ------------------------------------------------------------------

def test_the_hubs_own_dead_letters_are_believed():
    h = {C.H_REASON: "parse.not_xml", C.H_MESSAGE: "not XML", C.H_ORIGINAL_USER: "g22-user",
         C.H_ORIGINAL_EXCHANGE: C.EXCHANGE_SUBMIT}
    p = provenance(_msg(HUB_USER, h), h, HUB_USER)
    assert p.by_hub and p.reason == "parse.not_xml" and p.message == "not XML"
    assert p.original_user == "g22-user" and p.actor == "g22-user" and p.original_exchange == C.EXCHANGE_SUBMIT


def test_headers_of_a_message_rabbitmq_dead_lettered_are_not_believed():
    forged = {C.H_REASON: "parse.not_xml", C.H_MESSAGE: "G22 sent garbage", C.H_ORIGINAL_USER: "g22-user",
              C.H_ORIGINAL_EXCHANGE: "nowhere", C.H_GATEWAY_AGENCY: G22,
              "x-death": [{"count": 1, "reason": "delivery_limit", "queue": C.QUEUE_INTAKE,
                           "exchange": C.EXCHANGE_SUBMIT, "routing-keys": [""]}]}
    p = provenance(_msg("h44-user", forged), forged, HUB_USER)
    assert not p.by_hub and p.reason == "broker.delivery_limit"
    assert p.original_user == "h44-user" and p.actor == "h44-user"  # the validated user_id, nothing else
    assert "G22" not in p.message and "garbage" not in p.message
    assert p.original_exchange == C.EXCHANGE_SUBMIT


def test_a_forged_x_death_reason_or_an_unknown_publisher_proves_nothing():
    h = {C.H_REASON: "parse.not_xml", "x-death": [{"reason": "framed by G22", "queue": C.QUEUE_INTAKE}]}
    p = provenance(_msg("h44-user", h), h, HUB_USER)
    assert p.reason == "broker.dead_lettered" and "framed" not in p.message and p.original_user == "h44-user"
    h = {C.H_REASON: "parse.not_xml", C.H_ORIGINAL_USER: "g22-user"}
    for user in ("h44-user", None):  # on hub.dead without x-death, but not published by the hub
        p = provenance(_msg(user, h), h, HUB_USER)
        assert not p.by_hub and p.reason == "broker.dead_lettered" and p.original_user == user and p.actor == user


def test_a_gateway_submission_rabbitmq_dead_lettered_names_the_agency_the_hub_authenticated():
    h = {C.H_GATEWAY_AGENCY: H41, "x-death": [{"reason": "rejected", "queue": C.QUEUE_INTAKE}]}
    p = provenance(_msg(HUB_USER, h), h, HUB_USER)
    assert not p.by_hub and p.reason == "broker.rejected" and p.actor == f"gateway:{H41}"
    p = provenance(_msg("h44-user", h), h, HUB_USER)  # only the hub's user may name an agency that way
    assert p.actor == "h44-user"


def test_backoff_is_exponential_bounded_and_jittered():
    lows = [backoff_delay(n, base=0.5, cap=30.0, rand=lambda: 0.0) for n in range(1, 12)]
    highs = [backoff_delay(n, base=0.5, cap=30.0, rand=lambda: 1.0) for n in range(1, 12)]
    assert highs[:4] == [0.5, 1.0, 2.0, 4.0] and max(highs) == 30.0 and highs[-1] == 30.0
    assert all(lo == hi / 2 for lo, hi in zip(lows, highs))
    assert backoff_delay(10**6) <= 30.0 and backoff_delay(0) > 0


# --- end to end: forged metadata, audit entries ------------------------------------------------

async def _dead_letter_before_the_hub_runs(env, data: bytes, headers: dict, *, requeues: int | None) -> str:
    """H44 publishes ``data`` with ``headers``; RabbitMQ dead-letters it from hub.intake, either
    rejected (``requeues=None``) or past the delivery limit. Returns H44's broker user."""
    hub_bb = await connect(env.settings.amqp_url, broker=env.broker)
    try:
        await hub_bb.declare_topology()
        h44 = await env.adapter(H44, start=False)
        await h44.backbone.publish(C.EXCHANGE_SUBMIT, "", data, user_id=h44.backbone.user, headers=headers)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while await hub_bb.depth(C.QUEUE_DEAD) == 0:
            assert loop.time() < deadline, "RabbitMQ did not dead-letter the message"
            m = await hub_bb.get(C.QUEUE_INTAKE)
            if m is None:
                await asyncio.sleep(0.05)
                continue
            await m.reject(requeue=requeues is not None)
        return h44.backbone.user
    finally:
        await hub_bb.close()


async def test_forged_dead_letter_metadata_frames_nobody(env):
    """H44 sets the hub's dead-letter headers naming G22's adapter; RabbitMQ dead-letters the
    message. The keeper names H44 (its validated user_id), and an admin replay is attributed to
    H44: the audit log never names G22 for what H44 published."""
    g22_user = env.user_of(G22)
    g = await env.adapter(G22, start=False)
    h44_signer = await env.adapter(H44, start=False)
    framed = h44_signer.sign(build_edoc(make_edoc(H44, (H41,)), []))
    forged = {C.H_REASON: "parse.not_xml", C.H_MESSAGE: "G22 sent garbage", C.H_ORIGINAL_USER: g22_user,
              C.H_ORIGINAL_EXCHANGE: "framed", C.H_ORIGINAL_ROUTING_KEY: "framed", C.H_KIND: "dead"}
    h44_user = await _dead_letter_before_the_hub_runs(env, framed, forged, requeues=None)
    async with env.running(), api_for(env) as api:
        [row] = await until(lambda: env.scalar(sa.select(dead_letters)))
        assert row.reason == "broker.rejected", row
        assert row.original_user == h44_user and "G22" not in row.message and row.original_exchange != "framed"
        h41 = await env.adapter(H41)
        status, body = await api.call("POST", "/api/v1/admin/dead-letters/replay", "admin", json={"ids": [row.id]})
        assert status == 200 and body["done"] == [row.id], body
        [r] = await drain(h41, 1)  # replayed as H44's: H44 serves its own From, so it is delivered
        assert r.sender == H44
        assert g is not None
    actors = await env.scalar(sa.select(records.c.event, records.c.actor).where(records.c.actor == g22_user))
    assert actors == [], actors  # G22's adapter did nothing in this test
    refused = await env.scalar(sa.select(records.c.actor).where(records.c.event == "package.refused"))
    assert refused == []


async def test_what_rabbitmq_dead_letters_is_recorded_when_kept(env):
    h44_signer = await env.adapter(H44, start=False)
    data = h44_signer.sign(build_edoc(make_edoc(H44, (H41,)), []))
    h44_user = await _dead_letter_before_the_hub_runs(env, data, {C.H_REASON: "made.up"}, requeues=6)
    async with env.running():
        [row] = await until(lambda: env.scalar(sa.select(dead_letters.c.id, dead_letters.c.reason)))
        assert row.reason == "broker.delivery_limit"
        entries = await until(lambda: env.scalar(sa.select(records).where(
            records.c.event == "package.dead_lettered")))
    [e] = entries
    assert e.actor == h44_user and e.reason == "broker.delivery_limit"
    assert e.sha256 == hashlib.sha256(data).hexdigest() and e.details["dead_letter"] == row.id
    assert e.details["by"] == "rabbitmq"


async def test_the_hubs_own_dead_letters_are_recorded_once(env):
    """Unparseable input: the hub records package.dead when it decides; the keeper adds nothing."""
    async with env.running():
        g = await env.adapter(G22)
        await g.publish(b"<not xml")
        await drain(g, 1)  # the refusal
        [row] = await until(lambda: env.scalar(sa.select(dead_letters)))
        assert row.reason == "parse.not_xml" and row.original_user == env.user_of(G22)
    events = [e for (e,) in await env.scalar(sa.select(records.c.event).where(records.c.event.like("package.dead%")))]
    assert events == ["package.dead"]


# --- the keeper while the database is down -------------------------------------------------

async def _allow_connections(db_url: str, allow: bool) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    name = db_url.rsplit("/", 1)[1]
    admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as c:
            await c.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}'))
            if not allow:  # and drop the connections the hub holds: PostgreSQL is "down" for it
                await c.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                        "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
    finally:
        await admin.dispose()


async def test_the_keeper_pauses_while_the_database_is_down(real_env, caplog):
    env = real_env
    caplog.set_level(logging.INFO)
    n = 20

    def keeper_lines():
        return [r for r in caplog.records if r.name == "hub.deadletters"
                or (r.name.startswith("hub.backbone") and C.QUEUE_DEAD in r.getMessage())]

    async with env.running() as hub:
        bb = hub.backbone
        await _allow_connections(env.settings.database_url, False)
        try:
            for i in range(n):
                await bb.publish(C.EXCHANGE_DEAD, "", b"<dead %d" % i, user_id=bb.user,
                                 headers={C.H_REASON: "parse.not_xml", C.H_MESSAGE: "not XML"})

            async def paused():  # no consumer on hub.dead; every letter waits there
                return await bb.consumers(C.QUEUE_DEAD) == 0 and await bb.depth(C.QUEUE_DEAD) == n

            await until(paused)
            await asyncio.sleep(2.0)  # the outage goes on: the keeper says nothing more and takes nothing
            assert await paused()
            during = keeper_lines()
            assert len(during) == 1, [r.getMessage() for r in during]
            assert "paused" in during[0].getMessage() and during[0].exc_info is None  # one line, no traceback
        finally:
            await _allow_connections(env.settings.database_url, True)

        async def all_kept():
            return len(await env.scalar(sa.select(dead_letters.c.id))) == n

        await until(all_kept, timeout=60)
        assert await bb.depth(C.QUEUE_DEAD) == 0
        await until(lambda: bb.consumers(C.QUEUE_DEAD))
        after = [r.getMessage() for r in keeper_lines()]
        assert len(after) == 2 and "again" in after[1], after
        await until(lambda: asyncio.sleep(0, hub.keeper.kept == n))  # counted just after each commit
