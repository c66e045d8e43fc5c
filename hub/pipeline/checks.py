"""The stateless checks, in order: parse → schema → signature → trust → sender → recipients.

Pure: bytes and snapshots in, a frozen :class:`Verdict` out. ``hub check`` (offline) and the
pipeline (online) call the same :func:`check_package`.
"""

from __future__ import annotations

import hashlib
import time
from itertools import islice
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

from hub.edxml import large
from hub.constants import EDXML_NS
from hub.edxml.model import Edoc, Package, StatusPackage, read_package
from hub.edxml.parser import parse_xml
from hub.edxml.paths import find_first
from hub.edxml.schema import SchemaValidator
from hub.edxml.sdk_signature import SignatureInfo, inspect_signature
from hub.edxml.trace import append_trace
from hub.errors import AuthorityError, HubError, TrustError
from hub.pipeline.authentication import Authenticated, authenticate
from hub.pipeline.business import update_recipients
from hub.pipeline.connection import Connection, from_adapter_user
from hub.pki.certs import describe, fingerprint
from hub.pki.chain import TrustStore
from hub.registry.model import Registry, Route


@dataclass(frozen=True)
class CheckContext:
    """What the stateless checks consult. Build once per registry/trust version."""

    registry: Registry
    trust: TrustStore
    validator: SchemaValidator
    max_bytes: int = 50 * 1024 * 1024
    allow_sha1: bool = False
    relay_id: str | None = None  # when set (the hub), accepted edocs get its TraceHeader appended


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    sha256: str
    size: int
    reason: str | None = None
    message: str | None = None
    element: str | None = None
    stage: str | None = None  # parse, schema, signature, trust, authority
    package: Package | None = None  # read from the signed content only
    routes: tuple[Route, ...] = ()
    signer_fingerprint: str | None = None
    legacy_sha1: bool = False
    authenticated_by: str | None = None  # signature | signature-sha1 | connection (accepted packages)
    connection_system: str | None = None  # by connection: the system whose own connection it must come over
    # Best effort, from the raw (unverified) tree: only to address a refusal, never to trust.
    claimed_sender: str | None = None
    claimed_document_id: str | None = None
    # the package with the relay's TraceHeader (of a large package: its small form, hub.edxml.large)
    relayed: bytes | large.Relayed | None = field(default=None, repr=False)
    relayed_at: datetime | None = None  # the time written in that TraceHeader
    seconds: float = 0.0  # time the checks took
    # The signature as written (read after the schema stage; None if it was not reached):
    # XML-DSig, the national SDK's (a verifiable one or a placeholder skeleton), or none.
    signature: SignatureInfo | None = field(default=None, repr=False)

    @property
    def signature_form(self) -> str | None:
        """"xmldsig", "sdk", "sdk-skeleton", "none", or None when the schema stage refused."""
        return self.signature.kind if self.signature else None

    @property
    def sender(self) -> str | None:
        return self.package.sender.organ_id if self.package else self.claimed_sender

    @property
    def document_id(self) -> str | None:
        return self.package.document_id if self.package else self.claimed_document_id

    def line(self, name: str) -> str:
        if self.accepted and self.authenticated_by == "connection":
            return f"ACCEPT {name} (not signed: accepted only from {self.connection_system}'s own connection)"
        if self.accepted:
            return f"ACCEPT {name}"
        return f"REFUSE {name} {self.reason}: {self.message}"

    def as_dict(self, name: str | None = None) -> dict:
        d = {
            "file": name, "accepted": self.accepted, "reason": self.reason, "message": self.message,
            "element": self.element, "stage": self.stage, "sha256": self.sha256, "size": self.size,
            "sender": self.sender, "document_id": self.document_id, "signer_fingerprint": self.signer_fingerprint,
            "legacy_sha1": self.legacy_sha1, "signature_form": self.signature_form,
            "authenticated_by": self.authenticated_by,
            "recipients": [{"code": r.recipient, "system": r.system} for r in self.routes],
            "kind": self.package.kind if self.package else None,
        }
        return {k: v for k, v in d.items() if v is not None or k in ("reason", "message")}


_STAGE = {"parse": "parse", "schema": "schema", "signature": "signature", "trust": "trust",
          "authority": "authority", "state": "state", "usage": "usage"}


# lxml makes a Python proxy for an element when Python first touches it and frees it with the
# last reference; the stages (schema rules, signature, read model) each walk the same header
# again, so its proxies were made and freed several times per check. Holding the first ones
# (a common package has about a hundred elements) for the check makes each once; bounded so a
# package of millions of elements holds no more than this.
HELD_PROXIES = 1024

