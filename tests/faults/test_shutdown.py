"""Holes 5 and 6 of issue 8: a killed hub leaves no check process behind; SIGTERM with the broker
not answering still ends the hub, saying what it waited for."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest

from hub.backbone.base import inbox_queue
from hub.backbone.factory import connect
from hub.errors import HubError

from tests.conftest import G22, H41, make_edoc
from tests.faults.hubproc import HubProcess, alive
from tests.faults.proxy import Proxy
from tests.hubenv import drain

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def hub_env(env, amqp_url: str | None = None) -> dict[str, str]:
    s = env.settings
    return {"HUB_DATA_DIR": str(s.data_dir), "HUB_DATABASE_URL": s.database_url,
            "HUB_AMQP_URL": amqp_url or s.amqp_url, "HUB_ORGAN_ID": s.hub_organ_id,
            "HUB_KEY_FILE": str(s.hub_key_file), "HUB_CERT_FILE": str(s.hub_cert_file)}


async def _until_delivered(env, hub: HubProcess) -> None:
    """One package through the hub (so that its check process exists)."""
    admin = await connect(env.settings.amqp_url)
    try:
        for _ in range(300):  # the hub declares the inboxes when it has started
            try:
                await admin.depth(inbox_queue(G22, True))
                await admin.depth(inbox_queue(H41, True))
                break
            except HubError:
                assert hub.proc.poll() is None, hub.log()[-3000:]
                await asyncio.sleep(0.2)
    finally:
        await admin.close()
    g, h41 = await env.adapter(G22), await env.adapter(H41)
    await g.send_document(make_edoc(G22, (H41,)), [])
    await drain(h41, 1, timeout=60)


async def test_kill_9_leaves_no_check_process(real_env, tmp_path):
    hub = HubProcess(hub_env(real_env), tmp_path / "hub.log")
    try:
        hub.start()
        await _until_delivered(real_env, hub)
        kids = await asyncio.to_thread(hub.wait_children, 1)
        hub.kill9()
        orphans = await asyncio.to_thread(hub.orphans, 15.0)
        assert orphans == [], f"check process(es) {orphans} outlived the killed hub (its children were {kids})"
        assert not any(alive(k) for k in kids)
    finally:
        hub.cleanup()


async def test_sigterm_with_the_broker_not_answering_still_stops(real_env, tmp_path):
    proxy = await Proxy(5672).start()
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/{quote(real_env.vhost, safe='')}"
    hub = HubProcess(hub_env(real_env, url), tmp_path / "hub.log")
    try:
        hub.start()
        await _until_delivered(real_env, hub)
        proxy.freeze()  # the broker (as the hub sees it) stops answering, the TCP connection stays up
        await asyncio.sleep(0.5)
        code = await asyncio.to_thread(hub.terminate, 75)
        log = hub.log()
        assert code is not None, f"the hub did not exit within 75 s of SIGTERM: {log[-3000:]}"
        assert "waiting up to" in log, log[-3000:]  # it said what it waited for
        assert await asyncio.to_thread(hub.orphans, 15.0) == []
    finally:
        hub.cleanup()
        await proxy.close()
