"""Admin API under /api/v1/admin/: registry, trust, queues, dead letters, users, maintenance.

Read-only GETs are open to admins and auditors (auditors read everything and change
nothing); every write is admin-only and is recorded in ``records`` with the caller as actor
(``principal(request).actor``, e.g. ``admin:alice``) through the store functions.

GET   /api/v1/admin/agencies                  list/search (?search, limit, offset, connected)
POST  /api/v1/admin/agencies                  register (201)
POST  /api/v1/admin/agencies/import           directory CSV (text/csv) -> added, updated, line errors
GET   /api/v1/admin/auth-report                per agency: packages by signature / signature-sha1 / connection
GET   /api/v1/admin/agencies/{code}           one agency with its certificates and days to expiry
PATCH /api/v1/admin/agencies/{code}           name, accepts, served_by, ..., add/retire certificates
POST  /api/v1/admin/agencies/{code}/retire    retire (it sends and receives nothing more)
GET   /api/v1/admin/trust                     trust anchors and CRLs
POST  /api/v1/admin/trust/anchors             add CA certificate(s) (PEM body)
POST  /api/v1/admin/trust/crls                add a CRL (PEM or DER body)
GET   /api/v1/admin/queues                    depth, consumers, rates, oldest message age
GET   /api/v1/admin/dead-letters              list (?state, limit, offset)
GET   /api/v1/admin/dead-letters/{id}         one, its package (base64; a link when large) and parsed header
POST  /api/v1/admin/dead-letters/replay       {"ids": [...]} back to intake as the original adapter
POST  /api/v1/admin/dead-letters/discard      {"ids": [...]}
GET   /api/v1/admin/users                     API users (never their tokens)
POST  /api/v1/admin/users                     create; the token is in the answer, once (201)
POST  /api/v1/admin/users/{id}/revoke         revoke a token
GET   /api/v1/admin/maintenance               state, intake depth, outbox backlog, drained
POST  /api/v1/admin/maintenance               {"action": "stop" | "drain" | "resume"}
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import time
from datetime import datetime, timezone
from urllib.parse import quote

import sqlalchemy as sa
from aiohttp import web
from cryptography import x509

from hub import constants as C
from hub.api.blobs import package_fields
from hub.api.endpoint import Endpoints, Reply, json_type
from hub.api.models import (
    AgencyInput,
    AgencyPatch,
    AgencyPath,
    AgencyQuery,
    AuthReportQuery,
    DeadLetterPath,
    DeadLetterQuery,
    MaintenanceRequest,
    SettleRequest,
    UserInput,
    UserPath,
)
from hub.api.replies import (
    Agency,
    AgencyList,
    AnchorsAdded,
    AuthReport,
    CrlAdded,
    DeadLetterDetail,
    DeadLetterList,
    ImportResult,
    Maintenance,
    Queues,
    SettleResult,
    TrustList,
    User,
    UserCreated,
    UserList,
)
from hub.api.params import PEM_BODY
from hub.api.state import STATE, principal
from hub.api.users import add_user, list_users, revoke_user
from hub.backbone.base import inbox_queue
from hub.backbone.management import management_target
from hub.errors import ConflictError, HubError, TransientError, UsageError
from hub.pipeline.deadletters import list_dead, settle_dead
from hub.pki.certs import fingerprint
from hub.audit.auth_report import auth_report
from hub.registry import codes
from hub.registry.model import PROFILES
from hub.registry.store import (
    add_agency,
    add_crl,
    add_trust_anchor,
    agency_details,
    import_csv,
    list_agencies,
    list_trust,
    maintenance_mode,
    retire_agency,
    search_filter,
    unpin_certificate,
    write_meta,
)
from hub.audit import records as rec
from hub.store import packages as stored_packages
from hub.store.tables import agencies, agency_certs, api_users, dead_letters, outbox

log = logging.getLogger("hub.api.admin")
api = Endpoints("admin")
CRL_BODY = {"description": "CRL, PEM or DER (the media type is not checked)", "required": True,
            "content": {"application/pkix-crl": {"schema": {"type": "string", "format": "binary"}},
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                        "application/x-pem-file": {"schema": {"type": "string"}},
                        "text/plain": {"schema": {"type": "string"}}}}

READ = ("admin", "auditor")
WRITE = ("admin",)
MAX_ID = 2**63 - 1  # BIGINT: a larger id cannot exist
MANAGEMENT_TIMEOUT = 3.0
MAINTENANCE = {"stop": "stopped", "drain": "draining", "resume": "running"}


# --- input helpers --------------------------------------------------------------------------

def _bad(field: str, message: str) -> UsageError:
    return UsageError(f"{field}: {message}", element=field)


def _text(value, field: str, *, max_len: int = 1000) -> str:
    """A string the database can store as is (no NUL, valid Unicode, bounded)."""
    if not isinstance(value, str):
        raise _bad(field, f"must be a string, not {json_type(value)}")
    if "\x00" in value:
        raise _bad(field, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(field, "is not valid Unicode text") from None
    if len(value) > max_len:
        raise _bad(field, f"is longer than {max_len} characters")
    return value


def _code(value, field: str) -> str:
    value = _text(value, field, max_len=64)
    if not codes.is_valid(value.strip()):
        raise UsageError(f"{field}: agency code {value!r} is malformed: expected NNN.NN.NN.Xnn, e.g. 000.00.00.G22",
                         code="usage.agency_code", element=field)
    return value.strip()


def _bool(value, field: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(field, f"must be true or false, not {json_type(value)}")
    return value


def _accepts(value, field: str = "accepts") -> str:
    """``null``/``"*"`` = every document type; else a list (or comma-separated string) of 1-3 digit codes."""
    if value is None:
        return "*"
    if isinstance(value, str):
        value = _text(value, field, max_len=4000)
        if value.strip() in ("*", "all"):
            return "*"
        items = [x.strip() for x in value.split(",") if x.strip()]
    elif isinstance(value, list):
        items = value
    else:
        raise _bad(field, f"must be a list of DocumentType/Type codes or null for all types, not {json_type(value)}")
    if not items:
        raise _bad(field, "name at least one DocumentType/Type code, or send null for all types")
    if len(items) > 1000:
        raise _bad(field, "names more than 1000 document types")
    for i, t in enumerate(items):
        if not isinstance(t, str) or not (1 <= len(t) <= 3) or not t.isascii() or not t.isdigit():
            raise _bad(f"{field}[{i}]", f"{t!r} is not a DocumentType/Type code (1-3 digits)")
    return ",".join(items)


def _pem_certificates(value, field: str) -> list[x509.Certificate]:
    if not isinstance(value, list):
        raise _bad(field, f"must be a list of PEM certificates, not {json_type(value)}")
    if len(value) > 100:
        raise _bad(field, "holds more than 100 certificates")
    certs: list[x509.Certificate] = []
    for i, pem in enumerate(value):
        pem = _text(pem, f"{field}[{i}]", max_len=100_000)
        try:
            found = x509.load_pem_x509_certificates(pem.encode())
        except ValueError:
            raise _bad(f"{field}[{i}]", "is not a PEM certificate (-----BEGIN CERTIFICATE-----)") from None
        certs.extend(found)
    return certs


async def _body(request: web.Request, what: str) -> bytes:
    data = await request.read()
    if not data:
        raise UsageError(f"the request body must be {what}")
    return data


# --- output helpers -------------------------------------------------------------------------

def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _iso(value: datetime | None) -> str | None:
    v = _aware(value)
    return v.isoformat() if v is not None else None


def _days(value: datetime | None, now: datetime) -> int | None:
    v = _aware(value)
    return (v - now).days if v is not None else None


def _accepts_out(value: str | None) -> list[str] | None:
    if value is None or value.strip() in ("", "*", "all"):
        return None
    return [x.strip() for x in value.split(",") if x.strip()]


def _cert_view(c: dict, now: datetime) -> dict:
    return {
        "fingerprint": c["fingerprint"], "subject": c["subject"], "not_after": _iso(c["not_after"]),
        "days_to_expiry": _days(c["not_after"], now), "added_at": _iso(c["added_at"]),
        "retired": c["retired_at"] is not None, "retired_at": _iso(c["retired_at"]),
    }


def _agency_view(row: dict, certs: list[dict]) -> dict:
    now = datetime.now(timezone.utc)
    return {
        "code": row["code"], "name": row["name"], "active": bool(row["active"]), "connected": bool(row["connected"]),
        "served_by": row["served_by"] or None, "accepts": _accepts_out(row["accepts"]),
        "amqp_user": row["amqp_user"], "profile": row["profile"],
        "created_at": _iso(row["created_at"]), "updated_at": _iso(row["updated_at"]),
        "certificates": [_cert_view(c, now) for c in certs],
    }


async def _certs_of(engine, code_list: list[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {c: [] for c in code_list}
    if not code_list:
        return out
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(agency_certs).where(agency_certs.c.code.in_(code_list))
                                   .order_by(agency_certs.c.added_at, agency_certs.c.fingerprint))).mappings().all()
    for r in rows:
        out[r["code"]].append(dict(r))
    return out


async def _one_agency(engine, code: str) -> dict:
    try:
        d = await agency_details(engine, code)
    except UsageError:
        raise web.HTTPNotFound(text=f"agency {code} is not registered") from None
    view = _agency_view(d, d["certificates"])
    view["serves_explicitly"] = d["serves_explicitly"]
    return view


def _actor(request: web.Request) -> str:
    return principal(request).actor


async def _declare_inbox(state, code: str) -> None:
    """The inbox exists from registration on (the workers also declare it on their next reload)."""
    try:
        await asyncio.wait_for(state.backbone.declare_inbox(code), 5)
    except Exception as e:  # noqa: BLE001 - best effort: the workers declare it when they reload
        log.warning("could not declare the inbox of %s now (the workers will): %s", code, e)


# --- agencies ---------------------------------------------------------------------------------

@api.endpoint("GET", "/api/v1/admin/agencies", "List or search agencies", roles=READ, response=AgencyList,
              errors=(400,), query=AgencyQuery)
async def agencies_list(request: web.Request, args: AgencyQuery) -> web.Response:
    state = request.app[STATE]
    search = args.search or None
    limit, offset, connected = args.limit, args.offset, args.connected
    if connected is False:  # list_agencies filters only "connected"; "not connected" is filtered here
        total, rows = await _not_connected(state.engine, search, limit, offset)
    else:
        total, rows = await list_agencies(state.engine, search, limit, offset, connected_only=bool(connected))
    certs = await _certs_of(state.engine, [r["code"] for r in rows])
    return web.json_response({"total": total, "limit": limit, "offset": offset,
                              "agencies": [_agency_view(r, certs[r["code"]]) for r in rows]})


async def _not_connected(engine, search: str | None, limit: int, offset: int) -> tuple[int, list[dict]]:
    q = sa.select(agencies).where(agencies.c.connected.is_(False))
    if search:
        q = q.where(search_filter(search))
    async with engine.connect() as conn:
        total = (await conn.execute(sa.select(sa.func.count()).select_from(q.subquery()))).scalar()
        rows = (await conn.execute(q.order_by(agencies.c.code).limit(limit).offset(offset))).mappings().all()
    return total, [dict(r) for r in rows]


@api.endpoint("GET", "/api/v1/admin/agencies/{code}", "One agency with its certificates", roles=READ,
              response=Agency, errors=(400, 404), path_model=AgencyPath)
async def agency_get(request: web.Request, path: AgencyPath) -> web.Response:
    state = request.app[STATE]
    return web.json_response(await _one_agency(state.engine, path.code))


def _profile(value, field: str = "profile") -> str:
    """``strict`` (default) or ``sdk``."""
    value = _text(value, field, max_len=16).strip().lower()
    if value not in PROFILES:
        raise _bad(field, f"must be one of {', '.join(PROFILES)}, not {value!r}")
    return value


async def _check_served_by(engine, served_by: str, code: str) -> None:
    if served_by == code:
        raise _bad("served_by", "an agency cannot be served by itself")
    async with engine.connect() as conn:
        if (await conn.execute(sa.select(agencies.c.code).where(agencies.c.code == served_by))).first() is None:
            raise _bad("served_by", f"{served_by} is not registered; register the serving system first")


async def _exists(engine, code: str) -> dict | None:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(agencies).where(agencies.c.code == code))).mappings().first()
    return dict(row) if row is not None else None


@api.endpoint("POST", "/api/v1/admin/agencies", "Register an agency", roles=WRITE, body=AgencyInput,
              response=Reply(Agency, "Registered"), status=201, errors=(400, 409))
async def agency_add(request: web.Request, model: AgencyInput) -> web.Response:
    state = request.app[STATE]
    body = model.model_dump(exclude_unset=True)
    code = _code(body["code"], "code")
    name = _text(body["name"], "name") if body.get("name") is not None else None
    certs = _pem_certificates(body["certificates"], "certificates") if body.get("certificates") is not None else []
    accepts = _accepts(body["accepts"]) if "accepts" in body else None
    served_by = _code(body["served_by"], "served_by") if body.get("served_by") is not None else None
    connected = _bool(body["connected"], "connected") if body.get("connected") is not None else None
    amqp_user = _text(body["amqp_user"], "amqp_user", max_len=128) if body.get("amqp_user") is not None else None
    if amqp_user is not None and not amqp_user.strip():
        raise _bad("amqp_user", "must not be empty (leave it out to use the agency code)")
    profile = _profile(body["profile"]) if body.get("profile") is not None else None
    if await _exists(state.engine, code) is not None:
        raise ConflictError(f"agency {code} is already registered; change it with PATCH /api/v1/admin/agencies/{code}",
                            element="code")
    if served_by:
        await _check_served_by(state.engine, served_by, code)
    a = await add_agency(state.engine, code, name=name, certs=certs, accepts=accepts, served_by=served_by,
                         connected=connected, amqp_user=amqp_user, profile=profile, actor=_actor(request))
    if a.connected:
        await _declare_inbox(state, a.code)
    return web.json_response(await _one_agency(state.engine, code), status=201)


PATCH_FIELDS = ("name", "accepts", "served_by", "connected", "amqp_user", "add_certificates",
                "retire_certificates", "active", "profile")


@api.endpoint("PATCH", "/api/v1/admin/agencies/{code}", "Change an agency", roles=WRITE, body=AgencyPatch,
              response=Agency, errors=(400, 404, 409), path_model=AgencyPath,
              description="Absent fields stay; served_by null clears it. 409 for a retired agency unless active is true.")
async def agency_patch(request: web.Request, model: AgencyPatch, path: AgencyPath) -> web.Response:
    state = request.app[STATE]
    code = path.code
    body = model.model_dump(exclude_unset=True)
    if not body:
        raise UsageError(f"send at least one of {', '.join(PATCH_FIELDS)}")
    kw: dict = {}
    if "name" in body:
        kw["name"] = _text(body["name"], "name") if body["name"] is not None else ""
    if "accepts" in body:
        kw["accepts"] = _accepts(body["accepts"])
    if "served_by" in body:
        # null clears it: the agency is then served by its nearest registered ancestor
        kw["served_by"] = _code(body["served_by"], "served_by") if body["served_by"] is not None else ""
    if "connected" in body:
        kw["connected"] = _bool(body["connected"], "connected")
    if "amqp_user" in body:
        if body["amqp_user"] is None:
            raise _bad("amqp_user", "cannot be cleared; give the RabbitMQ user of the agency's adapter")
        kw["amqp_user"] = _text(body["amqp_user"], "amqp_user", max_len=128)
        if not kw["amqp_user"].strip():
            raise _bad("amqp_user", "must not be empty")
    if "profile" in body:
        kw["profile"] = _profile(body["profile"])
    certs = _pem_certificates(body["add_certificates"], "add_certificates") if "add_certificates" in body else []
    retire: list[str] = []
    if "retire_certificates" in body:
        value = body["retire_certificates"]
        if not isinstance(value, list):
            raise _bad("retire_certificates", f"must be a list of SHA-256 fingerprints, not {json_type(value)}")
        for i, fp in enumerate(value):
            fp = _text(fp, f"retire_certificates[{i}]", max_len=200).strip().lower().removeprefix("sha256:")
            if len(fp) != 64 or any(ch not in "0123456789abcdef" for ch in fp):
                raise _bad(f"retire_certificates[{i}]", "is not a SHA-256 fingerprint (64 hex digits)")
            retire.append(fp)
    reactivate = False
    if "active" in body:
        if body["active"] is not True:
            raise _bad("active", "can only be true (reactivate); retire with POST "
                                 f"/api/v1/admin/agencies/{code}/retire")
        reactivate = True
    row = await _exists(state.engine, code)
    if row is None:
        raise web.HTTPNotFound(text=f"agency {code} is not registered")
    if not row["active"] and not reactivate:
        raise ConflictError(f"agency {code} is retired; send \"active\": true to reactivate it")
    if kw.get("served_by"):
        await _check_served_by(state.engine, kw["served_by"], code)
    if retire:
        pinned = {c["fingerprint"] for c in (await _certs_of(state.engine, [code]))[code]}
        added = {fingerprint(c) for c in certs}
        for i, fp in enumerate(retire):
            if fp not in pinned and fp not in added:
                raise _bad(f"retire_certificates[{i}]", f"no certificate {fp} is pinned to {code}")
    actor = _actor(request)
    if kw or certs or reactivate:
        a = await add_agency(state.engine, code, certs=certs, actor=actor, **kw)
        if a.connected and not row["connected"]:
            await _declare_inbox(state, code)
    for fp in retire:
        await unpin_certificate(state.engine, code, fp, actor=actor)
    return web.json_response(await _one_agency(state.engine, code))


@api.endpoint("POST", "/api/v1/admin/agencies/{code}/retire", "Retire an agency", roles=WRITE, response=Agency,
              errors=(400, 404), path_model=AgencyPath)
async def agency_retire(request: web.Request, path: AgencyPath) -> web.Response:
    state = request.app[STATE]
    code = path.code
    if await _exists(state.engine, code) is None:
        raise web.HTTPNotFound(text=f"agency {code} is not registered")
    await retire_agency(state.engine, code, actor=_actor(request))
    return web.json_response(await _one_agency(state.engine, code))


@api.endpoint("GET", "/api/v1/admin/auth-report", "How each agency's packages were authenticated", roles=READ,
              response=AuthReport, errors=(400,), query=AuthReportQuery,
              description="Accepted packages per sender: signature, signature-sha1 or connection (unsigned, accepted "
                          "only over the sender's own connection under the sdk profile).")
async def auth_report_get(request: web.Request, args: AuthReportQuery) -> web.Response:
    """Per agency, how many accepted packages were authenticated by signature, SHA-1 signature
    or connection alone, over ``since`` .. ``until`` (ISO 8601; default: everything)."""
    state = request.app[STATE]
    return web.json_response(await auth_report(state.engine, since=args.since, until=args.until, agency=args.agency))


@api.endpoint("POST", "/api/v1/admin/agencies/import", "Import a directory CSV", roles=WRITE, response=ImportResult,
              errors=(400,), body={"description": "CSV with a header row: "
                                                  "code,name[,served_by][,accepts][,connected][,profile]",
                                   "required": True, "content": {"text/csv": {"schema": {"type": "string"}}}},
              description="Good lines are upserted; bad ones are reported by line and skipped.")
async def agency_import(request: web.Request) -> web.Response:
    """A directory CSV ``code,name[,served_by][,accepts][,connected][,profile]``; bad lines are reported and skipped."""
    state = request.app[STATE]
    data = await _body(request, "a CSV file with a header row (code,name,served_by,accepts,connected,profile)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UsageError(f"the CSV is not UTF-8 text (byte {e.start})") from None
    if "\x00" in text:
        raise UsageError("the CSV contains NUL characters")
    # Pre-read the CSV to report physical line numbers and to set aside records with more
    # fields than the header (csv.DictReader would give those an extra None key).
    errors: list[dict] = []
    kept_lines: list[int] = []
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    try:
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if not header or "code" not in [h.strip().lower() for h in header]:
            raise UsageError("the CSV needs a header row with at least a 'code' column "
                             "(code,name,served_by,accepts,connected)")
        writer.writerow(header)
        for row in reader:
            if not row or all(not f.strip() for f in row):
                continue
            if len(row) > len(header):
                errors.append({"line": reader.line_num,
                               "message": f"{len(row)} fields but the header names {len(header)}; line skipped"})
                continue
            writer.writerow(row)
            kept_lines.append(reader.line_num)
    except csv.Error as e:
        raise UsageError(f"the CSV is malformed near line {reader.line_num}: {e}") from None
    result = await import_csv(state.engine, out.getvalue(), actor=_actor(request))
    for line, message in result.errors:
        # import_csv numbers records from 2 (after the header); 0 = not tied to one line
        original = kept_lines[line - 2] if 2 <= line < len(kept_lines) + 2 else 0
        errors.append({"line": original, "message": message})
    errors.sort(key=lambda e: e["line"])
    return web.json_response({"added": result.added, "updated": result.updated, "errors": errors})


# --- trust ----------------------------------------------------------------------------------

@api.endpoint("GET", "/api/v1/admin/trust", "Trust anchors and CRLs", roles=READ, response=TrustList)
async def trust_list(request: web.Request) -> web.Response:
    state = request.app[STATE]
    anchors, crl_rows = await list_trust(state.engine)
    now = datetime.now(timezone.utc)
    return web.json_response({
        "anchors": [{"fingerprint": a["fingerprint"], "subject": a["subject"], "not_after": _iso(a["not_after"]),
                     "days_to_expiry": _days(a["not_after"], now), "added_at": _iso(a["added_at"])} for a in anchors],
        "crls": [{"fingerprint": c["fingerprint"], "issuer": c["issuer"], "this_update": _iso(c["this_update"]),
                  "next_update": _iso(c["next_update"]), "added_at": _iso(c["added_at"])} for c in crl_rows],
    })


@api.endpoint("POST", "/api/v1/admin/trust/anchors", "Trust CA certificate(s)", roles=WRITE, body=PEM_BODY,
              response=Reply(AnchorsAdded, "Added"), status=201, errors=(400,))
async def trust_add_anchor(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await _body(request, "one or more PEM CA certificates")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise UsageError("the body is not a PEM certificate (-----BEGIN CERTIFICATE-----)") from None
    for cert in certs:  # all or nothing: check each before adding any
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except (x509.ExtensionNotFound, ValueError):
            bc = None
        if bc is None or not bc.ca:
            raise UsageError(f"{cert.subject.rfc4514_string()} is not a CA certificate (BasicConstraints CA:TRUE); "
                             "add the issuing CA instead")
    added = []
    for cert in certs:
        fp = await add_trust_anchor(state.engine, cert, actor=_actor(request))
        added.append({"fingerprint": fp, "subject": cert.subject.rfc4514_string(),
                      "not_after": cert.not_valid_after_utc.isoformat()})
    return web.json_response({"added": added}, status=201)


@api.endpoint("POST", "/api/v1/admin/trust/crls", "Add a CRL signed by a trusted CA", roles=WRITE, body=CRL_BODY,
              response=Reply(CrlAdded, "Added"), status=201, errors=(400,))
async def trust_add_crl(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await _body(request, "a CRL (PEM or DER)")
    try:
        crl = x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
    except ValueError:
        raise UsageError("the body is not a CRL (PEM -----BEGIN X509 CRL----- or DER)") from None
    try:
        fp = await add_crl(state.engine, crl, actor=_actor(request))
    except TypeError:  # an issuer key type the CRL's signature cannot be checked with
        raise UsageError(f"the CRL issued by {crl.issuer.rfc4514_string()} is not signed by any trusted CA") from None
    next_update = crl.next_update_utc
    return web.json_response({
        "fingerprint": fp, "issuer": crl.issuer.rfc4514_string(), "this_update": crl.last_update_utc.isoformat(),
        "next_update": next_update.isoformat() if next_update else None, "revoked": len(crl),
    }, status=201)


# --- queues ---------------------------------------------------------------------------------

async def _from_management(settings, names: list[str]) -> list[dict] | None:
    target = management_target(settings)
    if target is None:
        return None
    from hub.backbone.management import Management

    base, user, password, vhost = target
    try:
        async with Management(base, user, password, timeout=MANAGEMENT_TIMEOUT) as m:
            items = await asyncio.wait_for(m.request("GET", f"/queues/{quote(vhost, safe='')}"), MANAGEMENT_TIMEOUT + 1)
    except Exception as e:  # noqa: BLE001 - any failure: fall back to passive declares
        log.info("management API at %s not usable (%s); queue stats from passive declares", base, e)
        return None
    if not isinstance(items, list):
        return None
    by_name = {q.get("name"): q for q in items if isinstance(q, dict)}
    now = time.time()
    out = []
    for name in names:
        q = by_name.get(name)
        if q is None:
            out.append(_missing(name))
            continue
        stats = q.get("message_stats") or {}
        head = q.get("head_message_timestamp")
        out.append({
            "name": name, "exists": True, "depth": _int(q.get("messages_ready")),
            "unacknowledged": _int(q.get("messages_unacknowledged")), "consumers": _int(q.get("consumers")),
            "publish_rate": _rate(stats, "publish"),
            "deliver_rate": _rate(stats, "deliver_get") if "deliver_get_details" in stats else _rate(stats, "deliver"),
            "oldest_message_age_seconds": round(max(0.0, now - head), 1) if isinstance(head, (int, float)) else None,
        })
    return out


def _int(value) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _rate(stats: dict, key: str) -> float:
    details = stats.get(f"{key}_details") or {}
    rate = details.get("rate") if isinstance(details, dict) else None
    return float(rate) if isinstance(rate, (int, float)) and not isinstance(rate, bool) else 0.0


def _missing(name: str) -> dict:
    return {"name": name, "exists": False, "depth": None, "unacknowledged": None, "consumers": None,
            "publish_rate": None, "deliver_rate": None, "oldest_message_age_seconds": None}


async def _passive(backbone, names: list[str]) -> list[dict]:
    out = []
    for name in names:
        try:
            depth = await backbone.depth(name)
            consumers = await backbone.consumers(name)
        except TransientError as e:
            if e.code != "backbone.not_found":
                raise
            out.append(_missing(name))
            continue
        out.append({"name": name, "exists": True, "depth": depth, "unacknowledged": None, "consumers": consumers,
                    "publish_rate": None, "deliver_rate": None, "oldest_message_age_seconds": None})
    return out


async def queue_stats(state) -> tuple[str, list[dict]]:
    """("management" | "passive", per queue: depth, unacknowledged, consumers, rates, oldest age) for
    hub.intake, hub.dead and every connected system's inbox and urgent inbox."""
    async with state.engine.connect() as conn:
        systems = [c for (c,) in (await conn.execute(
            sa.select(agencies.c.code).where(agencies.c.connected.is_(True)).order_by(agencies.c.code))).all()]
    names = [C.QUEUE_INTAKE, C.QUEUE_DEAD] + [inbox_queue(c, u) for c in systems for u in (False, True)]
    found = await _from_management(state.settings, names)
    source = "management"
    if found is None:
        found, source = await _passive(state.backbone, names), "passive"
    else:
        # a queue the management API has not collected stats for yet (just declared): count it directly
        gaps = [q["name"] for q in found if q["exists"] and (q["depth"] is None or q["consumers"] is None)]
        if gaps:
            counted = {q["name"]: q for q in await _passive(state.backbone, gaps)}
            for q in found:
                if q["name"] in counted and counted[q["name"]]["exists"]:
                    q["depth"] = counted[q["name"]]["depth"] if q["depth"] is None else q["depth"]
                    q["consumers"] = counted[q["name"]]["consumers"] if q["consumers"] is None else q["consumers"]
    return source, found


