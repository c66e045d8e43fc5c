"""Admin API under /api/v1/admin/ (filled in by the admin module work)."""

from aiohttp import web

routes = web.RouteTableDef()
