"""The VDXP endpoint: the 13 operations of the national axis's HTTP protocol under ``/vdxp/``.

An agency's unmodified SDK client points ``service.endpoint`` at ``http://HOST:PORT/vdxp``.
Every request is authenticated as PROTOCOL.md section 3 says (HMAC over the
``XroadVnpt-sign-header`` string as received, parameters only from the signed JSON) and every
answer, failures included, is the protocol's JSON envelope (``status``, ``ErrorCode``,
``ErrorDesc``), ASCII-only; ``downloadEdoc`` answers raw bytes, or an empty body on error (the
SDK would save any body as the document). Nothing here answers HTML or an empty OK: the SDK
reads a non-JSON answer to ``getReceivedEdocList`` as an empty inbox.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from datetime import datetime, timedelta

from aiohttp import HttpVersion11, web
from sqlalchemy.exc import DBAPIError, OperationalError

from hub.errors import HubError, TransientError
from hub.registry.store import maintenance_mode
from hub.store import packages as stored_packages
from hub.vdxp import directory, mailbox, outgoing
from hub.vdxp.keys import SecretBox
from hub.vdxp.systems import System, find_system
from hub.vdxp.wire import VdxpError, dumps, envelope, failure, file_from_body, read_signed, verify

log = logging.getLogger("hub.vdxp")
BOX = web.AppKey("vdxp_box", dict)
STATE = web.AppKey("vdxp_state", object)  # hub.api.app.ApiState (not imported: the API mounts us)
AUTH_CODES = {"vdxp.auth_missing", "vdxp.unknown_system", "vdxp.bad_signature", "vdxp.header_mismatch"}
UNAVAILABLE = (OperationalError, DBAPIError, TransientError, ConnectionError, OSError, asyncio.TimeoutError)
OUTCOME = "X-Hub-Vdxp-Outcome"  # internal: from refuse() to count_requests, never sent
TIMEOUT = 50.0  # seconds; the API's outer limit is 60 (hub.api.errors.REQUEST_TIMEOUT)
DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y",
                "%d-%m-%Y")


def answer(body: dict, status: int = 200) -> web.Response:
    return web.Response(body=dumps(body), status=status, content_type="application/json")


def _status_for(code: str) -> int:
    if code in AUTH_CODES:
        return 401
    if code == "hub.maintenance" or code == "vdxp.unavailable":
        return 503
    return 404 if code == "http.not_found" else 200


def refuse(op: str, code: str, message: str, status: int | None = None) -> web.Response:
    status = status or _status_for(code)
    if op == "downloadEdoc":
        response = web.Response(status=status if status != 200 else 404)  # empty body: never saved as the file
    else:
        response = answer(failure(code, message, **({"DocId": ""} if op == "sendEdoc" else {})), status)
    response.headers[OUTCOME] = code  # read (and removed) by count_requests
    return response


@web.middleware
async def count_requests(request: web.Request, handler):
    """``hub_vdxp_requests{operation, outcome}`` for /metrics (outcome: OK or the ErrorCode)."""
    response = await handler(request)
    op = request.match_info.get("op", "")
    op = op if op in OPERATIONS else "other"
    outcome = response.headers.get(OUTCOME, "OK")
    request.app[STATE].metrics.vdxp_requests.labels(op, outcome).inc()
    response.headers.popall(OUTCOME, None)
    return response


@web.middleware
async def envelope_errors(request: web.Request, handler):
    """Everything below /vdxp/ answers in the protocol's envelope, whatever goes wrong."""
    op = request.match_info.get("op") or request.path.rsplit("/", 1)[-1]
    try:
        # under the API's own limit, so that a slow request still ends in the envelope
        return await asyncio.wait_for(handler(request), TIMEOUT)
    except HubError as e:
        log.info("vdxp %s refused: %s", op, e.code, extra={"reason": e.code})
        return refuse(op, e.code, e.message)
    except web.HTTPException as e:
        code = {404: "http.not_found", 405: "http.method_not_allowed", 413: "http.too_large"}.get(
            e.status, "http.bad_request")
        return refuse(op, code, f"{e.reason}: {request.path}"[:300], e.status if e.status >= 400 else 400)
    except UNAVAILABLE as e:
        log.warning("vdxp %s: hub unavailable: %s", op, e.__class__.__name__)
        return refuse(op, "vdxp.unavailable", "the hub cannot reach its database or broker right now; retry later "
                                              "(this is not an empty inbox)")
    except Exception:  # noqa: BLE001 - the one place where anything unexpected becomes a FAIL
        incident = uuid.uuid4().hex[:12]
        log.exception("unhandled error on vdxp %s (incident %s)", op, incident, extra={"incident": incident})
        return refuse(op, "hub.internal", f"internal error; the operator can find incident {incident} in the logs",
                      500)


