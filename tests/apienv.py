"""API fixtures: the hub and its HTTP API on a free port, users of every role."""

from __future__ import annotations

import socket
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp

from hub.api.users import add_user, revoke_user
from hub.service import running_api
from hub.store.engine import make_engine
from tests.conftest import G22, H41, H44


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Api:
    base: str
    tokens: dict[str, str] = field(default_factory=dict)  # who -> token
    session: aiohttp.ClientSession | None = None

    def headers(self, who: str | None) -> dict:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}

    async def call(self, method: str, path: str, who: str | None = None, **kw) -> tuple[int, object]:
        async with self.session.request(method, self.base + path, headers={**self.headers(who), **kw.pop("headers", {})},
                                        **kw) as r:
            ctype = r.headers.get("Content-Type", "")
            body = await r.json() if "json" in ctype else await r.text()
            return r.status, body


@asynccontextmanager
async def api_for(env):
    """Start the API beside ``env``'s running hub; users: agency G22/H41/H44, admin, auditor, revoked."""
    engine = make_engine(env.settings.database_url)
    tokens = {}
    try:
        for who, role, agency in (("g22", "agency", G22), ("h41", "agency", H41), ("h44", "agency", H44),
                                  ("admin", "admin", None), ("auditor", "auditor", None),
                                  ("revoked", "agency", G22)):
            tokens[who] = await add_user(engine, who, role, agency, actor="test")
        await revoke_user(engine, tokens["revoked"].split("_")[1], actor="test")  # by id, as `hub user list` shows it
    finally:
        await engine.dispose()
    port = free_port()
    async with running_api(env.hub, "127.0.0.1", port) as (app, _runner):
        async with aiohttp.ClientSession() as session:
            yield Api(f"http://127.0.0.1:{port}", tokens, session)