_E = "{" + EDXML_NS + "}"
_ENVELOPE, _HEADER, _MESSAGE_HEADER, _STATUS, _FROM, _ORGAN_ID, _DOCUMENT_ID = (
    _E + n for n in ("edXMLEnvelope", "edXMLHeader", "MessageHeader", "Status", "From", "OrganId", "DocumentId"))


def _found_text(el: etree._Element | None) -> str | None:
    """``findtext`` of a match: its text ("" when it has none), None when nothing matched."""
    return None if el is None else (el.text or "")


def _claimed_sender(root: etree._Element | None) -> str | None:
    if root is None:
        return None
    sender = _found_text(find_first(root, _ENVELOPE, _HEADER, _MESSAGE_HEADER, _FROM, _ORGAN_ID)) or \
        _found_text(find_first(root, _ENVELOPE, _HEADER, _STATUS, _FROM, _ORGAN_ID))
    return sender.strip() if sender else None


def _claimed(root: etree._Element | None) -> tuple[str | None, str | None]:
    if root is None:
        return None, None
    # An edoc's own DocumentId (a status in the SDK's MessageHeader form has none).
    doc_id = _found_text(find_first(root, _ENVELOPE, _HEADER, _MESSAGE_HEADER, _DOCUMENT_ID))
    return _claimed_sender(root), (doc_id.strip() if doc_id else None)


def check_package(data: bytes, ctx: CheckContext, *, at: datetime | None = None,
                  adapter_user: str | None = None, connection: Connection | None = None) -> Verdict:
    """Run every stateless check on ``data``; never raises for bad input.

    ``connection`` is how the package arrived (any entry point: AMQP, gateway, VDXP); or give
    ``adapter_user``, the broker-validated user that published it. Neither = offline (``hub
    check``): the connection checks are skipped and an unsigned ``sdk`` package is accepted
    with the note that it must come over its sender's own connection. ``adapter_user=""``
    means "published without user_id" and is refused.
    """
    started = time.perf_counter()
    if connection is None:
        connection = from_adapter_user(adapter_user, ctx.registry)
    verdict = None
    if large.LEAN_FROM <= len(data) <= ctx.max_bytes:
        lifted = large.lift(data)
        if lifted is not None:
            with large.checking(lifted):
                verdict = _check(data, ctx, at, connection, lifted)
    if verdict is None:
        verdict = _check(data, ctx, at, connection)
    object.__setattr__(verdict, "seconds", time.perf_counter() - started)
    return verdict


def _check(data: bytes, ctx: CheckContext, at: datetime | None, connection: Connection | None,
           lifted: large.Lifted | None = None) -> Verdict | None:
    """The checks; with ``lifted`` (a large package, :mod:`hub.edxml.large`) None unless accepted."""
    digest = hashlib.sha256(data).hexdigest()
    root = None
    signer_fp = None
    sig_info = None
    try:
        root = parse_xml(lifted.small if lifted else data, max_bytes=ctx.max_bytes)
        if lifted and not large.confirm(lifted, root):
            return None
        held = list(islice(root.iter(), HELD_PROXIES))  # noqa: F841 - see HELD_PROXIES
        ctx.validator.validate(root)
        sig_info = inspect_signature(root)
        claimed = ctx.registry.get(_claimed_sender(root) or "")  # its DocumentId only if refused
        # The signed root may be root itself with its Signature detached (no copy of the tree):
        # read the package from it, then put the Signature back before anything else reads root.
        restorer: list = []
        try:
            auth = authenticate(root, claimed.profile if claimed else "strict", ctx.trust, at=at,
                                allow_sha1=ctx.allow_sha1, info=sig_info, restorer=restorer)
            signer_fp = fingerprint(auth.certificate) if auth.certificate is not None else None
            if lifted and not lifted.used:
                return None  # verified by another path than the one that hashes the lifted runs
            package = read_package(auth.signed_root)
            if lifted:
                package = large.with_attachment_sizes(package, auth.signed_root, lifted)
        finally:
            for restore in restorer:
                restore()
        routes = authorize(package, auth, ctx.registry, connection)
    except HubError as e:
        if lifted:
            return None  # every refusal is decided, and worded, on the ordinary path
        sender, doc_id = _claimed(root)
        return Verdict(
            accepted=False, sha256=digest, size=len(data), reason=e.code, message=e.message, element=e.element,
            stage=_STAGE.get(e.code.split(".")[0], "check"), signer_fingerprint=signer_fp,
            claimed_sender=sender, claimed_document_id=doc_id, signature=sig_info,
        )
    except Exception as e:  # noqa: BLE001 - hostile input must be refused, never crash the batch
        if lifted:
            return None
        # The checks are pure: anything they raise comes from the input (a malformed certificate
        # extension, an unreadable value). Refuse it with what was found; never retry it.
        sender, doc_id = _claimed(root)
        return Verdict(
            accepted=False, sha256=digest, size=len(data), reason="check.unreadable",
            message=f"the package could not be checked: {e.__class__.__name__}: {str(e)[:300]}; "
                    "check the certificate and the package against the edXML profile",
            stage="check", signer_fingerprint=signer_fp, claimed_sender=sender, claimed_document_id=doc_id,
            signature=sig_info,
        )
    relayed = relayed_at = None
    if ctx.relay_id and isinstance(package, Edoc):
        # Done here, in the check process, where the tree is already parsed.
        relayed_at = datetime.now().replace(microsecond=0)
        relayed = relay_copy(root, ctx.relay_id, relayed_at)
        if lifted:  # kept small: the worker streams it from the original bytes (hub.pipeline.large)
            relayed = lifted.derived(relayed)
    return Verdict(
        accepted=True, sha256=digest, size=len(data), package=package, routes=routes,
        signer_fingerprint=signer_fp, legacy_sha1=auth.method == "signature-sha1", authenticated_by=auth.method,
        connection_system=ctx.registry.system_of(package.sender.organ_id) if auth.by_connection else None,
        claimed_sender=package.sender.organ_id, claimed_document_id=package.document_id, relayed=relayed,
        relayed_at=relayed_at, signature=sig_info,
    )