def _box(request: web.Request) -> SecretBox:
    holder = request.app[BOX]
    if "box" not in holder:
        holder["box"] = SecretBox.load(request.app[STATE].settings.vdxp_key, create=True)
    return holder["box"]


async def authenticate(request: web.Request, conn) -> tuple[System, object]:
    """The calling system and what it signed; a VdxpError otherwise."""
    raw = list(request.raw_headers)
    claimed = read_signed(raw)
    system = await find_system(conn, _box(request), claimed.system_id)
    if system is None:
        raise VdxpError(f"system {claimed.system_id[:64]!r} is unknown or revoked; ask the hub operator "
                        "(`hub vdxp add`)", code="vdxp.unknown_system", element="XroadVnpt-systemid")
    return system, verify(claimed, raw, system.secret)


def _message_type(signed, default: str = "edoc") -> str:
    value = signed.get("messagetype", default) or default
    if value not in mailbox.MESSAGE_TYPES:
        raise VdxpError("Invalid messageType: value in (edoc,status)", element="XroadVnpt-messagetype")
    return value


def _doc_id(signed) -> str:
    value = (signed.get("docId") or "").strip()
    if not value or len(value) > 64:
        raise VdxpError("docId is missing: send the docId listed by getReceivedEdocList", element="XroadVnpt-docId")
    return value


def _date(value: str | None, name: str, end: bool = False) -> datetime | None:
    if not value or not value.strip():
        return None
    for fmt in DATE_FORMATS:
        try:
            at = datetime.strptime(value.strip(), fmt).replace(tzinfo=mailbox.VIETNAM)
        except ValueError:
            continue
        return at + timedelta(days=1) if end and "%H" not in fmt else at
    raise VdxpError(f"{name} {value!r} is not a date: use yyyy-MM-dd, yyyy-MM-dd HH:mm:ss or dd/MM/yyyy",
                    element=f"XroadVnpt-{name}")


def _page(signed) -> tuple[int, int] | None:
    size, index = signed.get("pageSize"), signed.get("pageIndex")
    if not size or not size.strip():
        return None
    try:
        size_n, index_n = int(size), int(index or 0)
    except ValueError:
        raise VdxpError("pageSize and pageIndex are whole numbers", element="XroadVnpt-pageSize") from None
    if not 1 <= size_n <= 10000 or not 0 <= index_n <= 10**6:
        raise VdxpError("pageSize is 1..10000 and pageIndex 0..1000000", element="XroadVnpt-pageSize")
    return size_n, index_n


# --- operations ---------------------------------------------------------------------------

async def send_edoc(request, system: System, signed) -> web.Response:
    state = request.app[STATE]
    ctx = await state.check_context()
    outgoing.claimed_from(ctx.registry, system, signed.get("from"))
    signed_hash = signed.get("hash-file")
    if not signed_hash:
        raise VdxpError("the signed XroadVnpt-hash-file is missing: sendEdoc binds its body with it",
                        code="vdxp.hash_file", element="XroadVnpt-hash-file")
    body = await request.read()
    if not body:
        raise VdxpError("the body must be the edXML file", code="parse.not_xml")
    data = file_from_body(body, signed_hash)
    doc_id, repeated = await outgoing.send(state, system, data)
    desc = "Success" if not repeated else "Success: already received under this DocId; not sent again"
    return answer({**envelope(DocId=doc_id), "ErrorDesc": desc})


