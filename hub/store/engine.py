"""Engine factory (SQLite gets WAL, busy timeout, foreign keys), the dialect's INSERT for
upserts, and migrations (Alembic, run programmatically at start-up)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hub.store import dsn

MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(url: str, **kw) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and foreign keys; PostgreSQL its
    connection and statement timeouts and may name several hosts (``hub.store.dsn``)."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kw)

        @sa.event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kw.setdefault("pool_size", 10)
    kw.setdefault("max_overflow", 10)
    kw.setdefault("pool_pre_ping", True)
    parsed = sa.engine.make_url(dsn.split_hosts(url))
    if parsed.get_backend_name() == "postgresql":
        query, args = dsn.connect_args(parsed.query)
        parsed = parsed.set(query=query)
        kw["connect_args"] = {**args, **kw.get("connect_args", {})}
    return create_async_engine(parsed, **kw)


def dialect_insert(conn, table: sa.Table):
    """An INSERT that knows ON CONFLICT (PostgreSQL and SQLite spell it alike in SQLAlchemy)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision``. Safe to call from every worker at start."""

    def _run(sync_conn) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Serialize concurrent migrations of several workers starting together.
            await conn.execute(sa.text("SET LOCAL statement_timeout = 0"))  # a migration may take long
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7310021)"))
        await conn.run_sync(_run)
