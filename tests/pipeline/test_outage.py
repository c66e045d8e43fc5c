"""Outage or the message's own fault: what the worker waits out and what it refuses."""

from __future__ import annotations

import asyncio

from sqlalchemy import exc as sa_exc

from hub.errors import SchemaError, TransientError
from hub.pipeline.outage import backoff, is_transient


class _Driver(Exception):
    def __init__(self, sqlstate: str):
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def _dbapi(cls, sqlstate: str, invalidated: bool = False):
    return cls("INSERT ...", {}, _Driver(sqlstate), connection_invalidated=invalidated)


def test_outages():
    for e in (ConnectionRefusedError(111, "refused"), OSError("no route"), TimeoutError(), asyncio.TimeoutError(),
              TransientError("RabbitMQ unavailable", code="backbone.unavailable"),
              _dbapi(sa_exc.OperationalError, "57P01"),  # admin shutdown
              _dbapi(sa_exc.InterfaceError, ""),  # connection closed
              _dbapi(sa_exc.DBAPIError, "57P03"),  # the database system is starting up
              _dbapi(sa_exc.DBAPIError, "08006"),  # connection failure
              _dbapi(sa_exc.DBAPIError, "40001"),  # serialization failure: the same work succeeds later
              _dbapi(sa_exc.DataError, "22001", invalidated=True)):
        assert is_transient(e), e


def test_faults_of_a_message():
    for e in (_dbapi(sa_exc.DataError, "22001"),  # value too long
              _dbapi(sa_exc.IntegrityError, "23505"),  # unique violation
              _dbapi(sa_exc.ProgrammingError, "42P01"),
              TypeError("Object of type datetime is not JSON serializable"),
              SchemaError("not edXML"), ValueError("bad")):
        assert not is_transient(e), e


def test_the_cause_counts():
    try:
        try:
            raise ConnectionResetError(104, "reset")
        except ConnectionResetError as inner:
            raise RuntimeError("while recording") from inner
    except RuntimeError as e:
        assert is_transient(e)


def test_an_error_raised_while_handling_an_outage_is_not_one():
    try:
        try:
            raise ConnectionResetError(104, "reset")
        except ConnectionResetError:
            raise TypeError("a bug in the handler")  # noqa: B904 - the implicit context is the point
    except TypeError as e:
        assert not is_transient(e)


def test_backoff_doubles_and_caps():
    assert [backoff(n) for n in range(1, 8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
