"""HUB_DATABASE_URL with several hosts (libpq style) and the connection/statement timeouts."""

from __future__ import annotations

import socket

import pytest
import sqlalchemy as sa

from hub.errors import UsageError
from hub.settings import Settings
from hub.store import dsn
from hub.store.engine import make_engine, migrate


def test_split_hosts_rewrites_the_libpq_form():
    url = "postgresql+asyncpg://hub:s%40cret@db1:5433,db2,[::1]:5434/hub?target_session_attrs=read-write"
    assert dsn.split_hosts(url) == ("postgresql+asyncpg://hub:s%40cret@/hub?host=db1:5433&host=db2:5432"
                                    "&host=[::1]:5434&target_session_attrs=read-write")
    one = "postgresql+asyncpg://hub@db1:5432/hub?target_session_attrs=read-write"
    assert dsn.split_hosts(one) == one
    with pytest.raises(UsageError, match="host:port"):
        dsn.split_hosts("postgresql+asyncpg://hub@db1:x,db2:5432/hub")


def test_timeouts_come_from_the_url_or_the_defaults():
    q, args = dsn.connect_args({"connect_timeout": "3", "statement_timeout": "1500", "host": ("a:1", "b:2")})
    assert q == {"host": ("a:1", "b:2")}
    assert args == {"timeout": 3.0, "server_settings": {"statement_timeout": "1500"}}
    assert dsn.connect_args({})[1] == {"timeout": dsn.CONNECT_TIMEOUT,
                                       "server_settings": {"statement_timeout": str(dsn.STATEMENT_TIMEOUT_MS)}}
    with pytest.raises(UsageError, match="must be numbers"):
        dsn.connect_args({"connect_timeout": "soon"})
    q, args = dsn.connect_args({"application_name": "hub-b", "target_session_attrs": "read-write"})
    assert q == {"target_session_attrs": "read-write"}
    assert args["server_settings"]["application_name"] == "hub-b"  # pg_stat_activity names the instance


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: a connection is refused
    return port


@pytest.mark.postgres
async def test_first_host_down_the_second_answers_with_the_timeouts_set(pg_url_empty):
    name = pg_url_empty.rsplit("/", 1)[1]
    url = (f"postgresql://postgres@127.0.0.1:{_closed_port()},127.0.0.1:5432/{name}"
           "?target_session_attrs=read-write&connect_timeout=5&statement_timeout=2500&application_name=hub-a")
    engine = make_engine(Settings.from_env({"HUB_DATABASE_URL": url, "HUB_DATA_DIR": "/nonexistent"}).database_url)
    try:
        await migrate(engine)  # migrations run without the statement timeout
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT current_database()"))).scalar() == name
            assert (await conn.execute(sa.text("SHOW statement_timeout"))).scalar() == "2500ms"
            assert (await conn.execute(sa.text("SHOW application_name"))).scalar() == "hub-a"
            assert not (await conn.execute(sa.text("SELECT pg_is_in_recovery()"))).scalar()  # the writable one
            with pytest.raises(sa.exc.DBAPIError, match="statement timeout"):
                await conn.execute(sa.text("SELECT pg_sleep(5)"))
    finally:
        await engine.dispose()
