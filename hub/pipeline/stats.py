"""The worker's counters: outcomes, stage seconds, and the checks' latency histogram (a
``prometheus_client.Histogram`` the hub's workers share, :mod:`hub.metrics`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import Histogram

from hub.metrics import check_seconds


@dataclass
class Stats:
    accepted: int = 0
    refused: int = 0
    duplicates: int = 0
    dead: int = 0
    delivered: int = 0
    batches: int = 0
    retries: int = 0
    marked_alone: int = 0  # transactions that only marked confirmed outbox rows sent (no batch's took them)
    by_reason: dict[str, int] = field(default_factory=dict)
    by_auth: dict[str, int] = field(default_factory=dict)  # accepted packages by authenticated_by
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("check", "record", "publish", "mark_sent", "ack"), 0.0))
    check_seconds: Histogram = field(default_factory=check_seconds)  # the hub's, shared by its workers

    def observe_check(self, seconds: float) -> None:
        self.check_seconds.observe(seconds)
