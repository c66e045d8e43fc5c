"""The follow-up rules, pure: one recipient's obligation for one document, overdue groups, the report.

A recipient *finishes* a document with status 06 (handled) or returns it with 02 (rejected);
the first of those is its answer. A recall by the sender (13, or 15 once agreed) withdraws the
obligation. Anything else is *open*. DueDate is a calendar date in Vietnam: a document is
overdue from the day after it, answered on time if answered on or before it (Vietnam time).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

VN = ZoneInfo("Asia/Ho_Chi_Minh")
ANSWERS = ("06", "02")  # handled / returned: the recipient's duty ends
WITHDRAWN = ("13", "15")  # recalled by the sender (and agreed)
CLOSED = ANSWERS + WITHDRAWN


def aware(value: datetime | None) -> datetime | None:
    """Aware UTC (SQLite hands back naive UTC datetimes)."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.utcoffset() is None else value.astimezone(timezone.utc)


def vn_date(value: datetime) -> date:
    return aware(value).astimezone(VN).date()


def vn_day_start(day: date) -> datetime:
    """00:00 of ``day`` in Vietnam, as aware UTC (to compare with stored times)."""
    return datetime(day.year, day.month, day.day, tzinfo=VN).astimezone(timezone.utc)


@dataclass(frozen=True)
class Item:
    """One recipient's copy of one document."""

    recipient: str
    document_id: str
    sender: str
    received_at: datetime
    due_date: date | None
    status: str | None  # current status code from this recipient (None: none yet)
    status_at: datetime  # since when it is at that status (the delivery time when none)
    answered_at: datetime | None = None  # first 06 or 02
    subject: str = ""
    code: str = ""
    doc_type: str = ""
    type_name: str = ""
    priority: int = 0
    recipient_name: str = ""
    sender_name: str = ""
    key: int = 0  # the copy's row (deliveries.id): with due_date, its place in a paginated list

    @property
    def open(self) -> bool:
        return self.status not in CLOSED

    def days_late(self, today: date) -> int:
        """Days past the due date (negative: days left); 0 on the due date itself."""
        return 0 if self.due_date is None else (today - self.due_date).days

    def waiting(self, now: datetime) -> timedelta:
        return max(timedelta(0), aware(now) - aware(self.status_at))


def classify(item: Item, today: date, within_days: int) -> str | None:
    """"overdue", "due_soon" (due within ``within_days`` days, today included) or None."""
    if not item.open or item.due_date is None:
        return None
    late = item.days_late(today)
    if late > 0:
        return "overdue"
    if -late <= within_days:
        return "due_soon"
    return None


@dataclass
class Group:
    recipient: str
    name: str
    overdue: list[Item] = field(default_factory=list)
    due_soon: list[Item] = field(default_factory=list)
    worst_days: int = 0  # the most days any of its documents is late


def overdue_groups(items: Iterable[Item], today: date, within_days: int) -> list[Group]:
    """Open items overdue or due soon, by recipient: most overdue first, then the longest late,
    then the most due soon; in a group, the oldest due date first (higher priority first on a tie)."""
    groups: dict[str, Group] = {}
    for it in items:
        kind = classify(it, today, within_days)
        if kind is None:
            continue
        g = groups.setdefault(it.recipient, Group(it.recipient, it.recipient_name))
        (g.overdue if kind == "overdue" else g.due_soon).append(it)
    for g in groups.values():
        g.worst_days = max((i.days_late(today) for i in g.overdue), default=0)
        g.overdue.sort(key=lambda i: (i.due_date, -i.priority, i.document_id))
        g.due_soon.sort(key=lambda i: (i.due_date, -i.priority, i.document_id))
    return sorted(groups.values(), key=lambda g: (-len(g.overdue), -g.worst_days, -len(g.due_soon), g.recipient))


@dataclass(frozen=True)
class ReportRow:
    recipient: str
    name: str
    received: int
    on_time: int
    late: int
    still_open: int  # of which overdue: ``open_overdue``
    open_overdue: int
    withdrawn: int
    median_seconds: float | None  # received → answered, over answered items

    @property
    def median_hours(self) -> float | None:
        return None if self.median_seconds is None else round(self.median_seconds / 3600, 2)

    def as_dict(self) -> dict:
        return {"agency": self.recipient, "name": self.name, "received": self.received, "on_time": self.on_time,
                "late": self.late, "still_open": self.still_open, "open_overdue": self.open_overdue,
                "withdrawn": self.withdrawn, "median_handling_hours": self.median_hours}


def answered_on_time(item: Item) -> bool:
    return item.due_date is None or vn_date(item.answered_at) <= item.due_date


def report(items: Iterable[Item], today: date) -> list[ReportRow]:
    """Per recipient agency, for the items given (the documents received in a period):
    received = on time + late + still open + withdrawn."""
    by: dict[str, list[Item]] = {}
    for it in items:
        by.setdefault(it.recipient, []).append(it)
    rows = []
    for code, its in sorted(by.items()):
        answered = [i for i in its if i.answered_at is not None and i.status not in WITHDRAWN]
        on_time = sum(1 for i in answered if answered_on_time(i))
        open_ = [i for i in its if i.answered_at is None and i.status not in WITHDRAWN]
        seconds = [(aware(i.answered_at) - aware(i.received_at)).total_seconds() for i in answered]
        rows.append(ReportRow(
            code, its[0].recipient_name, len(its), on_time, len(answered) - on_time, len(open_),
            sum(1 for i in open_ if i.days_late(today) > 0),
            len(its) - len(answered) - len(open_),
            statistics.median(seconds) if seconds else None))
    return rows
