"""What a package waits for on a hub with nothing else to do (issue 14: latency submit → inbox).

No test here measures time: each one sets up a wait that would be long (a linger of an hour,
an intake open while `hub serve` still builds its API) and checks that the package does not meet it."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys

import aiohttp
import pytest

from hub import constants as C
from hub.backbone.factory import connect
from tests.conftest import G22, H41, make_edoc
from tests.hubenv import drain, until


async def test_an_idle_worker_sends_a_lone_package_on_without_waiting_for_company(env):
    """``batch_wait`` lets packages join a batch only while earlier batches are still on their way
    (they could not be recorded sooner); on an idle pipeline a lone package goes on at once.
    Before, every batch waited out the linger: 5 ms per package at half load, here an hour."""
    async with env.running() as hub:
        w = hub.workers[0]
        w.batch_wait = 3600.0
        g, h41 = await env.adapter(G22), await env.adapter(H41)
        for i in range(2):
            doc = make_edoc(G22, (H41,), subject=f"Công văn {i}")
            await g.send_document(doc, [])
            [got] = await drain(h41, 1)
            assert got.document_id == doc.document_id

            async def idle(n=i + 1):  # the batch acked: nothing of it is on its way any more
                return w.stats.batches == n

            await until(idle)
        assert w.stats.delivered == 2


@pytest.mark.parametrize("depth", [1, 2])
async def test_batches_checked_while_the_record_stage_is_busy_are_recorded_in_one_transaction(env, depth):
    """The record stage's cost is mostly per transaction (its round trips), so batches that were
    checked while it recorded another are recorded together, not one transaction after another
    (at half load a package waited ~25 ms behind the batch before it, issue 14). With depth 2 the
    record stage does not wait for the deliver stage: the check stage's blocked batch must still
    get into the queue before the merge looks."""
    env.settings = env.settings.replace(pipeline_depth=depth)
    async with env.running() as hub:
        w = hub.workers[0]
        w.batch_wait = 0.0  # each check batch is what the intake holds at that moment
        recorded: list[int] = []
        checked: list[int] = []
        release = asyncio.Event()
        record_held, check = w._record_held, w._check

        async def held(batch, verdicts, **kw):
            recorded.append(len(batch))
            if len(recorded) == 1:
                await release.wait()  # the first batch's transaction takes its time
            return await record_held(batch, verdicts, **kw)

        async def counted(batch):
            out = await check(batch)
            checked.append(len(batch))
            return out

        w._record_held, w._check = held, counted
        g, h41 = await env.adapter(G22), await env.adapter(H41)
        docs = [make_edoc(G22, (H41,), subject=f"Công văn {i}") for i in range(3)]
        for i, doc in enumerate(docs):
            await g.send_document(doc, [])

            async def taken(n=i + 1):
                return sum(checked) == n

            await until(taken)
        assert checked == [1, 1, 1]  # three batches checked while the first one is being recorded
        release.set()
        got = await drain(h41, 3)
        assert sorted(d.document_id for d in got) == sorted(d.document_id for d in docs)
        assert recorded == [1, 2]  # the other two in one transaction


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listens(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.rabbitmq
@pytest.mark.postgres
async def test_hub_serve_takes_packages_only_once_its_api_listens(real_env, tmp_path):
    """`hub serve` imports and builds its API and console after its workers start (seconds on a
    busy machine, with the event loop blocked). A worker that consumed ``hub.intake`` meanwhile
    held the packages it was handed until then: the first packages after a start waited that
    long. The intake now opens once the API listens: whenever ``hub.intake`` has a consumer,
    the port answers."""
    s = real_env.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update({"HUB_DATA_DIR": str(s.data_dir), "HUB_DATABASE_URL": s.database_url, "HUB_AMQP_URL": s.amqp_url,
                "HUB_ORGAN_ID": s.hub_organ_id, "HUB_KEY_FILE": str(s.hub_key_file),
                "HUB_CERT_FILE": str(s.hub_cert_file), "HUB_CHECK_PROCESSES": "1"})
    port = _free_port()
    log_path = tmp_path / "hub.log"
    probe = await connect(s.amqp_url)
    with open(log_path, "wb") as log:
        hub = subprocess.Popen([sys.executable, "-m", "hub.cli", "serve", "--port", str(port)], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        while True:
            assert hub.poll() is None, log_path.read_text(errors="replace")[-2000:]
            assert loop.time() < deadline, "hub serve never consumed hub.intake: " + log_path.read_text()[-2000:]
            try:
                consumers = await probe.consumers(C.QUEUE_INTAKE)
            except Exception:  # noqa: BLE001 - not declared yet
                consumers = 0
            if consumers:
                break
            await asyncio.sleep(0.005)
        assert _listens(port), "hub.intake had a consumer before the API listened"
        # once it says it listens, /readyz says ready (its first check ran before the intake opened)
        while "  listening on " not in log_path.read_text(errors="replace"):
            assert hub.poll() is None and loop.time() < deadline, log_path.read_text(errors="replace")[-2000:]
            await asyncio.sleep(0.01)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            body = await resp.json()
        assert resp.status == 200 and body["checks"]["consuming"]["ok"], body
        # before opening the intake it froze what start-up built (hub.heap): full collections no
        # longer walk it, which stalled the event loop 46-84 ms a few times a run under load
        lines = log_path.read_text(errors="replace").splitlines()
        frozen = [i for i, line in enumerate(lines) if "frozen out of the garbage collector" in line]
        listening = [i for i, line in enumerate(lines) if "  listening on " in line]
        assert len(frozen) == 1 and frozen[0] < listening[0], lines
        assert int(json.loads(lines[frozen[0]])["message"].split("'s ")[1].split()[0]) > 10_000, lines[frozen[0]]
        # and it does its job: a package goes through
        g, h41 = await real_env.adapter(G22), await real_env.adapter(H41)
        doc = make_edoc(G22, (H41,))
        await g.send_document(doc, [])
        [got] = await drain(h41, 1, timeout=60)
        assert got.document_id == doc.document_id
    finally:
        await probe.close()
        hub.terminate()
        try:
            hub.wait(60)
        except subprocess.TimeoutExpired:
            hub.kill()
            hub.wait()
