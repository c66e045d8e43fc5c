"""Backbone fixtures: ``env`` runs a test on the embedded broker and on real RabbitMQ.

The rabbitmq variants get a fresh vhost each (see ``backbone_env``) and fail, never skip,
when RabbitMQ or its management API is down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hub.backbone import Backbone
from tests.backbone.backbone_env import EmbeddedEnv, Env, RabbitEnv


@pytest.fixture(params=["embedded", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
async def env(request) -> AsyncIterator[Env]:
    e: Env
    if request.param == "embedded":
        e = EmbeddedEnv()
    else:
        e = RabbitEnv()
        await e.start()
    try:
        yield e
    finally:
        await e.close()


@pytest.fixture
async def bb(env: Env) -> Backbone:
    """An admin connection with the hub topology declared."""
    b = await env.connect()
    await b.declare_topology()
    return b
