"""deploy/rabbitmq stays in step with the topology the code declares; agency regexes are tight."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from hub.backbone import inbox_queue
from hub.backbone.management import Management
from hub.backbone.topology import hub_exchanges, hub_queues
from hub.backbone.users import agency_permissions
from hub.constants import EXCHANGE_DEAD, EXCHANGE_DELIVER, EXCHANGE_SUBMIT, QUEUE_DEAD, QUEUE_INTAKE
from tests.backbone.backbone_env import ADMIN_PASSWORD, ADMIN_USER, MANAGEMENT_URL, RabbitEnv

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "rabbitmq"


def definitions() -> dict:
    return json.loads((DEPLOY / "definitions.json").read_text())


def test_definitions_match_topology():
    d = definitions()
    assert {(e["name"], e["type"]) for e in d["exchanges"]} == {(e.name, e.type) for e in hub_exchanges()}
    assert all(e["durable"] and not e["auto_delete"] for e in d["exchanges"])
    assert {q["name"]: q["arguments"] for q in d["queues"]} == {q.name: q.arguments for q in hub_queues()}
    assert all(q["durable"] for q in d["queues"])
    assert {(b["source"], b["destination"], b["routing_key"]) for b in d["bindings"]} == {
        (ex, q.name, key) for q in hub_queues() for ex, key in q.bindings}
    assert d["policies"], "a policy example"


def test_hub_user_is_a_placeholder_with_enough_permissions():
    d = definitions()
    (user,) = d["users"]
    assert user["name"] == "hub" and "password_hash" not in user and "password" not in user
    (perm,) = [p for p in d["permissions"] if p["user"] == "hub"]
    code = "000.00.00.G22"
    for name in (EXCHANGE_SUBMIT, EXCHANGE_DELIVER, EXCHANGE_DEAD, QUEUE_INTAKE, QUEUE_DEAD, inbox_queue(code),
                 inbox_queue(code, urgent=True)):
        for kind in ("configure", "write", "read"):
            assert re.search(perm[kind], name), (kind, name)
    assert not re.search(perm["read"], "amq.rabbitmq.trace")


def test_agency_permission_regexes():
    code = "000.00.00.H41"
    p = agency_permissions(code)
    assert p.configure == "^$"
    assert re.search(p.write, EXCHANGE_SUBMIT) and not re.search(p.write, EXCHANGE_DELIVER)
    assert not re.search(p.write, "edxml.submitx")
    for own in (inbox_queue(code), inbox_queue(code, urgent=True)):
        assert re.search(p.read, own)
    for other in ("inbox.000.00.00.H410", "inbox.000x00.00.H41", "inbox.000.00.00.H41.urgentx",
                  "inbox.000.00.00.H42", QUEUE_INTAKE, QUEUE_DEAD, "xinbox.000.00.00.H41"):
        assert not re.search(p.read, other), other


@pytest.mark.rabbitmq
async def test_definitions_load_into_rabbitmq():
    """The vhost-scoped parts import, and the code's declares are equivalent to them."""
    env = RabbitEnv()
    await env.start()
    try:
        d = definitions()
        scoped = {k: d[k] for k in ("exchanges", "queues", "bindings", "policies")}
        async with Management(MANAGEMENT_URL, ADMIN_USER, ADMIN_PASSWORD) as m:
            await m.request("POST", f"/definitions/{quote(env.vhost, safe='')}", scoped)
            policies = await m.request("GET", f"/policies/{quote(env.vhost, safe='')}")
        assert [p["name"] for p in policies] == [p["name"] for p in d["policies"]]
        bb = await env.connect()
        await bb.declare_topology()  # a 406 here would mean the arguments differ
        assert await bb.depth(QUEUE_INTAKE) == 0
    finally:
        await env.close()
