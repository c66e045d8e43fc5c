"""The OpenAPI 3.0.3 document at /api/v1/openapi.json (no authentication).

Hand-written, so it says what the handlers really do: every route of the app, every status
code each can answer, and response schemas tight enough for schemathesis'
``response_schema_conformance``. ``tests/api/test_schemathesis.py`` holds the server to it
and a test checks that it lists exactly the app's routes.
"""

from __future__ import annotations

import json

from aiohttp import web

routes = web.RouteTableDef()

JSON = "application/json"


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


def json_body(schema: dict, description: str = "") -> dict:
    return {"description": description or "JSON", "content": {JSON: {"schema": schema}}}


ERRORS = {
    400: ("BadRequest", "The request is malformed; `element` names the field where it can"),
    401: ("Unauthorized", "No credentials, or the token is unknown or revoked"),
    403: ("Forbidden", "The caller's role may not do this (or, for packages, the sender may not)"),
    404: ("NotFound", "No such resource that the caller may see"),
    409: ("Conflict", "The resource's state does not allow this"),
    413: ("TooLarge", "The body exceeds the size limit"),
    415: ("UnsupportedMediaType", "The body's Content-Type is not one this operation takes"),
    422: ("Unprocessable", "The package is not acceptable (schema, signature, trust)"),
    503: ("Unavailable", "Maintenance, or the broker is unavailable; retry later"),
}


def op(summary: str, ok: dict, errors: tuple[int, ...], *, roles: tuple[str, ...] | None = None,
       body: dict | None = None, params: list[dict] | None = None, tag: str = "admin",
       description: str = "") -> dict:
    """An operation with its error responses: 401 always (a bad token is refused even on a public
    route), 403 when ``roles`` limit it (None = public), 413 when it takes a body."""
    responses = dict(ok)
    codes = set(errors)
    # 401 everywhere: even a public route refuses an Authorization header with a bad token
    codes.add(401)
    if roles is not None:
        codes.add(403)
    if body is not None:
        codes.add(413)
    for code in sorted(codes):
        responses[str(code)] = {"$ref": f"#/components/responses/{ERRORS[code][0]}"}
    o: dict = {"summary": summary, "tags": [tag], "responses": responses}
    if description or roles:
        who = f"Roles: {', '.join(roles)}." if roles else ""
        o["description"] = (description + ("\n\n" if description and who else "") + who).strip()
    if roles is None:
        o["security"] = []
    if body is not None:
        o["requestBody"] = body
    if params:
        o["parameters"] = params
    return o


def ok(status: int, schema: dict, description: str = "OK", media: str = JSON) -> dict:
    return {str(status): {"description": description, "content": {media: {"schema": schema}}}}


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
AGENCY = ("agency",)
READERS = ("admin", "auditor")
AUDITORS = ("auditor", "admin")
ADMIN = ("admin",)
ALL_ROLES = ("agency", "auditor", "admin")


# --- schemas ---------------------------------------------------------------------------------

