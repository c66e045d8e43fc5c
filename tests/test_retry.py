"""The one retry helper (hub.retry): what it retries, how long it waits, when it gives up."""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool

import pytest
from sqlalchemy import exc as sa_exc

from hub.retry import backoff, is_conflict, is_transient, retry


class _Driver(Exception):
    def __init__(self, sqlstate: str):
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def _dbapi(cls, sqlstate: str, invalidated: bool = False):
    return cls("INSERT ...", {}, _Driver(sqlstate), connection_invalidated=invalidated)


class Clock:
    """Records the waits instead of sleeping."""

    def __init__(self):
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def failing(errors: list[BaseException], result="done"):
    calls = []

    async def fn():
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return result

    return fn, calls


async def test_transient_errors_are_retried_with_doubling_waits():
    clock = Clock()
    fn, calls = failing([ConnectionResetError(), _dbapi(sa_exc.DBAPIError, "40001"),
                         _dbapi(sa_exc.DBAPIError, "40P01"), _dbapi(sa_exc.OperationalError, "57P01")])
    seen = []
    assert await retry(fn, first=0.1, cap=0.3, sleep=clock.sleep, on_retry=lambda n, e: seen.append(n)) == "done"
    assert len(calls) == 5 and seen == [1, 2, 3, 4]
    assert clock.waits == [0.1, 0.2, 0.3, 0.3]


async def test_an_integrity_error_is_a_decision_not_a_retry():
    clock = Clock()
    conflict = _dbapi(sa_exc.IntegrityError, "23505")
    fn, calls = failing([conflict])
    with pytest.raises(sa_exc.IntegrityError):
        await retry(fn, sleep=clock.sleep)
    assert len(calls) == 1 and clock.waits == []
    assert is_conflict(conflict) and not is_transient(conflict)
    assert not is_conflict(_dbapi(sa_exc.IntegrityError, "23505", invalidated=True))  # the connection died


@pytest.mark.parametrize("error", [TypeError("a bug"), _dbapi(sa_exc.DataError, "22001"),
                                   _dbapi(sa_exc.ProgrammingError, "42P01"), ValueError("bad")])
async def test_other_errors_are_raised_at_once(error):
    fn, calls = failing([error])
    with pytest.raises(type(error)):
        await retry(fn, sleep=Clock().sleep)
    assert len(calls) == 1


async def test_attempts_limit():
    fn, calls = failing([TimeoutError()] * 5)
    with pytest.raises(TimeoutError):
        await retry(fn, attempts=3, sleep=Clock().sleep)
    assert len(calls) == 3


async def test_deadline_counts_the_waits():
    clock = Clock()
    fn, calls = failing([ConnectionRefusedError()] * 10)
    with pytest.raises(ConnectionRefusedError):
        await retry(fn, first=1.0, cap=1.0, deadline=0.5, sleep=clock.sleep)  # the first wait would pass it
    assert len(calls) == 1 and clock.waits == []


async def test_stop_gives_up_with_the_last_error():
    stopping = [False]

    async def sleep(_s):
        stopping[0] = True

    fn, calls = failing([OSError("no route")] * 10)
    with pytest.raises(OSError):
        await retry(fn, stop=lambda: stopping[0], sleep=sleep)
    assert len(calls) == 2


async def test_own_predicate_and_wait():
    waited = []

    async def wait(attempt, e):
        waited.append((attempt, type(e).__name__))

    fn, calls = failing([BrokenProcessPool(), BrokenProcessPool()])
    assert await retry(fn, transient=lambda e: isinstance(e, BrokenProcessPool), wait=wait) == "done"
    assert waited == [(1, "BrokenProcessPool"), (2, "BrokenProcessPool")]


def test_backoff_with_jitter_stays_between_half_and_all():
    assert [backoff(n) for n in range(1, 8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff(3, 0.5, 30.0, jitter=True, rand=lambda: 0.0) == 1.0
    assert backoff(3, 0.5, 30.0, jitter=True, rand=lambda: 1.0) == 2.0
    assert backoff(100, 0.5, 30.0, jitter=True, rand=lambda: 1.0) == 30.0
