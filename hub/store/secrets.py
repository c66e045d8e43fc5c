"""Random keys the hub instances share through the database (``hub_secrets``).

The first instance that needs a key makes it (an INSERT that loses a race to another instance
changes nothing) and every instance reads the same bytes back. Only keys whose disclosure
alone gives nothing away belong here (the console's CSRF key: a token also needs the session
id, which the database holds only hashed); a key that protects secrets stored in this same
database does not (the VDXP key stays in a file: ``hub.vdxp.keys``).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.engine import dialect_insert
from hub.store.tables import hub_secrets


async def shared_secret(engine: AsyncEngine, name: str, nbytes: int = 32) -> bytes:
    """The shared key ``name``, made (``nbytes`` random bytes) if no instance has made it yet."""
    async with engine.begin() as conn:
        value = (await conn.execute(sa.select(hub_secrets.c.value).where(hub_secrets.c.name == name))).scalar()
        if value is not None:
            return bytes(value)
        await conn.execute(dialect_insert(conn, hub_secrets).values(
            name=name, value=secrets.token_bytes(nbytes), created_at=datetime.now(timezone.utc))
            .on_conflict_do_nothing())
    async with engine.connect() as conn:  # ours, or the one another instance committed first
        value = (await conn.execute(sa.select(hub_secrets.c.value).where(hub_secrets.c.name == name))).scalar_one()
    return bytes(value)