SCHEMAS: dict = {
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
    "AckRequest": obj({"ids": arr(STR, description="lease ids from GET /api/v1/inbox")},
                      example={"ids": ["c2VlIHRoZSBpbmJveA"]}),
    "AckResult": obj({"acknowledged": arr(STR), "unknown": arr(STR)}),
    "AuthenticatedBy": nullable({"type": "string", "enum": ["signature", "signature-sha1", "connection", None],
                                 "description": "how the package was authenticated (null: recorded before "
                                                "the hub recorded it)"}),
    "ActsOn": nullable(obj({"document_id": STR, "sender": STR,
                            "action": {"type": "string", "enum": ["revocation", "update", "replacement"]}},
                           description="the earlier document this revocation, update or replacement acts on")),
    "ActedOnBy": obj({"document_id": STR, "sender": STR,
                      "action": {"type": "string", "enum": ["revoked", "updated", "replaced"]}, "at": STR},
                     description="a later package that revoked, updated or replaced this document"),
    "StatusEntry": obj({"code": STR, "name": STR, "by": STR, "description": nullable(STR), "at": GATEWAY_TIME}),
    "Document": obj({
        "document_id": STR, "sender": STR, "sha256": HEX64, "type": nullable(STR), "priority": INT,
        "subject": nullable(STR), "received_at": GATEWAY_TIME, "legacy_sha1": BOOL,
        "authenticated_by": ref("AuthenticatedBy"),
        "acts_on": ref("ActsOn"), "acted_on_by": arr(ref("ActedOnBy")),
        "recipients": arr(obj({"code": STR, "system": STR, "status": nullable(STR),
                               "history": arr(ref("StatusEntry"))})),
        "package": {"type": "string", "format": "byte"},
    }),
    "StatusRequest": obj({
        "code": {"type": "string", "enum": ["01", "02", "03", "04", "05", "06", "13", "15", "16"]},
        "reason": {"type": "string", "description": "required for 02 (rejected)"},
        "package": {"type": "string", "format": "byte",
                    "description": "a status package signed by the caller, base64 (instead of code/reason)"},
    }, [], description="either `package`, or `code` (and `reason`) for the gateway to sign with the key it holds",
        example={"code": "01"}),
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
        "amqp_user": nullable(STR), "profile": ref("Profile"), "created_at": TIME, "updated_at": TIME,
        "certificates": arr(ref("Certificate")),
    }),
    "Profile": {"type": "string", "enum": ["strict", "sdk"],
                "description": "signatures: strict (XML-DSig, SHA-256+) or sdk (the national SDK's skeleton or no "
                               "signature, accepted only over the agency's own authenticated connection)"},
    "AuthCounts": obj({"signature": INT, "signature-sha1": INT, "connection": INT, "total": INT}),
    "AuthReport": obj({
        "since": nullable(STR), "until": nullable(STR),
        "agencies": arr(obj({"code": STR, "name": STR, "profile": nullable(STR), "signature": INT,
                             "signature-sha1": INT, "connection": INT, "total": INT})),
        "totals": ref("AuthCounts"),
    }),
    "AgencyList": obj({"total": INT, "limit": INT, "offset": INT, "agencies": arr(ref("Agency"))}),
    "Accepts": nullable({
        "oneOf": [
            arr({"type": "string", "pattern": "^[0-9]{1,3}$"}, minItems=1),
            {"type": "string", "description": "comma-separated codes, or * for every type"},
        ],
        "description": "DocumentType/Type codes the agency receives; null or \"*\" = every type",
    }),
    "AgencyInput": obj({
        "code": CODE, "name": STR,
        "certificates": arr({"type": "string", "description": "PEM certificate"},
                            description="signing certificates to pin"),
        "accepts": ref("Accepts"), "served_by": nullable(CODE),
        "connected": nullable({"type": "boolean", "description": "own system (adapter, inbox); "
                                                                 "default: true unless served_by"}),
        "amqp_user": nullable({"type": "string", "maxLength": 128}),
        "profile": nullable(ref("Profile")),
    }, ["code"], additionalProperties=False,
        example={"code": "000.00.00.H77", "name": "UBND tỉnh H77", "accepts": ["1", "2"]}),
    "AgencyPatch": obj({
        "name": nullable(STR), "accepts": ref("Accepts"),
        "served_by": nullable(CODE), "connected": BOOL,
        "amqp_user": {"type": "string", "minLength": 1, "maxLength": 128},
        "add_certificates": arr({"type": "string", "description": "PEM certificate"}),
        "retire_certificates": arr({"type": "string", "description": "SHA-256 fingerprint"}),
        "active": {"type": "boolean", "enum": [True], "description": "reactivate a retired agency"},
        "profile": ref("Profile"),
    }, [], additionalProperties=False, minProperties=1, example={"name": "Văn phòng Chính phủ", "accepts": None}),
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
    "SettleRequest": obj({"ids": arr({"type": "integer", "minimum": 1}, minItems=1, maxItems=1000)},
                         additionalProperties=False, example={"ids": [1]}),
    "SettleResult": obj({"done": arr(INT), "skipped": arr(obj({"id": INT, "state": STR}))}),
    # admin: users
    "User": obj({
        "id": STR, "name": STR, "role": {"type": "string", "enum": ["agency", "admin", "auditor"]},
        "agency": nullable(STR), "active": BOOL, "created_at": TIME, "created_by": nullable(STR),
        "revoked_at": nullable(TIME), "last_used_at": nullable(TIME),
    }),
    "UserList": obj({"users": arr(ref("User"))}),
    # admin: VDXP systems (hub/vdxp)
    "VdxpSystem": obj({"id": STR, "agency": CODE, "active": BOOL, "created_at": TIME, "created_by": nullable(STR),
                       "revoked_at": nullable(TIME)}),
    "VdxpSystemList": obj({"systems": arr(ref("VdxpSystem"))}),
    "VdxpSystemInput": obj({
        "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", "description": "the client's systemid"},
        "agency": {**CODE, "description": "the agency it acts for (and those that agency serves)"},
        "secret": {"type": "string", "minLength": 16, "maxLength": 200,
                   "description": "the secret the client already has; omitted: the hub generates one"},
    }, ["id", "agency"], additionalProperties=False, example={"id": "vxp.saas.02", "agency": "000.00.00.H41"}),
    "VdxpSystemCreated": obj({"id": STR, "agency": CODE, "endpoint": STR, "message": STR,
                              "secret": {"type": "string", "description": "only when generated: shown this once"}},
                             ["id", "agency", "endpoint", "message"]),
    "UserInput": obj({
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "role": {"type": "string", "enum": ["agency", "admin", "auditor"]},
        "agency": nullable({**CODE, "description": "for role agency: the agency it acts for"}),
    }, ["name", "role"], additionalProperties=False, example={"name": "auditor-2", "role": "auditor"}),
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
            "package_size": nullable(INT), "authenticated_by": ref("AuthenticatedBy"),
            "acts_on": ref("ActsOn"), "acted_on_by": arr(ref("ActedOnBy"))})),
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
    "MaintenanceRequest": obj({"action": {
        "type": "string", "enum": ["stop", "drain", "resume"],
        "description": "stop: take nothing new and stop consuming intake; drain: take nothing new, finish "
                       "what is queued; resume: back to normal",
    }}, additionalProperties=False, example={"action": "resume"}),
}