@api.endpoint("GET", "/api/v1/admin/queues", "Every inbox, hub.intake and hub.dead", roles=READ, response=Queues,
              errors=(503,),
              description="From the RabbitMQ management API when reachable, else passive declares (rates null).")
async def queues(request: web.Request) -> web.Response:
    source, found = await queue_stats(request.app[STATE])
    return web.json_response({"source": source, "queues": found})


# --- dead letters -----------------------------------------------------------------------------

def _dead_view(row: dict) -> dict:
    return {
        "id": row["id"], "received_at": _iso(row["received_at"]), "reason": row["reason"], "message": row["message"],
        "original_user": row["original_user"], "original_exchange": row["original_exchange"],
        "original_routing_key": row["original_routing_key"], "headers": row["headers"] or {},
        "sha256": row["sha256"], "size": row["size"], "state": row["state"],
        "settled_at": _iso(row["settled_at"]), "settled_by": row["settled_by"],
    }


@api.endpoint("GET", "/api/v1/admin/dead-letters", "Dead letters", roles=READ, response=DeadLetterList,
              errors=(400,), query=DeadLetterQuery)
async def dead_list(request: web.Request, args: DeadLetterQuery) -> web.Response:
    state = request.app[STATE]
    which, limit, offset = args.state, args.limit, args.offset
    total, rows = await list_dead(state.engine, None if which == "all" else which, limit, offset)
    return web.json_response({"total": total, "limit": limit, "offset": offset,
                              "dead_letters": [_dead_view(r) for r in rows]})