async def received_list(request, system: System, signed) -> web.Response:
    state = request.app[STATE]
    kind = _message_type(signed)
    since, until = _date(signed.get("fromDate"), "fromDate"), _date(signed.get("toDate"), "toDate", end=True)
    page = _page(signed)
    await mailbox.drain(state.engine, state.backbone, system.agency)
    rows = await mailbox.waiting(state.engine, system.agency, kind, since=since, until=until, page=page)
    return answer(envelope(data=[{
        "docId": r["id"], "serviceType": "eDoc", "messageType": r["kind"], "created_time": mailbox.iso(r["created_at"]),
        "updated_time": mailbox.iso(r["updated_at"]), "from": r["sender"] or "", "to": r["recipient"] or "",
        "status": r["state"], "status_desc": STATE_DESC.get(r["state"], r["state"]),
    } for r in rows]))


STATE_DESC = {"initial": "waiting", "fetched": "handed over, not yet acknowledged",
              "processing": "being processed by the receiver", "fail": "the receiver could not take it; waiting again"}


async def _fetch(request, system: System, signed):
    found = await mailbox.fetch(request.app[STATE].engine, system.agency, _doc_id(signed))
    if found is None:
        raise VdxpError(f"no docId {_doc_id(signed)} waiting for system {system.id}", code="vdxp.unknown_document",
                        element="XroadVnpt-docId")
    return found


