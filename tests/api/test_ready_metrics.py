"""/metrics counts what committed and every HTTP answer; /readyz means consuming and never waits
on a dependency (issue 8, items 13 and 14)."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import sqlalchemy as sa

from hub.api.app import ApiState, create_app, start_site
from hub.edxml.builder import build_edoc
from hub.store.engine import make_engine
from tests.apienv import api_for, free_port
from tests.conftest import G22, H41, make_edoc
from tests.hubenv import drain, until
from tests.pipeline.test_deadletters import _allow_connections


def _metric(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{re.escape(name)}{{{re.escape(want)}}} (\S+)$", text, re.M) if labels else \
        re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


OUTBOX_FAILS = {
    "postgresql": ["CREATE FUNCTION test_outbox_fails() RETURNS trigger AS $$ BEGIN "
                   "RAISE EXCEPTION 'test: the outbox refuses rows'; END $$ LANGUAGE plpgsql",
                   "CREATE TRIGGER test_outbox_fails BEFORE INSERT ON outbox FOR EACH ROW "
                   "EXECUTE FUNCTION test_outbox_fails()"],
    "sqlite": ["CREATE TRIGGER test_outbox_fails BEFORE INSERT ON outbox BEGIN "
               "SELECT RAISE(ABORT, 'test: the outbox refuses rows'); END"],
}
OUTBOX_WORKS = {"postgresql": ["DROP TRIGGER test_outbox_fails ON outbox"], "sqlite": ["DROP TRIGGER test_outbox_fails"]}


async def _ddl(url: str, statements: dict) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            for stmt in statements[conn.dialect.name]:
                await conn.execute(sa.text(stmt))
    finally:
        await engine.dispose()


async def test_packages_are_counted_when_their_batch_commits(env):
    """Batches whose transaction fails (and is retried) count nothing; the one that commits counts once."""
    async with env.running() as hub, api_for(env) as api:
        g, h41 = await env.adapter(G22), await env.adapter(H41)
        await _ddl(env.settings.database_url, OUTBOX_FAILS)
        try:
            await g.send_document(make_edoc(G22, (H41,)), [])
            await g.publish(g.sign(build_edoc(make_edoc(G22, ("000.00.00.H99",)), [])))  # refused
            await until(lambda: asyncio.sleep(0, sum(w.stats.retries for w in hub.workers) >= 2))
            _, text = await api.call("GET", "/metrics")
            assert _metric(text, "hub_packages_total", outcome="accepted") == 0, text
            assert _metric(text, "hub_packages_total", outcome="refused") == 0
            assert _metric(text, "hub_refusals_total", reason="authority.recipient_unknown") == 0
        finally:
            await _ddl(env.settings.database_url, OUTBOX_WORKS)
        await drain(h41, 1)
        await drain(g, 1)
        _, text = await api.call("GET", "/metrics")
        assert _metric(text, "hub_packages_total", outcome="accepted") == 1.0, text
        assert _metric(text, "hub_packages_total", outcome="refused") == 1.0
        assert _metric(text, "hub_refusals_total", reason="authority.recipient_unknown") == 1.0


async def test_http_requests_are_counted_by_method_route_and_status(env):
    async with env.running(), api_for(env) as api:
        for _ in range(2):
            assert (await api.call("GET", "/healthz"))[0] == 200
        assert (await api.call("GET", "/api/v1/inbox"))[0] == 401
        assert (await api.call("GET", "/api/v1/inbox", "g22"))[0] == 200
        assert (await api.call("GET", "/api/v1/admin/users", "g22"))[0] == 403
        assert (await api.call("GET", "/api/v1/no/such/thing/12345", "admin"))[0] == 404
        assert (await api.call("DELETE", "/healthz"))[0] == 405
        _, text = await api.call("GET", "/metrics")
        c = "hub_http_requests_total"
        assert _metric(text, c, method="GET", route="/healthz", status="200") == 2.0, text
        assert _metric(text, c, method="GET", route="/api/v1/inbox", status="401") == 1.0
        assert _metric(text, c, method="GET", route="/api/v1/inbox", status="200") == 1.0
        assert _metric(text, c, method="GET", route="/api/v1/admin/users", status="403") == 1.0
        assert _metric(text, c, method="GET", route="unmatched", status="404") == 1.0  # no label per made-up path
        assert _metric(text, c, method="DELETE", route="unmatched", status="405") == 1.0
        assert "12345" not in text


async def test_readyz_means_consuming(env):
    async with env.running(), api_for(env) as api:
        status, body = await until(lambda: _ready(api, 200))
        assert body["checks"]["consuming"]["ok"] is True and body["checks"]["consuming"]["intake_consumers"] >= 1
        status, _ = await api.call("POST", "/api/v1/admin/maintenance", "admin", json={"action": "stop"})
        assert status == 200
        status, body = await until(lambda: _ready(api, 503))  # the workers paused: not ready
        assert body["checks"]["consuming"]["ok"] is False and body["checks"]["database"]["ok"] is True
        assert "hub.intake" in body["checks"]["consuming"]["error"]
        await api.call("POST", "/api/v1/admin/maintenance", "admin", json={"action": "resume"})
        await until(lambda: _ready(api, 200))


async def _ready(api, want: int):
    status, body = await api.call("GET", "/readyz")
    return (status, body) if status == want else None


async def test_readyz_never_waits_on_a_dependency(env):
    """A database that accepts connections and never answers: /readyz answers every request from
    what the background check last found (503), and requests cause no probes of their own."""
    connections = []

    async def black_hole(reader, writer):
        connections.append(writer)
        await reader.read()  # never answer

    server = await asyncio.start_server(black_hole, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    dead_db = make_engine(f"postgresql+asyncpg://hub@127.0.0.1:{port}/hub")
    try:
        async with env.running() as hub:
            state = ApiState(env.settings, dead_db, hub.backbone, hub.identity, hub=hub)
            api_port = free_port()
            runner = await start_site(create_app(state), "127.0.0.1", api_port)
            try:
                async with aiohttp.ClientSession() as s:
                    async def one():
                        async with s.get(f"http://127.0.0.1:{api_port}/readyz") as r:
                            return r.status, await r.json()

                    answers = await asyncio.gather(*(one() for _ in range(20)))
                assert all(st == 503 and body["status"] != "ready" for st, body in answers), answers
                assert len(connections) <= 2, len(connections)  # not one probe per request
            finally:
                await runner.cleanup()
    finally:
        for w in connections:
            w.close()
        server.close()
        await dead_db.dispose()


async def test_readyz_follows_a_database_outage(real_env):
    env = real_env
    async with env.running(), api_for(env) as api:
        await until(lambda: _ready(api, 200))
        await _allow_connections(env.settings.database_url, False)
        try:
            status, body = await until(lambda: _ready(api, 503))
            assert body["checks"]["database"]["ok"] is False
        finally:
            await _allow_connections(env.settings.database_url, True)
        await until(lambda: _ready(api, 200))
