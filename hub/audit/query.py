"""Reading the audit log: search, one document's trail, checkpoints, proofs — and renderers.

Everything here only reads (``records``, ``checkpoints`` and the state tables beside them);
nothing changes the log. The answers are for the question an auditor asks years later: who
sent what to whom, when, what did the hub decide and why.

``search``
    Filters by DocumentId, sender, recipient, document type, event, reason code and time
    range; newest first (by sequence number, which is commit order); paginated; the total
    is counted with the same filters, up to a bound (:data:`COUNT_CAP` past the page): a total
    that would need more entries read says so (``total_is_lower_bound``) instead of reading
    tens of thousands of entries on every page. ``event`` and ``reason`` match exactly, or as a
    prefix when they end in ``.`` or ``*`` (``signature.`` = every signature refusal).
    Recipient and document type are not columns of the log. Document type is found through
    the ``documents`` row of the same (DocumentId, sender), as a correlated ``EXISTS`` on
    indexed equality columns (``ix_records_document``, ``uq_documents_sender_docid``).
    A recipient matches the entries of a document addressed to it (received, accepted or
    duplicate, its own delivery and its own statuses, a recall by the sender), and the
    entries of status packages addressed to it (a recipient's status goes to the original
    sender; a recall goes to the recipients). Each entry's recipients are written beside it
    when it is appended (``audit_recipients``, ``hub.audit.recipients``), so a recipient's
    entries newest first are one range of that table's primary key, joined to the log by seq:
    a page reads its entries, the bound on the count reads the index alone.
    :func:`recipient_seqs` and :func:`addressed_to` state the same rule as joins from the
    recipient's deliveries and statuses (the index is checked against them).

``trail``
    Every entry of one document in sequence order, with the seconds since the previous step:
    its own entries (received, accepted or refused, delivered to each recipient, duplicates),
    ``status.recorded`` (filed under the original DocumentId), the entries of its status
    packages (``package.received`` / ``status.delivered``, filed under the status's own id)
    and the delivery of any refusal the hub sent back; each recipient's delivery time and
    status history; the document row.

Checkpoints and proofs
    The signed checkpoints, newest first; the inclusion proof of one entry and the
    consistency proof between two tree sizes, read from O(log n) stored subtree hashes
    (``hub.audit.nodes``); ``consistency_report`` checks both checkpoints' signatures and the
    proof against their signed roots.

Renderers turn search pages into CSV (formula cells defused) and JSON, and an entry into one
line of plain language.

Times in answers are ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC), as in the canonical entries.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub import constants as C
from hub.audit import merkle, nodes
from hub.audit.entry import utc_timestamp
from hub.errors import UsageError
from hub.retry import _sqlstate
from hub.store.links import business_links
from hub.store.tables import (audit_recipients, checkpoints, deliveries, documents, outbox, packages, records,
                              status_history)

MAX_LIMIT = 100_000
# A search counts at most this many entries beyond those it shows: past it, the total is a lower
# bound (the console shows "more than 10,000", the API ``total_is_lower_bound``).
COUNT_CAP = 10_000
# ... and counts for at most this long (milliseconds, PostgreSQL): past it, the total is the page's
# own entries, a lower bound too (``Found.counted_in_time`` False). A page answers in ~200 ms.
COUNT_MS = 100
# A search whose matches PostgreSQL cannot estimate (part of a DocumentId) first walks the log
# newest first for this long (milliseconds), then reads its index (``page``'s ``walk_first``).
WALK_MS = 40
# ... and then reads its index for at most this long (milliseconds) before asking for a narrower search.
SEARCH_MS = 3_000
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cancelled by statement_timeout
COLUMNS = ("seq", "at", "event", "actor", "document_id", "sender", "sha256", "reason", "message", "details",
           "leaf_hash")


# --- values -----------------------------------------------------------------------------------

def utc(value: datetime | None) -> datetime | None:
    """Aware UTC (SQLite hands back naive UTC datetimes; PostgreSQL aware ones)."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.utcoffset() is None else value.astimezone(timezone.utc)


def iso(value: datetime | None) -> str | None:
    return None if value is None else utc_timestamp(utc(value))