async def get_edoc(request, system: System, signed) -> web.Response:
    _row, stored = await _fetch(request, system, signed)
    if not stored.by_reference:
        return answer(envelope(data=base64.b64encode(stored.inline).decode("ascii")))
    # A copy delivered by reference: the same envelope, its base64 written as the blob's chunks come
    # (after the handler returns: a slow reader is not cut off by TIMEOUT).
    whole = dumps(envelope(data=""))
    before, after = whole[:-2], whole[-2:]  # ...,"data":"  and  "}
    assert after == b'"}'

    async def body():
        yield before
        carry = b""
        async for data in stored_packages.chunks(request.app[STATE].engine, stored):
            data = carry + data
            cut = len(data) - len(data) % 3
            yield base64.b64encode(data[:cut])
            carry = data[cut:]
        yield base64.b64encode(carry) + after

    return web.Response(body=body(), headers={
        "Content-Type": "application/json",
        "Content-Length": str(len(before) + 4 * -(-stored.size // 3) + len(after))})


async def download_edoc(request, system: System, signed) -> web.Response:
    _row, stored = await _fetch(request, system, signed)
    if not stored.by_reference:
        return web.Response(body=stored.inline, content_type="application/octet-stream")
    return web.Response(body=stored_packages.chunks(request.app[STATE].engine, stored), headers={
        "Content-Type": "application/octet-stream", "Content-Length": str(stored.size)})


async def update_status(request, system: System, signed) -> web.Response:
    state = request.app[STATE]
    status = (signed.get("status") or "").strip()
    if not status or len(status) > 32 or not status.isascii():
        raise VdxpError("status is done, fail or processing (a short ASCII word)", element="XroadVnpt-status")
    row = await mailbox.acknowledge(state.engine, system.agency, _doc_id(signed), status, actor=f"vdxp:{system.id}",
                                    description=signed.get("description") or "",
                                    max_failures=state.settings.vdxp_max_failures)
    if row is None:
        raise VdxpError(f"no docId {_doc_id(signed)} waiting for system {system.id}", code="vdxp.unknown_document",
                        element="XroadVnpt-docId")
    return answer(envelope())


async def sent_edoc_list(request, system: System, signed) -> web.Response:
    rows = await outgoing.sent_list(request.app[STATE].engine, system.agency, _message_type(signed))
    wanted = signed.get("docId")
    if wanted and any(r["senderDocId"] == wanted for r in rows):  # a docId carried over from getEdoc is ignored
        rows = [r for r in rows if r["senderDocId"] == wanted]
    return answer(envelope(data=rows))


def _counter(kind: str):
    async def count(request, system: System, signed) -> web.Response:
        state = request.app[STATE]
        await mailbox.drain(state.engine, state.backbone, system.agency)
        return answer(envelope(count=await mailbox.count(state.engine, system.agency, kind)))

    return count


async def agencies_list(request, system: System, signed) -> web.Response:
    state = request.app[STATE]
    ctx = await state.check_context()
    return answer(envelope(data=await directory.agencies_list(state.engine, ctx.registry)))


async def agencies_qd20(request, system: System, signed) -> web.Response:
    return answer(envelope(data=await directory.agencies_qd20(request.app[STATE].engine, signed.get("level"))))


async def synchronize_unit(request, system: System, signed) -> web.Response:
    state = request.app[STATE]
    ctx = await state.check_context()
    return answer(envelope(data=await directory.synchronize(state.engine, ctx.registry, signed.get("version"))))


async def register_agency(request, system: System, signed) -> web.Response:
    state = request.app[STATE]
    raw = await request.read()
    try:
        body = json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (UnicodeDecodeError, ValueError):
        body = None
    if not isinstance(body, dict):
        raise VdxpError('the body must be the agency as JSON: {"pcode": ..., "code": ..., "name": ...}',
                        element="body")
    code = await directory.register(state.engine, system.agency, system.id, body)
    return answer({**envelope(), "ErrorDesc": f"Success: {code} registered under {system.agency}"})


async def delete_agency(request, system: System, signed) -> web.Response:
    code = await directory.unregister(request.app[STATE].engine, system.agency, system.id,
                                      signed.get("AgencyCode") or "")
    return answer({**envelope(), "ErrorDesc": f"Success: {code} retired"})


OPERATIONS = {
    "getAgenciesList": agencies_list,
    "getAgenciesListQD20": agencies_qd20,
    "getSynchronizeUnit": synchronize_unit,
    "registerAgency": register_agency,
    "deleteAgency": delete_agency,
    "sendEdoc": send_edoc,
    "getReceivedEdocList": received_list,
    "getEdoc": get_edoc,
    "downloadEdoc": download_edoc,
    "updateStatus": update_status,
    "getSentEdocList": sent_edoc_list,
    "countReceiveEdoc": _counter("edoc"),
    "countReceiveStatus": _counter("status"),
}


async def operation(request: web.Request) -> web.Response:
    op = request.match_info.get("op", "")
    if request.method not in ("GET", "POST"):
        return refuse(op, "http.method_not_allowed", f"{request.method} is not a VDXP method; use POST "
                                                     "(GET for downloadEdoc)", 405)
    handler = OPERATIONS.get(op)
    if handler is None:
        return refuse(op, "http.not_found", f"no VDXP operation {op[:64]!r}; the operations are "
                                            + ", ".join(OPERATIONS), 404)
    async with request.app[STATE].engine.connect() as conn:  # one connection: who, and may it send now
        system, signed = await authenticate(request, conn)
        if handler is send_edoc and await maintenance_mode(conn) != "running":
            raise VdxpError("the hub is in maintenance and takes no new packages; retry later", code="hub.maintenance")
    return await handler(request, system, signed)


async def expect_continue(request: web.Request) -> None:
    """``Expect: 100-continue`` (shape B and D calls) gets its interim answer at once, or the SDK
    stalls about 3 s per call; any other expectation is ignored (the operation answers in the
    envelope), never a bare 417."""
    if request.version == HttpVersion11 and request.headers.get("Expect", "").strip().lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0


def create_vdxp_app(state) -> web.Application:
    """The sub-application mounted at /vdxp on the API (``hub serve``)."""
    app = web.Application(middlewares=[count_requests, envelope_errors])
    app[STATE] = state
    app[BOX] = {}
    # Every method reaches the handler (which refuses all but GET and POST in the envelope), so
    # no request under /vdxp/ gets aiohttp's own plain-text 405 or 417.
    for path in ("/", "/{op}"):
        app.router.add_route("*", path, operation, expect_handler=expect_continue)
    return app
