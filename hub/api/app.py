"""The aiohttp application: one app for ministries, admins, auditors and operators.

Resources are lifecycle contexts (aiohttp ``cleanup_ctx``) with typed ``AppKey`` state.
``create_app`` is used by ``hub serve`` (beside the workers, sharing their engine and
backbone) and by the tests.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from hub.api.errors import JsonErrorRunner, error, json_errors
from hub.api.state import PRINCIPAL, STATE, ApiState
from hub.api.users import Principal, agency_active, authenticate

__all__ = ["ApiState", "STATE", "create_app", "start_site", "wait_closed"]


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@web.middleware
async def http_counter(request: web.Request, handler):
    """Count every answer by method, route template and status (for /metrics). Paths that match no
    route count as ``unmatched``, so made-up URLs cannot grow the label set."""
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        resource = request.match_info.route.resource if request.match_info is not None else None
        route = resource.canonical if resource is not None else "unmatched"
        method = request.method if request.method in HTTP_METHODS else "other"
        request.app[STATE].metrics.http_requests.labels(method, route, str(status)).inc()


@web.middleware
async def authentication(request: web.Request, handler):
    if request.path.startswith("/vdxp/"):
        return await handler(request)  # the VDXP protocol authenticates itself, answering in its own envelope
    state = request.app[STATE]
    if "\x00" in request.path or "\x00" in request.query_string or "%00" in request.raw_path:
        return error(400, "http.bad_request", "NUL characters are not allowed in paths or query parameters")
    auth = request.headers.get("Authorization", "")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return error(401, "auth.invalid", "use `Authorization: Bearer <token>`")
        p = await authenticate(state.engine, token.strip())
        if p is None:
            return error(401, "auth.invalid", "the token is unknown or revoked; ask an admin for a new one")
        request[PRINCIPAL] = p
    else:
        p = await _client_certificate(request, state)
        if p is not None:
            request[PRINCIPAL] = p
    if p is not None and p.role == "agency" and not await agency_active(state.engine, p.agency):
        return error(401, "auth.invalid", f"agency {p.agency} is retired: its tokens and certificates give no "
                                          "access; ask an admin")
    return await handler(request)


async def _client_certificate(request: web.Request, state: ApiState) -> Principal | None:
    """An agency system may present a TLS client certificate pinned in the registry."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    import hashlib

    fp = hashlib.sha256(der).hexdigest()
    ctx = await state.check_context()
    code = ctx.registry.owner_of_fingerprint(fp)
    agency = ctx.registry.get(code) if code else None
    if agency is None:
        return None
    from cryptography import x509

    from hub.errors import HubError

    try:  # pinned is not enough: the certificate must still chain to a trust anchor, unrevoked
        ctx.trust.verify(x509.load_der_x509_certificate(der))
    except (HubError, ValueError):
        return None
    return Principal(f"tls:{code}", "agency", code)


def create_app(state: ApiState) -> web.Application:
    from hub.api import health, routes

    app = web.Application(
        middlewares=[http_counter, json_errors, authentication],
        client_max_size=state.settings.max_package_bytes + 64 * 1024,
    )
    app[STATE] = state
    app.add_routes(routes.route_defs())
    from hub.vdxp.server import create_vdxp_app

    app.add_subapp("/vdxp", create_vdxp_app(state))  # the national axis's protocol (hub/vdxp)
    app.cleanup_ctx.append(health.readiness_ctx)
    return app


async def start_site(app: web.Application, host: str, port: int, ssl_context=None) -> web.AppRunner:
    # Short keep-alive: the national SDK builds a new pooled client per call and never closes it,
    # so its idle connections would otherwise pile up for aiohttp's default 75 s.
    runner = JsonErrorRunner(app, access_log=None, shutdown_timeout=10, keepalive_timeout=15)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    return runner


async def wait_closed(runner: web.AppRunner) -> None:
    await asyncio.wait_for(runner.cleanup(), 15)
