"""The one route table of the API: every module's declared endpoints, and the OpenAPI document
built from them. ``create_app`` adds these routes to the aiohttp router; nothing else declares one.
"""

from __future__ import annotations

import json
from functools import cache

from aiohttp import web

from hub.api import admin, audit, blobs, followup, gateway, health, vdxp_systems
from hub.api.endpoint import Endpoint, Endpoints
from hub.api.openapi import document

meta = Endpoints("operations")


@meta.endpoint("GET", "/api/v1/openapi.json", "This document", response={"type": "object"})
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=_document_bytes(), content_type="application/json", charset="utf-8")


TABLES = (health.api, meta, gateway.api, blobs.api, admin.api, followup.api, vdxp_systems.api, audit.api)


def endpoints() -> list[Endpoint]:
    return [e for table in TABLES for e in table.items]


@cache
def _document_bytes() -> bytes:
    return json.dumps(document(endpoints()), ensure_ascii=False).encode("utf-8")


def route_defs() -> list[web.RouteDef]:
    return [web.route(e.method, e.path, e.handler) for e in endpoints()]
