"""One exception hierarchy; every refusal carries a stable reason code.

The code is what machines match on (audit log, metrics, status 02 packages); the message is
for the integrator: it names the element or rule that failed and, where useful, what to do.
"""

from __future__ import annotations


class HubError(Exception):
    """Base of every refusal. ``code`` is stable, ``message`` is for humans."""

    code = "hub.error"

    def __init__(self, message: str, *, code: str | None = None, element: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.element = element

    def __str__(self) -> str:
        return self.message


class ParseError(HubError):
    """The bytes are not an acceptable XML document (size, DOCTYPE, not XML...)."""

    code = "parse.invalid"


class SchemaError(HubError):
    """The document is XML but not a valid edXML package."""

    code = "schema.invalid"


class SignatureError(HubError):
    """The XML-DSig signature is missing, malformed, weak or does not verify."""

    code = "signature.invalid"


class TrustError(HubError):
    """The signature verifies but the certificate is not trusted for this sender."""

    code = "trust.untrusted"


class AuthorityError(HubError):
    """Sender or recipients are not allowed to exchange this package."""

    code = "authority.denied"


class ConflictError(HubError):
    """A stateful rule (dedupe, status transition, ResponseFor) refuses the package."""

    code = "state.conflict"


class UsageError(HubError):
    """Bad input from an operator (CLI argument, CSV line, registry entry)."""

    code = "usage.invalid"


class TransientError(HubError):
    """A dependency is unavailable; the same input may succeed later."""

    code = "transient.unavailable"


# Every reason code the hub can give, with a one-line meaning (documented in the README
# and served by the API). Keep in sync with the raise sites; a test checks it.
REASONS: dict[str, str] = {
    "parse.too_large": "package exceeds the size cap",
    "parse.doctype": "a DOCTYPE (DTD, entities) is present; edXML never needs one",
    "parse.not_xml": "the bytes are not well-formed XML",
    "parse.xinclude": "an XInclude element is present",
    "parse.not_edxml": "the root element is not edXML in the QCVN 102:2016 namespace",
    "parse.invalid": "the bytes are not an acceptable XML document",
    "schema.invalid": "the package does not follow the edXML schema",
    "schema.manifest_mismatch": "manifest references and attachments do not match one to one",
    "schema.agency_code": "an OrganId is not a valid agency code NNN.NN.NN.Xnn",
    "schema.unknown_element": "an element the hub does not know (not in edXML nor the national SDK's optional elements)",
    "signature.missing": "the package is not signed",
    "signature.multiple": "more than one Signature element",
    "signature.not_xmldsig": "a Signature element outside the XML-DSig namespace",
    "signature.misplaced": "the Signature is not the last child of edXMLHeader",
    "signature.reference": "the signature reference does not cover the whole package (URI=\"\")",
    "signature.weak_algorithm": "SHA-1 or another forbidden algorithm",
    "signature.no_certificate": "no X509Certificate in KeyInfo",
    "signature.digest_mismatch": "the package was changed after signing",
    "signature.invalid": "the signature value does not verify",
    "trust.untrusted": "the certificate does not chain to a trusted CA",
    "trust.expired": "a certificate of the chain is not valid at signing time",
    "trust.revoked": "a certificate of the chain is revoked",
    "trust.key_usage": "the signing certificate does not allow digitalSignature",
    "trust.not_pinned": "the certificate is not pinned to the From agency (impersonation)",
    "check.unreadable": "the checks could not read part of the package (e.g. a malformed certificate extension)",
    "authority.sender_unknown": "the From agency is not registered",
    "authority.sender_inactive": "the From agency is retired",
    "authority.recipient_unknown": "a recipient is neither registered nor served by a registered ancestor",
    "authority.recipient_inactive": "a recipient is retired",
    "authority.not_competent": "a recipient does not accept this document type",
    "authority.impersonation": "the publishing adapter is not the From agency",
    "authority.not_recipient": "a status refers to a document its sender did not receive",
    "authority.not_original_sender": "a recall from someone other than the original sender",
    "authority.denied": "the sender or a recipient may not exchange this package",
    "state.duplicate_conflict": "a different package under an already used DocumentId",
    "state.unknown_document": "ResponseFor names a document the hub does not know",
    "state.invalid_transition": "the status code does not follow from the current status",
    "state.conflict": "the request conflicts with the current state (already registered, already revoked, ...)",
    "audit.log_damaged": "the stored audit log no longer matches its leaf hashes or checkpoints: run `hub audit verify`",
    # operator errors (CLI, registry), exit code 2
    "usage.invalid": "a command argument, file or registry entry is not acceptable",
    "usage.agency_code": "an agency code given to a command is malformed",
    "usage.not_found": "the named agency, user, dead letter or document does not exist",
    # HTTP API (the JSON errors' reason field)
    "auth.required": "no credentials: send `Authorization: Bearer <token>` or a pinned TLS client certificate",
    "auth.invalid": "the token is malformed, unknown or revoked",
    "auth.forbidden": "the caller's role may not do this",
    "gateway.no_inbox": "the agency has no own system and so no inbox (it is served by another)",
    "hub.maintenance": "the hub is in maintenance and takes no new packages (HTTP 503; retry later)",
    "hub.internal": "an internal error; the message names an incident id to find in the logs",
    "hub.unrecordable": "the package passed the checks but the hub cannot record it (e.g. a value longer than "
                        "the store takes); only this package is refused",
    "hub.error": "a refusal without a more specific code (report it to the hub's operators)",
    "http.bad_request": "the request is malformed (e.g. NUL characters in the path or query)",
    "http.not_found": "no such endpoint or resource",
    "http.method_not_allowed": "the endpoint does not take this HTTP method",
    "http.too_large": "the request body is over the size limit",
    "http.request_too_long": "the request line or a header is over the server's limit (8,190 bytes): shorten the query",
    "http.unsupported_media_type": "the request body's media type is not accepted",
    "http.timeout": "the request took longer than the server's limit",
    # operational (not package refusals): what the backbone raises
    "authority.forbidden": "the broker user lacks the permission",
    "backbone.unavailable": "the broker is unreachable or the connection closed",
    "backbone.unroutable": "no queue is bound for the routing key",
    "backbone.not_found": "the exchange or queue does not exist",
    "backbone.nacked": "the broker refused to take the message",
    "backbone.precondition_failed": "a queue or exchange exists with other arguments",
    "backbone.already_settled": "a message was acknowledged or rejected twice",
    "backbone.management": "the RabbitMQ management API returned an error",
    # the VDXP protocol (hub/vdxp): answered as ErrorCode/ErrorDesc in the protocol's envelope
    "vdxp.auth_missing": "a VDXP request lacks XroadVnpt-systemid, XroadVnpt-sign-header or XroadVnpt-hash-header",
    "vdxp.unknown_system": "the VDXP system id is unknown or revoked (`hub vdxp add`)",
    "vdxp.bad_signature": "XroadVnpt-hash-header is not the HMAC-SHA256 of the sign-header under the system's secret",
    "vdxp.header_mismatch": "the signed JSON is unreadable, a signed member differs from its header, or the key list does not match",
    "vdxp.hash_file": "the sendEdoc body does not match the signed XroadVnpt-hash-file (tampered or cut)",
    "vdxp.bad_request": "a VDXP parameter is missing or invalid (docId, messagetype, status, dates, body)",
    "vdxp.unknown_document": "no such docId waiting for this system (another system's docId included)",
    "vdxp.out_of_scope": "registerAgency/deleteAgency of a code not below the system's own agency, or with its own system",
    "vdxp.unavailable": "the hub cannot reach its database or broker; retry (never an empty inbox)",
    "vdxp.delivery_failed": "a VDXP system acknowledged an item `fail` too often; it waits in the dead letters",
    # dead letters: who put a message on hub.dead, as far as the broker proves it
    "broker.delivery_limit": "RabbitMQ dead-lettered it: returned to its queue more often than the delivery limit",
    "broker.rejected": "RabbitMQ dead-lettered it: a consumer rejected it without requeueing",
    "broker.expired": "RabbitMQ dead-lettered it: its time to live ran out",
    "broker.maxlen": "RabbitMQ dead-lettered it: its queue was over its length limit",
    "broker.dead_lettered": "on hub.dead for a reason nothing vouches for (an unknown x-death reason, or not published by the hub); its headers are not believed",
    "hub.dead_lettered": "the hub dead-lettered it without naming a reason",
    "transient.unavailable": "a service the hub needs is unavailable; the same request may succeed later",
}
