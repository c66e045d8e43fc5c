"""VDXP fixtures: the hub with its API, VDXP systems for G22 (A) and H41 (B), and our client."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from hub.edxml.builder import build_edoc, build_status
from hub.edxml.signature import sign_package
from hub.service import running_api
from hub.store.engine import make_engine
from hub.vdxp.keys import SecretBox
from hub.vdxp.systems import add_system
from tests.apienv import free_port
from tests.conftest import G22, H41, attachment, make_edoc, make_status
from tests.vdxp.client import VdxpClient

A, B = "vxp.saas.a", "vxp.saas.b"  # system ids: A acts for G22, B for H41


@dataclass
class Vdxp:
    env: object
    endpoint: str
    session: aiohttp.ClientSession
    secrets: dict[str, str]

    def client(self, system: str, secret: str | None = None, **kw) -> VdxpClient:
        return VdxpClient(self.session, self.endpoint, system, secret or self.secrets[system], **kw)

    async def add(self, system: str, agency: str, secret: str | None = None) -> str:
        engine = make_engine(self.env.settings.database_url)
        try:
            self.secrets[system] = await add_system(engine, SecretBox.load(self.env.settings.vdxp_key, create=True),
                                                    system, agency, secret, actor="test")
        finally:
            await engine.dispose()
        return self.secrets[system]

    def edoc(self, sender: str = G22, to=(H41,), **kw) -> tuple[object, bytes]:
        doc = make_edoc(sender, to, **kw)
        ident = self.env.pki.ids[sender]
        return doc, sign_package(build_edoc(doc, [attachment()]), ident.key, ident.cert)

    def status(self, sender: str, rf_sender: str, rf_docid: str, code: str, description: str = "") -> bytes:
        ident = self.env.pki.ids[sender]
        return sign_package(build_status(make_status(sender, rf_sender, rf_docid, code, description)),
                            ident.key, ident.cert)


@asynccontextmanager
async def vdxp_for(env):
    """The running hub's API on a free port, systems A (G22) and B (H41) registered."""
    port = free_port()
    async with running_api(env.hub, "127.0.0.1", port):
        async with aiohttp.ClientSession() as session:
            v = Vdxp(env, f"http://127.0.0.1:{port}/vdxp", session, {})
            await v.add(A, G22)
            await v.add(B, H41)
            yield v


async def listed(client: VdxpClient, n: int, messagetype: str = "edoc", timeout: float = 20.0) -> list[dict]:
    """Poll getReceivedEdocList until it lists ``n`` items (fails if they do not come in time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        answer = await client.received(messagetype)
        assert answer["status"] == "OK", answer
        if len(answer["data"]) >= n:
            return answer["data"]
        assert loop.time() < deadline, f"{len(answer['data'])} of {n} {messagetype} listed for {client.system_id}"
        await asyncio.sleep(0.1)