def _t(el, path: str) -> str | None:
    from hub.edxml.model import NS

    found = el.find(path, NS) if el is not None else None
    text = (found.text or "").strip() if found is not None else ""
    return text or None


def parsed_header(data: bytes, max_bytes: int) -> dict:
    """Best effort: the header fields of a dead letter's body, or why it does not parse."""
    from hub.edxml.model import NS, header_of, status_element
    from hub.edxml.parser import parse_xml

    if not data:
        return {"ok": False, "reason": "parse.not_xml", "message": "the dead letter has no body"}
    try:
        root = parse_xml(data, max_bytes=max_bytes)
        header = header_of(root)
    except HubError as e:
        return {"ok": False, "reason": e.code, "message": e.message}
    st = status_element(header)  # Status, or the SDK's MessageHeader with a StatusCode
    if st is not None:
        return {"ok": True, "kind": "status", "from": _t(st, "e:From/e:OrganId"),
                "to": [x for x in [_t(st, "e:ResponseFor/e:OrganId")] if x],
                "document_id": _t(st, "e:ResponseFor/e:DocumentId"), "type": None, "subject": None,
                "status_code": _t(st, "e:StatusCode")}
    mh = header.find("e:MessageHeader", NS)
    if mh is not None:
        return {"ok": True, "kind": "edoc", "from": _t(mh, "e:From/e:OrganId"),
                "to": [x for x in (_t(t, "e:OrganId") for t in mh.findall("e:To", NS)) if x],
                "document_id": _t(mh, "e:DocumentId"), "type": _t(mh, "e:DocumentType/e:Type"),
                "subject": _t(mh, "e:Subject"), "status_code": None}
    return {"ok": False, "reason": "schema.invalid", "message": "edXMLHeader has neither MessageHeader nor Status"}


