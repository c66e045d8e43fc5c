"""The backbone contract, run against the embedded broker and real RabbitMQ alike."""

from __future__ import annotations

import asyncio
import time

import pytest

from hub.backbone import Backbone, Incoming, Outgoing, inbox_key, inbox_queue
from hub.constants import EXCHANGE_DEAD, EXCHANGE_DELIVER, EXCHANGE_SUBMIT, QUEUE_DEAD, QUEUE_INTAKE
from hub.errors import AuthorityError, TransientError, UsageError

from backbone_env import Env, agency_code, eventually


async def drain(bb: Backbone, queue: str) -> list[Incoming]:
    """Get (unsettled) everything ready in ``queue``."""
    out = []
    while (m := await bb.get(queue)) is not None:
        out.append(m)
    return out


async def test_topology_declare_is_idempotent(env: Env):
    bb = await env.connect()
    code = agency_code()
    for _ in range(2):
        await bb.declare_topology()
        await bb.declare_inbox(code)
    for q in (QUEUE_INTAKE, QUEUE_DEAD, inbox_queue(code), inbox_queue(code, urgent=True)):
        assert await bb.depth(q) == 0
        assert await bb.consumers(q) == 0
    await bb.publish(EXCHANGE_SUBMIT, "", b"still works")
    assert await bb.depth(QUEUE_INTAKE) == 1


async def test_redeclare_with_other_arguments_is_refused(env: Env):
    bb = await env.connect()
    await bb.declare_topology()
    other = await env.connect(delivery_limit=2)
    with pytest.raises(UsageError) as e:
        await other.declare_topology()
    assert e.value.code == "backbone.precondition_failed"
    assert await other.depth(QUEUE_INTAKE) == 0  # the connection survives the 406


async def test_publish_lands_in_intake_intact(bb: Backbone):
    headers = {"x-edxml-document-id": "000.00.00.G22,2026/11/27,1/VPCP", "n": 7, "f": 1.5, "ok": True,
               "list": [1, "two"], "nested": {"a": "b"}, "vi": "Văn phòng Chính phủ"}
    before = time.time()
    await bb.publish(EXCHANGE_SUBMIT, "any-key", b"<edXML/>" * 100, headers=headers, user_id=bb.user,
                     message_id="m-1", priority=3)
    m = await bb.get(QUEUE_INTAKE)
    assert m is not None
    msg = m.message
    assert msg.body == b"<edXML/>" * 100
    assert {k: msg.headers[k] for k in headers} == headers
    assert msg.headers["x-delivery-count"] == 0  # added by the (quorum) queue
    assert (msg.user_id, msg.message_id, msg.priority) == (bb.user, "m-1", 3)
    assert (msg.exchange, msg.routing_key, msg.redelivered) == (EXCHANGE_SUBMIT, "any-key", False)
    assert msg.timestamp is not None and int(before) - 1 <= msg.timestamp <= time.time() + 1
    await m.ack()
    assert await bb.depth(QUEUE_INTAKE) == 0


async def test_message_without_id_gets_one_and_no_user_id_is_fine(bb: Backbone):
    await bb.publish(EXCHANGE_SUBMIT, "", b"x")
    m = await bb.get(QUEUE_INTAKE)
    assert m is not None and m.message.message_id and m.message.user_id is None
    assert m.message.priority == 0
    await m.ack()


async def test_publish_many_arrives_once_in_order(bb: Backbone):
    n = 500
    await bb.publish_many([Outgoing(EXCHANGE_SUBMIT, "", f"body {i}".encode() * 50, headers={"n": i},
                                    message_id=f"id-{i}") for i in range(n)])
    assert await bb.depth(QUEUE_INTAKE) == n
    seen: list[int] = []
    done = asyncio.Event()

    async def on_message(incoming: Incoming) -> None:
        seen.append(incoming.message.headers["n"])
        await incoming.ack()
        if len(seen) == n:
            done.set()

    consumer = await bb.consume(QUEUE_INTAKE, on_message, prefetch=50)
    await asyncio.wait_for(done.wait(), 20)
    await consumer.cancel()
    assert seen == list(range(n))
    assert await bb.depth(QUEUE_INTAKE) == 0


