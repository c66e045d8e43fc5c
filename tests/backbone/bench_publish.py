"""Measure ``publish_many`` throughput (not a test: prints msg/s, asserts nothing).

    .venv/bin/python tests/backbone/bench_publish.py [--count 20000] [--size 10240] [--batch 1000]
        [--url amqp://guest:guest@127.0.0.1:5672/] [--management http://127.0.0.1:15672]
        [--only embedded|rabbitmq] [--concurrency 1]

RabbitMQ runs in a scratch vhost (created and deleted through the management API) with the
hub topology; messages go to ``edxml.submit`` -> ``hub.intake`` (a quorum queue).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from urllib.parse import quote

from hub.backbone import EmbeddedBroker, Outgoing, connect
from hub.backbone.base import Backbone
from hub.backbone.management import Management
from hub.constants import EXCHANGE_SUBMIT, QUEUE_INTAKE


async def run(bb: Backbone, count: int, size: int, batch: int, concurrency: int) -> float:
    body = b"x" * size
    await bb.declare_topology()
    await bb.purge(QUEUE_INTAKE)
    per_task = count // concurrency

    async def worker(w: int) -> None:
        for start in range(0, per_task, batch):
            n = min(batch, per_task - start)
            await bb.publish_many([Outgoing(EXCHANGE_SUBMIT, "", body, headers={"n": start + k, "w": w})
                                   for k in range(n)])

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - t0
    depth = await bb.depth(QUEUE_INTAKE)
    assert depth == per_task * concurrency, (depth, per_task * concurrency)
    return per_task * concurrency / elapsed


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--size", type=int, default=10240)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    ap.add_argument("--management", default="http://127.0.0.1:15672")
    ap.add_argument("--only", choices=["embedded", "rabbitmq"])
    a = ap.parse_args()
    label = f"{a.count} x {a.size} B, batches of {a.batch}, {a.concurrency} concurrent"
    if a.only != "rabbitmq":
        bb = await connect(None, broker=EmbeddedBroker())
        rate = await run(bb, a.count, a.size, a.batch, a.concurrency)
        await bb.close()
        print(f"embedded: {rate:,.0f} msg/s ({label})")
    if a.only != "embedded":
        vhost = f"bench-{uuid.uuid4().hex[:8]}"
        async with Management(a.management, "guest", "guest") as m:
            await m.put_vhost(vhost)
            await m.set_permissions(vhost, "guest", configure=".*", write=".*", read=".*")
            try:
                bb = await connect(a.url.rstrip("/") + "/" + quote(vhost, safe=""))
                try:
                    rate = await run(bb, a.count, a.size, a.batch, a.concurrency)
                finally:
                    await bb.close()
                print(f"rabbitmq: {rate:,.0f} msg/s ({label})")
            finally:
                await m.delete_vhost(vhost)


if __name__ == "__main__":
    asyncio.run(main())