HEADER_PREFIX = 4 * 1024 * 1024  # a package's header comes before its body; read this much of a large one at most


async def parsed_stored(engine, stored, max_bytes: int) -> dict:
    """:func:`parsed_header` of a stored package; of one stored by reference, from the first bytes
    up to the end of its header (``hub.edxml.large.header_only``), never the whole blob."""
    from hub.edxml.large import header_only

    if stored is None or not stored.by_reference:
        return parsed_header(stored.inline if stored else b"", max_bytes)
    small = header_only(await stored_packages.head(engine, stored, HEADER_PREFIX))
    if small is None:
        return {"ok": False, "reason": "parse.not_xml",
                "message": f"no edXMLHeader in the first {HEADER_PREFIX} bytes of the {stored.size}-byte package"}
    return parsed_header(small, max_bytes)


@api.endpoint("GET", "/api/v1/admin/dead-letters/{id}", "One dead letter with its body and parsed header",
              roles=READ, response=DeadLetterDetail, errors=(400, 404),
              path_model=DeadLetterPath)
async def dead_get(request: web.Request, path: DeadLetterPath) -> web.Response:
    state = request.app[STATE]
    dead_id = path.id
    row, stored = None, None
    if 1 <= dead_id <= MAX_ID:  # a larger id cannot exist
        async with state.engine.connect() as conn:
            row = (await conn.execute(sa.select(dead_letters).where(dead_letters.c.id == dead_id))).mappings().first()
            if row is not None:
                stored = await stored_packages.locate(conn, row["sha256"])
    if row is None:
        raise web.HTTPNotFound(text=f"no dead letter {dead_id}")
    return web.json_response({**_dead_view(dict(row)), **package_fields(stored),
                              "parsed": await parsed_stored(state.engine, stored, state.settings.max_package_bytes)})


