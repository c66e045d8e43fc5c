"""What counts as an outage of a dependency, as opposed to a fault of one message.

An outage (the database or the broker unreachable, restarting, timing out) says nothing
about the packages in hand: the worker holds them, stops taking new ones and waits for the
dependency to come back. Anything else that fails while recording a batch belongs to some
message in it; the batch is split to find it, and that message alone is refused.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import exc as sa_exc

from hub.errors import TransientError

# SQLSTATE classes that mean "the server, not your statement": connection exceptions (08),
# insufficient resources (53), operator intervention: shutdown, starting up (57), system error (58)
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "58")
_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available

_MAX_CHAIN = 8


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is an outage or timeout the same work may survive later."""
    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < _MAX_CHAIN:
        if _transient_one(e):
            return True
        e = e.__cause__  # explicit chaining only: an error raised while handling an outage is not one
        seen += 1
    return False


def _transient_one(e: BaseException) -> bool:
    if isinstance(e, (TransientError, ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return True
    if isinstance(e, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                      sa_exc.DisconnectionError)):
        return True
    if isinstance(e, sa_exc.DBAPIError):
        if e.connection_invalidated:
            return True
        state = _sqlstate(e.orig)
        return bool(state) and (state[:2] in _TRANSIENT_SQLSTATE_CLASSES or state in _TRANSIENT_SQLSTATES)
    if isinstance(e, OSError):  # sockets, "connection refused", "no route to host"
        return True
    state = _sqlstate(e)  # a driver error not wrapped by SQLAlchemy (asyncpg during connect)
    return bool(state) and state[:2] in _TRANSIENT_SQLSTATE_CLASSES


def _sqlstate(e: object) -> str:
    for attr in ("sqlstate", "pgcode"):
        value = getattr(e, attr, None)
        if isinstance(value, str):
            return value
    cause = getattr(e, "__cause__", None)
    value = getattr(cause, "sqlstate", None)
    return value if isinstance(value, str) else ""


def backoff(attempt: int, first: float = 0.25, cap: float = 5.0) -> float:
    """Seconds to wait before attempt ``attempt`` (1, 2, ...) of a probe: doubling, capped."""
    return min(cap, first * 2 ** max(0, attempt - 1))
