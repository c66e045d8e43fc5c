"""Acking a batch of RabbitMQ deliveries with as few ``basic.ack`` frames as is safe.

``basic.ack(multiple=True)`` on tag T acks EVERY unacked delivery of that channel up to T,
including ones this process has not looked at yet (delivered, still in aio-pika's hands).
So one frame may ack a run of tags only when every tag of that channel up to T is either in
the batch or already settled (acked or rejected) by us. Delivery tags of a channel are
consecutive integers from 1, so each channel keeps its low-water mark (every tag up to it is
settled) and the settled tags above it; a batch acks with one frame the longest run from the
mark, and the rest of its tags one by one.

The state lives per aiormq channel: after a reconnect the new channel counts from 1 again,
and what was delivered on the old one can no longer be settled at all (RabbitMQ requeued it).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any


class ChannelTags:
    """The settled delivery tags of one channel."""

    __slots__ = ("low", "above", "__weakref__")

    def __init__(self) -> None:
        self.low = 0  # every tag <= low is settled
        self.above: set[int] = set()  # settled tags > low

    def settled(self, tags: Iterable[int]) -> None:
        """Note ``tags`` as settled (acked or rejected, one by one or as a run)."""
        self.above.update(t for t in tags if t > self.low)
        while self.low + 1 in self.above:
            self.low += 1
            self.above.discard(self.low)

    def run_end(self, tags: set[int]) -> int:
        """The highest tag T such that every tag of the channel up to T is settled or in ``tags``;
        0 when T would not be one of ``tags`` (no ``multiple=True`` ack helps)."""
        t = self.low
        while t + 1 in tags or t + 1 in self.above:
            t += 1
        while t > self.low and t not in tags:  # end the run on a tag of the batch
            t -= 1
        return t if t in tags else 0


_BY_CHANNEL: weakref.WeakKeyDictionary[Any, ChannelTags] = weakref.WeakKeyDictionary()


def tags_of(channel: Any) -> ChannelTags:
    """The tag state of an aiormq channel (made on first use)."""
    state = _BY_CHANNEL.get(channel)
    if state is None:
        state = _BY_CHANNEL[channel] = ChannelTags()
    return state


def plan(state: ChannelTags, tags: Iterable[int]) -> tuple[int, list[int]]:
    """(T to ack with ``multiple=True`` or 0, the tags to ack one by one)."""
    mine = set(tags)
    end = state.run_end(mine)
    return end, sorted(t for t in mine if t > end)
