"""A browser-like client for the admin dashboard: its own cookie jar, the login form, CSRF fields."""

from __future__ import annotations

import asyncio
import re
from html import unescape

import aiohttp
from yarl import URL

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Dash:
    """One browser session against ``base`` (the API's http://127.0.0.1:port), in ``lang``
    (the console's language switch; the behaviour tests read the English words, the browser
    test the Vietnamese default)."""

    def __init__(self, base: str, lang: str | None = "en"):
        self.base = base
        # unsafe=True: keep cookies for an IP address host (127.0.0.1), as a browser does
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        if lang:
            self.session.cookie_jar.update_cookies({"hub_lang": lang}, URL(base + "/admin"))
        self.csrf: str | None = None

    async def close(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> Dash:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def cookie(self, name: str) -> str | None:
        for c in self.session.cookie_jar:
            if c.key == name:
                return c.value
        return None

    async def get(self, path: str, *, follow: bool = False) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.session.get(self.base + path, allow_redirects=follow) as r:
            text = await r.text()
        m = CSRF.search(text)
        if m and r.status == 200:
            self.csrf = unescape(m.group(1))
        return r.status, text, r

    async def post(self, path: str, data, *, follow: bool = False) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.session.post(self.base + path, data=data, allow_redirects=follow) as r:
            text = await r.text()
        return r.status, text, r

    async def login(self, token: str) -> tuple[int, str, aiohttp.ClientResponse]:
        """Fill the sign-in form as a person would: GET it (nonce cookie + CSRF field), POST the token."""
        status, text, _ = await self.get("/admin/login")
        assert status == 200, text
        csrf = unescape(CSRF.search(text).group(1))
        return await self.post("/admin/login", {"token": token, "csrf": csrf, "next": "/admin"})

    async def admin(self, token: str) -> None:
        status, text, r = await self.login(token)
        assert status == 303 and r.headers["Location"] == "/admin", (status, text)
        status, text, _ = await self.get("/admin")
        assert status == 200, text
        assert self.csrf


async def until(fn, timeout: float = 20.0, every: float = 0.2):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await fn()
        if got:
            return got
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(every)
