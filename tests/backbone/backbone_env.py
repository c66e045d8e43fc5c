"""Isolated brokers for the backbone tests: the embedded one, or a scratch vhost on RabbitMQ.

Each RabbitMQ test gets its own vhost (created and deleted through the management API),
so tests are independent, may share queue names such as ``hub.intake``, and leave the
broker as they found it. Agency users created by a test are deleted at teardown. When
RabbitMQ or its management API is down the rabbitmq variants fail: they never skip.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from yarl import URL

from hub.backbone import Backbone, EmbeddedBroker, connect
from hub.backbone.management import Management
from hub.backbone.topology import DEFAULT_DELIVERY_LIMIT
from hub.backbone.users import delete_user, provision_agency_user, provision_embedded_agency_user

AMQP_URL = os.environ.get("HUB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
MANAGEMENT_URL = os.environ.get("HUB_TEST_RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672")
ADMIN_USER = URL(AMQP_URL).user or "guest"
ADMIN_PASSWORD = URL(AMQP_URL).password or "guest"


def agency_code() -> str:
    """A random OrganId-like code (unique enough within one broker or vhost)."""
    return f"000.00.{secrets.randbelow(100):02d}.Z{secrets.randbelow(100):02d}-{secrets.token_hex(3)}"


async def eventually(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until true (dead-lettering and requeues are asynchronous in RabbitMQ)."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)


class Env(ABC):
    """Connections to one isolated broker; ``kind`` is "embedded" or "rabbitmq"."""

    kind: str

    def __init__(self) -> None:
        self._open: list[Backbone] = []

    async def connect(self, *, delivery_limit: int = DEFAULT_DELIVERY_LIMIT) -> Backbone:
        """A connection as the broker's admin user (``hub`` / the test URL's user)."""
        bb = await self._connect(None, None, delivery_limit)
        self._open.append(bb)
        return bb

    async def agency(self, code: str) -> Backbone:
        """Provision a user for agency ``code`` and connect as it."""
        user, password = f"agency-{code}", secrets.token_urlsafe(12)
        await self._provision(user, password, code)
        bb = await self._connect(user, password, DEFAULT_DELIVERY_LIMIT)
        self._open.append(bb)
        return bb

    async def close(self) -> None:
        for bb in self._open:
            await bb.close()

    @abstractmethod
    async def _connect(self, user: str | None, password: str | None, delivery_limit: int) -> Backbone:
        """Open a connection on this broker (each broker kind implements it)."""

    @abstractmethod
    async def _provision(self, user: str, password: str, code: str) -> None:
        """Create the broker user of agency ``code`` with its permissions."""


class EmbeddedEnv(Env):
    kind = "embedded"

    def __init__(self) -> None:
        super().__init__()
        self.broker = EmbeddedBroker()

    async def _connect(self, user: str | None, password: str | None, delivery_limit: int) -> Backbone:
        return await connect(None, user=user, broker=self.broker, delivery_limit=delivery_limit)

    async def _provision(self, user: str, password: str, code: str) -> None:
        provision_embedded_agency_user(self.broker, user, code)


class RabbitEnv(Env):
    kind = "rabbitmq"

    def __init__(self) -> None:
        super().__init__()
        self.vhost = f"hub-test-{secrets.token_hex(5)}"
        self.users: list[str] = []

    def url(self, user: str | None = None, password: str | None = None) -> str:
        base = URL(AMQP_URL)
        if user is not None:
            base = base.with_user(user).with_password(password)
        return str(base.with_path("/" + quote(self.vhost, safe=""), encoded=True))

    async def start(self) -> None:
        async with Management(MANAGEMENT_URL, ADMIN_USER, ADMIN_PASSWORD) as m:
            await m.put_vhost(self.vhost)
            await m.set_permissions(self.vhost, ADMIN_USER, configure=".*", write=".*", read=".*")

    async def _connect(self, user: str | None, password: str | None, delivery_limit: int) -> Backbone:
        return await connect(self.url(user, password), delivery_limit=delivery_limit)

    async def _provision(self, user: str, password: str, code: str) -> None:
        self.users.append(user)
        await provision_agency_user(MANAGEMENT_URL, ADMIN_USER, ADMIN_PASSWORD, user, password, code,
                                    vhost=self.vhost)

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            for user in self.users:
                await delete_user(MANAGEMENT_URL, ADMIN_USER, ADMIN_PASSWORD, user)
            async with Management(MANAGEMENT_URL, ADMIN_USER, ADMIN_PASSWORD) as m:
                await m.delete_vhost(self.vhost)
