"""Table definitions (SQLAlchemy Core). Migrations in ``migrations/versions`` create them."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

class JSONText(str):
    """A JSON value already written as text: a ``WrittenJSON`` column stores it as it is."""

    __slots__ = ()


class WrittenJSON(sa.types.TypeDecorator):
    """JSON (``json`` on PostgreSQL, text on SQLite) that also takes a ``JSONText``, stored as
    written rather than serialised again: the audit log stores an entry's details as the
    canonical text its leaf hash covers (``hub.audit.log``), so that ``hub audit verify`` can
    hash the stored text without parsing and rewriting it. Read back as any JSON column."""

    impl = sa.JSON
    cache_ok = True

    def bind_processor(self, dialect):
        inner = self.impl_instance.dialect_impl(dialect).bind_processor(dialect)

        def process(value):
            if type(value) is JSONText:
                return str(value)
            return inner(value) if inner is not None else value

        return process


Code = sa.String(13)  # NNN.NN.NN.Xnn
TS = sa.DateTime(timezone=True)

# --- registry and trust -------------------------------------------------------------------
agencies = sa.Table(
    "agencies", metadata,
    sa.Column("code", Code, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, server_default=""),
    sa.Column("name_folded", sa.Text, nullable=False, server_default=""),  # hub.registry.fold.fold(name)
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("connected", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("served_by", Code, nullable=True),
    sa.Column("accepts", sa.Text, nullable=True),  # comma-separated DocumentType/Type codes; NULL = all
    sa.Column("amqp_user", sa.String(128), nullable=True),
    sa.Column("profile", sa.String(8), nullable=False, server_default="strict"),  # strict | sdk (signatures)
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

agency_certs = sa.Table(
    "agency_certs", metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("code", Code, sa.ForeignKey("agencies.code"), nullable=False, index=True),
    sa.Column("pem", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("not_after", TS, nullable=False),
    sa.Column("added_at", TS, nullable=False),
    sa.Column("retired_at", TS, nullable=True),
)

trust_anchors = sa.Table(
    "trust_anchors", metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("pem", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("not_after", TS, nullable=False),
    sa.Column("added_at", TS, nullable=False),
)

crls = sa.Table(
    "crls", metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("issuer", sa.Text, nullable=False),
    sa.Column("pem", sa.Text, nullable=False),
    sa.Column("this_update", TS, nullable=False),
    sa.Column("next_update", TS, nullable=True),
    sa.Column("added_at", TS, nullable=False),
)

# Every registry or trust change, one row per agency or trust item it touched, written in the
# transaction that bumps ``registry_version`` (``version`` = the value it bumped it to): an
# instance at an older version reads the rows after it and re-reads only those items
# (hub.registry.feed). ``kind``: agency (item = its code) | anchor | crl (item = the SHA-256) |
# reload (a bulk import: re-read everything). Pruned after HUB_REGISTRY_LOG_HOURS.
registry_changes = sa.Table(
    "registry_changes", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("version", sa.BigInteger, nullable=False, index=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("item", sa.String(64), nullable=False, server_default=""),
    sa.Column("op", sa.String(16), nullable=False),
    sa.Column("at", TS, nullable=False),
)

# A counter bumped by every registry or trust change, so workers know to reload.
settings_kv = sa.Table(
    "hub_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# --- documents, deliveries, outbox, records ------------------------------------------------
packages = sa.Table(  # exact signed bytes, content-addressed
    "packages", metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("stored_at", TS, nullable=False),
)

documents = sa.Table(
    "documents", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("sender", Code, nullable=False),
    sa.Column("document_id", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # edoc | status
    sa.Column("sha256", sa.String(64), sa.ForeignKey("packages.sha256"), nullable=False),
    sa.Column("doc_type", sa.String(8), nullable=True),
    sa.Column("priority", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("subject", sa.Text, nullable=True),
    sa.Column("refers_to", sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.ForeignKey("documents.id"), nullable=True),
    sa.Column("status_code", sa.String(2), nullable=True),  # for status packages
    sa.Column("adapter_user", sa.String(128), nullable=True),
    sa.Column("legacy_sha1", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("received_at", TS, nullable=False),
    # signature | signature-sha1 | connection (hub.pipeline.authentication); NULL before 0010
    sa.Column("authenticated_by", sa.String(16), nullable=True),
    # BussinessDocType of an edoc acting on an earlier one (refers_to): 1 revocation, 2 update, 3 replacement
    sa.Column("business_type", sa.SmallInteger, nullable=True),
    sa.Column("due_date", sa.Date, nullable=True),  # MessageHeader/DueDate: the handling deadline
    sa.Column("code", sa.String(255), nullable=True),  # CodeNumber/CodeNotation, e.g. "12/VPCP-TTĐT"
    sa.Column("type_name", sa.String(255), nullable=True),  # DocumentType/TypeName, e.g. "Công văn"
    sa.UniqueConstraint("sender", "document_id", name="uq_documents_sender_docid"),
)
sa.Index("ix_documents_sender_received", documents.c.sender, documents.c.received_at)
sa.Index("ix_documents_due_date", documents.c.due_date)
sa.Index("ix_documents_received_at", documents.c.received_at)  # 0027: the follow-up report's period
sa.Index("ix_documents_document_id", documents.c.document_id)  # 0027: a document by its DocumentId alone
sa.Index("ix_documents_edoc_received", documents.c.received_at, postgresql_include=["id", "due_date"],
         postgresql_where=sa.text("kind = 'edoc'"), sqlite_where=sa.text("kind = 'edoc'"))  # 0035: the report
_EDOC_DUE = sa.text("kind = 'edoc' AND due_date IS NOT NULL")
sa.Index("ix_documents_edoc_due", documents.c.due_date, documents.c.id,  # 0035: Quá hạn totals
         postgresql_where=_EDOC_DUE, sqlite_where=_EDOC_DUE)

sa.Index("ix_documents_refers_to", documents.c.refers_to)

deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("document", sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.ForeignKey("documents.id"), nullable=False),
    sa.Column("recipient", Code, nullable=False),
    sa.Column("system", Code, nullable=False),  # connected system whose inbox gets it
    sa.Column("status", sa.String(2), nullable=True),  # latest status code from the recipient
    sa.Column("updated_at", TS, nullable=False),
    # 0038: what the follow-up report needs of the copy, kept on it so that a period's copies are
    # read by one index range, without the documents join and one status_history probe per copy.
    # The document's received_at, due_date and doc_type (documents rows never change), and the
    # time of the copy's first answer (hub.followup.rules.ANSWERS), set in the transaction that
    # records it (hub.pipeline.status_rows.write_history).
    sa.Column("received_at", TS, nullable=False),
    sa.Column("due_date", sa.Date, nullable=True),
    sa.Column("doc_type", sa.String(8), nullable=True),
    sa.Column("answered_at", TS, nullable=True),
    sa.UniqueConstraint("document", "recipient", name="uq_deliveries_doc_recipient"),
)
sa.Index("ix_deliveries_recipient", deliveries.c.recipient)
sa.Index("ix_deliveries_received_at", deliveries.c.received_at)  # 0038: the report's period
_OPEN = sa.text("status IS NULL OR status NOT IN ('06', '02', '13', '15')")  # hub.followup.rules.CLOSED
sa.Index("ix_deliveries_open", deliveries.c.recipient, deliveries.c.document,  # 0035: Quá hạn
         postgresql_where=_OPEN, sqlite_where=_OPEN)
sa.Index("ix_deliveries_open_due", deliveries.c.due_date, deliveries.c.id, deliveries.c.recipient,  # 0039: Quá hạn
         postgresql_where=_OPEN, sqlite_where=_OPEN)

status_history = sa.Table(
    "status_history", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("delivery", sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.ForeignKey("deliveries.id"), nullable=False, index=True),
    sa.Column("status_code", sa.String(2), nullable=False),
    sa.Column("actor", Code, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("status_document", sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.ForeignKey("documents.id"), nullable=True),
    sa.Column("at", TS, nullable=False),
)
_ANSWERS = sa.text("status_code IN ('06', '02')")  # hub.followup.rules.ANSWERS
sa.Index("ix_status_history_answers", status_history.c.delivery, status_history.c.at,  # 0035: first answers
         postgresql_where=_ANSWERS, sqlite_where=_ANSWERS)

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("document", sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.ForeignKey("documents.id"), nullable=True, index=True),
    sa.Column("exchange", sa.String(64), nullable=False),
    sa.Column("routing_key", sa.String(64), nullable=False),
    sa.Column("sha256", sa.String(64), sa.ForeignKey("packages.sha256"), nullable=False),
    sa.Column("intake_sha256", sa.String(64), nullable=False, index=True),  # the intake message it answers
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("sent_at", TS, nullable=True),
)
sa.Index("ix_outbox_pending", outbox.c.sent_at, outbox.c.id)

# Exactly-once recording: one row per intake message recorded (its digest and the broker user
# that published it), written in the batch's transaction with everything the message caused.
# A redelivery, or a retry after a commit whose reply was lost, finds it and only finishes the
# outbox (hub.pipeline.decide), whether or not the audit log is kept.
intake_seen = sa.Table(
    "intake_seen", metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),  # SHA-256 of the intake message's body
    sa.Column("adapter_user", sa.String(128), primary_key=True),  # the publisher as the checks saw it ("" = none)
    sa.Column("recorded_at", TS, nullable=False),
)
sa.Index("ix_intake_seen_recorded_at", intake_seen.c.recorded_at)  # 0036: pruned by age (hub.pipeline.retention)

records = sa.Table(  # the audit log: every decision and change, append-only (hub.audit.log)
    "records", metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
    sa.Column("at", TS, nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(128), nullable=True),
    sa.Column("document_id", sa.String(255), nullable=True),
    sa.Column("sender", Code, nullable=True),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("reason", sa.String(64), nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("details", WrittenJSON, nullable=True),  # as the leaf covers it (hub.audit.entry.canonical_details)
    sa.Column("leaf_hash", sa.String(64), nullable=False),  # hub.audit.entry.entry_leaf, hex
)
sa.Index("ix_records_document", records.c.document_id,  # equality and prefixes (0041)
         postgresql_ops={"document_id": "varchar_pattern_ops"})
sa.Index("ix_records_sender_at", records.c.sender, records.c.at)
sa.Index("ix_records_reason", records.c.reason)

checkpoints = sa.Table(  # signed tree heads of the audit log (append-only)
    "checkpoints", metadata,
    sa.Column("size", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
    sa.Column("root", sa.String(64), nullable=False),  # hex
    sa.Column("at", TS, nullable=False),
    sa.Column("key_id", sa.String(8), nullable=False),
    sa.Column("text", sa.Text, nullable=False),  # the portable signed note (hub.audit.checkpoint)
    sa.Column("frontier", sa.Text, nullable=False),  # CompactRange JSON, to resume sealing
)
sa.Index("ix_records_event_at", records.c.event, records.c.at)

# 0040: who each audit entry concerns (the recipient search's rule, hub.audit.query), one row per
# (recipient, entry), written by the append in the entry's transaction (hub.audit.recipients); not
# part of the hashed entry: a recipient's entries newest first are one range of this primary key
audit_recipients = sa.Table(
    "audit_recipients", metadata,
    sa.Column("recipient", Code, primary_key=True),
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)
# 0034, PostgreSQL only (pg_trgm): the console's search by part of a DocumentId, lower(document_id) LIKE '%…%'
sa.Index("ix_records_document_trgm", sa.func.lower(records.c.document_id), postgresql_using="gin",
         postgresql_ops={"lower_1": "gin_trgm_ops"}).ddl_if(dialect="postgresql")

# Counters kept as rows are appended, in the same transaction (hub.store.counts), so that the
# console's overview never counts the whole log or every document (issue 15, national size).
record_counts = sa.Table(  # audit entries per event and per hour of their time; hour -1: the whole log
    "record_counts", metadata,
    sa.Column("event", sa.String(32), primary_key=True),
    sa.Column("hour", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
    sa.Column("n", sa.BigInteger, nullable=False),
)
document_counts = sa.Table(  # documents rows per sender, and how they were authenticated
    "document_counts", metadata,
    sa.Column("sender", Code, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("sha1", sa.BigInteger, nullable=False),  # legacy_sha1
    sa.Column("connection", sa.BigInteger, nullable=False),  # authenticated_by = 'connection'
)

merkle_nodes = sa.Table(  # perfect subtree hashes of the sealed audit log (append-only, hub.audit.nodes)
    "merkle_nodes", metadata,
    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),  # >= 1 (level 0: records.leaf_hash)
    sa.Column("idx", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
    sa.Column("hash", sa.String(64), nullable=False),  # hex MTH of leaves idx*2**level .. (idx+1)*2**level - 1
)


# --- HTTP API ---------------------------------------------------------------------------------
api_users = sa.Table(  # bearer tokens, stored hashed (SHA-256 of a 256-bit random secret)
    "api_users", metadata,
    sa.Column("id", sa.String(16), primary_key=True),  # public token id (the token is hub_<id>_<secret>)
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),  # agency | admin | auditor
    sa.Column("agency", Code, nullable=True),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=True),
    sa.Column("revoked_at", TS, nullable=True),
    sa.Column("last_used_at", TS, nullable=True),
)

console_sessions = sa.Table(  # the console's sign-ins: the cookie holds a random id, stored here hashed
    "console_sessions", metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),  # SHA-256 of the cookie's random session id
    sa.Column("user_id", sa.String(16), sa.ForeignKey("api_users.id"), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False),  # absolute: signing in again is the only renewal
    sa.Column("ended_at", TS, nullable=True),  # signed out
)

dead_letters = sa.Table(  # what reached hub.dead, kept for admins to inspect, replay or discard
    "dead_letters", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("received_at", TS, nullable=False),
    sa.Column("reason", sa.String(64), nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("original_user", sa.String(128), nullable=True),
    sa.Column("original_exchange", sa.String(64), nullable=True),
    sa.Column("original_routing_key", sa.String(128), nullable=True),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("sha256", sa.String(64), sa.ForeignKey("packages.sha256"), nullable=True),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending | replayed | discarded
    sa.Column("settled_at", TS, nullable=True),
    sa.Column("settled_by", sa.String(128), nullable=True),
)
sa.Index("ix_dead_letters_state", dead_letters.c.state, dead_letters.c.id)

gateway_seen = sa.Table(  # packages the HTTP gateway handed over (each once per agency)
    "gateway_seen", metadata,
    sa.Column("agency", Code, primary_key=True),
    sa.Column("message_id", sa.String(400), primary_key=True),
    sa.Column("at", TS, nullable=False),
)

intake_decisions = sa.Table(  # the worker's decision on a package an HTTP entry point handed over (hub.pipeline.submit)
    "intake_decisions", metadata,
    sa.Column("submit_id", sa.String(64), primary_key=True),  # x-hub-submit-id of the intake message
    sa.Column("decided_at", TS, nullable=False, index=True),
    sa.Column("decision", sa.JSON, nullable=False),  # hub.pipeline.submit.Decision.as_json()
)

gateway_leases = sa.Table(  # packages GET /api/v1/inbox handed out, kept until POST /inbox/ack (any instance)
    "gateway_leases", metadata,
    sa.Column("agency", Code, primary_key=True),
    sa.Column("message_key", sa.String(400), primary_key=True),  # as gateway_seen.message_id
    sa.Column("lease_id", sa.String(32), nullable=False, unique=True),  # new at each hand-out
    sa.Column("urgent", sa.Boolean, nullable=False),
    sa.Column("sha256", sa.String(64), sa.ForeignKey("packages.sha256"), nullable=False),  # the delivered copy
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("leased_until", TS, nullable=False),  # past it, the next GET of the agency hands it out again
)
sa.Index("ix_gateway_leases_due", gateway_leases.c.agency, gateway_leases.c.urgent, gateway_leases.c.leased_until)

hub_secrets = sa.Table(  # random keys every hub instance shares (e.g. the console's CSRF key: hub.web.auth)
    "hub_secrets", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

# --- VDXP: the national axis's own HTTP protocol (hub/vdxp) ---------------------------------
vdxp_systems = sa.Table(  # systems that speak VDXP; the HMAC secret is kept encrypted (hub.vdxp.keys)
    "vdxp_systems", metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the client's `systemid`
    sa.Column("agency", Code, nullable=False),  # it acts for this agency and the agencies it serves
    sa.Column("secret_enc", sa.LargeBinary, nullable=False),  # AES-GCM nonce || ciphertext, AAD = id
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=True),
    sa.Column("revoked_at", TS, nullable=True),
)

vdxp_sent = sa.Table(  # each package a system handed over with sendEdoc: the DocId it got
    "vdxp_sent", metadata,
    sa.Column("doc_id", sa.String(36), primary_key=True),  # the hub's id, answered as DocId
    sa.Column("system", sa.String(64), nullable=False),
    sa.Column("agency", Code, nullable=False),  # the system's agency (the list is per agency)
    sa.Column("sha256", sa.String(64), nullable=False),  # of the file as sent (without the SDK's CRLF)
    sa.Column("document_id", sa.String(255), nullable=False),
    sa.Column("sender", Code, nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # edoc | status
    sa.Column("recipients", sa.Text, nullable=False),  # comma-separated codes, as routed at once
    sa.Column("sent_at", TS, nullable=False),
    sa.UniqueConstraint("system", "sha256", "document_id", name="uq_vdxp_sent_dedupe"),
)
sa.Index("ix_vdxp_sent_agency", vdxp_sent.c.agency, vdxp_sent.c.sent_at)

vdxp_inbox = sa.Table(  # what arrived in a VDXP system's inbox, listed until acknowledged `done`
    "vdxp_inbox", metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # the docId the client lists, fetches and acknowledges
    sa.Column("owner", Code, nullable=False),  # the connected agency whose inbox it came from
    sa.Column("message_key", sa.String(400), nullable=False),  # kind:sender:DocumentId:recipient
    sa.Column("kind", sa.String(8), nullable=False),  # edoc | status (refusals are statuses)
    sa.Column("urgent", sa.Boolean, nullable=False),
    sa.Column("sender", sa.String(64), nullable=True),
    sa.Column("recipient", sa.String(64), nullable=True),
    sa.Column("document_id", sa.String(255), nullable=True),
    sa.Column("sha256", sa.String(64), sa.ForeignKey("packages.sha256"), nullable=False),  # the delivered copy
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # initial | fetched | processing | fail | done | dead
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("fetched", sa.Boolean, nullable=False, server_default=sa.false()),  # since the last fail
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("owner", "message_key", name="uq_vdxp_inbox_key"),
)
sa.Index("ix_vdxp_inbox_list", vdxp_inbox.c.owner, vdxp_inbox.c.kind, vdxp_inbox.c.state)

# --- large packages by reference (revision 0024, hub.store.blobs) --------------------------
blobs = sa.Table(  # one row per complete blob, written after its chunks
    "blobs", metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("chunks", sa.Integer, nullable=False),
    sa.Column("stored_at", TS, nullable=False),
)

blob_chunks = sa.Table(
    "blob_chunks", metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

blob_grants = sa.Table(  # who may fetch a blob over HTTP: the recipients it was delivered to
    "blob_grants", metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("agency", Code, primary_key=True),
)
