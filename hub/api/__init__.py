"""The HTTP API (aiohttp): ministry gateway, admin and auditor endpoints, metrics and health."""
