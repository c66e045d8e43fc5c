"""Wire names other systems rely on, and the stable reason codes.

Everything here is part of the hub's public contract: adapters, dashboards and the audit
log refer to these strings, so they change only with a version bump.
"""

# --- XML namespaces -------------------------------------------------------------------
EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"  # QCVN 102:2016 edXML namespace
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"  # XML-DSig core namespace
EDXML_PREFIX = "edXML"  # the prefix the hub always emits (some receivers insist on it)

# --- RabbitMQ topology (DESIGN.md "Names other systems rely on") -----------------------
EXCHANGE_SUBMIT = "edxml.submit"  # adapters publish packages here (fanout to hub.intake)
EXCHANGE_DELIVER = "edxml.deliver"  # direct; routing key = recipient system's OrganId
EXCHANGE_DEAD = "hub.dead"  # fanout; unparseable or poison input, reason in headers
QUEUE_INTAKE = "hub.intake"  # quorum queue the hub workers compete on
QUEUE_DEAD = "hub.dead"  # quorum queue behind EXCHANGE_DEAD
INBOX_PREFIX = "inbox."  # inbox.<OrganId> (normal) and inbox.<OrganId>.urgent
URGENT_SUFFIX = ".urgent"  # routing key and queue suffix for Priority >= 1

# --- AMQP headers the hub sets -----------------------------------------------------------
H_REASON = "x-hub-reason"  # reason code of a dead-lettered or refused message
H_MESSAGE = "x-hub-message"  # human message to go with the reason
H_ORIGINAL_EXCHANGE = "x-hub-original-exchange"
H_ORIGINAL_ROUTING_KEY = "x-hub-original-routing-key"
H_ORIGINAL_USER = "x-hub-original-user-id"
H_DOCUMENT_ID = "x-edxml-document-id"  # DocumentId of the package in the body
H_SENDER = "x-edxml-from"  # From/OrganId of the package in the body
H_RECIPIENT = "x-edxml-to"  # the recipient this copy is for (served agency, not the inbox owner)
H_KIND = "x-edxml-kind"  # "edoc" or "status"
H_SHA256 = "x-edxml-sha256"  # SHA-256 of the package as the sender signed it
H_SUBMITTED_AT = "x-hub-submitted-at"  # adapter's publish time (epoch seconds, float) for latency
H_GATEWAY_AGENCY = "x-hub-gateway-agency"  # set by the HTTP gateway (hub's own user): the calling agency
H_REPLAYED_BY = "x-hub-replayed-by"  # an admin replayed this dead letter
H_TRACE_AT = "x-hub-trace-at"  # time of the hub's TraceHeader in this copy (yyyy/MM/dd HH:mm:ss)
H_BLOB_SHA256 = "x-hub-blob-sha256"  # a large package by reference: the SHA-256 of its stored bytes (body empty)
H_BLOB_SIZE = "x-hub-blob-size"  # ... and their size in bytes (hub.backbone.blobref, hub.store.blobs)

# --- hub_meta keys ------------------------------------------------------------------------
META_MAINTENANCE = "maintenance"  # running | stopped | draining

# --- Priorities (OtherInfo/Priority) ------------------------------------------------------
PRIORITY_NAMES = {
    0: "normal",
    1: "urgent (khẩn)",
    2: "very urgent (thượng khẩn)",
    3: "express (hỏa tốc)",
    4: "express at a set time (hỏa tốc hẹn giờ)",
}

# --- Status codes -----------------------------------------------------------------------
STATUS_NAMES = {
    "01": "arrived",
    "02": "rejected",
    "03": "accepted and registered",
    "04": "waiting for assignment",
    "05": "assigned, being handled",
    "06": "handled, done",
    "13": "recalled by the sender",
    "15": "recall/update agreed",
    "16": "recall/update refused",
}

# --- Business types (TraceHeaderList/Bussiness/BussinessDocType) acting on an earlier document --
BUSINESS_DONE = {1: "revoked", 2: "updated", 3: "replaced"}  # what happened to the earlier document