async def test_publish_many_with_repeated_message_ids(bb: Backbone):
    """The hub may send one document to several inboxes under the same message_id."""
    codes = [agency_code() for _ in range(3)]
    for c in codes:
        await bb.declare_inbox(c)
    items = [Outgoing(EXCHANGE_DELIVER, inbox_key(c), b"doc", message_id="doc-1") for c in codes]
    await bb.publish_many(items)
    with pytest.raises(TransientError) as e:  # the unroutable one is reported, not a neighbour
        await bb.publish_many([*items, Outgoing(EXCHANGE_DELIVER, "nobody", b"doc", message_id="doc-1"), *items])
    assert e.value.code == "backbone.unroutable"
    for c in codes:
        assert await bb.depth(inbox_queue(c)) == 3


async def test_prefetch_bounds_unsettled(bb: Backbone):
    code = agency_code()
    await bb.declare_inbox(code)
    total, prefetch = 30, 5
    await bb.publish_many([Outgoing(EXCHANGE_DELIVER, code, b"m", headers={"n": i}) for i in range(total)])
    held: list[Incoming] = []
    acked = 0
    max_unsettled = 0

    async def hold(incoming: Incoming) -> None:
        nonlocal max_unsettled
        held.append(incoming)
        max_unsettled = max(max_unsettled, len(held) - acked)
        await asyncio.sleep(0.01)  # concurrent callbacks overlap here

    consumer = await bb.consume(inbox_queue(code), hold, prefetch=prefetch)

    async def got(k: int) -> bool:
        return len(held) >= k

    await eventually(lambda: got(prefetch), what="the first prefetch window")
    await asyncio.sleep(0.3)
    assert len(held) == prefetch  # nothing more until something is settled
    while acked < total:
        await eventually(lambda: got(acked + 1), what=f"message {acked + 1}")
        settling = held[acked]
        acked += 1  # counted before the ack can let the next delivery in
        await settling.ack()
    assert max_unsettled == prefetch
    assert [m.message.headers["n"] for m in held] == list(range(total))
    await consumer.cancel()
    assert await bb.depth(inbox_queue(code)) == 0


async def test_reject_requeue_redelivers_at_the_head(bb: Backbone):
    await bb.publish_many([Outgoing(EXCHANGE_SUBMIT, "", b, message_id=b.decode()) for b in (b"A", b"B")])
    first = await bb.get(QUEUE_INTAKE)
    assert first is not None and first.message.body == b"A" and not first.message.redelivered
    await first.reject(requeue=True)

    async def requeued() -> bool:
        return await bb.depth(QUEUE_INTAKE) == 2

    await eventually(requeued, what="the requeue")
    again = await bb.get(QUEUE_INTAKE)
    assert again is not None
    assert (again.message.body, again.message.redelivered, again.message.message_id) == (b"A", True, "A")
    assert again.message.headers["x-delivery-count"] == 1
    await again.ack()
    second = await bb.get(QUEUE_INTAKE)
    assert second is not None and second.message.body == b"B" and not second.message.redelivered
    await second.ack()


async def test_settling_twice_is_refused(bb: Backbone):
    await bb.publish(EXCHANGE_SUBMIT, "", b"x")
    m = await bb.get(QUEUE_INTAKE)
    assert m is not None
    await m.ack()
    assert m.settled
    with pytest.raises(UsageError):
        await m.ack()
    await bb.publish(EXCHANGE_SUBMIT, "", b"y")  # nothing broke
    assert await bb.depth(QUEUE_INTAKE) == 1


async def test_closed_connection_redelivers_to_another(env: Env, bb: Backbone):
    first = await env.connect()
    await bb.publish_many([Outgoing(EXCHANGE_SUBMIT, "", f"m{i}".encode()) for i in range(3)])
    held: list[Incoming] = []

    async def hold(incoming: Incoming) -> None:
        held.append(incoming)

    await first.consume(QUEUE_INTAKE, hold, prefetch=10)
    await eventually(lambda: _ready(len(held) == 3), what="three deliveries")
    assert await bb.depth(QUEUE_INTAKE) == 0
    assert await bb.consumers(QUEUE_INTAKE) == 1
    await first.close()

    async def back() -> bool:
        return await bb.depth(QUEUE_INTAKE) == 3 and await bb.consumers(QUEUE_INTAKE) == 0

    await eventually(back, what="the requeue after close")
    again = await drain(bb, QUEUE_INTAKE)
    assert [m.message.body for m in again] == [b"m0", b"m1", b"m2"]
    assert all(m.message.redelivered for m in again)
    for m in again:
        await m.ack()
    with pytest.raises(TransientError):  # the closed connection can no longer settle
        await held[0].ack()


