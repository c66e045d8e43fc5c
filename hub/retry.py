"""Retrying work that failed for a reason that may pass: one helper and one predicate.

Only an outage or a timeout is retried (:func:`is_transient`): the database or the broker
unreachable, restarting or timing out, a serialization failure or a deadlock (the same
transaction succeeds later). Anything else is an answer, not an accident: an
``IntegrityError`` says the store already holds a conflicting row (a decision to make, see
:mod:`hub.pipeline.decide`), a ``DataError`` or a ``TypeError`` belongs to the message or to
the code, and retrying them only repeats the failure.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import exc as sa_exc

from hub.errors import TransientError

T = TypeVar("T")

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
    if isinstance(e, sa_exc.IntegrityError) and not e.connection_invalidated:
        return False  # a constraint said no: a decision, whatever the driver calls it
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
    return bool(state) and (state[:2] in _TRANSIENT_SQLSTATE_CLASSES or state in _TRANSIENT_SQLSTATES)


def _sqlstate(e: object) -> str:
    for attr in ("sqlstate", "pgcode"):
        value = getattr(e, attr, None)
        if isinstance(value, str):
            return value
    cause = getattr(e, "__cause__", None)
    value = getattr(cause, "sqlstate", None)
    return value if isinstance(value, str) else ""


def is_conflict(exc: BaseException) -> bool:
    """A constraint refused the write: the store holds a row this one conflicts with (another
    worker recorded the same package or DocumentId meanwhile). Decide again; do not retry."""
    return isinstance(exc, sa_exc.IntegrityError) and not is_transient(exc)


def backoff(attempt: int, first: float = 0.25, cap: float = 5.0, *, jitter: bool = False,
            rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before attempt ``attempt`` + 1 (``attempt`` = 1, 2, ... failed so far):
    doubling from ``first``, at most ``cap``; with ``jitter``, between half and all of it, so
    that many processes do not retry in step."""
    delay = min(cap, first * 2 ** min(max(0, attempt - 1), 32))
    return delay / 2 + rand() * delay / 2 if jitter else delay


async def retry(fn: Callable[[], Awaitable[T]], *, attempts: int | None = None, deadline: float | None = None,
                first: float = 0.25, cap: float = 5.0, jitter: bool = False,
                transient: Callable[[BaseException], bool] = is_transient,
                stop: Callable[[], bool] | None = None,
                on_retry: Callable[[int, BaseException], None] | None = None,
                wait: Callable[[int, BaseException], Awaitable[None]] | None = None,
                sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> T:
    """``await fn()`` until it returns; retry only what ``transient`` accepts.

    Between attempts it waits :func:`backoff` (or ``await wait(attempt, error)``, e.g. "until the
    database answers"). It gives up, raising the last error, on an error that is not transient,
    after ``attempts`` attempts, when the next wait would end past ``deadline`` seconds from the
    first attempt, or when ``stop()`` is true. ``on_retry(attempt, error)`` runs before each wait
    (to log or count). ``None`` limits: retry for as long as it takes.
    """
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return await fn()
        except Exception as e:
            if not transient(e):
                raise
            attempt += 1
            delay = backoff(attempt, first, cap, jitter=jitter)
            if attempts is not None and attempt >= attempts:
                raise
            if stop is not None and stop():
                raise
            if deadline is not None and time.monotonic() - started + delay > deadline:
                raise
            if on_retry is not None:
                on_retry(attempt, e)
            if wait is not None:
                await wait(attempt, e)
            else:
                await sleep(delay)