def _check_connection(connection: Connection, sender_code: str, registry: Registry, auth: Authenticated,
                      where: str) -> None:
    """The connection must be that of the system serving the sender; for a package
    authenticated by its connection alone, that is all that authenticates it."""
    serving = registry.system_of(sender_code)
    system = connection.authenticated_system
    if connection.via == "amqp" and not connection.user:
        raise AuthorityError(
            "the message carries no user_id, so the hub cannot tell which adapter published it; "
            "adapters must set user_id to their own RabbitMQ user",
            code="authority.impersonation", element=where,
        )
    if system is None or system != serving:
        unsigned = ("the package is not signed, so only the connection of its sender's own system can vouch for it; "
                    if auth.by_connection else "")
        by = (f"published by adapter user {connection.user or '(none)'}" if connection.via == "amqp"
              else f"handed over by the {connection.via} connection of {connection.user or 'an unknown system'}")
        raise AuthorityError(
            f"{unsigned}the package says it is from {sender_code} but was {by}"
            f" ({system or 'no registered system'}); {sender_code} is served by {serving or 'no system'}",
            code="authority.impersonation", element=where,
        )


def relay_copy(root: etree._Element, relay_id: str, at: datetime) -> bytes:
    """The delivered copy: the package with the relay's TraceHeader appended. Deterministic, so
    the outbox stores only the original and re-derives this copy if it must publish again."""
    append_trace(root, relay_id, at)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def authorize(package: Package, auth: Authenticated, registry: Registry,
              connection: Connection | None) -> tuple[Route, ...]:
    """Sender pinning (signed) or its own connection (unsigned, sdk profile), the connection's
    system serving the sender, recipients registered, active and competent."""
    sender_code = package.sender.organ_id
    where = "MessageHeader/From/OrganId" if isinstance(package, Edoc) else f"{package.container}/From/OrganId"
    sender = registry.get(sender_code)
    if sender is None:
        raise AuthorityError(f"sender {sender_code} is not registered at the hub", code="authority.sender_unknown", element=where)
    if not sender.active:
        raise AuthorityError(f"sender {sender_code} is retired and may not send", code="authority.sender_inactive", element=where)
    if auth.certificate is not None:
        signer_fp = fingerprint(auth.certificate)
        if signer_fp not in sender.fingerprints:
            owner = registry.owner_of_fingerprint(signer_fp)
            hint = f"it is pinned to {owner}" if owner else "it is pinned to no agency"
            raise TrustError(
                f"the signing certificate {describe(auth.certificate)} is not pinned to the sender {sender_code} "
                f"({hint}); a package must be signed with one of the From agency's own certificates",
                code="trust.not_pinned", element=where,
            )
    if connection is not None:
        _check_connection(connection, sender_code, registry, auth, where)
    if isinstance(package, StatusPackage):
        target = package.response_for.organ_id
        route = registry.route(target)
        return (route,)
    routes = []
    for code in update_recipients(package):  # To, and the recipients an update adds
        route = registry.route(code)
        if not route.entry.accepts_type(package.document_type.type):
            raise AuthorityError(
                f"recipient {code} does not accept document type {package.document_type.type}"
                f" ({package.document_type.type_name or 'unnamed'}); it accepts "
                f"{', '.join(sorted(route.entry.accepts or [], key=int)) or 'no type'}",
                code="authority.not_competent", element="MessageHeader/DocumentType/Type",
            )
        routes.append(route)
    return tuple(routes)
