"""The request state every API module shares: the process's ``ApiState`` (``STATE``) and the
caller (``PRINCIPAL``, ``principal``). Its own module so that ``hub.api.app`` (which
assembles the routes) and the route modules import it without importing each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.api.users import Principal
from hub.backbone.base import Backbone
from hub.metrics import ApiMetrics
from hub.pipeline.checks import CheckContext
from hub.pki.identity import Identity
from hub.settings import Settings


@dataclass
class ApiState:
    """Shared state of one API process."""

    settings: Settings
    engine: AsyncEngine
    backbone: Backbone
    identity: Identity
    hub: object | None = None  # hub.service.Hub when the workers run in this process
    started: float = field(default_factory=time.time)
    _ctx: CheckContext | None = None
    _ctx_version: int = -1
    _ctx_checked: float = 0.0
    metrics: ApiMetrics = field(default_factory=ApiMetrics)  # HTTP and VDXP requests, for /metrics
    readiness: object | None = None  # hub.api.health.Readiness: computed in the background
    feed: object | None = None  # hub.registry.feed.RegistryFeed (the workers' when they run here)

    async def check_context(self) -> CheckContext:
        """The registry/trust snapshot for immediate checks, brought up to date from the change log
        when its version changes (read at most every ``HUB_REGISTRY_POLL_SECONDS``: the bound on a
        change made elsewhere)."""
        from hub.context import check_context_of
        from hub.registry.feed import RegistryFeed

        now = time.monotonic()
        if self._ctx is None or now - self._ctx_checked >= self.settings.registry_poll_seconds:
            self._ctx_checked = now
            if self.feed is None:
                self.feed = RegistryFeed(keep_hours=self.settings.registry_log_hours)
            loaded = await self.feed.refresh(self.engine)
            if loaded.version != self._ctx_version or self._ctx is None:
                self._ctx = check_context_of(loaded.registry, loaded.trust, self.settings)
                self._ctx_version = loaded.version
        return self._ctx


STATE = web.AppKey("state", ApiState)
PRINCIPAL = web.RequestKey("principal", Principal)


def principal(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)
