"""RabbitMQ only: a connection the broker drops comes back with its consumers and channels."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

import pytest

from hub.backbone import Incoming
from hub.backbone.management import Management
from hub.constants import EXCHANGE_SUBMIT, QUEUE_INTAKE
from hub.errors import TransientError
from tests.backbone.backbone_env import ADMIN_PASSWORD, ADMIN_USER, MANAGEMENT_URL, RabbitEnv, eventually

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def rabbit():
    env = RabbitEnv()
    await env.start()
    try:
        yield env
    finally:
        await env.close()


async def _kill_connections(vhost: str) -> int:
    """Force-close every client connection of ``vhost`` (what a broker restart looks like)."""
    async with Management(MANAGEMENT_URL, ADMIN_USER, ADMIN_PASSWORD) as m:
        deadline = time.monotonic() + 10
        while not (conns := await m.request("GET", f"/vhosts/{quote(vhost, safe='')}/connections")):
            assert time.monotonic() < deadline, "the management API does not list the connection yet"
            await asyncio.sleep(0.2)  # connection stats reach the management API with a delay
        for c in conns:
            await m.request("DELETE", f"/connections/{quote(c['name'], safe='')}")
        return len(conns)


async def test_dropped_connection_recovers(rabbit: RabbitEnv):
    bb = await rabbit.connect()
    await bb.declare_topology()
    received: list[tuple[bytes, bool]] = []

    async def on_message(incoming: Incoming) -> None:
        received.append((incoming.message.body, incoming.message.redelivered))
        if incoming.message.body != b"held":
            await incoming.ack()

    await bb.consume(QUEUE_INTAKE, on_message, prefetch=10)
    await bb.publish(EXCHANGE_SUBMIT, "", b"held")  # stays unsettled across the drop
    await eventually(lambda: _ready(received == [(b"held", False)]), what="the first delivery")

    assert await _kill_connections(rabbit.vhost) == 1

    deadline = time.monotonic() + 30
    while True:  # publishing fails while reconnecting, then works again on fresh channels
        try:
            await bb.publish(EXCHANGE_SUBMIT, "", b"after")
            break
        except TransientError as e:
            assert e.code == "backbone.unavailable"
            assert time.monotonic() < deadline, "no reconnect within 30 s"
            await asyncio.sleep(0.2)

    await eventually(lambda: _ready({(b"held", True), (b"after", False)} <= set(received)), timeout=30,
                     what="deliveries to the restored consumer")
    assert await bb.consumers(QUEUE_INTAKE) == 1


async def _ready(value: bool) -> bool:
    return value
