"""What a batch records and sends, decided from its verdicts and what the store already holds. Pure.

The worker reads the store (:mod:`hub.pipeline.recording`), hands the rows it read to a
:class:`Decisions` and writes the :class:`Plan` it gets back; nothing here touches the
database or the broker. The rules:

- an intake message already recorded (the same bytes from the same publisher, found in the
  idempotency table, or its document with the same bytes) is not decided again when it
  comes back (a redelivery, or a retry after an ambiguous commit): only its unsent outbox
  rows are finished;
- (sender, DocumentId) is recorded once: the same bytes again are a duplicate (recorded, not
  delivered again), other bytes a conflict (refused);
- a ResponseFor must name a document its sender sent or received; a revocation, update or
  replacement must name a document of its sender (:mod:`hub.pipeline.business`);
- a status must be about a document its sender saw and follow the copies' lifecycle
  (:mod:`hub.pipeline.statuses`);
- every refusal is recorded and answered to the publishing system with a hub-signed status
  02; what cannot be parsed or answered is dead-lettered.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from hub import constants as C
from hub.audit.records import record_row
from hub.backbone.base import Message, Outgoing, inbox_key
from hub.edxml.model import Edoc, StatusPackage, format_timestamp
from hub.errors import HubError
from hub.pipeline.business import EVENTS, business_link
from hub.pipeline.checks import Verdict
from hub.pipeline.refusal import build_refusal, sha256_hex
from hub.pipeline.statuses import StatusDecision, decide_status, document_keys, saw_document
from hub.pki.identity import Identity
from hub.registry.model import Registry

log = logging.getLogger("hub.worker")

UNRECORDABLE = "hub.unrecordable"


@dataclass(frozen=True)
class Intake:
    """One intake message as the decisions see it: the broker's message and its publisher
    (the broker-validated user as the checks saw it; ``""`` = none)."""

    message: Message
    user: str

    @property
    def body(self) -> bytes:
        return self.message.body


@dataclass
class OutboxItem:
    """One message to send: its outbox row (None: not stored, e.g. a dead letter of bytes too
    large to keep) and the message. ``new_document``: the index in ``Plan.documents`` of the
    document whose id the row takes once written."""

    row: dict | None
    message: Outgoing
    new_document: int | None = None
    source: bytes | None = None  # the original bytes a relayed copy derives from (hub.pipeline.large)
    lean: object | None = None  # a large relayed copy not yet made (hub.pipeline.large.Relayed): the
    # recorder expands it or, over the threshold, sends it by reference; ``message`` has an empty body meanwhile


@dataclass
class Plan:
    """What one batch writes (in this order: packages, documents, deliveries, statuses, outbox,
    idempotency, records) and what it counts once committed."""

    packages: dict[str, dict] = field(default_factory=dict)  # sha256 -> row
    documents: list[dict] = field(default_factory=list)  # edoc rows to insert
    deliveries: list[tuple[int, dict]] = field(default_factory=list)  # (index in documents, row without document)
    outbox: list[OutboxItem] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    seen: list[dict] = field(default_factory=list)  # idempotency rows
    pending_for: list[str] = field(default_factory=list)  # intake sha256s already recorded: finish their outbox
    accepted: int = 0
    refused: int = 0
    duplicates: int = 0
    dead: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    by_auth: dict[str, int] = field(default_factory=dict)

    def package(self, data: bytes, sha: str, now: datetime) -> None:
        if sha not in self.packages:
            self.packages[sha] = {"sha256": sha, "size": len(data), "data": data, "stored_at": now}


@dataclass(frozen=True)
class StoreView:
    """What the store holds about a batch (read in its transaction, before deciding).

    ``existing``: (sender, DocumentId) -> {"id", "sha256"} of recorded documents (the decisions
    add the batch's own, so in-batch duplicates see them); ``known``: (sender, DocumentId, who)
    for each ResponseFor naming a document ``who`` sent or received; ``acts_on``: (sender,
    DocumentId) -> documents.id of the documents the batch's revocations, updates and
    replacements act on; ``seen``: (intake sha256, publisher) already recorded (idempotency).
    """

    existing: dict[tuple[str, str], dict] = field(default_factory=dict)
    known: frozenset[tuple[str, str, str]] | set = frozenset()
    acts_on: Mapping[tuple[str, str], int] = field(default_factory=dict)
    seen: frozenset[tuple[str, str]] | set = frozenset()


@dataclass(frozen=True)
class Copies:
    """A document's row, its deliveries and, per delivery, its status codes (oldest first)."""

    document: Mapping
    deliveries: Sequence[Mapping]
    history: Mapping[int, Sequence[str]]


@dataclass(frozen=True)
class StatusView:
    """What the store holds about the document a status is about: the original (None when the
    hub has no such document) and, for a 15/16, the revocations and updates acting on it
    (newest first), which such an answer may be about instead."""

    original: Copies | None
    later: tuple[Copies, ...] = ()


@dataclass
class StatusWrite:
    """An accepted status: its documents row (refers_to set), the delivery status changes, the
    history rows (``status_document`` set once the row is written) and its outgoing messages."""

    document: dict
    shown: dict[int, str | None]  # delivery id -> its status afterwards
    history: list[dict]
    outbox: list[OutboxItem]


def message_id(h: Mapping) -> str:
    """Stable per copy; an AMQP message_id is a short string (255 bytes): longer ones are hashed."""
    text = f"{h.get(C.H_KIND)}:{h.get(C.H_SENDER)}:{h.get(C.H_DOCUMENT_ID)}:{h.get(C.H_RECIPIENT)}"
    if len(text.encode()) <= 255:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class Decisions:
    """The decisions of one batch, accumulated in ``plan``. ``hub_user``: the broker user the
    hub publishes as (every outgoing message carries it)."""

    def __init__(self, registry: Registry, hub: Identity, hub_user: str, now: datetime):
        self.registry = registry
        self.hub = hub
        self.hub_user = hub_user
        self.now = now
        self.plan = Plan()
        self._seen_keys: set[tuple[str, str]] = set()

    # --- the batch -------------------------------------------------------------------------

    def already_recorded(self, item: Intake, v: Verdict, view: StoreView) -> bool:
        """Whether an earlier attempt recorded this message (asked of redeliveries and retries)."""
        if (v.sha256, item.user) in view.seen:
            return True
        if v.accepted:  # recorded before the idempotency table existed
            row = view.existing.get((v.package.sender.organ_id, v.package.document_id))
            if row is not None and row["sha256"] == v.sha256:
                return True
        return False

    def decide(self, item: Intake, v: Verdict, view: StoreView, *, again: bool) -> str:
        """Decide one message that is not a status (statuses: :meth:`status`, with their view).
        ``again``: it may have been recorded already (a redelivery, or a retry after a commit
        that may have succeeded). Returns what happened: pending, accepted, refused, duplicate,
        or status (left for :meth:`status`)."""
        if again and self.already_recorded(item, v, view):
            self.plan.pending_for.append(v.sha256)
            return "pending"
        if v.accepted and isinstance(v.package, StatusPackage):
            return "status"
        self.mark_seen(item, v, view)
        if v.accepted:
            return self.edoc(item, v, view)
        self.refuse(item, v)
        return "refused"

    def mark_seen(self, item: Intake, v: Verdict, view: StoreView) -> None:
        """The idempotency row of this message, once per (digest, publisher)."""
        key = (v.sha256, item.user)
        if key in view.seen or key in self._seen_keys:
            return
        self._seen_keys.add(key)
        self.plan.seen.append({"sha256": v.sha256, "adapter_user": item.user, "recorded_at": self.now})

    # --- edocs -----------------------------------------------------------------------------

    def edoc(self, item: Intake, v: Verdict, view: StoreView) -> str:
        """Decide one accepted edoc: accepted (its documents row, deliveries and outbox rows in
        the plan), duplicate or refused."""
        doc: Edoc = v.package
        key = (doc.sender.organ_id, doc.document_id)
        seen = self._seen_before(item, v, view,
                                 f"DocumentId {doc.document_id} was already used by {doc.sender.organ_id} for a "
                                 "different package; give a new document its own DocumentId",
                                 "MessageHeader/DocumentId")
        if seen:
            return seen
        for rf in doc.response_for:
            if (rf.organ_id, rf.document_id, doc.sender.organ_id) not in view.known:
                self.refuse(item, v, reason="state.unknown_document",
                            message=f"ResponseFor names {rf.document_id} from {rf.organ_id}, which is not a "
                                    f"document {doc.sender.organ_id} sent or received through the hub",
                            element="MessageHeader/ResponseFor/DocumentId")
                return "refused"
        try:
            link = business_link(doc, view.acts_on)
        except HubError as e:
            self.refuse(item, v, reason=e.code, message=e.message, element=e.element)
            return "refused"
        now, user, p = self.now, item.user, self.plan
        view.existing[key] = {"id": None, "sha256": v.sha256}  # in-batch duplicates see it
        p.package(item.body, v.sha256, now)
        # both entries concern the recipients of the deliveries this plan writes with the
        # document (hub.audit.recipients: the index takes them without a read)
        to = [r.recipient for r in v.routes]
        p.records += [
            record_row("package.received", actor=user, document_id=doc.document_id,
                       sender=doc.sender.organ_id, sha256=v.sha256, at=now,
                       details={"size": v.size, "kind": "edoc", "legacy_sha1": v.legacy_sha1,
                                "authenticated_by": v.authenticated_by}, recipients=to),
            record_row("package.accepted", actor=user, document_id=doc.document_id,
                       sender=doc.sender.organ_id, sha256=v.sha256, at=now,
                       details={"recipients": [[r.recipient, r.system] for r in v.routes],
                                "type": doc.document_type.type, "priority": doc.priority,
                                "authenticated_by": v.authenticated_by}, recipients=to),
        ]
        if link is not None:
            p.records += [record_row(EVENTS[link.doc_type], actor=user, document_id=target,
                                     sender=doc.sender.organ_id, sha256=v.sha256, at=now,
                                     details=link.record_details(doc.document_id)) for target, _ in link.targets]
        self._count_accepted(v)
        log.debug("accepted %s from %s", doc.document_id, doc.sender.organ_id,
                  extra={"document_id": doc.document_id, "sender": doc.sender.organ_id})
        index = len(p.documents)
        p.documents.append({
            "sender": doc.sender.organ_id, "document_id": doc.document_id, "kind": "edoc", "sha256": v.sha256,
            "doc_type": doc.document_type.type, "priority": doc.priority, "subject": doc.subject[:2000],
            "refers_to": link.refers_to if link else None, "business_type": link.doc_type if link else None,
            "status_code": None, "adapter_user": user, "legacy_sha1": v.legacy_sha1, "received_at": now,
            "authenticated_by": v.authenticated_by, "due_date": doc.due_date, "code": str(doc.code)[:255] or None,
            "type_name": doc.document_type.type_name[:255] or None})
        # the copy keeps what the follow-up report reads of its document (0038)
        p.deliveries += [(index, {"recipient": r.recipient, "system": r.system, "status": None, "updated_at": now,
                                  "received_at": now, "due_date": doc.due_date, "doc_type": doc.document_type.type})
                         for r in v.routes]
        # The outbox row points at the original package (stored once); the delivered copy
        # (with the hub's TraceHeader) is re-derived from it if it must be published again.
        body = v.relayed or item.body
        for r in v.routes:
            headers = self._headers(item, v, r.recipient, "edoc")
            if v.relayed_at is not None:
                headers[C.H_TRACE_AT] = format_timestamp(v.relayed_at)
            self._queue_out(document=None, new_document=index, exchange=C.EXCHANGE_DELIVER,
                            routing_key=inbox_key(r.system, doc.priority >= 1), body=body, body_sha=v.sha256,
                            intake_sha=v.sha256, headers=headers, priority=min(doc.priority, 9), store=False,
                            source=item.body)
        return "accepted"

    def documents_written(self, ids: Sequence[int], view: StoreView) -> None:
        """The ids the plan's documents got: in-batch statuses and duplicates see them."""
        for row, doc_id in zip(self.plan.documents, ids):
            view.existing[(row["sender"], row["document_id"])]["id"] = doc_id

    def _seen_before(self, item: Intake, v: Verdict, view: StoreView, conflict: str, element: str) -> str | None:
        """(sender, DocumentId) is recorded once: the same bytes again are a duplicate, other bytes a
        conflict. What happened, or None when the DocumentId is new."""
        prior = view.existing.get((v.package.sender.organ_id, v.package.document_id))
        if prior is None:
            return None
        if prior["sha256"] == v.sha256:
            # the same bytes again: acknowledged, recorded as a duplicate, not re-delivered (unfinished
            # outbox rows of the original are finished by the redelivery path or the sweeper)
            self.plan.records.append(record_row(
                "package.duplicate", actor=item.user, document_id=v.package.document_id,
                sender=v.package.sender.organ_id, sha256=v.sha256, at=self.now))
            self.plan.duplicates += 1
            return "duplicate"
        self.refuse(item, v, reason="state.duplicate_conflict", message=conflict, element=element)
        return "refused"

    # --- statuses --------------------------------------------------------------------------

    def status(self, item: Intake, v: Verdict, view: StoreView, about: StatusView) -> StatusWrite | None:
        """Decide one accepted status package against the copies of the document it is about.
        Returns what to write, or None (a duplicate or a refusal, already in the plan)."""
        st: StatusPackage = v.package
        self.mark_seen(item, v, view)
        if self._seen_before(item, v, view,
                             f"a different status {st.status_code} for {st.response_for.document_id} with the same "
                             "timestamp was already recorded", "Status/Timestamp"):
            return None
        rf = st.response_for
        sender = st.sender.organ_id
        keys = document_keys(st)
        orig = about.original
        if orig is None or not saw_document(sender, orig.document["sender"], orig.deliveries, self.registry):
            # never seen = unknown: nothing tells the two apart
            self.refuse(item, v, reason="state.unknown_document",
                        message=f"the status refers to {rf.document_id} from {keys[0][0]}, which is not a "
                                f"document {sender} sent or received through the hub",
                        element=f"{st.container}/ResponseFor/DocumentId")
            return None
        try:
            decision = decide_status(st, orig.document["sender"], orig.document["business_type"], orig.deliveries,
                                     orig.history, self.registry)
        except HubError as e:
            # 15/16 naming the earlier document answer the revocation or update acting on it
            later = self._answered_business(st, about) if e.code == "state.invalid_transition" else None
            if later is None:
                self.refuse(item, v, reason=e.code, message=e.message, element=e.element)
                return None
            orig, decision = later
        return self._accept_status(item, v, view, orig, decision)

    def _answered_business(self, st: StatusPackage, about: StatusView) -> tuple[Copies, StatusDecision] | None:
        """A 15/16 naming a document that nothing there waits for answers the latest revocation or
        update acting on it that accepts it."""
        for later in about.later:
            try:
                return later, decide_status(st, later.document["sender"], later.document["business_type"],
                                            later.deliveries, later.history, self.registry)
            except HubError:
                continue
        return None

    def _accept_status(self, item: Intake, v: Verdict, view: StoreView, orig: Copies,
                       decision: StatusDecision) -> StatusWrite:
        st: StatusPackage = v.package
        sender, now, user = st.sender.organ_id, self.now, item.user
        targets = decision.targets
        self.plan.package(item.body, v.sha256, now)
        view.existing[(sender, st.document_id)] = {"id": None, "sha256": v.sha256}
        document = {
            "sender": sender, "document_id": st.document_id, "kind": "status", "sha256": v.sha256, "priority": 0,
            "refers_to": orig.document["id"], "status_code": st.status_code, "adapter_user": user,
            "legacy_sha1": v.legacy_sha1, "received_at": now, "subject": st.description[:2000] or None,
            "authenticated_by": v.authenticated_by}
        history = [{"delivery": d["id"], "status_code": st.status_code, "actor": sender,
                    "description": st.description or None, "status_document": None, "at": now} for d in targets]
        if decision.recall:
            dests = [(d["recipient"], d["system"]) for d in targets]
        else:
            dests = [(r.recipient, r.system) for r in v.routes]
        outbox = [self._item(document=None, exchange=C.EXCHANGE_DELIVER,
                             routing_key=inbox_key(system, st.status_code in {"02", "13"}),
                             body=item.body, body_sha=v.sha256, intake_sha=v.sha256,
                             headers=self._headers(item, v, recipient, "status"), priority=0)
                  for recipient, system in dests]
        self.plan.records += [
            record_row("package.received", actor=user, document_id=st.document_id, sender=sender,
                       sha256=v.sha256, at=now, details={"size": v.size, "kind": "status",
                                                         "authenticated_by": v.authenticated_by}),
            record_row("status.recorded", actor=user, document_id=st.response_for.document_id, sender=sender,
                       sha256=v.sha256, at=now,
                       details={"status": st.status_code, "original_sender": orig.document["sender"],
                                "recipients": [t[0] for t in dests], "authenticated_by": v.authenticated_by}),
        ]
        self._count_accepted(v)
        return StatusWrite(document, dict(decision.shown), history, outbox)

    def status_written(self, write: StatusWrite, doc_pk: int, view: StoreView) -> None:
        """The id the status's documents row got: its history and outbox rows point at it."""
        view.existing[(write.document["sender"], write.document["document_id"])]["id"] = doc_pk
        for h in write.history:
            h["status_document"] = doc_pk
        for o in write.outbox:
            o.row["document"] = doc_pk
        self.plan.outbox += write.outbox

    # --- refusals --------------------------------------------------------------------------

    def refuse(self, item: Intake, v: Verdict, *, reason: str | None = None, message: str | None = None,
               element: str | None = None) -> None:
        """Record the refusal; answer the publishing system with a hub-signed status 02; dead-letter
        what cannot be parsed or cannot be answered."""
        reason = reason or v.reason or "hub.error"
        message = message or v.message or ""
        element = element or v.element
        msg, user, now, p = item.message, item.user, self.now, self.plan
        registry = self.registry
        system = registry.agency_for_user(user) if user else None
        p.refused += 1
        p.by_reason[reason] = p.by_reason.get(reason, 0) + 1
        log.info("refused %s from %s: %s", v.document_id or v.sha256[:16], v.sender or user or "?", reason,
                 extra={"document_id": v.document_id, "sender": v.sender, "reason": reason, "agency": system})
        stage = v.stage if reason == v.reason else "state"
        details = {"size": v.size, "stage": stage, "element": element, "adapter_system": system,
                   "exchange": msg.exchange, "routing_key": msg.routing_key}
        keep = reason != "parse.too_large"  # the cap exists so that we do not store such bytes
        if keep:
            p.package(msg.body, v.sha256, now)
        p.records.append(record_row(
            "package.refused", actor=user, document_id=v.document_id, sender=v.sender, sha256=v.sha256,
            reason=reason, message=message, details=details, at=now))
        if stage == "parse" or system is None:
            headers = {C.H_REASON: reason, C.H_MESSAGE: message[:1000], C.H_ORIGINAL_EXCHANGE: msg.exchange,
                       C.H_ORIGINAL_ROUTING_KEY: msg.routing_key, C.H_ORIGINAL_USER: user or "",
                       C.H_SHA256: v.sha256, C.H_KIND: "dead"}
            if keep:
                self._queue_out(document=None, exchange=C.EXCHANGE_DEAD, routing_key="", body=msg.body,
                                body_sha=v.sha256, intake_sha=v.sha256, headers=headers, priority=0)
            else:
                p.outbox.append(OutboxItem(None, Outgoing(C.EXCHANGE_DEAD, "", b"", headers=headers,
                                                          user_id=self.hub_user)))
            p.records.append(record_row("package.dead", actor=user, sha256=v.sha256, reason=reason,
                                        message=message, at=now))
            p.dead += 1
        if system is None:
            return
        answer_to = v.sender if v.sender and registry.system_of(v.sender) == system else system
        body, doc_id = build_refusal(self.hub, to_sender=answer_to, document_id=v.document_id, sha256=v.sha256,
                                     reason=reason, message=message)
        headers = {C.H_KIND: "status", C.H_SENDER: self.hub.organ_id, C.H_RECIPIENT: answer_to,
                   C.H_DOCUMENT_ID: doc_id, C.H_SHA256: sha256_hex(body), C.H_REASON: reason,
                   C.H_MESSAGE: message[:1000], "x-edxml-refused-sha256": v.sha256}
        self._queue_out(document=None, exchange=C.EXCHANGE_DELIVER, routing_key=inbox_key(system, True),
                        body=body, body_sha=headers[C.H_SHA256], intake_sha=v.sha256, headers=headers, priority=0)

    # --- helpers ---------------------------------------------------------------------------

    def _count_accepted(self, v: Verdict) -> None:
        self.plan.accepted += 1
        key = v.authenticated_by or "signature"
        self.plan.by_auth[key] = self.plan.by_auth.get(key, 0) + 1

    @staticmethod
    def _headers(item: Intake, v: Verdict, recipient: str, kind: str) -> dict:
        h = {C.H_KIND: kind, C.H_SENDER: v.package.sender.organ_id, C.H_RECIPIENT: recipient,
             C.H_DOCUMENT_ID: v.package.document_id, C.H_SHA256: v.sha256}
        sub = (item.message.headers or {}).get(C.H_SUBMITTED_AT)
        if sub is not None:
            h[C.H_SUBMITTED_AT] = sub
        return h

    def _item(self, *, document: int | None, exchange: str, routing_key: str, body: bytes, body_sha: str,
              intake_sha: str, headers: dict, priority: int, store: bool = True,
              new_document: int | None = None, source: bytes | None = None) -> OutboxItem:
        if store:
            self.plan.package(body, body_sha, self.now)
        lean = None
        if not isinstance(body, (bytes, bytearray, memoryview)):
            lean, body = body, b""
        row = {"document": document, "exchange": exchange, "routing_key": routing_key, "sha256": body_sha,
               "intake_sha256": intake_sha, "headers": headers, "priority": priority, "created_at": self.now}
        return OutboxItem(row, Outgoing(exchange, routing_key, body, headers=headers, priority=priority,
                                        message_id=message_id(headers), user_id=self.hub_user), new_document,
                          source, lean)

    def _queue_out(self, **kw) -> None:
        self.plan.outbox.append(self._item(**kw))