async def _settle(request: web.Request, body: SettleRequest, action: str) -> web.Response:
    state = request.app[STATE]
    wanted = list(dict.fromkeys(body.ids))
    valid = [v for v in wanted if 1 <= v <= MAX_ID]
    async with state.engine.connect() as conn:
        known = {i for (i,) in (await conn.execute(
            sa.select(dead_letters.c.id).where(dead_letters.c.id.in_(valid))))} if valid else set()
    present = [v for v in wanted if v in known]
    result = {"done": [], "skipped": []}
    if present:
        registry = (await state.check_context()).registry
        result = await settle_dead(state.engine, state.backbone, registry, present, action, _actor(request))
    result["skipped"] += [{"id": v, "state": "not found"} for v in wanted if v not in known]
    return web.json_response(result)


@api.endpoint("POST", "/api/v1/admin/dead-letters/replay",
              "Replay pending dead letters to intake, as their original adapter", roles=WRITE, body=SettleRequest,
              response=SettleResult, errors=(400, 503))
async def dead_replay(request: web.Request, body: SettleRequest) -> web.Response:
    return await _settle(request, body, "replay")


@api.endpoint("POST", "/api/v1/admin/dead-letters/discard", "Discard pending dead letters", roles=WRITE,
              body=SettleRequest, response=SettleResult, errors=(400,))
