"""A minimal client for the RabbitMQ management HTTP API (users, permissions, vhosts).

Only what provisioning, the console's queue figures (``request``) and tests need;
``management_target`` works out its URL and credentials from the settings. Needs the ``rabbitmq_management`` plugin
(``rabbitmq-plugins enable rabbitmq_management``; API on port 15672).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aiohttp

from hub.backbone.nodes import split_nodes
from hub.errors import AuthorityError, TransientError, UsageError


class Management:
    """``async with Management(url, user, password) as m: await m.put_user(...)``."""

    def __init__(self, url: str, user: str, password: str, *, timeout: float = 30.0):
        self._base = url.rstrip("/") + ("" if url.rstrip("/").endswith("/api") else "/api")
        self._headers = {"Authorization": aiohttp.encode_basic_auth(user, password),
                         "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Management:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                      missing_ok: bool = False) -> Any:
        """Call the API; 404 is None with ``missing_ok``; errors become hub errors."""
        if self._session is None:
            raise UsageError("use Management as an async context manager")
        try:
            async with self._session.request(method, self._base + path, json=body) as r:
                if r.status == 404 and missing_ok:
                    return None
                text = await r.text()
                if r.status in (401, 403):
                    raise AuthorityError(f"management API refused {method} {path}: {text}",
                                         code="authority.forbidden")
                if r.status >= 400:
                    raise UsageError(f"management API {method} {path}: HTTP {r.status} {text}",
                                     code="backbone.management")
                return await r.json() if text and r.content_type == "application/json" else None
        except aiohttp.ClientError as e:
            raise TransientError(f"management API unreachable: {e}", code="backbone.unavailable") from e

    async def put_user(self, user: str, password: str, tags: str = "") -> None:
        await self.request("PUT", f"/users/{_q(user)}", {"password": password, "tags": tags})

    async def delete_user(self, user: str) -> None:
        await self.request("DELETE", f"/users/{_q(user)}", missing_ok=True)

    async def set_permissions(self, vhost: str, user: str, *, configure: str, write: str, read: str) -> None:
        await self.request("PUT", f"/permissions/{_q(vhost)}/{_q(user)}",
                           {"configure": configure, "write": write, "read": read})

    async def permissions(self, vhost: str, user: str) -> dict[str, Any] | None:
        return await self.request("GET", f"/permissions/{_q(vhost)}/{_q(user)}", missing_ok=True)

    async def put_vhost(self, vhost: str) -> None:
        await self.request("PUT", f"/vhosts/{_q(vhost)}", {})

    async def delete_vhost(self, vhost: str) -> None:
        await self.request("DELETE", f"/vhosts/{_q(vhost)}", missing_ok=True)


def management_target(settings) -> tuple[str, str, str, str] | None:
    """(base URL, user, password, vhost) of the RabbitMQ management API, or None (embedded broker).

    ``HUB_AMQP_MANAGEMENT_URL`` when set (its credentials if it has any), else
    ``http://<amqp host>:15672``; credentials and vhost from ``HUB_AMQP_URL``.
    """
    if not settings.amqp_url:
        return None
    u = urlsplit(split_nodes(settings.amqp_url)[0])  # the first node of a comma-separated list
    user, password = unquote(u.username or "guest"), unquote(u.password or "guest")
    vhost = unquote(u.path[1:]) if u.path not in ("", "/") else "/"
    if settings.management_url:
        m = urlsplit(settings.management_url)
        if m.username:
            user, password = unquote(m.username), unquote(m.password or "")
        host = m.hostname or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        base = f"{m.scheme or 'http'}://{host}{':' + str(m.port) if m.port else ''}{m.path.rstrip('/')}"
    else:
        host = u.hostname or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        base = f"http://{host}:15672"
    return base, user, password, vhost


def _q(name: str) -> str:
    return quote(name, safe="")
