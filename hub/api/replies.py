"""The API's answers as pydantic models: the OpenAPI document's response schemas are generated
from them (``hub.api.openapi``), tight enough for schemathesis' ``response_schema_conformance``.
Handlers name them in their declarations (``response=Agency``). A field without a default is
required (``X | None``: required, may be null); one with a default may be absent.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.api.models import CODE_PATTERN

Hex64 = Annotated[str, Field(pattern="^[0-9a-f]{64}$")]
Code = Annotated[str, Field(pattern=CODE_PATTERN, examples=["000.00.00.G22"])]
Base64 = Annotated[str, Field(json_schema_extra={"format": "byte"})]
# The gateway's times come out without a UTC offset on SQLite unless it adds one: say only what is true.
GatewayTime = Annotated[datetime, Field(description="ISO 8601 time with its UTC offset")]
Kind = Literal["edoc", "status"]
Profile = Annotated[Literal["strict", "sdk"], Field(
    description="signatures: strict (XML-DSig, SHA-256+) or sdk (the national SDK's skeleton or no signature, "
                "accepted only over the agency's own authenticated connection)")]
AuthenticatedBy = Annotated[Literal["signature", "signature-sha1", "connection"] | None, Field(
    description="how the package was authenticated (null: recorded before the hub recorded it)")]


class Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class Error(Out):
    reason: str = Field(description="stable reason code, e.g. auth.required, parse.not_xml")
    message: str = Field(description="what went wrong and what to do, for humans")
    element: str | None = Field(None, description="the element or request field concerned")


class Health(Out):
    status: Literal["ok"]
    uptime_seconds: float


class Check(Out):
    """One dependency; more fields when ok."""

    ok: bool
    error: str = None


class Ready(Out):
    status: Literal["ready", "not ready"]
    checks: dict[str, Check]
    age_seconds: float = Field(None, description="how long ago the background check finished")
    message: str = None


# --- gateway ---------------------------------------------------------------------------------

class Recipient(Out):
    code: str
    system: str


class SubmitAccepted(Out):
    document_id: str | None = Field(description="null only when queued")
    sha256: Hex64
    kind: Kind | None = Field(description="null only when queued")
    recipients: list[Recipient]
    status: Literal["recorded", "duplicate", "queued"] = Field(
        description="recorded by the hub; duplicate: the same bytes were recorded before (not delivered again); "
                    "queued: not decided within the wait, the decision reaches the sender's inbox")
    message: str


class BlobLink(Out):
    sha256: Hex64
    size: int
    href: str = Field(description="GET it (same credentials): the package as delivered")


class InboxPackage(Out):
    id: str = Field(description="lease id: acknowledge it with POST /api/v1/inbox/ack")
    kind: str | None
    document_id: str | None
    sender: str | None
    recipient: str | None
    urgent: bool
    reason: str | None
    message: str | None
    sha256: Hex64
    package: Base64 = Field(description="the signed package, base64 (empty when it comes by reference: see blob)")
    blob: BlobLink | None = Field(None, description="a package over HUB_BY_REFERENCE_BYTES: fetch its bytes at href")


class Inbox(Out):
    packages: list[InboxPackage]
    lease_seconds: int
    next: str


class AckResult(Out):
    acknowledged: list[str]
    unknown: list[str]


class StatusEntry(Out):
    code: str
    name: str
    by: str
    description: str | None
    at: GatewayTime


class DocumentRecipient(Out):
    code: str
    system: str
    status: str | None
    history: list[StatusEntry]


class ActsOn(Out):
    """The earlier document this revocation, update or replacement acts on."""

    document_id: str
    sender: str
    action: Literal["revocation", "update", "replacement"]


class ActedOnBy(Out):
    """A later package that revoked, updated or replaced this document."""

    document_id: str
    sender: str
    action: Literal["revoked", "updated", "replaced"]
    at: str


class Document(Out):
    document_id: str
    sender: str
    sha256: Hex64
    type: str | None
    priority: int
    subject: str | None
    received_at: GatewayTime
    legacy_sha1: bool
    authenticated_by: AuthenticatedBy
    acts_on: ActsOn | None
    acted_on_by: list[ActedOnBy]
    recipients: list[DocumentRecipient]
    package: Base64 = Field(description="the package as received, base64 (empty when it is stored by reference: "
                                        "see blob)")
    blob: BlobLink | None = Field(None, description="a package over HUB_BY_REFERENCE_BYTES: its bytes, streamed, "
                                                    "at href (GET /api/v1/packages/{sha256})")


class StatusQueued(Out):
    document_id: str
    status: str | None = Field(description="the status code (null: queued undecided, the package's own)")
    queued: Literal[True]
    message: str


# --- admin: agencies, trust, queues ------------------------------------------------------------

class Certificate(Out):
    fingerprint: Hex64
    subject: str
    not_after: datetime
    days_to_expiry: int = Field(description="whole days until not_after (negative: expired)")
    added_at: datetime
    retired: bool
    retired_at: datetime | None


class Agency(Out):
    code: str
    name: str
    active: bool
    connected: bool
    served_by: str | None
    accepts: list[str] | None = Field(description="DocumentType/Type codes it receives; null = every type")
    amqp_user: str | None
    profile: Profile
    created_at: datetime
    updated_at: datetime
    certificates: list[Certificate]


class AgencyList(Out):
    total: int
    limit: int
    offset: int
    agencies: list[Agency]


class LineError(Out):
    line: int = Field(description="0: not one line")
    message: str


class ImportResult(Out):
    added: int
    updated: int
    errors: list[LineError]


class Anchor(Out):
    fingerprint: Hex64
    subject: str
    not_after: datetime
    days_to_expiry: int
    added_at: datetime


class Crl(Out):
    fingerprint: Hex64
    issuer: str
    this_update: datetime
    next_update: datetime | None
    added_at: datetime


class TrustList(Out):
    anchors: list[Anchor]
    crls: list[Crl]


class AnchorAdded(Out):
    fingerprint: Hex64
    subject: str
    not_after: datetime


class AnchorsAdded(Out):
    added: list[AnchorAdded]


class CrlAdded(Out):
    fingerprint: Hex64
    issuer: str
    this_update: datetime
    next_update: datetime | None
    revoked: int


class Queue(Out):
    name: str
    exists: bool = Field(description="false: not declared yet (the other fields are null)")
    depth: int | None = Field(description="ready messages")
    unacknowledged: int | None = Field(description="delivered, not settled (management only)")
    consumers: int | None
    publish_rate: float | None = Field(description="messages/s (management API only)")
    deliver_rate: float | None = Field(description="messages/s delivered or fetched (management API only)")
    oldest_message_age_seconds: float | None = Field(
        description="age of the head message from the management API's head_message_timestamp. RabbitMQ 3.10 "
                    "gives it only for classic queues whose messages carry a timestamp; for the hub's quorum "
                    "queues (and from passive declares) it is null")


class Queues(Out):
    source: Literal["management", "passive"] = Field(
        description="management API, or passive declares when it is not reachable (embedded broker, plugin off): "
                    "then rates are null")
    queues: list[Queue]


# --- admin: deadline follow-up -------------------------------------------------------------------

class OverdueDocument(Out):
    document_id: str
    sender: Code
    sender_name: str
    code: str = Field(description="number/notation")
    subject: str
    doc_type: str
    type_name: str
    priority: int = Field(ge=0)
    received_at: datetime
    due_date: date
    days_late: int = Field(description="days past the due date (negative: days left)")
    status: str | None = Field(description="the recipient's current status code")
    status_since: datetime
    waiting_seconds: int = Field(ge=0)


class OverdueAgency(Out):
    agency: str
    name: str
    overdue: int
    due_soon: int
    worst_days_late: int
    documents: list[OverdueDocument]


class Overdue(Out):
    today: date = Field(description="today in Vietnam")
    days: int
    total: int = Field(ge=0, description="copies in the whole list (every page)")
    next: str | None = Field(description="pass as `after` for the next copies; null: this answer holds the last")
    agencies: list[OverdueAgency] = Field(description="every recipient with copies in the list, with its totals; "
                                                      "`documents` holds only this answer's copies")


class FollowupRow(Out):
    agency: str
    name: str
    received: int
    on_time: int
    late: int
    still_open: int
    open_overdue: int
    withdrawn: int
    median_handling_hours: float | None = Field(description="received → first 06 or 02")


class FollowupReport(Out):
    from_: date = Field(alias="from")
    to: date
    agencies: list[FollowupRow]


# --- admin: dead letters, users, maintenance ---------------------------------------------------

class DeadLetter(Out):
    id: int
    received_at: datetime
    reason: str | None
    message: str | None
    original_user: str | None
    original_exchange: str | None
    original_routing_key: str | None
    headers: dict = Field(description="AMQP headers as received")
    sha256: Hex64 | None
    size: int
    state: Literal["pending", "replayed", "discarded"]
    settled_at: datetime | None
    settled_by: str | None


class DeadLetterList(Out):
    total: int
    limit: int
    offset: int
    dead_letters: list[DeadLetter]


class ParsedHeader(Out):
    """Best effort: the header fields, or the parse reason for an unparseable body."""

    ok: bool
    reason: str = Field(None, description="when not ok: the parse reason code")
    message: str = Field(None, description="when not ok: why")
    kind: Kind = None
    from_: str | None = Field(None, alias="from")
    to: list[str] = None
    document_id: str | None = None
    type: str | None = None
    subject: str | None = None
    status_code: str | None = None


class DeadLetterDetail(DeadLetter):
    package: Base64 = Field(description="the body, base64 (empty when it is stored by reference: see blob)")
    blob: BlobLink | None = Field(None, description="a package stored by reference: its bytes, streamed, at href")
    parsed: ParsedHeader


class AuthCounts(Out):
    model_config = ConfigDict(populate_by_name=True)

    signature: int
    signature_sha1: int = Field(alias="signature-sha1")
    connection: int
    total: int


class AgencyAuth(AuthCounts):
    code: str
    name: str
    profile: str | None


class AuthReport(Out):
    since: str | None
    until: str | None
    agencies: list[AgencyAuth]
    totals: AuthCounts


class VdxpSystem(Out):
    id: str
    agency: Code
    active: bool
    created_at: datetime
    created_by: str | None
    revoked_at: datetime | None


class VdxpSystemList(Out):
    systems: list[VdxpSystem]


class VdxpSystemCreated(Out):
    id: str
    agency: Code
    endpoint: str
    message: str
    secret: str = Field(None, description="only when generated: shown this once")


class Skipped(Out):
    id: int
    state: str


class SettleResult(Out):
    done: list[int]
    skipped: list[Skipped]


Role = Literal["agency", "admin", "auditor"]


class User(Out):
    id: str
    name: str
    role: Role
    agency: str | None
    active: bool
    created_at: datetime
    created_by: str | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class UserList(Out):
    users: list[User]


class UserCreated(Out):
    id: str
    name: str
    role: Role
    agency: str | None
    token: str = Field(description="Bearer token; shown this once, stored hashed")
    message: str


class Maintenance(Out):
    state: Literal["running", "stopped", "draining"]
    intake_depth: int = Field(description="ready messages in hub.intake")
    outbox_backlog: int = Field(description="deliveries recorded but not yet confirmed")
    in_flight: int | None = Field(description="packages the workers of this process hold")
    drained: bool = Field(description="nothing queued, in flight or waiting in the outbox")


# --- audit -------------------------------------------------------------------------------------

class AuditEntry(Out):
    seq: int
    at: datetime
    event: str
    actor: str | None = None
    document_id: str | None = None
    sender: str | None = None
    sha256: str | None = None
    reason: str | None = None
    message: str | None = None
    details: dict | None = None
    leaf_hash: str | None = Field(None, description="the entry's Merkle leaf hash (hex)")


class AuditEntries(Out):
    total: int = Field(description="entries matching the filters; counted up to 10,000 past this page's end "
                                   "and, on PostgreSQL, for at most 100 ms, beyond which it is a lower bound "
                                   "(see total_is_lower_bound)")
    total_is_lower_bound: bool = Field(
        description="true: more than `total` entries match; counting stopped there (at 10,000 past the page, "
                    "or, when it ran out of time, at this page's own end) so that a busy agency's "
                    "page does not read all of its entries (narrow the filters for an exact total); "
                    "next_offset still leads to the following page")
    offset: int
    limit: int | None
    count: int
    next_offset: int | None
    filters: dict
    entries: list[AuditEntry]


class TrailDocument(Out):
    document_id: str
    sender: str
    sha256: str
    type: str | None
    priority: int
    subject: str | None
    received_at: datetime
    adapter_user: str | None
    legacy_sha1: bool
    package_size: int | None
    authenticated_by: AuthenticatedBy
    acts_on: ActsOn | None
    acted_on_by: list[ActedOnBy]


class TrailStatus(Out):
    document_id: str
    sender: str
    code: str | None
    sha256: str
    received_at: datetime


class TrailStep(Out):
    code: str
    name: str
    by: str
    description: str | None
    at: datetime
    seconds_since_previous: float | None
    seconds_since_received: float | None


class TrailRecipient(Out):
    code: str
    system: str
    status: str | None
    status_name: str | None
    delivered_at: datetime | None
    seconds_to_delivery: float | None
    history: list[TrailStep]


class TrailEntry(AuditEntry):
    seconds_since_previous: float | None
    seconds_since_first: float
    summary: str


class Trail(Out):
    document_id: str
    sender: str | None
    decision: Literal["accepted", "refused", "unknown"]
    reason: str | None
    message: str | None
    document: TrailDocument | None
    statuses: list[TrailStatus]
    recipients: list[TrailRecipient]
    entries: list[TrailEntry]
    first_at: datetime | None
    last_at: datetime | None
    seconds_total: float | None


class Checkpoint(Out):
    size: int
    root: str
    at: datetime
    key_id: str
    text: str = Field(description="the signed checkpoint text")


class HubCertificate(Out):
    pem: str
    sha256: Hex64
    key_id: str


class Checkpoints(Out):
    total: int
    offset: int
    limit: int
    checkpoints: list[Checkpoint]
    hub_certificate: HubCertificate


class CheckedCheckpoint(Checkpoint):
    signed_root: str | None
    signature_ok: bool | None
    problem: str | None


class Consistency(Out):
    old: CheckedCheckpoint
    new: CheckedCheckpoint
    proof: list[str]
    proof_ok: bool
    verified: bool