async def dead_discard(request: web.Request, body: SettleRequest) -> web.Response:
    return await _settle(request, body, "discard")


# --- users ----------------------------------------------------------------------------------

def _user_view(r: dict) -> dict:
    return {"id": r["id"], "name": r["name"], "role": r["role"], "agency": r["agency"],
            "active": r["revoked_at"] is None, "created_at": _iso(r["created_at"]), "created_by": r["created_by"],
            "revoked_at": _iso(r["revoked_at"]), "last_used_at": _iso(r["last_used_at"])}


@api.endpoint("GET", "/api/v1/admin/users", "API users (never their tokens)", roles=READ, response=UserList)
async def users_list(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"users": [_user_view(r) for r in await list_users(state.engine)]})


@api.endpoint("POST", "/api/v1/admin/users", "Create a user; the token is shown once", roles=WRITE, body=UserInput,
              response=Reply(UserCreated, "Created"), status=201, errors=(400, 409),
              description="409 when an active user already has the name (user names are unique).")
async def users_add(request: web.Request, body: UserInput) -> web.Response:
    state = request.app[STATE]
    name = _text(body.name, "name", max_len=100).strip()
    if not name:
        raise _bad("name", "must not be empty")
    role, agency = body.role, body.agency
    if role == "agency":
        if agency is None:
            raise _bad("agency", "an agency user needs the code of the agency it acts for")
        agency = _code(agency, "agency")
        if await _exists(state.engine, agency) is None:
            raise _bad("agency", f"{agency} is not registered")
    elif agency is not None:
        raise _bad("agency", f"only agency users belong to an agency (role {role} takes none)")
    token = await add_user(state.engine, name, role, agency, actor=_actor(request))
    uid = token.split("_", 2)[1]
    return web.json_response({"id": uid, "name": name, "role": role, "agency": agency, "token": token,
                              "message": "the token is shown once; it is stored hashed"}, status=201)