def parse_time(value: str | datetime | None, name: str = "time") -> datetime | None:
    """An ISO 8601 date or time (``Z`` or an offset; none = UTC) as aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return utc(value)
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return utc(datetime.fromisoformat(text))
    except ValueError:
        raise UsageError(f"{name} {value!r} is not an ISO 8601 time (e.g. 2026-11-27 or 2026-11-27T09:00:00Z)") from None


def seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round((utc(later) - utc(earlier)).total_seconds(), 6)


def entry_dict(row) -> dict[str, Any]:
    """One records row as JSON-ready data (every column, ``at`` as a UTC timestamp)."""
    out = {c: row[c] for c in COLUMNS}
    out["at"] = iso(row["at"])
    return out


# --- search -----------------------------------------------------------------------------------

def _match(column, value: str):
    """Exact, or a prefix when the value ends in ``.`` or ``*``."""
    if value.endswith("*"):
        value = value[:-1]
        if not value:
            return sa.true()
    elif not value.endswith("."):
        return column == value
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped + "%", escape="\\")


def _same_document(doc):
    """records rows that belong to the documents row ``doc`` (an alias): same DocumentId, and
    the same sender — or a status.recorded about it (filed under the original id by the
    status's sender, naming the original sender in its details)."""
    return sa.and_(records.c.document_id == doc.c.document_id, _sent_by(doc.c.sender))


def _sent_by(sender):
    """Entries about a document of ``sender``: filed by it, or a status.recorded naming it as
    the original sender (a status is filed under the original DocumentId by the status's sender)."""
    return sa.or_(
        sa.and_(records.c.event != "status.recorded", records.c.sender == sender),
        sa.and_(records.c.event == "status.recorded", records.c.details["original_sender"].as_string() == sender),
    )


def _to_recipient(recipient: str):
    """The entries addressed to ``recipient``: the seqs the index holds for it (one each; the
    database reads them as a join from the index's range, newest first)."""
    return records.c.seq.in_(sa.select(audit_recipients.c.seq).where(audit_recipients.c.recipient == recipient))


def recipient_index(recipient: str):
    """The seqs of ``recipient``'s entries, newest first, from the index alone (what the count
    reads: in the primary key's order, so that the database reads its range, never the table)."""
    return (sa.select(audit_recipients.c.seq).where(audit_recipients.c.recipient == recipient)
            .order_by(audit_recipients.c.seq.desc()))


def recipient_seqs(recipient: str):
    """The seqs of the entries addressed to ``recipient`` (see the module docstring) by the rule
    itself, as a ``UNION ALL`` of three joins driven by its own rows (what the search read before
    the index; the index is checked against it). An entry is in two of them only in a corner (a
    status whose own DocumentId is the one it answers)."""
    # Driven by the recipient's own rows: its deliveries (ix_deliveries_recipient) give the
    # documents addressed to it, the status documents sent to it are found from their originals;
    # each (DocumentId, sender) then reaches its entries through ix_records_document. The
    # entries' numbers (a few per document) are what the search's other filters and its order
    # apply to: nothing is evaluated per entry of the whole log.
    d, dl, r = documents.alias("d"), deliveries.alias("dl"), records.alias("r")
    s, o, odl = documents.alias("s"), documents.alias("o"), deliveries.alias("odl")
    details = r.c.details
    own = sa.or_(r.c.event != "edoc.delivered", details["recipient"].as_string() == recipient)
    statuses = sa.or_(r.c.event != "status.recorded", r.c.sender == recipient,
                      r.c.sender == details["original_sender"].as_string())
    # a document addressed to it: the sender's entries about it (of its deliveries, the one to
    # this recipient), and the status.recorded entries filed under its DocumentId naming its
    # sender (of them, this recipient's own and the original sender's, a recall)
    edoc = (sa.select(r.c.seq).select_from(dl).join(d, d.c.id == dl.c.document)
            .join(r, r.c.document_id == d.c.document_id)
            .where(dl.c.recipient == recipient, d.c.kind == "edoc",
                   sa.or_(sa.and_(r.c.event != "status.recorded", r.c.sender == d.c.sender, own),
                          sa.and_(r.c.event == "status.recorded",
                                  details["original_sender"].as_string() == d.c.sender, statuses))))
    # a status package addressed to it: from another recipient to it as the original sender,
    # or a recall (the original sender's own status) to it as a recipient
    def status_entries(q):
        return (q.join(s, s.c.refers_to == o.c.id)
                .join(r, sa.and_(r.c.document_id == s.c.document_id, r.c.sender == s.c.sender))
                .where(s.c.kind == "status", own, statuses))

    to_sender = status_entries(sa.select(r.c.seq).select_from(o)).where(o.c.sender == recipient,
                                                                         s.c.sender != o.c.sender)
    recall = status_entries(sa.select(r.c.seq).select_from(odl).join(o, o.c.id == odl.c.document)).where(
        odl.c.recipient == recipient, s.c.sender == o.c.sender)
    return sa.union_all(edoc, to_sender, recall)


def addressed_to(recipient: str):
    """The entries :func:`recipient_seqs` finds, tested entry by entry: the same three kinds of
    document, as sets of (DocumentId, sender) the database hashes once per query (the rule as a
    condition on each entry; the index is checked against it)."""
    d, dl = documents.alias("wd"), deliveries.alias("wdl")
    s, o, s2, o2, odl = (documents.alias("ws"), documents.alias("wo"), documents.alias("ws2"),
                         documents.alias("wo2"), deliveries.alias("wodl"))
    details = records.c.details
    original = details["original_sender"].as_string()
    own = sa.or_(records.c.event != "edoc.delivered", details["recipient"].as_string() == recipient)
    statuses = sa.or_(records.c.event != "status.recorded", records.c.sender == recipient,
                      records.c.sender == original)
    # a status.recorded is filed under the original DocumentId by the status's sender
    about = sa.case((records.c.event == "status.recorded", original), else_=records.c.sender)
    edocs = (sa.select(d.c.document_id, d.c.sender).select_from(dl).join(d, d.c.id == dl.c.document)
             .where(dl.c.recipient == recipient, d.c.kind == "edoc"))
    to_sender = (sa.select(s.c.document_id, s.c.sender).select_from(o).join(s, s.c.refers_to == o.c.id)
                 .where(o.c.sender == recipient, s.c.kind == "status", s.c.sender != o.c.sender))
    recall = (sa.select(s2.c.document_id, s2.c.sender).select_from(odl).join(o2, o2.c.id == odl.c.document)
              .join(s2, s2.c.refers_to == o2.c.id)
              .where(odl.c.recipient == recipient, s2.c.kind == "status", s2.c.sender == o2.c.sender))
    return sa.and_(own, statuses, sa.or_(
        sa.tuple_(records.c.document_id, about).in_(edocs),
        sa.tuple_(records.c.document_id, records.c.sender).in_(sa.union_all(to_sender, recall))))


def _of_type(doc_type: str):
    d = documents.alias("dt")
    return sa.exists().where(d.c.kind == "edoc", d.c.doc_type == doc_type, _same_document(d))


def _check_text(value: str | None, name: str) -> None:
    if value is not None and (not isinstance(value, str) or "\x00" in value or len(value) > 1000):
        raise UsageError(f"{name} must be text of at most 1000 characters, without NUL", element=name)


def search_conditions(*, document_id: str | None = None, sender: str | None = None, recipient: str | None = None,
                      doc_type: str | None = None, event: str | None = None, reason: str | None = None,
                      since: datetime | str | None = None, until: datetime | str | None = None) -> list:
    for name, value in (("document_id", document_id), ("sender", sender), ("recipient", recipient),
                        ("type", doc_type), ("event", event), ("reason", reason)):
        _check_text(value, name)
    where = []
    if document_id:  # exact, or a prefix with a trailing * ("000.00.00.G22,2026/11/*")
        where.append(_match(records.c.document_id, document_id) if document_id.endswith("*")
                     else records.c.document_id == document_id)
    if sender:
        where.append(records.c.sender == sender)
    if event:
        where.append(_match(records.c.event, event))
    if reason:
        where.append(_match(records.c.reason, reason))
    since, until = parse_time(since, "since"), parse_time(until, "until")
    if since is not None:
        where.append(records.c.at >= since)
    if until is not None:
        where.append(records.c.at < until)
    if recipient:
        where.append(_to_recipient(recipient))
    if doc_type:
        where.append(_of_type(doc_type))
    return where


@dataclass(frozen=True)
class Found:
    """One page of a search: ``total`` matching entries (at least ``total`` when
    ``total_is_lower_bound``: counting stopped there, at ``COUNT_CAP`` or, when not
    ``counted_in_time``, at ``COUNT_MS``), ``rows`` the page."""

    total: int
    rows: list
    total_is_lower_bound: bool = False
    counted_in_time: bool = True  # False: the count ran out of time (COUNT_MS); total is the page's


async def find(engine: AsyncEngine, *, document_id: str | None = None, sender: str | None = None,
               recipient: str | None = None, doc_type: str | None = None, event: str | None = None,
               reason: str | None = None, since: datetime | str | None = None, until: datetime | str | None = None,
               limit: int = 50, offset: int = 0, count_cap: int | None = COUNT_CAP) -> Found:
    """Entries matching every given filter, newest first: one page and the total, counted up to
    ``count_cap`` entries past the page (None: exactly). ``since`` is inclusive, ``until``
    exclusive. Rows are :func:`entry_dict` dicts."""
    if type(limit) is not int or not 0 <= limit <= MAX_LIMIT:
        raise UsageError(f"limit must be a whole number from 0 to {MAX_LIMIT}")
    if type(offset) is not int or offset < 0:
        raise UsageError("offset must be a whole number from 0")
    filters = dict(document_id=document_id, sender=sender, doc_type=doc_type, event=event, reason=reason,
                   since=since, until=until)
    where = search_conditions(recipient=recipient, **filters)
    newest = records.c.seq.desc()
    if document_id and not document_id.endswith("*"):
        # One document has a handful of entries; but PostgreSQL often underestimates how distinct
        # DocumentIds are and would walk the whole primary key backwards looking for them (ORDER
        # BY seq LIMIT n). Ordering by an expression makes it start from ix_records_document and
        # sort what it finds: bounded by the matches, not by the size of the log. (A recipient's
        # entries come newest first from its range of the index: ordered by seq itself.)
        newest = (records.c.seq + 0).desc()
    # A prefix (``…*``) may match a sender's day or most of the log, which PostgreSQL cannot tell:
    # walk the log first, then read the prefix's range of ix_records_document and sort it
    walk = (records.c.seq + 0).desc() if document_id and document_id.endswith("*") else None
    only = recipient_index(recipient) if recipient and not any(filters.values()) else None
    async with engine.connect() as conn:
        found = await page(conn, list(records.c), where, newest, limit, offset, count_cap=count_cap, count=only,
                           walk_first=walk)
    return Found(found.total, [entry_dict(r) for r in found.rows], found.total_is_lower_bound, found.counted_in_time)


async def search(engine: AsyncEngine, **filters) -> tuple[int, list[dict[str, Any]]]:
    """``(total, rows)`` of :func:`find`, the total counted exactly (``count_cap`` None)."""
    found = await find(engine, **{"count_cap": None, **filters})
    return found.total, found.rows


async def page(conn: AsyncConnection, columns: list, where: list, order, limit: int, offset: int, *,
               count_cap: int | None = COUNT_CAP, count=None, walk_first=None) -> Found:
    """One page of ``records`` matching ``where`` in ``order``, and their number.

    The count reads at most ``count_cap`` entries past the page's end (None: all of them);
    beyond that the total is a lower bound. ``count``: a query with one row per matching entry
    to count instead of ``records`` itself (a recipient's range of ``audit_recipients``, when
    ``where`` holds nothing else: an index-only scan, no entry read).

    On PostgreSQL a bounded count is also bounded in time (:data:`COUNT_MS`): how many entries
    it reads before ``count_cap`` depends on where the matches lie in the index the planner
    picked (a common part of a DocumentId can read millions), which no plan guarantees. A count
    that runs out of time is given up and the total is what the page itself shows
    (``counted_in_time`` False). ``walk_first``: an order to fall back on when walking the log
    newest first (``order``, bitmap scans off) has not found the page within :data:`WALK_MS`:
    for conditions whose matches PostgreSQL cannot estimate (a substring's trigrams), where a
    walk finds a common part's newest entries at once and its index the rare part's."""
    bound = None if count_cap is None else max(count_cap, offset + limit)
    matches = count if count is not None else sa.select(sa.literal(1)).select_from(records).where(*where)
    if bound is not None:
        matches = matches.limit(bound + 1)
    counting = sa.select(sa.func.count().label("n")).select_from(matches.subquery())

    def rows_in(o):
        return sa.select(*columns).where(*where).order_by(o).limit(limit).offset(offset)

    if bound is not None and conn.dialect.name == "postgresql":
        # every statement of the page planned for its own values and the settings in force: a
        # cached generic plan would keep the planner settings it was made under, and an estimate
        # made without the typed text (LIKE '%…%')
        await conn.execute(sa.select(sa.func.set_config("plan_cache_mode", "force_custom_plan", True)))
        rows, walked_out = None, False
        if limit and walk_first is not None:
            rows = await _within(conn, WALK_MS, rows_in(order), enable_bitmapscan="off")
            walked_out = rows is None
        if walked_out:
            # the matches' index: a part made of trigrams that every DocumentId has (a date months
            # back) with nothing recent to walk to can read it for seconds; bounded, then said so
            rows = await _within(conn, SEARCH_MS, rows_in(walk_first))
            if rows is None:
                raise UsageError(f"the search found no page within {SEARCH_MS // 1000} s: narrow it with dates "
                                 "(from, to), an event or a longer part of the DocumentId")
        if rows is None:
            rows = list((await conn.execute(rows_in(order))).mappings().all()) if limit else []
        if 0 < len(rows) < limit or (limit and not rows and not offset):
            return Found(offset + len(rows), rows)  # a page that is not full ends the matches
        # the walk ran out of time: the matches are few or old, so they are counted through the
        # index the page was read from (its bitmap), not along another index
        by_index = {"enable_indexscan": "off", "enable_indexonlyscan": "off"} if walked_out else {}
        counted = await _within(conn, COUNT_MS, counting, **by_index)
        if counted is not None:
            counted = counted[0]["n"]
        elif rows:
            # a full page is all that is known: more match (a lower bound, not counted in time)
            return Found(offset + len(rows), rows, total_is_lower_bound=True, counted_in_time=False)
        else:
            # no row to go by (limit 0, or an offset past the matches): counted as before, up to the bound
            counted = (await conn.execute(counting)).scalar_one()
    else:
        counted = (await conn.execute(counting)).scalar_one()
        rows = list((await conn.execute(rows_in(order))).mappings().all()) if limit and offset < counted else []
    more = bound is not None and counted > bound
    return Found(bound if more else counted, rows, more)


async def _within(conn: AsyncConnection, ms: int, statement, **settings: str) -> list | None:
    """``statement``'s rows (mappings), or None when it ran past ``ms`` milliseconds: run in a
    savepoint with ``statement_timeout`` and ``settings`` (PostgreSQL's planner settings) set
    locally, rolled back afterwards, so the transaction goes on as it was (PostgreSQL only)."""
    nested = await conn.begin_nested()
    try:
        await conn.execute(sa.select(*(sa.func.set_config(name, value, True) for name, value in
                                       {"statement_timeout": str(ms), **settings}.items())))
        return list((await conn.execute(statement)).mappings().all())
    except DBAPIError as e:
        # 57014 is also an administrator's pg_cancel_backend: the same answer (not in time) fits
        if _sqlstate(e.orig) != QUERY_CANCELED:
            raise
        return None
    finally:
        await nested.rollback()


# --- renderers --------------------------------------------------------------------------------

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    else:
        text = str(value)
    # A spreadsheet would run a cell starting with =, +, -, @ as a formula (CSV injection);
    # DocumentIds and messages come from outside. The JSON export keeps the exact values.
    if isinstance(value, str) and text.startswith(_FORMULA):
        text = "'" + text
    return text


def render_csv(rows: Iterable[dict[str, Any]]) -> str:
    """RFC 4180 CSV with a header line, one entry per line; ``details`` as compact JSON."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in COLUMNS])
    return buf.getvalue()


def render_json(total: int, rows: Sequence[dict[str, Any]], *, limit: int | None = None, offset: int = 0,
                filters: dict | None = None, total_is_lower_bound: bool = False) -> str:
    """A page as the API answers it; ``total_is_lower_bound``: more than ``total`` entries match."""
    more = offset + len(rows) < total or (total_is_lower_bound and bool(rows))
    page = {"total": total, "total_is_lower_bound": total_is_lower_bound, "offset": offset, "limit": limit,
            "count": len(rows), "next_offset": offset + len(rows) if more else None,
            "filters": {k: v for k, v in (filters or {}).items() if v not in (None, "")},
            "entries": list(rows)}
    return json.dumps(page, ensure_ascii=False, indent=1, default=str)


def describe(e: dict[str, Any]) -> str:
    """One line of plain language for an entry (the CLI table and the trail)."""
    d = e.get("details") or {}
    ev = e["event"]
    if ev == "package.received":
        return f"received from {e['sender'] or '?'} ({d.get('kind', 'package')}, {d.get('size', '?')} bytes, " \
               f"via {e['actor'] or '?'})"
    if ev == "package.accepted":
        to = ", ".join(r[0] if isinstance(r, list) else str(r) for r in d.get("recipients") or [])
        return f"accepted for {to or 'nobody'} (type {d.get('type')}, priority {d.get('priority')})"
    if ev == "package.refused":
        return f"REFUSED {e['reason']}: {e['message'] or ''}".rstrip() + \
               (f" [{d.get('stage')}/{d.get('element')}]" if d.get("element") else "")
    if ev == "package.duplicate":
        return "the same package again: recorded, not delivered again"
    if ev == "package.dead":
        return f"unanswerable, kept in hub.dead: {e['reason']}"
    if ev == "status.recorded":
        code = d.get("status")
        return f"{e['sender']} reported status {code} ({C.STATUS_NAMES.get(code, '?')}) " \
               f"to {', '.join(d.get('recipients') or []) or '?'}"
    if ev in ("edoc.delivered", "status.delivered", "refusal.delivered"):
        what = {"edoc.delivered": "delivered", "status.delivered": "status delivered",
                "refusal.delivered": "refusal delivered"}[ev]
        return f"{what} to {d.get('recipient')} ({d.get('inbox')})"
    if ev in ("document.revoked", "document.updated", "document.replaced"):
        what = ev.split(".", 1)[1]
        changes = "".join(f"; {k} {', '.join(d[k])}" for k in ("added", "removed") if d.get(k))
        return f"{what} by {d.get('by')} from {e['sender'] or '?'}" + \
               (f" ({d['reason']})" if d.get("reason") else "") + changes
    if ev == "audit.exported":
        return f"exported by {e['actor']}: {d.get('what')}"
    text = e["message"] or (json.dumps(d, ensure_ascii=False, sort_keys=True) if d else "")
    return f"{ev} by {e['actor'] or '?'}" + (f": {text}" if text else "")


# --- trail ------------------------------------------------------------------------------------

async def _find_edoc(conn: AsyncConnection, document_id: str, sender: str | None) -> dict | None:
    q = sa.select(documents, packages.c.size.label("package_size")).join(
        packages, packages.c.sha256 == documents.c.sha256, isouter=True).where(
        documents.c.document_id == document_id, documents.c.kind == "edoc")
    if sender:
        q = q.where(documents.c.sender == sender)
    rows = (await conn.execute(q)).mappings().all()
    if len(rows) > 1:
        raise UsageError(f"{len(rows)} senders used DocumentId {document_id} "
                         f"({', '.join(sorted(r['sender'] for r in rows))}); name the sender")
    return dict(rows[0]) if rows else None


async def document_entries(conn: AsyncConnection, document_id: str, sender: str | None = None
                           ) -> tuple[dict | None, list[dict], list[dict]]:
    """``(document row or None, its entries in seq order, its status documents)``.

    The entries are those of :func:`trail` (see the module docstring). Raises
    :class:`UsageError` when several senders used the DocumentId and no sender is given.
    """
    _check_text(document_id, "document_id")
    _check_text(sender, "sender")
    doc = await _find_edoc(conn, document_id, sender)
    sender = sender or (doc["sender"] if doc else None)
    own = records.c.document_id == document_id
    if sender:
        own = sa.and_(own, sa.or_(_sent_by(sender), records.c.sender.is_(None)))
    conditions = [own]
    statuses: list[dict] = []
    if doc is not None:
        statuses = [dict(r) for r in (await conn.execute(
            sa.select(documents).where(documents.c.refers_to == doc["id"], documents.c.kind == "status")
            .order_by(documents.c.id))).mappings().all()]
        pairs = sorted({(s["document_id"], s["sender"]) for s in statuses})
        if pairs:
            conditions.append(sa.tuple_(records.c.document_id, records.c.sender).in_(pairs))
    rows = [dict(r) for r in (await conn.execute(
        sa.select(records).where(sa.or_(*conditions)).order_by(records.c.seq))).mappings().all()]
    refused = sorted({r["sha256"] for r in rows if r["event"] == "package.refused" and r["sha256"]})
    if refused:  # the hub-signed status 02 each refusal was answered with, once delivered
        answers = sa.select(outbox.c.sha256).where(outbox.c.intake_sha256.in_(refused),
                                                   outbox.c.exchange == C.EXCHANGE_DELIVER)
        extra = (await conn.execute(sa.select(records).where(
            records.c.event == "refusal.delivered", records.c.sha256.in_(answers)))).mappings().all()
        seen = {r["seq"] for r in rows}
        rows += [dict(r) for r in extra if r["seq"] not in seen]
        rows.sort(key=lambda r: r["seq"])
    return doc, rows, statuses


async def trail(engine: AsyncEngine, document_id: str, sender: str | None = None) -> dict[str, Any]:
    """Everything the log and the state tables say about one document (see the module docstring).

    Raises :class:`hub.errors.UsageError` (→ 404 at the API) when nothing at all is known.
    """
    async with engine.connect() as conn:
        doc, rows, statuses = await document_entries(conn, document_id, sender)
        dels, hist = [], []
        links = {"acts_on": None, "acted_on_by": []}
        if doc is not None:
            links = await business_links(conn, doc)
            for later in links["acted_on_by"]:
                later["at"] = iso(later["at"])
            dels = (await conn.execute(sa.select(deliveries).where(deliveries.c.document == doc["id"])
                                       .order_by(deliveries.c.id))).mappings().all()
            if dels:
                hist = (await conn.execute(sa.select(status_history).where(
                    status_history.c.delivery.in_([d["id"] for d in dels]))
                    .order_by(status_history.c.at, status_history.c.id))).mappings().all()
    if doc is None and not rows:
        raise NotFound(f"the audit log knows no document {document_id}" + (f" from {sender}" if sender else ""))
    steps = []
    first = prev = None
    for r in rows:
        at = utc(r["at"])
        e = entry_dict(r)
        e["seconds_since_previous"] = seconds(at, prev)  # None for the first step
        e["seconds_since_first"] = seconds(at, first) if first else 0.0
        e["summary"] = describe(e)
        steps.append(e)
        first = first or at
        prev = at
    delivered_at: dict[str, datetime] = {}
    for r in rows:
        if r["event"] == "edoc.delivered" and (r["details"] or {}).get("recipient"):
            delivered_at.setdefault(r["details"]["recipient"], utc(r["at"]))
    received = utc(doc["received_at"]) if doc else None
    by_delivery: dict[int, list] = {}
    for h in hist:
        by_delivery.setdefault(h["delivery"], []).append(h)
    recipients = []
    for d in dels:
        when = delivered_at.get(d["recipient"]) or delivered_at.get(d["system"])
        history, before = [], when or received
        for h in by_delivery.get(d["id"], []):
            at = utc(h["at"])
            # a copy's delivery is logged once the broker confirmed it, in a later transaction: its
            # recipient may have read and answered it before that entry's time (0 s, not negative)
            since = None if before is None else seconds(at, min(before, at))
            history.append({"code": h["status_code"], "name": C.STATUS_NAMES.get(h["status_code"], ""),
                            "by": h["actor"], "description": h["description"], "at": iso(at),
                            "seconds_since_previous": since, "seconds_since_received": seconds(at, received)})
            before = at
        recipients.append({"code": d["recipient"], "system": d["system"], "status": d["status"],
                           "status_name": C.STATUS_NAMES.get(d["status"] or "", None),
                           "delivered_at": iso(when), "seconds_to_delivery": seconds(when, received),
                           "history": history})
    refusal = next((r for r in rows if r["event"] == "package.refused" and r["document_id"] == document_id), None)
    decision = "accepted" if doc is not None else ("refused" if refusal else "unknown")
    return {
        "document_id": document_id,
        "sender": doc["sender"] if doc else (sender or next((r["sender"] for r in rows if r["sender"]), None)),
        "decision": decision,
        "reason": None if doc is not None or refusal is None else refusal["reason"],
        "message": None if doc is not None or refusal is None else refusal["message"],
        "document": None if doc is None else {
            "document_id": doc["document_id"], "sender": doc["sender"], "sha256": doc["sha256"],
            "type": doc["doc_type"], "priority": doc["priority"], "subject": doc["subject"],
            "received_at": iso(doc["received_at"]), "adapter_user": doc["adapter_user"],
            "legacy_sha1": doc["legacy_sha1"], "package_size": doc["package_size"],
            "authenticated_by": doc["authenticated_by"],
            "acts_on": links["acts_on"], "acted_on_by": links["acted_on_by"],
        },
        "statuses": [{"document_id": s["document_id"], "sender": s["sender"], "code": s["status_code"],
                      "sha256": s["sha256"], "received_at": iso(s["received_at"])} for s in statuses],
        "recipients": recipients,
        "entries": steps,
        "first_at": steps[0]["at"] if steps else None,
        "last_at": steps[-1]["at"] if steps else None,
        "seconds_total": seconds(prev, first) if steps else None,
    }


class NotFound(UsageError):
    """Nothing is known about what was asked (the API answers 404)."""

    code = "usage.not_found"


# --- checkpoints and proofs -------------------------------------------------------------------

def checkpoint_dict(row) -> dict[str, Any]:
    return {"size": row["size"], "root": row["root"], "at": iso(row["at"]), "key_id": row["key_id"],
            "text": row["text"]}


async def list_checkpoints(engine: AsyncEngine, limit: int = 20, offset: int = 0) -> tuple[int, list[dict]]:
    """``(total, checkpoints)``, latest (largest) first, with their signed text."""
    async with engine.connect() as conn:
        total = (await conn.execute(sa.select(sa.func.count()).select_from(checkpoints))).scalar_one()
        rows = (await conn.execute(sa.select(checkpoints).order_by(checkpoints.c.size.desc())
                                   .limit(limit).offset(offset))).mappings().all()
    return total, [checkpoint_dict(r) for r in rows]


async def get_checkpoint(conn: AsyncConnection, size: int | None = None) -> dict | None:
    """The checkpoint of that tree size, or the latest one (``size`` None)."""
    q = sa.select(checkpoints)
    q = q.where(checkpoints.c.size == size) if size is not None else q.order_by(checkpoints.c.size.desc()).limit(1)
    row = (await conn.execute(q)).mappings().first()
    return dict(row) if row else None


async def consistency(engine: AsyncEngine, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 consistency proof that the tree of ``new_size`` entries extends that of ``old_size``."""
    if type(old_size) is not int or type(new_size) is not int or not 0 <= old_size <= new_size:
        raise UsageError(f"need 0 <= old <= new tree sizes, not {old_size!r} and {new_size!r}")
    async with engine.connect() as conn:
        return await nodes.consistency_proof(conn, old_size, new_size)


async def inclusion(engine: AsyncEngine, seq: int, size: int | None = None) -> dict[str, Any]:
    """The inclusion proof of entry ``seq`` in the tree of ``size`` (default: the latest checkpoint)."""
    async with engine.connect() as conn:
        if size is None:
            latest = await get_checkpoint(conn)
            if latest is None:
                raise NotFound("no checkpoint has been signed yet; run `hub audit checkpoint --seal`")
            size = latest["size"]
        if type(seq) is not int or not 1 <= seq <= size:
            raise UsageError(f"entry {seq!r} is not in the tree of {size} entries")
        (path,), (leaf,) = await nodes.proven_leaves(conn, [seq - 1], size)
    return {"seq": seq, "index": seq - 1, "tree_size": size, "leaf_hash": leaf.hex(),
            "path": [p.hex() for p in path]}


async def consistency_report(engine: AsyncEngine, old_size: int, new_size: int, cert=None) -> dict[str, Any]:
    """Both stored checkpoints (signatures checked with ``cert`` when given), the proof from the
    stored subtree hashes (``hub.audit.nodes``), and whether it verifies against the two *signed* roots."""
    from hub.audit import checkpoint as cp

    if type(old_size) is not int or type(new_size) is not int or not 0 < old_size <= new_size:
        raise UsageError(f"need checkpoint sizes 0 < old <= new, not {old_size!r} and {new_size!r}")
    async with engine.connect() as conn:
        rows = {n: await get_checkpoint(conn, n) for n in (old_size, new_size)}
    for n, row in rows.items():
        if row is None:
            raise NotFound(f"no checkpoint of size {n}; list them with `hub audit checkpoint --list 20`")
    out: dict[str, Any] = {}
    signed = {}
    for label, n in (("old", old_size), ("new", new_size)):
        row = rows[n]
        try:
            c = cp.Checkpoint.from_text(row["text"])
            problem = None if (c.size == n and c.root.hex() == row["root"]) else "stored size/root differ from the signed text"
        except UsageError as e:
            c, problem = None, str(e)
        signed[label] = c
        out[label] = {**checkpoint_dict(row), "signed_root": c.root.hex() if c else None,
                      "signature_ok": (c.verify(cert) if c is not None else False) if cert is not None else None,
                      "problem": problem}
    proof = await consistency(engine, old_size, new_size)
    old, new = signed["old"], signed["new"]
    proof_ok = old is not None and new is not None and merkle.verify_consistency(
        old_size, new_size, old.root, new.root, proof)
    out["proof"] = [p.hex() for p in proof]
    out["proof_ok"] = proof_ok
    out["verified"] = proof_ok and all(out[k]["problem"] is None and out[k]["signature_ok"] is not False
                                       for k in ("old", "new"))
    return out