async def test_cancel_requeues_unsettled_and_counts_consumers(bb: Backbone):
    await bb.publish_many([Outgoing(EXCHANGE_SUBMIT, "", b"x") for _ in range(4)])
    held: list[Incoming] = []

    async def hold(incoming: Incoming) -> None:
        held.append(incoming)
        if len(held) == 1:
            await incoming.ack()

    consumer = await bb.consume(QUEUE_INTAKE, hold, prefetch=2)
    assert consumer.queue == QUEUE_INTAKE
    assert await bb.consumers(QUEUE_INTAKE) == 1
    await eventually(lambda: _ready(len(held) == 3), what="three deliveries")
    await consumer.cancel()

    async def back() -> bool:  # RabbitMQ applies both asynchronously (quorum queue commands)
        return await bb.depth(QUEUE_INTAKE) == 3 and await bb.consumers(QUEUE_INTAKE) == 0

    await eventually(back, what="the requeue after cancel")
    await consumer.cancel()  # idempotent


async def test_callback_error_requeues(bb: Backbone, caplog):
    await bb.publish(EXCHANGE_SUBMIT, "", b"poison?")
    deliveries: list[bool] = []

    async def flaky(incoming: Incoming) -> None:
        deliveries.append(incoming.message.redelivered)
        if len(deliveries) == 1:
            raise RuntimeError("boom")
        await incoming.ack()

    consumer = await bb.consume(QUEUE_INTAKE, flaky, prefetch=1)
    await eventually(lambda: _ready(len(deliveries) == 2), what="the redelivery")
    await consumer.cancel()
    assert deliveries == [False, True]
    assert "boom" in caplog.text


async def test_delivery_limit_dead_letters(env: Env):
    bb = await env.connect(delivery_limit=2)
    await bb.declare_topology()
    code = agency_code()
    await bb.declare_inbox(code)
    await bb.publish(EXCHANGE_DELIVER, inbox_key(code), b"poison", headers={"h": "v"}, user_id=bb.user,
                     message_id="p-1", priority=2)
    deliveries = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = await bb.get(inbox_queue(code))
        if m is None:
            if await bb.depth(QUEUE_DEAD) == 1:
                break
            await asyncio.sleep(0.02)
            continue
        assert m.message.headers["x-delivery-count"] == deliveries
        deliveries += 1
        await m.reject(requeue=True)
    assert deliveries == 3  # the first delivery plus `limit` redeliveries
    dead = await bb.get(QUEUE_DEAD)
    assert dead is not None
    msg = dead.message
    assert (msg.body, msg.exchange, msg.routing_key) == (b"poison", EXCHANGE_DEAD, code)
    assert (msg.user_id, msg.message_id, msg.priority, msg.redelivered) == (bb.user, "p-1", 2, False)
    assert msg.headers["h"] == "v"
    assert msg.headers["x-first-death-reason"] == "delivery_limit"
    assert msg.headers["x-first-death-queue"] == inbox_queue(code)
    death = msg.headers["x-death"][0]
    assert (death["reason"], death["queue"], death["exchange"], death["routing-keys"], death["count"]) == (
        "delivery_limit", inbox_queue(code), EXCHANGE_DELIVER, [code], 1)
    await dead.ack()
    assert await bb.depth(inbox_queue(code)) == 0


