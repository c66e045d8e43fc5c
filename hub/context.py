"""Factories shared by the CLI, the workers and the API: engine, snapshots, check context."""

from __future__ import annotations

from contextlib import asynccontextmanager
from functools import lru_cache

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.edxml.schema import SchemaValidator
from hub.pipeline.checks import CheckContext
from hub.pki.chain import TrustStore
from hub.registry.model import Registry
from hub.registry.store import load_registry, load_trust
from hub.settings import Settings
from hub.store.engine import make_engine, migrate


@lru_cache(maxsize=1)
def schema_validator() -> SchemaValidator:
    """Compiled once per process."""
    return SchemaValidator()


@asynccontextmanager
async def open_engine(settings: Settings):
    """An engine with the schema migrated; disposed on exit."""
    engine = make_engine(settings.database_url)
    try:
        await migrate(engine)
        yield engine
    finally:
        await engine.dispose()


async def load_check_context(engine: AsyncEngine, settings: Settings) -> CheckContext:
    return check_context_of(await load_registry(engine), await load_trust(engine), settings)


def check_context_of(registry: Registry, trust: TrustStore, settings: Settings) -> CheckContext:
    return CheckContext(
        registry=registry, trust=trust, validator=schema_validator(),
        max_bytes=settings.max_package_bytes, allow_sha1=settings.allow_sha1,
    )
