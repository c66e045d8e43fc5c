"""What counts as an outage of a dependency, as opposed to a fault of one message.

An outage (the database or the broker unreachable, restarting, timing out) says nothing
about the packages in hand: the worker holds them, stops taking new ones and waits for the
dependency to come back. Anything else that fails while recording a batch belongs to some
message in it; the batch is split to find it, and that message alone is refused. The
predicate and the backoff live in :mod:`hub.retry` (one retry helper for the whole hub).
"""

from __future__ import annotations

from hub.retry import backoff, is_conflict, is_transient

__all__ = ["backoff", "is_conflict", "is_transient"]