async def test_reject_without_requeue_dead_letters(bb: Backbone):
    await bb.publish(EXCHANGE_SUBMIT, "k", b"unparseable", headers={"x-hub-reason": "parse.not_xml"})
    m = await bb.get(QUEUE_INTAKE)
    assert m is not None
    await m.reject(requeue=False)

    async def dead() -> bool:
        return await bb.depth(QUEUE_DEAD) == 1

    await eventually(dead, what="dead-lettering")
    d = await bb.get(QUEUE_DEAD)
    assert d is not None
    assert d.message.headers["x-hub-reason"] == "parse.not_xml"
    assert d.message.headers["x-first-death-reason"] == "rejected"
    assert d.message.headers["x-death"][0]["queue"] == QUEUE_INTAKE
    await d.ack()
    assert await bb.depth(QUEUE_INTAKE) == 0


async def test_routing_normal_and_urgent_inboxes(bb: Backbone):
    a, b = agency_code(), agency_code()
    await bb.declare_inbox(a)
    await bb.declare_inbox(b)
    await bb.publish_many([
        Outgoing(EXCHANGE_DELIVER, inbox_key(a), b"a normal"),
        Outgoing(EXCHANGE_DELIVER, inbox_key(a, urgent=True), b"a urgent", priority=3),
        Outgoing(EXCHANGE_DELIVER, inbox_key(b), b"b normal"),
        Outgoing(EXCHANGE_DELIVER, inbox_key(a), b"a normal 2"),
    ])
    assert inbox_queue(a) == f"inbox.{a}" and inbox_queue(a, urgent=True) == f"inbox.{a}.urgent"
    assert [m.message.body for m in await drain(bb, inbox_queue(a))] == [b"a normal", b"a normal 2"]
    urgent = await drain(bb, inbox_queue(a, urgent=True))
    assert [(m.message.body, m.message.routing_key, m.message.priority) for m in urgent] == [
        (b"a urgent", f"{a}.urgent", 3)]
    assert [m.message.body for m in await drain(bb, inbox_queue(b))] == [b"b normal"]
    assert await bb.depth(inbox_queue(b, urgent=True)) == 0


async def test_unroutable_raises(bb: Backbone):
    code = agency_code()
    await bb.declare_inbox(code)
    with pytest.raises(TransientError) as e:
        await bb.publish(EXCHANGE_DELIVER, "000.00.00.NOBODY", b"lost?")
    assert e.value.code == "backbone.unroutable"
    with pytest.raises(TransientError) as e:  # the good ones of a batch still go through
        await bb.publish_many([Outgoing(EXCHANGE_DELIVER, code, b"1"), Outgoing(EXCHANGE_DELIVER, "nobody", b"2"),
                               Outgoing(EXCHANGE_DELIVER, code, b"3")])
    assert e.value.code == "backbone.unroutable"
    assert [m.message.body for m in await drain(bb, inbox_queue(code))] == [b"1", b"3"]


async def test_missing_exchange_or_queue(bb: Backbone):
    with pytest.raises(TransientError) as e:
        await bb.publish("no.such.exchange", "", b"x")
    assert e.value.code == "backbone.not_found"
    for op in (bb.depth, bb.consumers, bb.get, bb.purge):
        with pytest.raises(TransientError) as e:
            await op("no.such.queue")
        assert e.value.code == "backbone.not_found"
    await bb.delete_queue("no.such.queue")  # deleting a missing queue is fine
    await bb.publish(EXCHANGE_SUBMIT, "", b"still usable")
    assert await bb.depth(QUEUE_INTAKE) == 1


async def test_user_id_mismatch_is_refused_and_connection_survives(bb: Backbone):
    with pytest.raises(AuthorityError) as e:
        await bb.publish(EXCHANGE_SUBMIT, "", b"forged", user_id="000.00.00.G22-not-me")
    assert e.value.code == "authority.impersonation"
    assert await bb.depth(QUEUE_INTAKE) == 0
    with pytest.raises(AuthorityError):
        await bb.publish_many([Outgoing(EXCHANGE_SUBMIT, "", b"ok", user_id=bb.user),
                               Outgoing(EXCHANGE_SUBMIT, "", b"forged", user_id="someone-else")])
    await bb.purge(QUEUE_INTAKE)
    await bb.publish(EXCHANGE_SUBMIT, "", b"genuine", user_id=bb.user)
    m = await bb.get(QUEUE_INTAKE)
    assert m is not None and (m.message.body, m.message.user_id) == (b"genuine", bb.user)
    await m.ack()


