"""The worker's counters: outcomes, stage seconds and the checks' latency histogram."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Stats:
    accepted: int = 0
    refused: int = 0
    duplicates: int = 0
    dead: int = 0
    delivered: int = 0
    batches: int = 0
    retries: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    by_auth: dict[str, int] = field(default_factory=dict)  # accepted packages by authenticated_by
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("check", "record", "publish", "mark_sent", "ack"), 0.0))
    check_hist: dict = field(default_factory=lambda: {
        "bounds": [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, float("inf")],
        "counts": [0] * 10, "sum": 0.0})

    def outcomes(self) -> tuple:
        """The outcome counters, to take back what a batch counted if its transaction does not commit."""
        return self.accepted, self.refused, self.duplicates, self.dead, dict(self.by_reason), dict(self.by_auth)

    def restore(self, outcomes: tuple) -> None:
        self.accepted, self.refused, self.duplicates, self.dead, self.by_reason, self.by_auth = outcomes

    def observe_check(self, seconds: float) -> None:
        h = self.check_hist
        h["sum"] += seconds
        for i, b in enumerate(h["bounds"]):
            if seconds <= b:
                h["counts"][i] += 1
                break
