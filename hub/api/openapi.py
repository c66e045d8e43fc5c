"""The OpenAPI document at /api/v1/openapi.json."""

from aiohttp import web

routes = web.RouteTableDef()
