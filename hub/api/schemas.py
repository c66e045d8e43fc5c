"""The response schemas of the OpenAPI document (``components/schemas``), by name.

Request bodies are pydantic models (``hub.api.models``); these are the answers, tight enough for
schemathesis' ``response_schema_conformance``. Handlers name them in ``Reply``/``response=``.
"""

from __future__ import annotations

# --- small builders -------------------------------------------------------------------------

def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict) -> dict:
    return {**schema, "nullable": True}


STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
TIME = {"type": "string", "format": "date-time"}
# The gateway's times (hub/api/gateway.py) come out without a UTC offset on SQLite, which
# returns naive datetimes: not RFC 3339 date-times. Until it adds the offset, say only what is true.
GATEWAY_TIME = {"type": "string", "format": "date-time", "description": "ISO 8601 time with its UTC offset"}
HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
CODE = {"type": "string", "pattern": r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$", "example": "000.00.00.G22"}


def obj(props: dict, required: list[str] | None = None, **extra) -> dict:
    """An object; every listed property is required unless ``required`` says otherwise."""
    required = list(props) if required is None else required
    return {"type": "object", "properties": props, **({"required": required} if required else {}), **extra}


def arr(items: dict, **extra) -> dict:
    return {"type": "array", "items": items, **extra}


def q(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def p(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


LIMIT = q("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "page size")
OFFSET = q("offset", {"type": "integer", "minimum": 0, "maximum": 1_000_000_000, "default": 0}, "rows to skip")
FOLLOWUP_FILTERS = [
    q("agency", {"type": "string", "maxLength": 200}, "recipient: code, or name (accents and case ignored)"),
    q("sender", {"type": "string", "maxLength": 200}, "sender: code, or name (accents and case ignored)"),
    q("from", {"type": "string", "format": "date"}, "received on or after (Vietnam date)"),
    q("to", {"type": "string", "format": "date"}, "received on or before (Vietnam date)"),
    q("type", {"type": "string", "maxLength": 8}, "DocumentType/Type"),
    q("priority", {"type": "integer", "minimum": 0, "maximum": 4}, "0 normal … 4 express at a set time"),
]
# --- schemas ---------------------------------------------------------------------------------

SCHEMAS: dict = {  # response schemas by name
    "Error": obj({
        "reason": {"type": "string", "description": "stable reason code, e.g. auth.required, parse.not_xml"},
        "message": {"type": "string", "description": "what went wrong and what to do, for humans"},
        "element": nullable({"type": "string", "description": "the element or request field concerned"}),
    }, ["reason", "message"]),
    "Health": obj({"status": {"type": "string", "enum": ["ok"]}, "uptime_seconds": NUM}),
    "Ready": obj({
        "status": {"type": "string", "enum": ["ready", "not ready"]},
        "checks": {"type": "object", "additionalProperties": obj(
            {"ok": BOOL, "error": STR}, ["ok"], description="one dependency; more fields when ok")},
        "age_seconds": {"type": "number", "description": "how long ago the background check finished"},
        "message": STR,
    }, ["status", "checks"]),
    # gateway
    "SubmitAccepted": obj({
        "document_id": STR, "sha256": HEX64, "kind": {"type": "string", "enum": ["edoc", "status"]},
        "recipients": arr(obj({"code": STR, "system": STR})),
        "status": {"type": "string", "enum": ["queued"]}, "message": STR,
    }),
    "InboxPackage": obj({
        "id": {"type": "string", "description": "lease id: acknowledge it with POST /api/v1/inbox/ack"},
        "kind": nullable(STR), "document_id": nullable(STR), "sender": nullable(STR), "recipient": nullable(STR),
        "urgent": BOOL, "reason": nullable(STR), "message": nullable(STR), "sha256": HEX64,
        "package": {"type": "string", "format": "byte", "description": "the signed package, base64"},
    }),
    "Inbox": obj({"packages": arr(ref("InboxPackage")), "lease_seconds": INT, "next": STR}),
    "AckResult": obj({"acknowledged": arr(STR), "unknown": arr(STR)}),
    "StatusEntry": obj({"code": STR, "name": STR, "by": STR, "description": nullable(STR), "at": GATEWAY_TIME}),
    "Document": obj({
        "document_id": STR, "sender": STR, "sha256": HEX64, "type": nullable(STR), "priority": INT,
        "subject": nullable(STR), "received_at": GATEWAY_TIME, "legacy_sha1": BOOL,
        "recipients": arr(obj({"code": STR, "system": STR, "status": nullable(STR),
                               "history": arr(ref("StatusEntry"))})),
        "package": {"type": "string", "format": "byte"},
    }),
    "StatusQueued": obj({"document_id": STR, "status": STR, "queued": {"type": "boolean", "enum": [True]},
                         "message": STR}),
    # admin: agencies
    "Certificate": obj({
        "fingerprint": HEX64, "subject": STR, "not_after": TIME,
        "days_to_expiry": {"type": "integer", "description": "whole days until not_after (negative: expired)"},
        "added_at": TIME, "retired": BOOL, "retired_at": nullable(TIME),
    }),
    "Agency": obj({
        "code": STR, "name": STR, "active": BOOL, "connected": BOOL,
        "served_by": nullable(STR),
        "accepts": nullable(arr(STR, description="DocumentType/Type codes it receives; null = every type")),
        "amqp_user": nullable(STR), "created_at": TIME, "updated_at": TIME,
        "certificates": arr(ref("Certificate")),
    }),
    "AgencyList": obj({"total": INT, "limit": INT, "offset": INT, "agencies": arr(ref("Agency"))}),
    "ImportResult": obj({"added": INT, "updated": INT,
                         "errors": arr(obj({"line": {"type": "integer", "description": "0: not one line"},
                                            "message": STR}))}),
    # admin: trust
    "TrustList": obj({
        "anchors": arr(obj({"fingerprint": HEX64, "subject": STR, "not_after": TIME, "days_to_expiry": INT,
                            "added_at": TIME})),
        "crls": arr(obj({"fingerprint": HEX64, "issuer": STR, "this_update": TIME, "next_update": nullable(TIME),
                         "added_at": TIME})),
    }),
    "AnchorsAdded": obj({"added": arr(obj({"fingerprint": HEX64, "subject": STR, "not_after": TIME}))}),
    "CrlAdded": obj({"fingerprint": HEX64, "issuer": STR, "this_update": TIME, "next_update": nullable(TIME),
                     "revoked": INT}),
    # admin: queues
    "Queue": obj({
        "name": STR,
        "exists": {"type": "boolean", "description": "false: not declared yet (the other fields are null)"},
        "depth": nullable({"type": "integer", "description": "ready messages"}),
        "unacknowledged": nullable({"type": "integer", "description": "delivered, not settled (management only)"}),
        "consumers": nullable(INT),
        "publish_rate": nullable({"type": "number", "description": "messages/s (management API only)"}),
        "deliver_rate": nullable({"type": "number", "description": "messages/s delivered or fetched "
                                                                   "(management API only)"}),
        "oldest_message_age_seconds": nullable({
            "type": "number",
            "description": "age of the head message from the management API's head_message_timestamp. "
                           "RabbitMQ 3.10 gives it only for classic queues whose messages carry a timestamp; "
                           "for the hub's quorum queues (and from passive declares) it is null",
        }),
    }),
    "Queues": obj({"source": {"type": "string", "enum": ["management", "passive"],
                              "description": "management API, or passive declares when it is not reachable "
                                             "(embedded broker, plugin off): then rates are null"},
                   "queues": arr(ref("Queue"))}),
    # admin: deadline follow-up
    "OverdueDocument": obj({
        "document_id": STR, "sender": CODE, "sender_name": STR, "code": {"type": "string",
                                                                          "description": "number/notation"},
        "subject": STR, "doc_type": STR, "type_name": STR, "priority": {"type": "integer", "minimum": 0},
        "received_at": TIME, "due_date": {"type": "string", "format": "date"},
        "days_late": {"type": "integer", "description": "days past the due date (negative: days left)"},
        "status": nullable({"type": "string", "description": "the recipient's current status code"}),
        "status_since": TIME, "waiting_seconds": {"type": "integer", "minimum": 0},
    }),
    "OverdueAgency": obj({
        "agency": STR, "name": STR, "overdue": INT, "due_soon": INT, "worst_days_late": INT,
        "documents": arr(ref("OverdueDocument")),
    }),
    "Overdue": obj({"today": {"type": "string", "format": "date", "description": "today in Vietnam"},
                    "days": INT, "agencies": arr(ref("OverdueAgency"))}),
    "FollowupRow": obj({
        "agency": STR, "name": STR, "received": INT, "on_time": INT, "late": INT, "still_open": INT,
        "open_overdue": INT, "withdrawn": INT,
        "median_handling_hours": nullable({"type": "number", "description": "received → first 06 or 02"}),
    }),
    "FollowupReport": obj({"from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"},
                           "agencies": arr(ref("FollowupRow"))}),
    # admin: dead letters
    "DeadLetter": obj({
        "id": INT, "received_at": TIME, "reason": nullable(STR), "message": nullable(STR),
        "original_user": nullable(STR), "original_exchange": nullable(STR), "original_routing_key": nullable(STR),
        "headers": {"type": "object", "description": "AMQP headers as received"},
        "sha256": nullable(HEX64), "size": INT,
        "state": {"type": "string", "enum": ["pending", "replayed", "discarded"]},
        "settled_at": nullable(TIME), "settled_by": nullable(STR),
    }),
    "DeadLetterList": obj({"total": INT, "limit": INT, "offset": INT, "dead_letters": arr(ref("DeadLetter"))}),
    "ParsedHeader": obj({
        "ok": BOOL,
        "reason": {"type": "string", "description": "when not ok: the parse reason code"},
        "message": {"type": "string", "description": "when not ok: why"},
        "kind": {"type": "string", "enum": ["edoc", "status"]},
        "from": nullable(STR), "to": arr(STR), "document_id": nullable(STR), "type": nullable(STR),
        "subject": nullable(STR), "status_code": nullable(STR),
    }, ["ok"], description="best effort: the header fields, or the parse reason for an unparseable body"),
    "DeadLetterDetail": {"allOf": [ref("DeadLetter"), obj({
        "package": {"type": "string", "format": "byte", "description": "the body, base64"},
        "parsed": ref("ParsedHeader"),
    })]},
    "SettleResult": obj({"done": arr(INT), "skipped": arr(obj({"id": INT, "state": STR}))}),
    # admin: users
    "User": obj({
        "id": STR, "name": STR, "role": {"type": "string", "enum": ["agency", "admin", "auditor"]},
        "agency": nullable(STR), "active": BOOL, "created_at": TIME, "created_by": nullable(STR),
        "revoked_at": nullable(TIME), "last_used_at": nullable(TIME),
    }),
    "UserList": obj({"users": arr(ref("User"))}),
    "UserCreated": obj({
        "id": STR, "name": STR, "role": {"type": "string", "enum": ["agency", "admin", "auditor"]},
        "agency": nullable(STR),
        "token": {"type": "string", "description": "Bearer token; shown this once, stored hashed"},
        "message": STR,
    }),
    # audit (hub/api/audit.py)
    "AuditEntry": obj({
        "seq": INT, "at": TIME, "event": STR, "actor": nullable(STR), "document_id": nullable(STR),
        "sender": nullable(STR), "sha256": nullable(STR), "reason": nullable(STR), "message": nullable(STR),
        "details": nullable({"type": "object"}),
        "leaf_hash": nullable({"type": "string", "description": "the entry's Merkle leaf hash (hex)"}),
    }, ["seq", "at", "event"]),
    "AuditEntries": obj({
        "total": INT, "offset": INT, "limit": nullable(INT), "count": INT, "next_offset": nullable(INT),
        "filters": {"type": "object"}, "entries": arr(ref("AuditEntry")),
    }),
    "Trail": obj({
        "document_id": STR, "sender": nullable(STR),
        "decision": {"type": "string", "enum": ["accepted", "refused", "unknown"]},
        "reason": nullable(STR), "message": nullable(STR),
        "document": nullable(obj({
            "document_id": STR, "sender": STR, "sha256": STR, "type": nullable(STR), "priority": INT,
            "subject": nullable(STR), "received_at": TIME, "adapter_user": nullable(STR), "legacy_sha1": BOOL,
            "package_size": nullable(INT)})),
        "statuses": arr(obj({"document_id": STR, "sender": STR, "code": nullable(STR), "sha256": STR,
                             "received_at": TIME})),
        "recipients": arr(obj({
            "code": STR, "system": STR, "status": nullable(STR), "status_name": nullable(STR),
            "delivered_at": nullable(TIME), "seconds_to_delivery": nullable(NUM),
            "history": arr(obj({"code": STR, "name": STR, "by": STR, "description": nullable(STR), "at": TIME,
                                "seconds_since_previous": nullable(NUM),
                                "seconds_since_received": nullable(NUM)})),
        })),
        "entries": arr({"allOf": [ref("AuditEntry"), obj({
            "seconds_since_previous": nullable(NUM), "seconds_since_first": NUM, "summary": STR})]}),
        "first_at": nullable(TIME), "last_at": nullable(TIME), "seconds_total": nullable(NUM),
    }),
    "Checkpoint": obj({"size": INT, "root": STR, "at": TIME, "key_id": STR,
                       "text": {"type": "string", "description": "the signed checkpoint text"}}),
    "Checkpoints": obj({
        "total": INT, "offset": INT, "limit": INT, "checkpoints": arr(ref("Checkpoint")),
        "hub_certificate": obj({"pem": STR, "sha256": HEX64, "key_id": STR}),
    }),
    "Consistency": obj({
        "old": {"allOf": [ref("Checkpoint"), obj({"signed_root": nullable(STR), "signature_ok": nullable(BOOL),
                                                   "problem": nullable(STR)})]},
        "new": {"allOf": [ref("Checkpoint"), obj({"signed_root": nullable(STR), "signature_ok": nullable(BOOL),
                                                   "problem": nullable(STR)})]},
        "proof": arr(STR), "proof_ok": BOOL, "verified": BOOL,
    }),
    # admin: maintenance
    "Maintenance": obj({
        "state": {"type": "string", "enum": ["running", "stopped", "draining"]},
        "intake_depth": {"type": "integer", "description": "ready messages in hub.intake"},
        "outbox_backlog": {"type": "integer", "description": "deliveries recorded but not yet confirmed"},
        "in_flight": nullable({"type": "integer", "description": "packages the workers of this process hold"}),
        "drained": {"type": "boolean", "description": "nothing queued, in flight or waiting in the outbox"},
    }),
}


PEM_BODY = {"description": "PEM (the media type is not checked)", "required": True,
            "content": {"application/x-pem-file": {"schema": {"type": "string"}},
                        "text/plain": {"schema": {"type": "string"}}}}
DOC_ID = {**p("id", {"type": "string"}, "the DocumentId, URL-encoded (it contains slashes)"),
          "example": "000.00.00.G22,2026/11/27,7816/VPCP-TTĐT"}
SENDER = q("sender", {"type": "string"}, "the sender's code, when several senders used this DocumentId")
CODE_P = p("code", CODE, "agency code")