async def test_depth_purge_delete(bb: Backbone):
    code = agency_code()
    await bb.declare_inbox(code)
    q = inbox_queue(code)
    await bb.publish_many([Outgoing(EXCHANGE_DELIVER, code, b"x") for _ in range(7)])
    assert await bb.depth(q) == 7
    m = await bb.get(q)
    assert m is not None
    assert await bb.depth(q) == 6  # unsettled messages are not ready
    await m.ack()
    assert await bb.depth(q) == 6
    assert await bb.purge(q) == 6
    assert await bb.depth(q) == 0
    await bb.delete_queue(q)
    with pytest.raises(TransientError):
        await bb.depth(q)
    with pytest.raises(TransientError) as e:  # its binding went with it
        await bb.publish(EXCHANGE_DELIVER, code, b"x")
    assert e.value.code == "backbone.unroutable"


async def test_agency_user_permissions(env: Env, bb: Backbone):
    mine, other = agency_code(), agency_code()
    for c in (mine, other):
        await bb.declare_inbox(c)
    await bb.publish_many([Outgoing(EXCHANGE_DELIVER, inbox_key(mine), b"for me"),
                           Outgoing(EXCHANGE_DELIVER, inbox_key(mine, urgent=True), b"for me, urgent"),
                           Outgoing(EXCHANGE_DELIVER, inbox_key(other), b"not for me")])
    agency = await env.agency(mine)

    # allowed: publish to edxml.submit as itself, read its own inboxes (get and consume)
    await agency.publish(EXCHANGE_SUBMIT, "", b"<edXML/>", user_id=agency.user)
    submitted = await bb.get(QUEUE_INTAKE)
    assert submitted is not None and submitted.message.user_id == agency.user
    await submitted.ack()
    got = await agency.get(inbox_queue(mine))
    assert got is not None and got.message.body == b"for me"
    await got.ack()
    received: list[bytes] = []

    async def on_message(incoming: Incoming) -> None:
        received.append(incoming.message.body)
        await incoming.ack()

    consumer = await agency.consume(inbox_queue(mine, urgent=True), on_message, prefetch=5)
    await eventually(lambda: _ready(received == [b"for me, urgent"]), what="the urgent delivery")
    await consumer.cancel()

    # refused, each time without losing the connection
    refusals = [
        lambda: agency.get(inbox_queue(other)),
        lambda: agency.consume(inbox_queue(other), on_message),
        lambda: agency.publish(EXCHANGE_DELIVER, inbox_key(other), b"forged delivery"),
        lambda: agency.publish(EXCHANGE_DELIVER, inbox_key(mine), b"self-delivery"),
        lambda: agency.purge(inbox_queue(other)),
        lambda: agency.declare_topology(),
        lambda: agency.declare_inbox(agency_code()),
        lambda: agency.delete_queue(inbox_queue(other)),
    ]
    for attempt in refusals:
        with pytest.raises(AuthorityError) as e:
            await attempt()
        assert e.value.code == "authority.forbidden"
        assert await agency.depth(inbox_queue(mine)) == 0  # still usable (passive declares are allowed)
    with pytest.raises(AuthorityError) as e:
        await agency.publish(EXCHANGE_SUBMIT, "", b"forged", user_id="agency-someone-else")
    assert e.value.code == "authority.impersonation"
    assert await bb.depth(inbox_queue(other)) == 1
    assert await bb.depth(QUEUE_INTAKE) == 0


async def test_connect_arguments():
    from hub.backbone import EmbeddedBroker, connect

    with pytest.raises(UsageError):
        await connect(None)
    with pytest.raises(UsageError):
        await connect("http://127.0.0.1:15672")
    with pytest.raises(UsageError):
        await connect("amqp://guest:guest@127.0.0.1/", user="someone")
    async with await connect("", broker=EmbeddedBroker()) as bb:
        assert bb.user == "hub"
    with pytest.raises(UsageError):
        await bb.declare_inbox("bad code #")


async def _ready(value: bool) -> bool:
    return value


