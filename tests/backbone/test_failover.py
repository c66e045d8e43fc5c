"""Hole 4 of issue 8: a connection given several nodes moves to a surviving one when its node dies.

The two "nodes" are TCP proxies in front of the shared RabbitMQ (the fault suite kills a real
node of a 3-node cluster); taking one down closes its connections and refuses new ones, which
is what a dead node looks like to a client."""

from __future__ import annotations

import asyncio
import time

import pytest
from yarl import URL

from hub.backbone import Incoming, connect
from hub.backbone.nodes import describe, split_nodes, user_of
from hub.constants import EXCHANGE_SUBMIT, QUEUE_INTAKE
from hub.errors import TransientError, UsageError
from tests.backbone.backbone_env import RabbitEnv, eventually
from tests.faults.proxy import Proxy


def test_comma_separated_nodes():
    url = "amqp://u:p%40w@h1:5672/v%2Fh?heartbeat=10,h2:5673 , amqps://x:y@h3/other"
    assert split_nodes(url) == ("amqp://u:p%40w@h1:5672/v%2Fh?heartbeat=10",
                                "amqp://u:p%40w@h2:5673/v%2Fh?heartbeat=10", "amqps://x:y@h3/other")
    assert user_of(url) == "u"
    assert describe(url) == "h1:5672,h2:5673,h3:5671/v%2Fh"
    assert "p%40w" not in describe(url)
    for bad in ("", "http://h1/", "amqp://h1/,user@h2", "amqp://h1/,h2:port"):
        with pytest.raises(UsageError):
            split_nodes(bad)


@pytest.mark.rabbitmq
async def test_the_connection_fails_over_to_a_surviving_node():
    rabbit = RabbitEnv()
    await rabbit.start()
    a, b = await Proxy(5672).start(), await Proxy(5672).start()
    bb = None
    try:
        base = URL(rabbit.url())
        url = f"{base.with_port(a.port)},127.0.0.1:{b.port}"
        bb = await connect(url)
        await bb.declare_topology()
        received: list[bytes] = []

        async def on_message(incoming: Incoming) -> None:
            received.append(incoming.message.body)
            await incoming.ack()

        await bb.consume(QUEUE_INTAKE, on_message, prefetch=10)
        await bb.publish(EXCHANGE_SUBMIT, "", b"before")
        await eventually(lambda: _ready(b"before" in received), what="a delivery through node a")

        await a.down()  # node a dies; node b survives
        deadline = time.monotonic() + 30
        while True:
            try:
                await bb.publish(EXCHANGE_SUBMIT, "", b"after")
                break
            except TransientError:
                assert time.monotonic() < deadline, "no failover to node b within 30 s"
                await asyncio.sleep(0.2)
        await eventually(lambda: _ready(b"after" in received), timeout=30,
                         what="a delivery to the consumer restored on node b")
        assert bb._connection.node == f"127.0.0.1:{b.port}"
    finally:
        if bb is not None:
            await bb.close()
        await a.close()
        await b.close()
        await rabbit.close()


async def _ready(value: bool) -> bool:
    return value
