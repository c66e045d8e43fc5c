"""A package over RabbitMQ's message limit goes through the hub's HTTP gateway (streamed) when
the adapter knows the API (``adapters.sdk.http_submit``; ``hub send`` with HUB_API_URL and
HUB_API_TOKEN), and is refused with the way out when it does not. The limit is lowered here so
the packages stay small; the gateway then passes them on by reference (HUB_BY_REFERENCE_BYTES
lowered too)."""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import quote

import pytest

import adapters.sdk
from adapters.sdk import http_submit
from hub.cli import main
from hub.edxml.builder import build_edoc
from hub.edxml.signature import sign_package
from hub.errors import HubError, UsageError
from tests.apienv import api_for
from tests.conftest import G22, H41, attachment, make_edoc

LIMIT = 4096  # stands for the broker's 128 MB


async def received_by_h41(api, doc_id: str, timeout: float = 30.0) -> bytes:
    """The package as H41 can read it back (the document API's link, streamed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status, body = await api.call("GET", f"/api/v1/documents/{quote(doc_id, safe='')}", "h41")
        if status == 200:
            break
        assert loop.time() < deadline, (status, body)
        await asyncio.sleep(0.2)
    assert body["package"] == "" and body["blob"], body  # stored by reference
    async with api.session.get(api.base + body["blob"]["href"], headers=api.headers("h41")) as r:
        assert r.status == 200
        return await r.read()


async def test_the_adapter_hands_a_package_over_the_limit_to_the_gateway(env):
    env.settings = env.settings.replace(by_reference_bytes=2048)
    async with env.running(), api_for(env) as api:
        g = await env.adapter(G22)
        g.max_message = LIMIT
        doc = make_edoc(G22, (H41,))
        data = g.sign(build_edoc(doc, [attachment(6000)]))
        assert len(data) > LIMIT
        with pytest.raises(UsageError, match="HUB_API_URL"):  # no way past the limit: refused, nothing sent
            await g.publish(data)
        g.submit = http_submit(api.base, api.tokens["g22"])
        answer = await g.publish(data)
        assert answer["status"] in ("recorded", "queued") and answer["sha256"] == hashlib.sha256(data).hexdigest()
        assert await received_by_h41(api, doc.document_id) == data
        # a refusal comes back as the hub's reason
        other = make_edoc(G22, (H41,))
        tampered = g.sign(build_edoc(other, [attachment(6000)])).replace(other.subject.encode(), b"sua doi", 1)
        with pytest.raises(HubError) as refused:
            await g.publish(tampered)
        assert refused.value.code.startswith("signature."), refused.value.code


@pytest.mark.rabbitmq
@pytest.mark.postgres
async def test_hub_send_goes_through_the_gateway_when_the_api_is_set(real_env, tmp_path, monkeypatch, capsys):
    env = real_env
    env.settings = env.settings.replace(by_reference_bytes=2048)
    monkeypatch.setattr(adapters.sdk, "BROKER_MAX_MESSAGE", LIMIT)
    async with env.running(), api_for(env) as api:
        user = env.user_of(G22)
        doc = make_edoc(G22, (H41,))
        ident = env.pki.ids[G22]
        data = sign_package(build_edoc(doc, [attachment(6000)]), ident.key, ident.cert)
        package = tmp_path / "big.edxml"
        package.write_bytes(data)
        for k in ("HUB_DATABASE_URL", "HUB_AMQP_URL", "HUB_API_URL", "HUB_API_TOKEN"):
            monkeypatch.delenv(k, raising=False)
        monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "cli"))
        monkeypatch.setenv("HUB_ADAPTER_AMQP_URL", env.amqp_url(user, env.passwords[user]))
        # without the API: refused, saying what to set (exit 2)
        assert await asyncio.to_thread(main, ["send", str(package)]) == 2
        assert "HUB_API_URL" in capsys.readouterr().err
        monkeypatch.setenv("HUB_API_URL", api.base)
        monkeypatch.setenv("HUB_API_TOKEN", api.tokens["g22"])
        assert await asyncio.to_thread(main, ["send", str(package)]) == 0
        out = capsys.readouterr().out
        assert "through the HTTP gateway" in out and ("recorded" in out or "queued" in out), out
        assert await received_by_h41(api, doc.document_id) == data