async def test_header_values_round_trip(bb: Backbone):
    """Floats keep full precision (pamqp alone would send them as 32-bit), bytes and tuples work."""
    from datetime import datetime, timezone
    from decimal import Decimal

    submitted_at = 1795801463.049176
    headers = {"x-hub-submitted-at": submitted_at, "small": 0.1, "raw": b"\x00\xff", "tuple": (1, "a"),
               "when": datetime(2026, 11, 27, 9, 0, 0, 123456, tzinfo=timezone.utc), "dec": Decimal("1.50"),
               "none": None, "neg": -(2**40), "nested": {"list": [{"f": 2.5}, b"x"]}}
    await bb.publish(EXCHANGE_SUBMIT, "", b"x", headers=headers)
    m = await bb.get(QUEUE_INTAKE)
    assert m is not None
    got = m.message.headers
    assert got["x-hub-submitted-at"] == submitted_at and got["small"] == 0.1
    assert got["raw"] == b"\x00\xff" and isinstance(got["raw"], bytes)
    assert got["tuple"] == [1, "a"]
    assert got["when"] == datetime(2026, 11, 27, 9, 0, 0, tzinfo=timezone.utc)
    assert got["dec"] == Decimal("1.50") and got["none"] is None and got["neg"] == -(2**40)
    assert got["nested"] == {"list": [{"f": 2.5}, b"x"]}
    await m.ack()
    with pytest.raises(TypeError):
        await bb.publish(EXCHANGE_SUBMIT, "", b"x", headers={"bad": {1, 2}})
    with pytest.raises(UsageError):
        Outgoing(EXCHANGE_SUBMIT, "", b"x", priority=256)
    await bb.publish(EXCHANGE_SUBMIT, "", b"still fine")


async def test_stop_deliveries_keeps_unsettled_settleable(bb: Backbone):
    """A graceful stop: no new deliveries, but what is in hand can still be acked."""
    await bb.publish_many([Outgoing(EXCHANGE_SUBMIT, "", b"x") for _ in range(5)])
    held: list[Incoming] = []

    async def hold(incoming: Incoming) -> None:
        held.append(incoming)

    consumer = await bb.consume(QUEUE_INTAKE, hold, prefetch=2)
    await eventually(lambda: _ready(len(held) == 2), what="two deliveries")
    await consumer.stop_deliveries()
    for m in held:
        await m.ack()  # still possible after stop_deliveries
    await asyncio.sleep(0.3)
    assert len(held) == 2  # nothing new arrived
    await consumer.cancel()

    async def rest() -> bool:
        return await bb.depth(QUEUE_INTAKE) == 3 and await bb.consumers(QUEUE_INTAKE) == 0

    await eventually(rest, what="the three never delivered stay ready")


async def test_ack_many_acks_only_its_own_messages(env: Env, bb: Backbone):
    """``ack_many`` may ack a run of tags in one frame (RabbitMQ: ``basic.ack multiple=True``); it must
    never ack a delivery outside the batch that is still unsettled, before or between its tags."""
    first = await env.connect()
    await bb.publish_many([Outgoing(EXCHANGE_SUBMIT, "", f"m{i}".encode()) for i in range(8)])
    held: list[Incoming] = []

    async def hold(incoming: Incoming) -> None:
        held.append(incoming)

    await first.consume(QUEUE_INTAKE, hold, prefetch=10)
    await eventually(lambda: _ready(len(held) == 8), what="eight deliveries")
    await first.ack_many([held[i] for i in (1, 2, 4)])  # m0 and m3 unsettled before and between
    await held[0].reject(requeue=False)  # dead-lettered: settled, not acked by anyone's run
    await first.ack_many([held[i] for i in (5, 6)])  # m3 still held: 5, 6 alone, not a run over 3
    await first.ack_many([held[3]])
    assert all(held[i].settled for i in range(7)) and not held[7].settled
    await first.close()

    async def back() -> bool:
        return await bb.depth(QUEUE_INTAKE) == 1 and await bb.consumers(QUEUE_INTAKE) == 0

    await eventually(back, what="the requeue of the one unsettled message after close")
    again = await drain(bb, QUEUE_INTAKE)
    assert [m.message.body for m in again] == [b"m7"]
    assert [m.message.body for m in await drain(bb, QUEUE_DEAD)] == [b"m0"]