RESPONSES = {
    name: {"description": text, "content": {JSON: {"schema": ref("Error")}}}
    for name, text in ERRORS.values()
}

PEM_BODY = {"description": "PEM (the media type is not checked)", "required": True,
            "content": {"application/x-pem-file": {"schema": {"type": "string"}},
                        "text/plain": {"schema": {"type": "string"}}}}


# --- paths -----------------------------------------------------------------------------------

DOC_ID = {**p("id", {"type": "string"}, "the DocumentId, URL-encoded (it contains slashes)"),
          "example": "000.00.00.G22,2026/11/27,7816/VPCP-TTĐT"}
SENDER = q("sender", {"type": "string"}, "the sender's code, when several senders used this DocumentId")
CODE_P = p("code", CODE, "agency code")

PATHS: dict = {
    "/healthz": {"get": op("Alive", ok(200, ref("Health")), (), tag="operations")},
    "/readyz": {"get": op("Ready: consuming hub.intake, database, broker and hub identity (checked in the "
                          "background every second; answered at once)", {
        **ok(200, ref("Ready")), **ok(503, ref("Ready"), "Not ready: a dependency failed")}, (), tag="operations")},
    "/metrics": {"get": op("Prometheus metrics", ok(200, {"type": "string"}, "Prometheus text format",
                                                    media="text/plain"), (), tag="operations")},
    "/api/v1/openapi.json": {"get": op("This document", ok(200, {"type": "object"}), (), tag="operations")},
    "/api/v1/documents": {"post": op(
        "Submit a signed package", ok(202, ref("SubmitAccepted"), "Checked and queued"),
        (400, 403, 415, 422, 503), roles=AGENCY, tag="gateway",
        body={"description": "the signed edXML package, as signed: Content-Type application/xml, text/xml or "
                             "application/octet-stream (anything else is 415 http.unsupported_media_type)",
              "required": True,
              "content": {"application/xml": {"schema": {"type": "string"}},
                          "text/xml": {"schema": {"type": "string"}},
                          "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        description="Runs every stateless check at once: 400 parse, 413 too large, 422 schema/signature/trust, "
                    "403 authority; 503 in maintenance.")},
    "/api/v1/inbox": {"get": op(
        "Pending packages, urgent first, leased until acknowledged", ok(200, ref("Inbox")), (400, 409, 503),
        roles=AGENCY, tag="gateway",
        params=[q("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "at most this many")],
        description="409 when the agency has no own system (its packages go to the system that serves it).")},
    "/api/v1/inbox/ack": {"post": op(
        "Acknowledge leased packages", {**ok(200, ref("AckResult"), "All acknowledged"),
                                        **ok(207, ref("AckResult"), "Some ids were unknown or expired")},
        (400,), roles=AGENCY, tag="gateway", body=json_body(ref("AckRequest")))},
    "/api/v1/documents/{id}": {"get": op(
        "A document the caller sent or received, with each recipient's status history",
        ok(200, ref("Document")), (400, 404), roles=ALL_ROLES, tag="gateway", params=[DOC_ID, SENDER],
        description="400 when several senders used the DocumentId (add ?sender=).")},
    "/api/v1/documents/{id}/status": {"post": op(
        "Send a status for a received document", ok(202, ref("StatusQueued"), "Checked and queued"),
        (400, 404, 409, 422, 503), roles=AGENCY, tag="gateway", params=[DOC_ID, SENDER],
        body=json_body(ref("StatusRequest")))},
    # admin
    "/api/v1/admin/agencies": {
        "get": op("List or search agencies", ok(200, ref("AgencyList")), (400,), roles=READERS, params=[
            q("search", {"type": "string", "maxLength": 200}, "part of the code or name"), LIMIT, OFFSET,
            q("connected", {"type": "boolean"}, "true: only agencies with their own system; false: only the others"),
        ]),
        "post": op("Register an agency", ok(201, ref("Agency"), "Registered"), (400, 409), roles=ADMIN,
                   body=json_body(ref("AgencyInput"))),
    },
    "/api/v1/admin/auth-report": {"get": op(
        "How each agency's packages were authenticated", ok(200, ref("AuthReport")), (400,), roles=READERS,
        params=[q("since", {"type": "string"}, "ISO 8601 date or time (UTC if no offset); default: the beginning"),
                q("until", {"type": "string"}, "ISO 8601, exclusive; default: now"),
                q("agency", CODE, "only this sender")],
        description="Accepted packages per sender: signature, signature-sha1 or connection (unsigned, accepted "
                    "only over the sender's own connection under the sdk profile).")},
    "/api/v1/admin/agencies/import": {"post": op(
        "Import a directory CSV", ok(200, ref("ImportResult")), (400,), roles=ADMIN,
        body={"description": "CSV with a header row: code,name[,served_by][,accepts][,connected]", "required": True,
              "content": {"text/csv": {"schema": {"type": "string"}}}},
        description="Good lines are upserted; bad ones are reported by line and skipped.")},
    "/api/v1/admin/agencies/{code}": {
        "get": op("One agency with its certificates", ok(200, ref("Agency")), (400, 404), roles=READERS,
                  params=[CODE_P]),
        "patch": op("Change an agency", ok(200, ref("Agency")), (400, 404, 409), roles=ADMIN, params=[CODE_P],
                    body=json_body(ref("AgencyPatch")),
                    description="Absent fields stay; served_by null clears it. 409 for a retired agency "
                                "unless active is true."),
    },
    "/api/v1/admin/agencies/{code}/retire": {"post": op(
        "Retire an agency", ok(200, ref("Agency")), (400, 404), roles=ADMIN, params=[CODE_P])},
    "/api/v1/admin/trust": {"get": op("Trust anchors and CRLs", ok(200, ref("TrustList")), (), roles=READERS)},
    "/api/v1/admin/trust/anchors": {"post": op(
        "Trust CA certificate(s)", ok(201, ref("AnchorsAdded"), "Added"), (400,), roles=ADMIN, body=PEM_BODY)},
    "/api/v1/admin/trust/crls": {"post": op(
        "Add a CRL signed by a trusted CA", ok(201, ref("CrlAdded"), "Added"), (400,), roles=ADMIN,
        body={"description": "CRL, PEM or DER (the media type is not checked)", "required": True,
              "content": {"application/pkix-crl": {"schema": {"type": "string", "format": "binary"}},
                          "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                          "application/x-pem-file": {"schema": {"type": "string"}},
                          "text/plain": {"schema": {"type": "string"}}}})},
    "/api/v1/admin/queues": {"get": op(
        "Every inbox, hub.intake and hub.dead", ok(200, ref("Queues")), (503,), roles=READERS,
        description="From the RabbitMQ management API when reachable, else passive declares (rates null).")},
    "/api/v1/admin/followup/overdue": {"get": op(
        "Documents past their due date (or due soon) that a recipient has not finished, by recipient",
        ok(200, ref("Overdue")), (400,), roles=READERS, params=[
            q("days", {"type": "integer", "minimum": 0, "maximum": 365, "default": 3}, "also those due within"),
            *FOLLOWUP_FILTERS])},
    "/api/v1/admin/followup/report": {"get": op(
        "Per recipient agency: received, answered on time, late, still open, median handling time",
        ok(200, ref("FollowupReport")), (400,), roles=READERS, params=FOLLOWUP_FILTERS,
        description="Documents received from `from` to `to` (Vietnam dates, inclusive; default this month).")},
    "/api/v1/admin/dead-letters": {"get": op(
        "Dead letters", ok(200, ref("DeadLetterList")), (400,), roles=READERS, params=[
            q("state", {"type": "string", "enum": ["pending", "replayed", "discarded", "all"],
                        "default": "pending"}, "which"), LIMIT, OFFSET])},
    "/api/v1/admin/dead-letters/{id}": {"get": op(
        "One dead letter with its body and parsed header", ok(200, ref("DeadLetterDetail")), (400, 404),
        roles=READERS, params=[p("id", {"type": "integer"}, "dead letter id")])},
    "/api/v1/admin/dead-letters/replay": {"post": op(
        "Replay pending dead letters to intake, as their original adapter", ok(200, ref("SettleResult")),
        (400, 503), roles=ADMIN, body=json_body(ref("SettleRequest")))},
    "/api/v1/admin/dead-letters/discard": {"post": op(
        "Discard pending dead letters", ok(200, ref("SettleResult")), (400,), roles=ADMIN,
        body=json_body(ref("SettleRequest")))},
    "/api/v1/admin/users": {
        "get": op("API users (never their tokens)", ok(200, ref("UserList")), (), roles=READERS),
        "post": op("Create a user; the token is shown once", ok(201, ref("UserCreated"), "Created"), (400, 409),
                   roles=ADMIN, body=json_body(ref("UserInput")),
                   description="409 when an active user already has the name (user names are unique)."),
    },
    "/api/v1/admin/vdxp/systems": {
        "get": op("VDXP systems (never their secrets)", ok(200, ref("VdxpSystemList")), (), roles=READERS),
        "post": op("Register a VDXP system; a generated secret is shown once", ok(201, ref("VdxpSystemCreated"),
                                                                                  "Created"),
                   (400, 409), roles=ADMIN, body=json_body(ref("VdxpSystemInput"))),
    },
    "/api/v1/admin/vdxp/systems/{id}/revoke": {"post": op(
        "Revoke a VDXP system: its requests are refused from now on", ok(200, ref("VdxpSystem")), (400, 404, 409),
        roles=ADMIN, params=[p("id", {"type": "string"}, "system id")])},
    "/api/v1/admin/users/{id}/revoke": {"post": op(
        "Revoke a user's token", ok(200, ref("User")), (400, 404, 409), roles=ADMIN,
        params=[p("id", {"type": "string"}, "user id")])},
    # audit
    "/api/v1/audit/entries": {"get": op(
        "Search the audit log", {"200": {"description": "One page of entries (JSON) or the export (CSV)", "content": {
            JSON: {"schema": ref("AuditEntries")}, "text/csv": {"schema": {"type": "string"}}}}},
        (400,), roles=AUDITORS, tag="audit", params=[
            q("document_id", STR, "exact, or a prefix ending in * or ."), q("sender", STR, "agency code"),
            q("recipient", STR, "agency code"), q("type", STR, "DocumentType/Type"),
            q("doc_type", STR, "the same as type"), q("event", STR, "event name, or a prefix ending in . or *"),
            q("reason", STR, "reason code, or a prefix"),
            q("since", {"type": "string", "example": "2026-11-27T00:00:00Z"}, "ISO 8601 date or time (UTC when bare)"),
            q("until", {"type": "string", "example": "2026-11-28"}, "ISO 8601 date or time"),
            q("limit", {"type": "integer", "minimum": 0, "default": 50}, "at most 1000 (JSON) entries"),
            q("offset", {"type": "integer", "minimum": 0, "default": 0}, "entries to skip"),
            q("format", {"type": "string", "enum": ["json", "csv"], "default": "json"},
              "csv: an export, itself recorded as audit.exported"),
        ], description="Unknown query parameters are refused (400).")},
    "/api/v1/audit/documents/{id}/trail": {"get": op(
        "Every event of one document in order, with each recipient's status history", ok(200, ref("Trail")),
        (400, 404), roles=AUDITORS, tag="audit", params=[DOC_ID, SENDER])},
    "/api/v1/audit/documents/{id}/bundle": {"get": op(
        "The evidence bundle (zip) to check offline", ok(200, {"type": "string", "format": "binary"},
                                                          "The bundle", media="application/zip"),
        (400, 404), roles=AUDITORS, tag="audit", params=[DOC_ID, SENDER],
        description="Recorded as audit.exported with the caller as actor.")},
    "/api/v1/audit/checkpoints": {"get": op(
        "Signed checkpoints, latest first", ok(200, ref("Checkpoints")), (400,), roles=AUDITORS, tag="audit",
        params=[q("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}, "page size"),
                q("offset", {"type": "integer", "minimum": 0, "default": 0}, "rows to skip")])},
    "/api/v1/audit/consistency": {"get": op(
        "Proof that checkpoint new extends checkpoint old, verified", ok(200, ref("Consistency")), (400, 404),
        roles=AUDITORS, tag="audit",
        params=[{**q("old", {"type": "integer", "minimum": 1}, "an earlier checkpoint's tree size"), "required": True},
                q("new", {"type": "integer", "minimum": 1}, "a later checkpoint's tree size (default: the latest)")])},
    "/api/v1/admin/maintenance": {
        "get": op("Maintenance state and drain progress", ok(200, ref("Maintenance")), (503,), roles=READERS),
        "post": op("Stop, drain or resume", ok(200, ref("Maintenance")), (400, 503), roles=ADMIN,
                   body=json_body(ref("MaintenanceRequest"))),
    },
}

DOCUMENT = {
    "openapi": "3.0.3",
    "info": {
        "title": "edXML interchange hub API",
        "version": "1",
        "description": "Ministry gateway (role agency), administration (role admin; auditors may read), "
                       "audit log (auditors and admins) and operations endpoints. "
                       "Errors are always JSON: {\"reason\", \"message\"[, \"element\"]}.",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearerAuth": []}],
    "tags": [{"name": "gateway"}, {"name": "admin"}, {"name": "audit"}, {"name": "operations"}],
    "paths": PATHS,
    "components": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                           "description": "hub_<id>_<secret> from `hub user add` or "
                                                          "POST /api/v1/admin/users"}},
        "schemas": SCHEMAS,
        "responses": RESPONSES,
    },
}


_BODY = json.dumps(DOCUMENT, ensure_ascii=False).encode("utf-8")


@routes.get("/api/v1/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=_BODY, content_type="application/json", charset="utf-8")
