"""Admin API for VDXP systems (hub/vdxp): list, register (the generated secret is in the answer,
once), revoke. Reads are open to admins and auditors; writes are admin-only and audited.

GET   /api/v1/admin/vdxp/systems                 systems (never their secrets)
POST  /api/v1/admin/vdxp/systems                 {"id", "agency"[, "secret"]} (201)
POST  /api/v1/admin/vdxp/systems/{id}/revoke     its requests are refused from now on
"""

from __future__ import annotations

from aiohttp import web

from hub.api.admin import _actor, _bad, _code, _iso, _text
from hub.api.endpoint import Endpoints, Reply
from hub.api.models import VdxpSystemInput, VdxpSystemPath
from hub.api.replies import VdxpSystem, VdxpSystemCreated, VdxpSystemList
from hub.api.state import STATE
from hub.errors import ConflictError
from hub.vdxp.keys import SecretBox
from hub.vdxp.systems import SYSTEM_ID_RE, add_system, list_systems, revoke_system

api = Endpoints("admin")


def _view(r: dict) -> dict:
    return {"id": r["id"], "agency": r["agency"], "active": r["revoked_at"] is None,
            "created_at": _iso(r["created_at"]), "created_by": r["created_by"], "revoked_at": _iso(r["revoked_at"])}


async def _find(state, system_id: str) -> dict | None:
    return next((r for r in await list_systems(state.engine) if r["id"] == system_id), None)


@api.endpoint("GET", "/api/v1/admin/vdxp/systems", "VDXP systems (never their secrets)", roles=("admin", "auditor"),
              response=VdxpSystemList)
async def systems_list(request: web.Request) -> web.Response:
    return web.json_response({"systems": [_view(r) for r in await list_systems(request.app[STATE].engine)]})


@api.endpoint("POST", "/api/v1/admin/vdxp/systems", "Register a VDXP system; a generated secret is shown once",
              roles=("admin",), body=VdxpSystemInput, response=Reply(VdxpSystemCreated, "Created"), status=201,
              errors=(400, 409))
async def systems_add(request: web.Request, body: VdxpSystemInput) -> web.Response:
    state = request.app[STATE]
    system_id = _text(body.id, "id", max_len=64).strip()
    if not SYSTEM_ID_RE.match(system_id):
        raise _bad("id", "1-64 characters of letters, digits, '.', '_' or '-'")
    agency = _code(body.agency, "agency")
    given = body.secret
    secret = None if given is None else _text(given, "secret", max_len=200)
    box = SecretBox.load(state.settings.vdxp_key, create=True)
    secret = await add_system(state.engine, box, system_id, agency, secret, actor=_actor(request))
    out = {"id": system_id, "agency": agency, "endpoint": "/vdxp",
           "message": "the client sets service.endpoint to http(s)://<hub>/vdxp, systemid and secret"}
    if given is None:
        out["secret"] = secret  # generated: shown this once, kept encrypted
    return web.json_response(out, status=201)


@api.endpoint("POST", "/api/v1/admin/vdxp/systems/{id}/revoke", "Revoke a VDXP system: its requests are refused from now on",
              roles=("admin",), response=VdxpSystem, errors=(400, 404, 409), path_model=VdxpSystemPath)
async def systems_revoke(request: web.Request, path: VdxpSystemPath) -> web.Response:
    state = request.app[STATE]
    system_id = path.id
    row = await _find(state, system_id)
    if row is None:
        raise web.HTTPNotFound(text=f"no VDXP system {system_id}")
    if row["revoked_at"] is not None:
        raise ConflictError(f"VDXP system {system_id} is already revoked")
    await revoke_system(state.engine, system_id, actor=_actor(request))
    return web.json_response(_view(await _find(state, system_id)))
