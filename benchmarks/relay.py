"""The bare ceiling: relay messages from one queue to another through the same RabbitMQ with
aio-pika, publisher confirms and manual acks, and no checks at all. Run as a subprocess by
`hub bench` so it competes for the same cores the hub would."""

from __future__ import annotations

import asyncio
import sys

import aio_pika


async def relay(url: str, src: str, dst_exchange: str, dst_key: str, n: int) -> None:
    conn = await aio_pika.connect_robust(url)
    async with conn:
        pub = await conn.channel(publisher_confirms=True)
        ex = pub.default_exchange if not dst_exchange else await pub.get_exchange(dst_exchange)
        sub = await conn.channel()
        await sub.set_qos(prefetch_count=256)
        queue = await sub.get_queue(src)
        done = asyncio.Event()
        count = 0
        pending: list = []

        async def flush() -> None:
            batch, pending[:] = list(pending), []
            await asyncio.gather(*(ex.publish(
                aio_pika.Message(m.body, headers=m.headers, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=dst_key) for m in batch))
            for m in batch:
                await m.ack()

        async def on(m: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal count
            pending.append(m)
            if len(pending) >= 128:
                await flush()
            count += 1
            if count >= n:
                done.set()

        await queue.consume(on)
        while not done.is_set():
            await asyncio.sleep(0.005)
            if pending:
                await flush()
        if pending:
            await flush()


if __name__ == "__main__":
    url, src, exch, key, n = sys.argv[1:6]
    asyncio.run(relay(url, src, exch, key, int(n)))
