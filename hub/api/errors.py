"""JSON errors everywhere: ``{"reason": ..., "message": ...}``; never a stack trace to a caller."""

from __future__ import annotations

import asyncio
import logging
import uuid

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from hub.errors import AuthorityError, ConflictError, HubError, TransientError, UsageError

log = logging.getLogger("hub.api")


def error(status: int, reason: str, message: str, **extra) -> web.Response:
    return web.json_response({"reason": reason, "message": message, **extra}, status=status)


_STATUS = [
    (UsageError, 400),
    (AuthorityError, 403),
    (ConflictError, 409),
    (TransientError, 503),
    (HubError, 422),
]


REQUEST_TIMEOUT = 60.0  # seconds a handler may take before the caller gets a 503


@web.middleware
async def json_errors(request: web.Request, handler):
    try:
        return await asyncio.wait_for(handler(request), REQUEST_TIMEOUT)
    except asyncio.TimeoutError:
        log.warning("%s %s took longer than %.0f s", request.method, request.path, REQUEST_TIMEOUT)
        return error(503, "http.timeout", f"the request took longer than {REQUEST_TIMEOUT:.0f} s; retry later, "
                                          "or narrow it (filters, smaller pages)")
    except web.HTTPException as e:
        if e.content_type == "application/json" or e.status < 400:
            raise
        reason = {401: "auth.required", 403: "auth.forbidden", 404: "http.not_found", 405: "http.method_not_allowed",
                  413: "http.too_large", 415: "http.unsupported_media_type"}.get(e.status, f"http.{e.status}")
        message = e.text if e.text and not e.text.startswith(f"{e.status}:") else e.reason
        return error(e.status, reason, message)
    except HubError as e:
        status = next(code for cls, code in _STATUS if isinstance(e, cls))
        return error(status, e.code, e.message, **({"element": e.element} if e.element else {}))
    except Exception:  # noqa: BLE001 - the one place where anything unexpected becomes a 500
        incident = uuid.uuid4().hex[:12]
        log.exception("unhandled error on %s %s (incident %s)", request.method, request.path, incident,
                      extra={"incident": incident})
        return error(500, "hub.internal", f"internal error; the operator can find incident {incident} in the logs")


class JsonErrorRequestHandler(RequestHandler):
    """aiohttp's connection handler, but a request it cannot parse (a request line or header over
    its limit, a malformed line) is answered in the API's JSON error format too: these never reach
    the application or its middlewares, and aiohttp's own answer is text/plain."""

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        plain = super().handle_error(request, status, exc, message)  # logs it; raises if a response began
        if status >= 500:
            return plain
        if isinstance(exc, LineTooLong):
            body = error(status, "http.request_too_long",
                         "the request line or a header is longer than the server reads "
                         f"({exc.message}): shorten the query "
                         "(fewer or shorter parameters) or send the data in the request body")
        else:
            body = error(status, "http.bad_request" if status == 400 else f"http.{status}",
                         f"the request could not be read as HTTP: {message or exc}")
        body.force_close()
        return body


class JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:  # as web.Server's, with the handler above
        return JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer unparseable requests in JSON (see above)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = JsonErrorServer  # the app's own Server, only its handler class changed
        return server