@api.endpoint("POST", "/api/v1/admin/users/{id}/revoke", "Revoke a user's token", roles=WRITE, response=User,
              errors=(400, 404, 409), path_model=UserPath)
async def users_revoke(request: web.Request, path: UserPath) -> web.Response:
    state = request.app[STATE]
    uid = path.id
    async with state.engine.connect() as conn:
        row = (await conn.execute(sa.select(api_users).where(api_users.c.id == uid))).mappings().first()
    if row is None:
        raise web.HTTPNotFound(text=f"no user {uid}")
    if row["revoked_at"] is not None:
        raise ConflictError(f"user {uid} is already revoked")
    if uid == principal(request).user_id:
        raise ConflictError("you cannot revoke your own token (ask another admin, or use `hub user revoke`)")
    await revoke_user(state.engine, uid, actor=_actor(request))
    async with state.engine.connect() as conn:
        row = (await conn.execute(sa.select(api_users).where(api_users.c.id == uid))).mappings().first()
    return web.json_response(_user_view(dict(row)))


# --- maintenance ------------------------------------------------------------------------------

async def _maintenance(state) -> dict:
    async with state.engine.connect() as conn:
        mode = await maintenance_mode(conn)
        backlog = (await conn.execute(sa.select(sa.func.count()).select_from(outbox).where(
            outbox.c.sent_at.is_(None)))).scalar() or 0
    depth = await state.backbone.depth(C.QUEUE_INTAKE)
    hub = state.hub
    in_flight = sum(getattr(w, "_in_flight", 0) for w in hub.workers) if hub is not None else None
    return {"state": mode, "intake_depth": depth, "outbox_backlog": backlog, "in_flight": in_flight,
            "drained": depth == 0 and backlog == 0 and not in_flight}


@api.endpoint("GET", "/api/v1/admin/maintenance", "Maintenance state and drain progress", roles=READ,
              response=Maintenance, errors=(503,))
async def maintenance_get(request: web.Request) -> web.Response:
    return web.json_response(await _maintenance(request.app[STATE]))


@api.endpoint("POST", "/api/v1/admin/maintenance", "Stop, drain or resume", roles=WRITE, body=MaintenanceRequest,
              response=Maintenance, errors=(400, 503))
async def maintenance_set(request: web.Request, body: MaintenanceRequest) -> web.Response:
    state = request.app[STATE]
    action = body.action
    async with state.engine.begin() as conn:
        before = await maintenance_mode(conn)
        await write_meta(conn, C.META_MAINTENANCE, MAINTENANCE[action])
        await rec.append(conn, f"maintenance.{action}", actor=_actor(request),
                         details={"from": before, "to": MAINTENANCE[action]})
    return web.json_response(await _maintenance(state))
