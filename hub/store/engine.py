"""Engine factory (SQLite gets WAL, busy timeout, foreign keys), the dialect's INSERT for
upserts, and migrations (Alembic, run programmatically at start-up).

Alembic (with Mako and Pygments behind it: ~8 MB of a process's memory, measured on `hub serve`)
is imported only when the database is not at the scripts' head: a start on a current schema
reads the head from the scripts' ``revision``/``down_revision`` lines and compares."""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hub.store import dsn

if TYPE_CHECKING:
    from alembic.config import Config

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


def one_of(conn, column, values) -> sa.ColumnElement[bool]:
    """``column IN values`` whose SQL text does not depend on how many values there are: on
    PostgreSQL ``column = ANY($1)`` with one array parameter, so the hot path's statements are
    prepared once per connection rather than once per batch size (an expanding IN writes one
    placeholder per value: each new count is a new statement for asyncpg to prepare and the
    server to plan); elsewhere the plain IN."""
    values = list(values)
    if conn.dialect.name != "postgresql":
        return column.in_(values)
    return column == sa.any_(sa.bindparam(None, values, type_=_array_of(column.type), unique=True))


def unnest_insert(table: sa.Table, prefix: str, conflict: str = "") -> str:
    """PostgreSQL SQL text: ``INSERT INTO table (...) SELECT ... FROM unnest(...)`` (then
    ``conflict``, e.g. an ON CONFLICT clause), for a data-modifying CTE that writes many rows in
    the statement of other writes. Each column's values travel as one array parameter named
    ``prefix + column`` (:func:`unnest_params`): strings as text (the column's own length still
    applies on assignment), JSON as its text, cast back."""
    from sqlalchemy.dialects import postgresql

    names, arrays, values = [], [], []
    for c in table.c:
        impl = getattr(c.type, "impl_instance", c.type)
        sql_type = "TEXT" if isinstance(impl, (sa.String, sa.JSON)) else c.type.compile(dialect=postgresql.dialect())
        names.append(c.name)
        arrays.append(f"CAST(:{prefix}{c.name} AS {sql_type}[])")
        values.append(f"CAST({c.name} AS JSON)" if isinstance(impl, sa.JSON) else c.name)
    cols = ", ".join(names)
    return (f"INSERT INTO {table.name} ({cols}) SELECT {', '.join(values)} FROM unnest({', '.join(arrays)}) "
            f"AS t({cols}){' ' + conflict if conflict else ''}")


def unnest_params(table: sa.Table, prefix: str, rows) -> dict[str, list]:
    """The array parameters of :func:`unnest_insert` for ``rows`` (mappings; a missing key is NULL)."""
    return {prefix + c.name: [r.get(c.name) for r in rows] for c in table.c}


def _array_of(type_):
    """The array type of a parameter compared with a column of ``type_``: strings without their
    length (a cast to varchar(n) would cut a longer value, which could then match its prefix)."""
    from sqlalchemy.dialects.postgresql import ARRAY

    return ARRAY(sa.String()) if isinstance(type_, sa.String) else ARRAY(type_)


def rows_of(conn, columns, rows) -> sa.ColumnElement[bool]:
    """``(a, b, ...) IN rows`` (tuples) with the same property: on PostgreSQL the tuples come
    from ``unnest`` of one array parameter per column."""
    rows = list(rows)
    if conn.dialect.name != "postgresql":
        return sa.tuple_(*columns).in_(rows)
    arrays = [sa.bindparam(None, [r[i] for r in rows], type_=_array_of(c.type), unique=True)
              for i, c in enumerate(columns)]
    names = [f"v{i}" for i in range(len(columns))]
    values = sa.func.unnest(*arrays).table_valued(*names).render_derived()
    return sa.tuple_(*columns).in_(sa.select(*(values.c[n] for n in names)))


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision``. Safe to call from every worker at start."""

    def _run(sync_conn) -> None:
        from alembic import command

        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Serialize concurrent migrations of several workers starting together.
            await conn.execute(sa.text("SET LOCAL statement_timeout = 0"))  # a migration may take long
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7310021)"))
        if revision == "head" and await _current(conn) == head_revisions():
            return
        await conn.run_sync(_run)


@lru_cache(maxsize=1)
def head_revisions() -> frozenset[str]:
    """The head revision(s) of the migration scripts: every ``revision`` no script names as its
    ``down_revision`` (read from the files' top-level assignments, without Alembic)."""
    revisions: set[str] = set()
    downs: set[str] = set()
    for f in (MIGRATIONS / "versions").glob("*.py"):
        for node in ast.parse(f.read_text(encoding="utf-8")).body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
                continue
            name, value = node.targets[0].id, ast.literal_eval(node.value) if node.targets[0].id in (
                "revision", "down_revision") else None
            if name == "revision":
                revisions.add(value)
            elif name == "down_revision" and value:
                downs.update((value,) if isinstance(value, str) else value)
    return frozenset(revisions - downs)


async def _current(conn) -> frozenset[str]:
    """The revision(s) the database is at (none for a new database)."""
    if not await conn.run_sync(lambda c: sa.inspect(c).has_table("alembic_version")):
        return frozenset()
    return frozenset(r[0] for r in await conn.execute(sa.text("SELECT version_num FROM alembic_version")))
